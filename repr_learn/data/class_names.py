"""Class names and prompt templates for zero-shot classification.

A zero-shot classifier is built from text: each class name is put into every
template, and the class's vector is the mean of the normalised text embeddings
(prompt ensembling, CLIP section 3.1.4). The templates here are CLIP's
(openai/CLIP `data/prompts.md`, the lists open_clip's `zero_shot_metadata.py`
and CLIP_benchmark carry); `eval.zeroshot_templates` replaces them. ImageNet's
class names and 80 templates are CLIP's as open_clip ships them
(`open_clip_files.imagenet_zeroshot`), read where open_clip_torch is installed.
"""

from typing import Sequence

from repr_learn.data import open_clip_files
from repr_learn.data import shapes

# openai/CLIP data/prompts.md, "CIFAR10" and "CIFAR100" (the same 18).
CIFAR_TEMPLATES = (
    "a photo of a {}.", "a blurry photo of a {}.", "a black and white photo of a {}.",
    "a low contrast photo of a {}.", "a high contrast photo of a {}.", "a bad photo of a {}.",
    "a good photo of a {}.", "a photo of a small {}.", "a photo of a big {}.",
    "a photo of the {}.", "a blurry photo of the {}.", "a black and white photo of the {}.",
    "a low contrast photo of the {}.", "a high contrast photo of the {}.",
    "a bad photo of the {}.", "a good photo of the {}.", "a photo of the small {}.",
    "a photo of the big {}.",
)
# openai/CLIP data/prompts.md, "MNIST" (digits are handwritten digits too).
DIGIT_TEMPLATES = ('a photo of the number: "{}".',)
DEFAULT_TEMPLATES = ("a photo of a {}.",)

# Names CLIP's prompts use, where the TFDS label names differ or are absent.
_NAMES = {
    "digits": [str(i) for i in range(10)],
    "cifar10": ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                "ship", "truck"],
    "shapes": shapes.class_names(),
}
_TEMPLATES = {"digits": DIGIT_TEMPLATES, "cifar10": CIFAR_TEMPLATES,
              "cifar100": CIFAR_TEMPLATES, "shapes": shapes.ZEROSHOT_TEMPLATES}


# ImageNet's TFDS labels are WordNet ids: CLIP's names come from open_clip's file.
_FROM_OPEN_CLIP = ("imagenet2012",)


def templates(dataset: str, configured: Sequence[str] = ()) -> tuple[str, ...]:
  """`configured` if given, else the dataset's own prompts."""
  chosen = tuple(configured)
  if not chosen and dataset in _FROM_OPEN_CLIP:
    chosen = open_clip_files.imagenet_zeroshot()[1]
  chosen = chosen or _TEMPLATES.get(dataset, DEFAULT_TEMPLATES)
  for template in chosen:
    if "{}" not in template:
      raise ValueError(f"Zero-shot template {template!r} has no '{{}}' for the class name; "
                       "fix eval.zeroshot_templates.")
  return chosen


def known_names(dataset: str) -> list[str] | None:
  """The class names CLIP's prompts use for `dataset`, or None (then the
  dataset's own label names are read: `sources.label_names`)."""
  if dataset in _FROM_OPEN_CLIP:
    return list(open_clip_files.imagenet_zeroshot()[0])
  return _NAMES.get(dataset)


def readable(names: Sequence[str], dataset: str) -> list[str]:
  """TFDS label names as prompts want them ('maple_tree' -> 'maple tree');
  a one-line error for names that are not words (ImageNet's WordNet ids)."""
  if any(n[:1] == "n" and n[1:].isdigit() for n in names):
    raise ValueError(f"{dataset}'s labels are WordNet ids, not names; zero-shot needs class "
                     "names: evaluate on another dataset (eval.zeroshot_dataset), or on "
                     "imagenet2012, whose CLIP names open_clip_torch ships.")
  return [n.replace("_", " ") for n in names]
