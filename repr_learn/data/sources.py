"""Random-access sources of examples {image uint8[S,S,3], label, index}; datasets
stored whole (`DatasetSpec.max_aspect` > 1) add image_hw int32[2], the image's
size in its padded canvas.

TFDS datasets are read through `tfds.data_source` from `array_record` files,
which gives grain random access (deterministic shuffling, tiny iterator state).
"""

import os

import numpy as np
import tensorflow_datasets as tfds

from repr_learn.data import captioned_files
from repr_learn.data import captions
from repr_learn.data import catalog
from repr_learn.data import class_names
from repr_learn.data import digits
from repr_learn.data import image_folder
from repr_learn.data import resized_store
from repr_learn.data import resizing
from repr_learn.data import shapes

# Datasets this package generates into the TFDS data_dir on first use: their builders.
_GENERATED = {"digits": digits.ReprLearnDigits, "shapes": shapes.ReprLearnShapes}


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
    return self._converted(self._source[index], index)

  def _converted(self, example, index: int) -> dict[str, np.ndarray]:
    return {"label": np.int32(example.get("label", -1)), "index": np.int32(index),
            **resizing.stored_example(np.asarray(example["image"]), self._image_size,
                                      self._max_aspect)}


class CaptionedTfdsSource(TfdsSource):
  """A TFDS dataset with `captions: Sequence({'text'})` (coco_captions, shapes):
  each example also carries its tokenized captions (`captions.caption_tokens`)."""

  def __init__(self, source, image_size: int, tokenize, context_length: int,
               max_captions: int, max_aspect: float = 1.0):
    super().__init__(source, image_size, max_aspect)
    self._tokenize = tokenize
    self._context_length = context_length
    self._max_captions = max_captions

  def __getitem__(self, index: int) -> dict[str, np.ndarray]:
    example = self._source[index]
    return {**self._converted(example, index),
            **captions.caption_tokens(self.captions_of(example), self._tokenize,
                                      self._context_length, self._max_captions)}

  @staticmethod
  def captions_of(example) -> list[str]:
    return captions.decoded(example["captions"]["text"])

  @property
  def labels(self) -> np.ndarray:
    """Class ids in index order; -1 throughout for datasets without labels
    (COCO), read from the first example's fields."""
    if len(self) and "label" in self._source[0]:
      return np.array([self._source[i]["label"] for i in range(len(self))], np.int32)
    return np.full((len(self),), -1, np.int32)


def label_names(spec: catalog.DatasetSpec, data_config) -> list[str]:
  """The names of `spec`'s classes, as zero-shot prompts put them: CLIP's
  where it names them, else the dataset's own (TFDS label names, image folder
  class directories)."""
  known = class_names.known_names(spec.name)
  if known is not None:
    return known
  if spec.name == "image_folder":
    _, _, names = image_folder.scan(data_config.eval_dir or data_config.data_dir)
  else:
    open_source(spec, spec.eval_test_split, data_config)  # prepared, or a one-line error
    builder = tfds.builder(spec.tfds_name, data_dir=catalog.data_root(data_config.data_dir))
    label = builder.info.features["label"] if "label" in builder.info.features else None
    names = list(label.names) if label is not None else []
  if not names:
    raise ValueError(f"{spec.name} has no class names to prompt with; zero-shot needs a "
                     "labeled dataset (eval.zeroshot_dataset).")
  return class_names.readable(names, spec.name)


def _prepare_command(spec: catalog.DatasetSpec, data_dir: str | None) -> str:
  command = (f"python -m repr_learn.data.prepare --dataset={spec.name} "
             f"--data_dir={data_dir or '~/tensorflow_datasets'}")
  return command + (" --manual_dir=<ILSVRC2012 tars>" if spec.needs_manual_dir else "")


def prepare_generated(spec: catalog.DatasetSpec, data_dir: str | None) -> bool:
  """Builds a dataset this package generates (digits, shapes) into `data_dir`
  if it is not there; False for every other dataset."""
  if spec.name not in _GENERATED:
    return False
  builder = _GENERATED[spec.name](data_dir=catalog.data_root(data_dir))
  if not builder.is_prepared():  # a few seconds, once
    os.makedirs(builder.data_dir_root, exist_ok=True)
    builder.download_and_prepare(file_format="array_record")
  return True


def open_source(spec: catalog.DatasetSpec, split: str, data_config) -> TfdsSource:
  """The `split` of `spec`, as configured by `config.data`: TFDS's copy, or
  with `data.storage='resized'` the copy `prepare --resized` wrote; the user's
  image folder or caption files."""
  if spec.name == "image_folder":
    return image_folder.open_split(data_config.data_dir, data_config.eval_dir, split,
                                   spec.image_size, data_config.get("bad_images", "error"))
  if spec.name == "captions":
    return _open_caption_files(spec, split, data_config)
  data_dir = data_config.data_dir
  if data_config.get("storage", "tfds") == "resized":
    return resized_store.open_split(spec, split, data_dir, _prepare_command(spec, data_dir))
  prepare_generated(spec, data_dir)  # Built on first use, never downloaded.
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
  if spec.captioned:
    return CaptionedTfdsSource(source, spec.image_size, captions.from_config(data_config),
                               data_config.context_length, data_config.max_captions,
                               spec.max_aspect)
  return TfdsSource(source, spec.image_size, spec.max_aspect)


def _open_caption_files(spec: catalog.DatasetSpec, split: str, data_config):
  """`data.captions` (training) or `data.eval_captions` (evaluation; the
  training files when unset, as an unlabeled image folder evaluates on itself)."""
  path = data_config.captions
  if split == spec.eval_test_split and data_config.get("eval_captions"):
    path = data_config.eval_captions
  if not path:
    raise FileNotFoundError("data.name='captions' reads your caption files: pass "
                            "--config.data.captions=<a .csv/.tsv/.jsonl table or .tar shards>.")
  return captioned_files.open_captioned(
      path, image_size=spec.image_size, tokenizer=captions.from_config(data_config),
      context_length=data_config.context_length, max_captions=data_config.max_captions,
      bad_images=data_config.get("bad_images", "error"))
