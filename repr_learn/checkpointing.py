"""Saving and restoring runs; the only module that imports orbax.

A checkpoint holds the whole `TrainState`, the data iterator's position, and a
CRC-32 digest of every state array, so resuming continues the exact sequence of
batches and random numbers, and a damaged file (a flipped bit, a truncated
array) is detected on restore instead of training on silently wrong weights.
"""

import contextlib
import errno
import logging as logging_std
import os
import shutil
import time
import zlib
from typing import Any

from absl import logging
import jax
from jax.experimental import multihost_utils
import numpy as np
import orbax.checkpoint as ocp

from repr_learn import parallel
from repr_learn import train_state as train_state_lib

STATE_ITEM = "state"
DATA_ITEM = "data_iterator"
DIGEST_ITEM = "digest"
LAYOUT_ITEM = "layout"  # the devices and processes that saved it
ITEMS = (STATE_ITEM, DATA_ITEM, DIGEST_ITEM, LAYOUT_ITEM)


def _host_leaves(tree: Any) -> dict[str, np.ndarray]:
  """Path -> host copy of each array (replicated ones from this process's shard)."""
  def host(x):
    if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
      x = jax.random.key_data(x)
    if isinstance(x, jax.Array):
      return np.asarray(x.addressable_data(0) if x.is_fully_replicated else parallel.fetch(x))
    return np.asarray(x)
  flat, _ = jax.tree_util.tree_flatten_with_path(tree)
  return {_path_name(path): host(x) for path, x in flat}


def _path_name(path) -> str:
  """'params/backbone/kernel' for a TrainState field or the same nested dict,
  so a state restored without a target checks against its digest too."""
  return "/".join(str(getattr(k, "key", getattr(k, "name", getattr(k, "idx", k)))) for k in path)


def _digest_of(leaves: dict[str, np.ndarray]) -> dict[str, str]:
  return {path: f"{x.dtype} {x.shape} {zlib.crc32(np.ascontiguousarray(x).data):08x}"
          for path, x in leaves.items()}


def state_digest(tree: Any) -> dict[str, str]:
  """Path -> 'dtype shape crc32' of every array of `tree`."""
  return _digest_of(_host_leaves(tree))


def _verify(state: Any, digest: dict[str, str] | None) -> None:
  """Raises ValueError if `state` differs from its saved digest or holds
  non-finite parameters (one host copy serves both checks)."""
  leaves = _host_leaves(state)
  if digest is not None:
    bad = [k for k, v in _digest_of(leaves).items() if digest.get(k) != v]
    if bad:
      raise ValueError(f"digest mismatch in {len(bad)} array(s), first {bad[0]}")
  for path, x in leaves.items():
    if (path.startswith("params/") and np.issubdtype(x.dtype, np.floating)
        and not np.isfinite(x).all()):
      raise ValueError(f"non-finite values in parameter {path}")


def _restore_verified(manager, directory: str, step: int, items: dict[str, Any],
                      optional: tuple[str, ...] = ()) -> dict[str, Any]:
  """`manager.restore` of `items` at `step`, plus the JSON items named in
  `optional` where the checkpoint has them (None where it predates them), with
  the state checked against its digest (checkpoints written before digests
  existed restore unverified)."""
  optional = (DIGEST_ITEM, *optional)
  present = [n for n in optional if os.path.isdir(os.path.join(directory, str(step), n))]
  restored = dict(manager.restore(step, args=ocp.args.Composite(
      **items, **{name: ocp.args.JsonRestore() for name in present})))
  restored.update({name: None for name in optional if name not in present})
  digest = restored[DIGEST_ITEM]
  _verify(restored[STATE_ITEM], dict(digest) if digest is not None else None)
  return restored


def _layout() -> dict[str, int]:
  return {"devices": jax.device_count(), "processes": jax.process_count()}


def _failure(step: int, error: Exception) -> str:
  """'step N (Type: first line)' for a checkpoint that did not restore."""
  first = str(error).splitlines()[0][:200] if str(error) else ""
  return f"step {step} ({type(error).__name__}: {first})"


class _QuietOrbaxInfo(logging_std.Filter):
  """Drops orbax's per-save INFO chatter; its warnings and errors still show."""

  def filter(self, record: logging_std.LogRecord) -> bool:
    return record.levelno > logging_std.INFO or "/orbax/" not in record.pathname


def _quiet_orbax() -> None:
  handler = logging.get_absl_handler()
  if not any(isinstance(f, _QuietOrbaxInfo) for f in handler.filters):
    handler.addFilter(_QuietOrbaxInfo())
  _one_writer_per_array()


def _one_writer_per_array() -> None:
  """Each replicated array is written whole by one device, as orbax already
  does on GPUs. Its CPU default (replica-parallel) slices every array per
  replica first: 1,576 eager slices and 2.9 s per save of a DINO smoke state on
  8 CPU devices, for arrays of a few kilobytes."""
  handler = ocp.type_handlers.get_type_handler(jax.Array)
  if getattr(handler, "_use_replica_parallel", False):
    ocp.type_handlers.register_type_handler(
        jax.Array, ocp.type_handlers.ArrayHandler(use_replica_parallel=False), override=True)


