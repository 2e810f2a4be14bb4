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


def _fail(message: str) -> None:
  """The one line a user sees for a problem they can fix; exit status 1."""
  logging.error("%s", message)
  print(f"error: {message}", file=sys.stderr)
  sys.exit(1)


def _load_config():
  """The --config value, or a one-line error for a file that does not load."""
  config = _CONFIG.value
  try:
    config.get("objective")  # A failed load only raises when the config is used.
  except OSError as e:
    detail = [l.strip() for l in str(e).splitlines() if l.strip()][-1]
    _fail(f"cannot load --config ({detail}); the configs are configs/<method>.py[:variant].")
  return config


def main(argv):
  del argv
  config = _load_config()
  from repr_learn import preemption  # After flag parsing so --help stays fast.
  # From here on a pre-emption notice ends in the requeue status, whatever the
  # phase: JAX's start-up, building, compiling, training or evaluating.
  with preemption.Notice() as notice:
    result = _run(config, notice)
  if result.stopped == preemption.StopReason.PREEMPTED:
    # Checkpoint saved; the launchers requeue on this status (launch/).
    sys.exit(preemption.PREEMPTED_EXIT_CODE)


def _run(config, notice):
  import jax
  import flax
  from repr_learn import preemption
  if _COORDINATOR.value or _DISTRIBUTED.value:
    if notice.received:  # before the processes could agree on anything
      sys.exit(preemption.PREEMPTED_EXIT_CODE)
    jax.distributed.initialize(coordinator_address=_COORDINATOR.value,
                               num_processes=_NUM_PROCESSES.value,
                               process_id=_PROCESS_ID.value)
  logging.info("JAX process %d/%d, %d local / %d global devices (%s).",
               jax.process_index(), jax.process_count(), jax.local_device_count(),
               jax.device_count(), jax.devices()[0].platform)
  from repr_learn import train
  try:
    return train.train_and_evaluate(config, _WORKDIR.value, overwrite=_OVERWRITE.value,
                                    interrupt_after_steps=_INTERRUPT.value, notice=notice)
  except (KeyError, ValueError, FileNotFoundError, RuntimeError, FloatingPointError) as e:
    # Configuration and data problems: one line that says what to do.
    _fail(e.args[0] if isinstance(e, KeyError) and e.args else str(e))
  except (flax.errors.FlaxError, TypeError) as e:
    # Shape errors inside the network: the config's model does not fit its data.
    logging.debug("Model error", exc_info=True)
    first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    _fail(f"the network cannot run on this config's inputs ({type(e).__name__}: {first[:300]}); "
          "check config.model (backbone, patch_size) against config.augment.crop_size, "
          "or rerun with --verbosity=1 for the traceback.")

if __name__ == "__main__":
  app.run(main, flags_parser=parse_flags)
