"""The datasets repr_learn knows, and how each is split for SSL and evaluation."""

import dataclasses
import difflib


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
    image_size: square size the host stores/resizes images to; random crops
      to `augment.crop_size` happen on device.
    needs_manual_dir: TFDS needs files downloaded by hand (ImageNet).
  """
  name: str
  tfds_name: str
  pretrain_split: str
  eval_train_split: str
  eval_test_split: str
  num_classes: int
  image_size: int
  needs_manual_dir: bool = False


_SPECS = (
    DatasetSpec("digits", "repr_learn_digits", "train", "train", "test", 10, 32),
    DatasetSpec("cifar10", "cifar10", "train", "train", "test", 10, 32),
    DatasetSpec("cifar100", "cifar100", "train", "train", "test", 100, 32),
    DatasetSpec("stl10", "stl10", "unlabelled", "train", "test", 10, 96),
    DatasetSpec("imagenette", "imagenette/full-size-v2", "train", "train", "validation", 10, 256),
    DatasetSpec("imagenet2012", "imagenet2012", "train", "train", "validation", 1000, 256,
                needs_manual_dir=True),
    DatasetSpec("image_folder", "", "train", "train", "test", 0, 96),
)
CATALOG = {spec.name: spec for spec in _SPECS}


def get_spec(name: str) -> DatasetSpec:
  if name not in CATALOG:
    close = difflib.get_close_matches(name, CATALOG, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    raise UnknownDatasetError(f"Unknown dataset {name!r}; {hint}valid: {sorted(CATALOG)}.")
  return CATALOG[name]