class CheckpointError(RuntimeError):
  """No usable checkpoint although the workdir says there should be one."""


class DiskFullError(CheckpointError):
  """The checkpoint directory's disk cannot hold the next checkpoint."""


def _gib(size: float) -> str:
  """A human size: GiB, MiB or KiB."""
  for unit, scale in (("GiB", 2**30), ("MiB", 2**20)):
    if size >= scale / 8:
      return f"{size / scale:.2f} {unit}"
  return f"{size / 2**10:.0f} KiB"


def _is_disk_full(error: BaseException) -> bool:
  """ENOSPC as Python raises it, or as tensorstore/orbax report it in text."""
  return (getattr(error, "errno", None) == errno.ENOSPC
          or "No space left on device" in str(error))


def state_bytes(state: Any) -> int:
  """What one checkpoint of `state` takes on disk, about: its arrays' bytes."""
  return sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(state) if hasattr(x, "dtype"))


def check_room(workdir: str, state: Any, keep: int) -> None:
  """Refuses to start a run whose disk cannot hold one checkpoint of `state`
  (before anything is written there); warns when it cannot hold the `keep`
  kept ones plus the one being written."""
  size, free = state_bytes(state), shutil.disk_usage(workdir).free
  if free < size:
    raise DiskFullError(
        f"{workdir} has {_gib(free)} free, but one checkpoint of this run takes about "
        f"{_gib(size)}; free space there, or pass a --workdir on a larger disk.")
  if free < (keep + 1) * size:
    logging.warning("%s has %s free: less than the %d checkpoints of %s each that "
                    "keep_checkpoints=%d holds while saving the next.", workdir, _gib(free),
                    keep + 1, _gib(size), keep)


class Checkpointer:
  """Periodic asynchronous saves keeping the last N, and robust restore."""

  def __init__(self, directory: str, *, keep: int, every_steps: int):
    self.directory = os.path.abspath(directory)
    _quiet_orbax()
    options = ocp.CheckpointManagerOptions(
        max_to_keep=keep, save_interval_steps=every_steps, create=True,
        enable_async_checkpointing=True, cleanup_tmp_directories=True)
    self._manager = ocp.CheckpointManager(self.directory, options=options, item_names=ITEMS)
    self._keep = keep
    self._checkpoint_bytes = 0

  @contextlib.contextmanager
  def _disk_full_in_one_line(self):
    """Turns orbax's report of a full disk (from this save or an earlier
    asynchronous one) into one `DiskFullError` line that says what to do."""
    try:
      yield
    except Exception as e:  # orbax raises many types; ENOSPC is in its text.
      if not _is_disk_full(e):
        raise
      # orbax leaves its failed write tasks unretrieved; asyncio would report
      # each one at exit, burying the one-line error under hundreds of lines.
      logging_std.getLogger("asyncio").setLevel(logging_std.CRITICAL)
      free = shutil.disk_usage(self.directory).free
      raise DiskFullError(
          f"The disk of {self.directory} is full ({_gib(free)} free; a checkpoint of this run "
          f"takes about {_gib(self._checkpoint_bytes)}, and {self._keep + 1} exist while one "
          "is saved); the checkpoints saved before are intact. Free space there (or lower "
          "keep_checkpoints), then rerun the same command to resume.") from None

  def all_steps(self) -> list[int]:
    return sorted(self._manager.all_steps())

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def save(self, state: train_state_lib.TrainState, data_state: dict[str, Any],
           *, force: bool = False) -> bool:
    """Saves if `state.step` is on the interval (or `force`); async."""
    step = int(state.step)
    if step in self._manager.all_steps():
      return False
    self._checkpoint_bytes = self._checkpoint_bytes or state_bytes(state)
    with self._disk_full_in_one_line():
      return self._manager.save(
          step,
          args=ocp.args.Composite(**{
              STATE_ITEM: ocp.args.StandardSave(state),
              DATA_ITEM: ocp.args.JsonSave(data_state),
              DIGEST_ITEM: ocp.args.JsonSave(state_digest(state)),
              LAYOUT_ITEM: ocp.args.JsonSave(_layout()),
          }),
          force=force)

  def _restore_step(self, step: int, abstract) -> tuple[Any, dict[str, Any]]:
    """One step's state and data position, verified against its digest."""
    restored = _restore_verified(
        self._manager, self.directory, step,
        {STATE_ITEM: ocp.args.StandardRestore(abstract), DATA_ITEM: ocp.args.JsonRestore()},
        optional=(LAYOUT_ITEM,))
    saved, now = restored[LAYOUT_ITEM], _layout()
    if saved is not None and dict(saved) != now:
      logging.warning("Step %d was saved on %d devices in %d process(es); resuming it on %d "
                      "in %d.", step,
                      saved["devices"], saved["processes"], now["devices"], now["processes"])
    return restored[STATE_ITEM], dict(restored[DATA_ITEM])

  def _move_aside(self, steps: list[int]) -> None:
    """Moves unreadable steps out of the way (not deleted: nothing is lost), so
    the re-trained step can be saved under the same number."""
    aside = f"{self.directory}.unreadable"
    if jax.process_index() == 0:
      os.makedirs(aside, exist_ok=True)
      for step in steps:
        target = os.path.join(aside, f"{step}-{time.strftime('%Y%m%d-%H%M%S')}")
        shutil.move(os.path.join(self.directory, str(step)), target)
        logging.warning("Moved the unreadable checkpoint at step %d to %s.", step, target)
    if jax.process_count() > 1:
      multihost_utils.sync_global_devices("repr_learn: unreadable checkpoints moved")
    self._manager.reload()

  def restore_latest(self, target: train_state_lib.TrainState
                     ) -> tuple[train_state_lib.TrainState, dict[str, Any]] | None:
    """Restores the newest readable checkpoint into `target`'s shapes/shardings.

    A corrupt or half-written newest checkpoint is reported and the previous one
    is used; if checkpoints exist but none can be read this raises rather than
    silently starting from scratch. Returns None when there is no checkpoint.
    """
    steps = self.all_steps()
    if not steps:
      return None
    abstract = train_state_lib.abstract_like(target)
    failures, unreadable = [], []
    for step in reversed(steps):
      try:
        restored = self._restore_step(step, abstract)
      except Exception as e:  # orbax raises many types for damaged files.
        failures.append(_failure(step, e))
        unreadable.append(step)
        logging.error("Checkpoint %s in %s is unreadable; trying the previous one.",
                      failures[-1], self.directory)
        continue
      if failures:
        logging.warning("Resumed from step %d because newer checkpoints were "
                        "unreadable: %s", step, "; ".join(failures))
        # An older step fits the same state, so the newer ones are damaged, not
        # from another configuration.
        self._move_aside(unreadable)
      return restored
    raise CheckpointError(
        f"No readable checkpoint in {self.directory} ({'; '.join(failures)}); "
        "fix or move that directory away to start over.")

  def wait(self) -> None:
    """Blocks until pending asynchronous saves are on disk."""
    with self._disk_full_in_one_line():
      self._manager.wait_until_finished()

  def close(self) -> None:
    try:
      self.wait()
    finally:
      self._manager.close()



