"""The datasets repr_learn knows, and how each is split for SSL and evaluation."""

import dataclasses
import difflib
import os


class UnknownDatasetError(ValueError):
  """`config.data.name` is not in the catalog."""


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
  """A dataset as the trainer sees it.

  Attributes:
    name: our name (`config.data.name`).
    tfds_name: the TFDS builder name ('' for image folders).
    pretrain_split: split used for self-supervised training.
    eval_train_split: labeled split that kNN / linear probes fit on.
    eval_test_split: labeled split they are scored on.
    num_classes: number of classes (0: read from the data, image folders).
    image_size: the size the host stores images at: the side of a central
      square, or with `max_aspect` > 1 the shorter side of the whole image.
      Random crops to `augment.crop_size` happen on device.
    needs_manual_dir: TFDS needs files downloaded by hand (ImageNet).
    max_aspect: > 1: images are stored whole, aspect kept (longer side up to
      `max_aspect` x `image_size`, centre-cropped beyond), in a square canvas
      of `canvas_size`, so random-resized crops see the whole image as
      torchvision's do (MoCo, DINO, ...), and evaluation takes the standard
      Resize(256) + CenterCrop(224). 1: the central square only.
    captioned: examples carry captions (image-text training): 'tokens'
      int32 [data.max_captions, data.context_length], the tokenized captions
      of the image, and 'num_captions', how many of those rows are real.
  """
  name: str
  tfds_name: str
  pretrain_split: str
  eval_train_split: str
  eval_test_split: str
  num_classes: int
  image_size: int
  needs_manual_dir: bool = False
  max_aspect: float = 1.0
  captioned: bool = False

  @property
  def canvas_size(self) -> int:
    """Side of the stored image arrays."""
    return canvas_side(self.image_size, self.max_aspect)

  def example_shapes(self, pairs_with_neighbours: bool = False,
                     captions: tuple[int, int] = (0, 0)) -> dict[str, tuple]:
    """{key: (shape, dtype)} of one example as the sources give it (and, with
    `pairs_with_neighbours`, as SCAN's pairing adds to it); `captions` is
    (data.max_captions, data.context_length) for captioned datasets."""
    side = self.canvas_size
    shapes = {"image": ((side, side, 3), "uint8"), "label": ((), "int32"),
              "index": ((), "int32")}
    if self.max_aspect > 1.0:
      shapes["image_hw"] = ((2,), "int32")
    if self.captioned:
      shapes["tokens"] = (tuple(captions), "int32")
      shapes["num_captions"] = ((), "int32")
    if pairs_with_neighbours:
      shapes.update({f"neighbour_{k}": v for k, v in shapes.items()
                     if k in ("image", "image_hw")})
    return shapes


def data_root(data_dir: str | None) -> str:
  """The TFDS data_dir: `data_dir`, else TFDS's own default ($TFDS_DATA_DIR,
  else `~/tensorflow_datasets`), user expanded."""
  return os.path.expanduser(data_dir or os.environ.get("TFDS_DATA_DIR")
                            or "~/tensorflow_datasets")


def canvas_side(shorter: int, max_aspect: float) -> int:
  """Side of the square that holds an image of shorter side `shorter` and
  aspect up to `max_aspect` (`resizing.resize_into_canvas`)."""
  return int(round(shorter * max_aspect))


_SPECS = (
    DatasetSpec("digits", "repr_learn_digits", "train", "train", "test", 10, 32),
    DatasetSpec("cifar10", "cifar10", "train", "train", "test", 10, 32),
    DatasetSpec("cifar100", "cifar100", "train", "train", "test", 100, 32),
    DatasetSpec("stl10", "stl10", "unlabelled", "train", "test", 10, 96),
    DatasetSpec("imagenette", "imagenette/full-size-v2", "train", "train", "validation", 10, 256,
                max_aspect=4 / 3),
    DatasetSpec("imagenet2012", "imagenet2012", "train", "train", "validation", 1000, 256,
                needs_manual_dir=True, max_aspect=4 / 3),
    DatasetSpec("image_folder", "", "train", "train", "test", 0, 96),
    DatasetSpec("shapes", "repr_learn_shapes", "train", "train", "test", 24, 32,
                captioned=True),
    # Karpathy's splits; `restval` (30,504 images) is the usual extra training data.
    DatasetSpec("coco_captions", "coco_captions", "train+restval", "train", "test", 0, 224,
                captioned=True),
    # The user's own: a caption table or tar shards (data.captions, data.eval_captions).
    DatasetSpec("captions", "", "train", "train", "test", 0, 224, captioned=True),
)
CATALOG = {spec.name: spec for spec in _SPECS}


def get_spec(name: str) -> DatasetSpec:
  if name not in CATALOG:
    close = difflib.get_close_matches(name, CATALOG, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    raise UnknownDatasetError(f"Unknown dataset {name!r}; {hint}valid: {sorted(CATALOG)}.")
  return CATALOG[name]
