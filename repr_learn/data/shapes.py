"""A generated captioned dataset for image-text training offline (no download).

Each 32x32 image holds one shape (circle, square, triangle, cross) in one of
six colours, small or large, at one of five places, on a noisy background; its
five captions are paraphrases naming what is drawn (several captions per
image, as COCO has). The label is the colour-shape pair (24 classes), so
zero-shot classification ("a red circle") and retrieval are both meaningful.
Four colour-shape pairs never appear in the training split and appear in the
test split: zero-shot on them needs the text tower to compose what it learned.

Built deterministically (numpy, seed 0) as a TFDS dataset on first use, like
`digits` (`sources.prepare_generated`), with coco_captions' caption layout
(`captions: Sequence({'text'})`).
"""

import numpy as np
import tensorflow_datasets as tfds

NAME = "repr_learn_shapes"
IMAGE_SIZE = 32
NUM_TRAIN = 6000
NUM_TEST = 960
COLOURS = {"red": (220, 40, 40), "green": (40, 180, 60), "blue": (50, 80, 230),
           "yellow": (230, 210, 40), "magenta": (200, 60, 200), "cyan": (40, 200, 210)}
SHAPES = ("circle", "square", "triangle", "cross")
SIZES = {"small": 5.0, "large": 10.0}  # half-extent in pixels
PLACES = {"left": (16, 8), "right": (16, 24), "top": (8, 16), "bottom": (24, 16),
          "centre": (16, 16)}  # (row, column) of the shape's centre
# Colour-shape pairs left out of the training split.
HELD_OUT = (("red", "triangle"), ("green", "cross"), ("blue", "circle"), ("yellow", "square"))
CAPTION_TEMPLATES = (
    "a {size} {colour} {shape} at the {place}",
    "a {colour} {shape}",
    "there is a {size} {shape} in {colour} on the {place} side",
    "{colour} {shape}, {size}, {place}",
    "a picture of a {shape} coloured {colour}",
)
ZEROSHOT_TEMPLATES = ("a {}", "a picture of a {}", "there is a {}")


def class_names() -> list[str]:
  """'red circle', ...: label = colour index * len(SHAPES) + shape index."""
  return [f"{colour} {shape}" for colour in COLOURS for shape in SHAPES]


def _draw(rng: np.random.Generator, colour: str, shape: str, size: str, place: str) -> np.ndarray:
  side = IMAGE_SIZE
  base = rng.uniform(20, 70)
  image = np.clip(base + rng.normal(0, 8, (side, side, 3)), 0, 255)
  r0, c0 = np.array(PLACES[place], float) + rng.uniform(-2, 2, 2)
  h = SIZES[size] * rng.uniform(0.85, 1.15)
  rows, cols = np.mgrid[0:side, 0:side].astype(float) + 0.5
  dr, dc = rows - r0, cols - c0
  if shape == "circle":
    inside = dr ** 2 + dc ** 2 <= h ** 2
  elif shape == "square":
    inside = (np.abs(dr) <= h * 0.85) & (np.abs(dc) <= h * 0.85)
  elif shape == "triangle":  # apex up, base at the bottom
    inside = (dr <= h * 0.8) & (dr >= -h) & (np.abs(dc) <= (dr + h) * 0.6)
  else:  # cross
    arm = max(h * 0.3, 1.2)
    inside = (((np.abs(dr) <= h) & (np.abs(dc) <= arm))
              | ((np.abs(dc) <= h) & (np.abs(dr) <= arm)))
  tint = np.clip(np.array(COLOURS[colour], float) * rng.uniform(0.85, 1.1), 0, 255)
  image[inside] = tint
  return image.astype(np.uint8)


def generate(split: str) -> list[dict]:
  """The examples of `split` ('train' or 'test'), deterministically."""
  rng = np.random.default_rng(0 if split == "train" else 1)
  pairs = [(c, s) for c in COLOURS for s in SHAPES]
  if split == "train":
    pairs = [p for p in pairs if p not in HELD_OUT]
  count = NUM_TRAIN if split == "train" else NUM_TEST
  names = class_names()
  examples = []
  for i in range(count):
    colour, shape = pairs[i % len(pairs)]
    size = rng.choice(list(SIZES))
    place = rng.choice(list(PLACES))
    fields = {"colour": colour, "shape": shape, "size": size, "place": place}
    examples.append({
        "image": _draw(rng, colour, shape, size, place),
        "label": names.index(f"{colour} {shape}"),
        "captions": {"text": [t.format(**fields) for t in CAPTION_TEMPLATES]},
    })
  return examples


class ReprLearnShapes(tfds.core.GeneratorBasedBuilder):
  """Generated shapes with paraphrased captions (repr_learn's quickstart data)."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "24 colour-shape classes, 5 captions per image."}

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
        builder=self,
        description="Coloured shapes at five places with five captions each.",
        features=tfds.features.FeaturesDict({
            "image": tfds.features.Image(shape=(IMAGE_SIZE, IMAGE_SIZE, 3)),
            "label": tfds.features.ClassLabel(names=class_names()),
            "captions": tfds.features.Sequence({"text": tfds.features.Text()}),
        }),
        supervised_keys=("image", "label"),
    )

  def _split_generators(self, dl_manager):
    del dl_manager
    return {split: self._generate_examples(split) for split in ("train", "test")}

  def _generate_examples(self, split):
    for i, example in enumerate(generate(split)):
      yield i, example