def read_newest(directory: str, abstract: Any = None, *, attempts: int = 5
                ) -> tuple[Any, int]:
  """(state, step) of the newest complete, readable checkpoint in `directory`,
  into `abstract`'s shapes and shardings when given (host arrays otherwise).

  Opened read-only: nothing there is written, moved or cleaned up, so the
  evaluation tools can read a run that is training and saving into the same
  directory (a read-write manager deletes the trainer's save in flight). Saves
  in flight are not listed until complete; a step the trainer deletes while it
  is being read (it keeps the last N) sends the search back to the newest
  listing, up to `attempts` times.
  """
  directory = os.path.abspath(directory)
  if not os.path.isdir(directory):
    raise FileNotFoundError(f"No checkpoints in {directory}.")
  _quiet_orbax()
  manager = ocp.CheckpointManager(
      directory, item_names=ITEMS,
      options=ocp.CheckpointManagerOptions(create=False, read_only=True))
  failures, raced = {}, False
  try:
    for _ in range(attempts):
      manager.reload()
      steps = [s for s in sorted(manager.all_steps(), reverse=True) if s not in failures]
      if not steps:
        break
      raced = False
      for step in steps:
        try:
          restored = _restore_verified(manager, directory, step,
                                       {STATE_ITEM: ocp.args.StandardRestore(abstract)})
        except Exception as e:  # orbax raises many types for damaged or vanished files.
          manager.reload()
          if max(manager.all_steps(), default=step) > step:
            # A newer step was saved meanwhile, and this one is being deleted
            # (the trainer keeps the last N): start again from the newest.
            raced = True
            break
          failures[step] = _failure(step, e)
          logging.error("Checkpoint %s in %s is unreadable; trying the previous one.",
                        failures[step], directory)
          continue
        if failures:
          logging.warning("Read step %d of %s: newer checkpoints are unreadable.", step,
                          directory)
        return restored[STATE_ITEM], int(step)
      else:
        break
  finally:
    manager.close()
  if raced:
    raise CheckpointError(f"The checkpoints in {directory} changed under each of {attempts} "
                          "reads (a run saving very often); retry.")
  if failures:
    raise CheckpointError(f"No readable checkpoint in {directory} "
                          f"({'; '.join(failures.values())}).")
  raise FileNotFoundError(f"No checkpoints in {directory}.")


def read_latest_variables(directory: str) -> tuple[dict[str, Any], dict[str, Any], int]:
  """(params, batch_stats, step) of the newest checkpoint in `directory`, as
  host arrays, for initialising a new run from a finished one."""
  try:
    state, step = read_newest(directory)
  except FileNotFoundError:
    raise FileNotFoundError(f"No checkpoints in {os.path.abspath(directory)}: train the run "
                            "to start from first, or fix model.init_from.") from None
  except CheckpointError as e:
    raise CheckpointError(f"{e} Pick another run for model.init_from.") from None
  return dict(state["params"]), dict(state.get("batch_stats") or {}), step
