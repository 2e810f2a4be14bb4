"""Entry point: `python main.py --config=configs/simclr.py:digits --workdir=DIR`.

Multi-host: pass --coordinator_address/--num_processes/--process_id, or run
under SLURM/Kubernetes where `jax.distributed.initialize()` finds them itself
(--distributed). See launch/ for ready-made scripts.
"""

import sys

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Experiment config: configs/<method>.py[:variant].", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory (checkpoints, metrics, eval).")
_OVERWRITE = flags.DEFINE_bool(
    "overwrite", False, "If --workdir holds a different run, move it aside and start anew.")
_INTERRUPT = flags.DEFINE_integer(
    "interrupt_after_steps", None,
    "Checkpoint and exit after this many steps (for time-limited scheduler jobs).")
_DISTRIBUTED = flags.DEFINE_bool(
    "distributed", False, "Call jax.distributed.initialize() (auto-detects SLURM, k8s).")
_COORDINATOR = flags.DEFINE_string("coordinator_address", None, "host:port of process 0.")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "Processes in the job.")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "This process's index.")
flags.mark_flags_as_required(["config", "workdir"])


def parse_flags(argv):
  """absl flag parsing, with config override typos reported in one line."""
  try:
    return flags.FLAGS(argv)
  except (AttributeError, KeyError, ValueError, TypeError, flags.Error) as e:
    raw = str(e).replace("\\n", "\n").replace("\\'", "'")
    lines = [line.strip().strip("'\"") for line in raw.splitlines() if line.strip()]
    message = lines[-1] if "Traceback" in raw else " ".join(lines)
    print(f"error: bad command line: {message}", file=sys.stderr)
    sys.exit(2)


def main(argv):
  del argv
  import jax  # After flag parsing so --help stays fast.
  if _COORDINATOR.value or _DISTRIBUTED.value:
    jax.distributed.initialize(coordinator_address=_COORDINATOR.value,
                               num_processes=_NUM_PROCESSES.value,
                               process_id=_PROCESS_ID.value)
  logging.info("JAX process %d/%d, %d local / %d global devices (%s).",
               jax.process_index(), jax.process_count(), jax.local_device_count(),
               jax.device_count(), jax.devices()[0].platform)
  from repr_learn import train
  try:
    train.train_and_evaluate(_CONFIG.value, _WORKDIR.value, overwrite=_OVERWRITE.value,
                             interrupt_after_steps=_INTERRUPT.value)
  except (KeyError, ValueError, FileNotFoundError, RuntimeError, FloatingPointError) as e:
    # Configuration and data problems: one line that says what to do.
    message = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
    logging.error("%s", message)
    print(f"error: {message}", file=sys.stderr)
    sys.exit(1)


if __name__ == "__main__":
  app.run(main, flags_parser=parse_flags)
