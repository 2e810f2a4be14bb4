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


class Notice:
  """Records a pre-emption notice (SIGTERM, SIGUSR1) for as long as it is
  entered: start-up, training and the final evaluation alike, so a notice at
  any phase ends the run with `PREEMPTED_EXIT_CODE` rather than the signal's
  default death (143), which the launchers would not requeue.

  Re-entrant: `main.py` enters it before JAX starts and the trainer enters the
  same one again. The previous handlers come back on the outermost exit, so a
  library caller's own survive. Under `jax.distributed` JAX's pre-emption
  service owns SIGTERM (a Python handler would break the processes' agreement
  on a step); the trainer then asks the service at each step instead.
  """

  def __init__(self):
    self.received: str | None = None
    self._depth = 0
    self._previous_handlers = {}

  def __enter__(self) -> "Notice":
    self._depth += 1
    if self._depth == 1 and not jax.distributed.is_initialized():
      for sig in _NOTICE_SIGNALS:
        try:
          self._previous_handlers[sig] = signal.signal(sig, self._on_signal)
        except ValueError:  # Not the main thread: nobody can deliver it here anyway.
          pass
    return self

  def __exit__(self, *exc) -> None:
    self._depth -= 1
    if self._depth == 0:
      for sig, handler in self._previous_handlers.items():
        signal.signal(sig, handler)
      self._previous_handlers = {}

  def _on_signal(self, signum: int, frame: types.FrameType | None) -> None:
    del frame
    self.received = signal.Signals(signum).name
    logging.warning("Received %s: stopping at the next safe point (after the current step, "
                    "or between evaluation protocols), then exiting with status %d so the "
                    "launcher requeues the run.", self.received, PREEMPTED_EXIT_CODE)


class StopConditions:
  """`reason(step)` says whether to checkpoint and stop after `step`.

  Call it once per step on every process; `at_safe_point` serves the phases
  without steps (before the first, between evaluation protocols). A single
  process reads `notice`; under `jax.distributed` the processes agree on a
  step through JAX's pre-emption service, which only steps can consult.
  """

  def __init__(self, start_step: int, notice: Notice, after_steps: int | None = None):
    self._start_step = start_step
    self._after_steps = after_steps
    self._notice = notice
    self._use_jax_service = jax.distributed.is_initialized()

  def at_safe_point(self) -> StopReason | None:
    """PREEMPTED once a notice has come (single process), outside the steps."""
    if not self._use_jax_service and self._notice.received is not None:
      return StopReason.PREEMPTED
    return None

  def reason(self, step: int) -> StopReason | None:
    if self._use_jax_service:
      if multihost_utils.reached_preemption_sync_point(step):
        return StopReason.PREEMPTED
    elif self._notice.received is not None:
      return StopReason.PREEMPTED
    if self._after_steps is not None and step - self._start_step >= self._after_steps:
      return StopReason.ASKED
    return None
