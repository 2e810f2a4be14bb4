"""When a run should checkpoint and stop before its last step.

Two reasons: the caller asked for N steps (`--interrupt_after_steps`, for
time-limited jobs and tests), or the scheduler is about to take the machine
away (SIGTERM: SLURM's `--signal`, a Kubernetes pod eviction, `kill`). On a
pre-emption every process must stop at the *same* step, or their checkpoints
would disagree: under `jax.distributed` JAX's pre-emption service catches
SIGTERM on any process and agrees on a step with the others
(`multihost_utils.reached_preemption_sync_point`); a single process catches
the signal itself. The run then saves, and `main.py` exits with
`PREEMPTED_EXIT_CODE`, which the launchers read as "requeue and resume".
"""

import enum
import signal
import types

from absl import logging
import jax
from jax.experimental import multihost_utils

# EX_TEMPFAIL: "try again later". launch/slurm.sbatch requeues on it.
PREEMPTED_EXIT_CODE = 75
# The signals a single process treats as a pre-emption notice. SIGUSR1 is the
# common choice for SLURM's `--signal=USR1@<seconds>` warning.
_NOTICE_SIGNALS = (signal.SIGTERM, signal.SIGUSR1)


class StopReason(enum.Enum):
  ASKED = "asked"
  PREEMPTED = "preempted"


class StopConditions:
  """`reason(step)` says whether to checkpoint and stop after `step`.

  Call it once per step on every process. Use as a context manager: the
  single-process signal handlers are installed on entry and the previous ones
  restored on exit, so a library caller's own handlers survive the run.
  """

  def __init__(self, start_step: int, after_steps: int | None = None):
    self._start_step = start_step
    self._after_steps = after_steps
    self._notice: str | None = None
    self._previous_handlers = {}
    # Under jax.distributed the C++ pre-emption notifier owns SIGTERM; a Python
    # handler would replace it and break the agreement between processes.
    self._use_jax_service = jax.distributed.is_initialized()

  def __enter__(self) -> "StopConditions":
    if not self._use_jax_service:
      for sig in _NOTICE_SIGNALS:
        try:
          self._previous_handlers[sig] = signal.signal(sig, self._on_signal)
        except ValueError:  # Not the main thread: nobody can deliver it here anyway.
          pass
    return self

  def __exit__(self, *exc) -> None:
    for sig, handler in self._previous_handlers.items():
      signal.signal(sig, handler)
    self._previous_handlers = {}

  def _on_signal(self, signum: int, frame: types.FrameType | None) -> None:
    del frame
    self._notice = signal.Signals(signum).name
    logging.warning("Received %s: checkpointing after the current step, then exiting "
                    "with status %d so the launcher requeues the run.",
                    self._notice, PREEMPTED_EXIT_CODE)

  def reason(self, step: int) -> StopReason | None:
    if self._use_jax_service:
      if multihost_utils.reached_preemption_sync_point(step):
        return StopReason.PREEMPTED
    elif self._notice is not None:
      return StopReason.PREEMPTED
    if self._after_steps is not None and step - self._start_step >= self._after_steps:
      return StopReason.ASKED
    return None
