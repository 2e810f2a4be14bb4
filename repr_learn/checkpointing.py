"""Saving and restoring runs; the only module that imports orbax.

A checkpoint holds the whole `TrainState` and the data iterator's position, so
resuming continues the exact sequence of batches and random numbers.
"""

import logging as logging_std
import os
from typing import Any

from absl import logging
import orbax.checkpoint as ocp

from repr_learn import train_state as train_state_lib

STATE_ITEM = "state"
DATA_ITEM = "data_iterator"


class _QuietOrbaxInfo(logging_std.Filter):
  """Drops orbax's per-save INFO chatter; its warnings and errors still show."""

  def filter(self, record: logging_std.LogRecord) -> bool:
    return record.levelno > logging_std.INFO or "/orbax/" not in record.pathname


def _quiet_orbax() -> None:
  handler = logging.get_absl_handler()
  if not any(isinstance(f, _QuietOrbaxInfo) for f in handler.filters):
    handler.addFilter(_QuietOrbaxInfo())


class CheckpointError(RuntimeError):
  """No usable checkpoint although the workdir says there should be one."""


class Checkpointer:
  """Periodic asynchronous saves keeping the last N, and robust restore."""

  def __init__(self, directory: str, *, keep: int, every_steps: int):
    self.directory = os.path.abspath(directory)
    _quiet_orbax()
    options = ocp.CheckpointManagerOptions(
        max_to_keep=keep, save_interval_steps=every_steps, create=True,
        enable_async_checkpointing=True, cleanup_tmp_directories=True)
    self._manager = ocp.CheckpointManager(
        self.directory, options=options, item_names=(STATE_ITEM, DATA_ITEM))

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
    return self._manager.save(
        step,
        args=ocp.args.Composite(**{
            STATE_ITEM: ocp.args.StandardSave(state),
            DATA_ITEM: ocp.args.JsonSave(data_state),
        }),
        force=force)

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
    failures = []
    for step in reversed(steps):
      try:
        restored = self._manager.restore(step, args=ocp.args.Composite(**{
            STATE_ITEM: ocp.args.StandardRestore(abstract),
            DATA_ITEM: ocp.args.JsonRestore(),
        }))
      except Exception as e:  # orbax raises many types for damaged files.
        reason = f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"
        failures.append(f"step {step} ({reason})")
        logging.error("Checkpoint at step %d in %s is unreadable (%s); trying "
                      "the previous one.", step, self.directory, reason)
        continue
      if failures:
        logging.warning("Resumed from step %d because newer checkpoints were "
                        "unreadable: %s", step, "; ".join(failures))
      return restored[STATE_ITEM], dict(restored[DATA_ITEM])
    raise CheckpointError(
        f"No readable checkpoint in {self.directory} ({'; '.join(failures)}); "
        "fix or move that directory away to start over.")

  def wait(self) -> None:
    """Blocks until pending asynchronous saves are on disk."""
    self._manager.wait_until_finished()

  def close(self) -> None:
    self._manager.wait_until_finished()
    self._manager.close()



def read_latest_variables(directory: str) -> tuple[dict[str, Any], dict[str, Any], int]:
  """(params, batch_stats, step) of the newest checkpoint in `directory`, as
  host arrays, for initialising a new run from a finished one."""
  directory = os.path.abspath(directory)
  if not os.path.isdir(directory):
    raise FileNotFoundError(f"No checkpoints in {directory}: train the run to start "
                            "from first, or fix model.init_from.")
  _quiet_orbax()
  manager = ocp.CheckpointManager(
      directory, item_names=(STATE_ITEM, DATA_ITEM),
      options=ocp.CheckpointManagerOptions(create=False, read_only=True))
  try:
    step = manager.latest_step()
    if step is None:
      raise FileNotFoundError(f"No checkpoints in {directory}: train the run to start "
                              "from first, or fix model.init_from.")
    try:
      restored = manager.restore(step, args=ocp.args.Composite(**{
          STATE_ITEM: ocp.args.StandardRestore()}))[STATE_ITEM]
    except Exception as e:  # orbax raises many types for damaged files.
      raise CheckpointError(f"Checkpoint at step {step} in {directory} is unreadable "
                            f"({type(e).__name__}); pick another run for model.init_from.") from None
  finally:
    manager.close()
  return dict(restored["params"]), dict(restored.get("batch_stats") or {}), int(step)
