"""A catalog dataset re-encoded at its stored size: the faster ImageNet input path.

TFDS keeps ImageNet's original JPEGs (about 500x375), so every read decodes the
full image and resizes it to the stored 256-px shorter side, which costs more
than the decode (BENCHMARKS.md, "ImageNet input path": 324 images/s per core,
9-20 cores per GPU at the throughput goals). `write_split` does that resize
once: each image, as `resizing.fit_for_canvas` or `resize_and_center_crop`
leave it before padding (shorter side `image_size`, aspect kept up to
`max_aspect`, or the central square), is re-encoded as a JPEG and written to
array_record files beside the TFDS copy. `ResizedSource` then decodes a
~4x smaller file and pads it into the canvas with no resize; examples keep
their TFDS index and label, so runs, evaluation and resumption see the same
dataset. The cost is one more JPEG generation (quality 90, PIL's 4:2:0 chroma,
by default; `benchmarks/input_pipeline.py` reports the mean absolute
difference from the TFDS path's image and the files' size).

Layout: `<data_dir>/repr_learn_resized/<name>_<image_size>/<split>.array_record-
NNNNN-of-MMMMM`, one record per example: the label as a 4-byte little-endian
int32, then the JPEG bytes; `<split>.json` (written last) records the example
count and JPEG quality, and marks the split complete.

  python -m repr_learn.data.prepare --dataset=imagenet2012 --data_dir=$TFDS --resized
  python main.py --config=configs/simclr.py:imagenet --config.data.storage=resized
"""

import concurrent.futures
import functools
import glob
import io
import json
import multiprocessing
import os
import shutil

import numpy as np
from PIL import Image

from repr_learn.data import catalog
from repr_learn.data import pipeline
from repr_learn.data import resizing

RECORD_SUFFIX = ".array_record"
DEFAULT_QUALITY = 90


class ResizedStoreMissingError(FileNotFoundError):
  """The split has not been written (or its writing did not finish)."""


def store_dir(data_dir: str | None, spec: catalog.DatasetSpec) -> str:
  return os.path.join(catalog.data_root(data_dir), "repr_learn_resized",
                      f"{spec.name}_{spec.image_size}")


def stored_image(image: np.ndarray, spec: catalog.DatasetSpec) -> np.ndarray:
  """`image` as the store keeps it: resized and cropped as the TFDS path
  would, before the canvas padding."""
  if spec.max_aspect > 1.0:
    return resizing.fit_for_canvas(image, spec.image_size, spec.max_aspect)
  return resizing.resize_and_center_crop(image, spec.image_size)


def encode_record(image: np.ndarray, label: int, quality: int) -> bytes:
  buffer = io.BytesIO()
  Image.fromarray(image).save(buffer, format="JPEG", quality=quality)
  return np.int32(label).astype("<i4").tobytes() + buffer.getvalue()


def decode_record(record: bytes) -> tuple[np.ndarray, np.int32]:
  label = np.frombuffer(record[:4], "<i4")[0]
  image = np.asarray(Image.open(io.BytesIO(record[4:])).convert("RGB"))
  return image, np.int32(label)


def _write_shard(source, path: str, start: int, stop: int, spec: catalog.DatasetSpec,
                 quality: int) -> int:
  from array_record.python import array_record_module  # pylint: disable=g-import-not-at-top
  writer = array_record_module.ArrayRecordWriter(path, "group_size:1")
  try:
    for index in range(start, stop):
      example = source[index]
      writer.write(encode_record(stored_image(np.asarray(example["image"]), spec),
                                 int(example.get("label", -1)), quality))
  finally:
    writer.close()
  return stop - start


def _open_and_write_shard(source_fn, *shard) -> int:
  """`_write_shard` in a worker process, which opens its own source."""
  return _write_shard(source_fn(), *shard)


def write_split(source_fn, spec: catalog.DatasetSpec, split: str, data_dir: str | None, *,
                shards: int = 16, workers: int = 1, quality: int = DEFAULT_QUALITY) -> str:
  """Writes `split` from the raw source `source_fn()` (TFDS examples: {image of
  any size, label}), in `shards` files over `workers` processes. Writes into a
  temporary folder and moves the finished files in, so an interrupted write
  leaves no half split; a complete split is left as it is. Returns the folder."""
  folder = store_dir(data_dir, spec)
  if os.path.exists(os.path.join(folder, f"{split}.json")):
    return folder
  source = source_fn()
  num_examples = len(source)
  os.makedirs(folder, exist_ok=True)
  partial = os.path.join(folder, f".{split}.partial")
  shutil.rmtree(partial, ignore_errors=True)
  os.makedirs(partial)
  shards = max(1, min(shards, num_examples))
  bounds = np.linspace(0, num_examples, shards + 1).astype(int)
  names = [f"{split}{RECORD_SUFFIX}-{i:05d}-of-{shards:05d}" for i in range(shards)]
  jobs = [(os.path.join(partial, name), int(a), int(b), spec, quality)
          for name, a, b in zip(names, bounds[:-1], bounds[1:])]
  if workers > 1:  # spawned: the parent may hold TensorFlow's threads, which fork breaks
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(workers, mp_context=context) as pool:
      written = sum(pool.map(_open_and_write_shard, [source_fn] * shards, *zip(*jobs)))
  else:
    written = sum(_write_shard(source, *job) for job in jobs)
  for name in names:
    os.replace(os.path.join(partial, name), os.path.join(folder, name))
  os.rmdir(partial)
  with open(os.path.join(folder, f"{split}.json"), "w") as f:
    json.dump({"num_examples": written, "jpeg_quality": quality, "shards": shards,
               "image_size": spec.image_size, "max_aspect": spec.max_aspect}, f)
  return folder


def write_dataset(spec: catalog.DatasetSpec, data_dir: str | None, open_raw, *,
                  workers: int = 1, quality: int = DEFAULT_QUALITY) -> str:
  """Writes every split the trainer and the protocols read; `open_raw(split)`
  gives a split's raw source (picklable, for the worker processes)."""
  for split in sorted({spec.pretrain_split, spec.eval_train_split, spec.eval_test_split}):
    folder = write_split(functools.partial(open_raw, split), spec, split, data_dir,
                         shards=max(16, workers), workers=workers, quality=quality)
  return folder


class ResizedSource:
  """Random access to a written split, in the examples' TFDS order and format
  ({image in its canvas, image_hw if stored whole, label, index})."""

  def __init__(self, paths: list[str], spec: catalog.DatasetSpec):
    self._records = pipeline.record_files(paths)
    self._spec = spec

  def __len__(self) -> int:
    return len(self._records)

  def __getitem__(self, index: int) -> dict[str, np.ndarray]:
    image, label = decode_record(self._records[index])
    # Stored at its size: padded into the canvas, not resized again.
    return {"label": label, "index": np.int32(index),
            **resizing.stored_example(image, self._spec.image_size, self._spec.max_aspect)}


def open_split(spec: catalog.DatasetSpec, split: str, data_dir: str | None,
               prepare_command: str) -> ResizedSource:
  folder = store_dir(data_dir, spec)
  if not os.path.exists(os.path.join(folder, f"{split}.json")):
    raise ResizedStoreMissingError(
        f"{spec.name} has no resized copy of split {split!r} in {folder}; run "
        f"`{prepare_command} --resized` (or set data.storage='tfds').")
  paths = sorted(glob.glob(os.path.join(folder, f"{split}{RECORD_SUFFIX}-*")))
  return ResizedSource(paths, spec)
