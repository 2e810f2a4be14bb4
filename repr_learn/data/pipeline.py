"""grain pipelines: the shuffled training stream and ordered evaluation passes.

Training order is a pure function of (seed, position): the source is shuffled
with a fresh permutation each epoch (grain reseeds on `repeat`), and process p
takes the p-th contiguous block of every global batch. Assembled in process
order, a step's global batch is then identical, example for example, whatever
the number of hosts, and the iterator's state is a small JSON dict saved with
each checkpoint.
"""

import json
import os
from typing import Any, Iterator

import grain
import numpy as np


def record_files(paths: list[str]):
  """Random access, in order, to the records of array_record files (grain's
  reader: one index over all files, picklable for worker processes)."""
  return grain.sources.ArrayRecordDataSource(paths)


def make_train_iterator(source, *, global_batch_size: int, process_index: int,
                        process_count: int, seed: int, worker_count: int = 0,
                        neighbours: np.ndarray | None = None):
  """An endless iterator of this process's share of each global batch.

  With `neighbours` ([N, k] dataset indices), every example also carries
  `neighbour_image`: one of its k neighbours, drawn afresh at each position of
  the stream (SCAN's anchor/neighbour pairs), deterministically from `seed`.
  """
  if global_batch_size % process_count:
    raise ValueError(f"Global batch {global_batch_size} is not divisible by the "
                     f"{process_count} processes.")
  local_batch = global_batch_size // process_count
  stream = grain.MapDataset.source(source).shuffle(seed=seed).repeat(None)
  if neighbours is not None:
    stream = stream.random_map(_NeighbourPairs(source, neighbours), seed=seed + 1)
  share = _ProcessBlocks(stream, global_batch_size, local_batch, process_index)
  ds = grain.MapDataset.source(share).batch(local_batch, drop_remainder=True)
  it_ds = ds.to_iter_dataset(_read_options())
  if worker_count > 0:
    it_ds = it_ds.mp_prefetch(grain.MultiprocessingOptions(num_workers=worker_count))
  return iter(it_ds)


def _read_options() -> grain.ReadOptions:
  """Threads that each read a whole batch ahead, and a buffer of two batches per
  thread. grain's default buffer is 500 elements, and our elements are batches:
  500 batches is tens of GB of host memory at ImageNet sizes, and seconds of
  decoding thrown away at the end of every short run (tests)."""
  threads = max(1, min(16, os.cpu_count() or 1))
  return grain.ReadOptions(num_threads=threads, prefetch_buffer_size=2 * threads)


class _ProcessBlocks:
  """This process's contiguous block of each global batch of `stream`."""

  def __init__(self, stream, global_batch: int, local_batch: int, process_index: int):
    self._stream = stream
    self._global = global_batch
    self._local = local_batch
    self._offset = process_index * local_batch

  def __len__(self) -> int:
    return len(self._stream) // self._global * self._local

  def __getitem__(self, index: int):
    step, within = divmod(index, self._local)
    return self._stream[step * self._global + self._offset + within]


class _NeighbourPairs:
  """Adds the image of a random one of the example's mined neighbours."""

  def __init__(self, source, neighbours: np.ndarray):
    if neighbours.shape[0] != len(source):
      raise ValueError(f"{neighbours.shape[0]} neighbour lists for {len(source)} examples.")
    self._source = source
    self._neighbours = np.asarray(neighbours)

  def __call__(self, example, rng: np.random.Generator):
    candidates = self._neighbours[int(example["index"])]
    neighbour = self._source[int(candidates[rng.integers(len(candidates))])]
    pair = {**example, "neighbour_image": neighbour["image"]}
    if "image_hw" in neighbour:
      pair["neighbour_image_hw"] = neighbour["image_hw"]
    return pair


def iterator_state(iterator) -> dict[str, Any]:
  """The iterator's position as a JSON-ready dict."""
  return json.loads(json.dumps(iterator.get_state()))


def iterate_eval_batches(source, *, batch_size: int, process_index: int,
                         process_count: int) -> Iterator[dict[str, np.ndarray]]:
  """One ordered pass; this process's strided share, padded to `batch_size`.

  Every process yields the same number of batches (each batch is one collective
  step of the compiled forward); `mask` is False on padding rows.
  """
  total = len(source)
  indices = np.arange(process_index, total, process_count)
  per_process = -(-total // process_count)
  num_batches = -(-per_process // batch_size)
  for b in range(num_batches):
    chunk = indices[b * batch_size:(b + 1) * batch_size]
    examples = [source[int(i)] for i in chunk]
    mask = np.zeros((batch_size,), bool)
    mask[:len(examples)] = True
    if examples:
      template = examples[0]
    else:
      template = source[0]
    batch = {}
    for key in ("image", "label", "index", "image_hw", "tokens", "num_captions"):
      if key not in template:
        continue
      stacked = np.zeros((batch_size,) + np.shape(template[key]),
                         np.asarray(template[key]).dtype)
      if examples:
        stacked[:len(examples)] = np.stack([e[key] for e in examples])
      batch[key] = stacked
    batch["mask"] = mask
    yield batch
