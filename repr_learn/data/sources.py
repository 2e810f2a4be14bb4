"""Random-access sources of examples {image uint8[S,S,3], label, index}; datasets
stored whole (`DatasetSpec.max_aspect` > 1) add image_hw int32[2], the image's
size in its padded canvas.

TFDS datasets are read through `tfds.data_source` from `array_record` files,
which gives grain random access (deterministic shuffling, tiny iterator state).
"""

import os

import numpy as np
import tensorflow_datasets as tfds

from repr_learn.data import catalog
from repr_learn.data import digits
from repr_learn.data import image_folder
from repr_learn.data import resized_store
from repr_learn.data import resizing


class DatasetNotPreparedError(FileNotFoundError):
  """The TFDS dataset has not been built (as array_record) in data_dir."""


def open_tfds(spec: catalog.DatasetSpec, split: str, data_dir: str | None):
  """TFDS's random-access source of `split` (raw examples, original sizes)."""
  return tfds.data_source(spec.tfds_name, split=split, data_dir=data_dir, download=False)


class TfdsSource:
  """Adapts a TFDS data source to our example format, resizing on access."""

  def __init__(self, source, image_size: int, max_aspect: float = 1.0):
    self._source = source
    self._image_size = image_size
    self._max_aspect = max_aspect

  def __len__(self) -> int:
    return len(self._source)

  def __getitem__(self, index: int) -> dict[str, np.ndarray]:
    example = self._source[index]
    return {"label": np.int32(example.get("label", -1)), "index": np.int32(index),
            **resizing.stored_example(np.asarray(example["image"]), self._image_size,
                                      self._max_aspect)}


def _prepare_command(spec: catalog.DatasetSpec, data_dir: str | None) -> str:
  command = (f"python -m repr_learn.data.prepare --dataset={spec.name} "
             f"--data_dir={data_dir or '~/tensorflow_datasets'}")
  return command + (" --manual_dir=<ILSVRC2012 tars>" if spec.needs_manual_dir else "")


def open_source(spec: catalog.DatasetSpec, split: str, data_config) -> TfdsSource:
  """The `split` of `spec`, as configured by `config.data`: TFDS's copy, or
  with `data.storage='resized'` the copy `prepare --resized` wrote."""
  if spec.name == "image_folder":
    return image_folder.open_split(data_config.data_dir, data_config.eval_dir, split,
                                   spec.image_size, data_config.get("bad_images", "error"))
  data_dir = data_config.data_dir
  if data_config.get("storage", "tfds") == "resized":
    return resized_store.open_split(spec, split, data_dir, _prepare_command(spec, data_dir))
  if spec.name == "digits":
    digits.prepare_digits(data_dir)  # Embedded: built on first use, never downloaded.
  builder_dir = os.path.join(catalog.data_root(data_dir),
                             spec.tfds_name.split(":")[0])
  if not os.path.isdir(builder_dir):
    if spec.needs_manual_dir and not data_config.manual_dir:
      raise DatasetNotPreparedError(
          f"{spec.name} is not prepared in {os.path.dirname(builder_dir)} and no "
          "manual_dir is set: download the ILSVRC2012 tars into a directory, pass "
          "--config.data.manual_dir=DIR and run " + _prepare_command(spec, data_dir))
    raise DatasetNotPreparedError(
        f"{spec.name} is not prepared in {os.path.dirname(builder_dir)}; run "
        f"`{_prepare_command(spec, data_dir)}` first (or set --config.data.data_dir).")
  try:
    source = open_tfds(spec, split, data_dir)
  except (AssertionError, FileNotFoundError, NotImplementedError, ValueError) as e:
    raise DatasetNotPreparedError(
        f"{spec.name} in {builder_dir} cannot be read as array_record ({e}); run "
        f"`{_prepare_command(spec, data_dir)}`.") from None
  return TfdsSource(source, spec.image_size, spec.max_aspect)
