"""The command line: overrides, typos and bad input fail in one line."""

import os
import pathlib
import signal
import subprocess
import sys
import time

import pytest

from repr_learn import preemption

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _run(*args, timeout=240):
  env = dict(os.environ, JAX_PLATFORMS="cpu",
             XLA_FLAGS="--xla_force_host_platform_device_count=2 --xla_backend_optimization_level=0")
  return subprocess.run([sys.executable, "main.py", *args], cwd=ROOT, env=env,
                        capture_output=True, text=True, timeout=timeout)


def _error_line(proc):
  lines = [l for l in proc.stderr.splitlines() if l.startswith("error:")]
  assert len(lines) == 1, proc.stderr[-2000:]
  return lines[0]


def test_misspelt_override_names_the_nearest_key(tmp_path):
  proc = _run("--config=configs/simclr.py:smoke", "--config.optimizer.weight_decy=1",
              f"--workdir={tmp_path}")
  assert proc.returncode == 2
  assert "weight_decay" in _error_line(proc)
  assert not any(tmp_path.iterdir())


def test_unknown_variant(tmp_path):
  proc = _run("--config=configs/simclr.py:smok", f"--workdir={tmp_path}")
  assert proc.returncode == 2 and "Unknown variant 'smok'" in _error_line(proc)


@pytest.mark.slow
def test_overrides_reach_the_run_and_bad_data_fails_cleanly(tmp_path):
  data_dir = tmp_path / "tfds"
  proc = _run("--config=configs/simclr.py:smoke", "--config.num_steps=2",
              "--config.batch_size=16", "--config.eval.random_init_baseline=False",
              f"--config.data.data_dir={data_dir}", f"--workdir={tmp_path / 'run'}")
  assert proc.returncode == 0, proc.stderr[-3000:]
  config = (tmp_path / "run" / "config.json").read_text()
  assert '"batch_size": 16' in config and '"num_steps": 2' in config
  proc = _run("--config=configs/simclr.py:smoke", "--config.data.name=cifar10",
              f"--config.data.data_dir={data_dir}", f"--workdir={tmp_path / 'run2'}")
  assert proc.returncode == 1
  assert "python -m repr_learn.data.prepare --dataset=cifar10" in _error_line(proc)


def test_misspelt_config_file(tmp_path):
  proc = _run("--config=configs/simclrr.py", f"--workdir={tmp_path}")
  assert proc.returncode == 1
  assert "No such file or directory: 'configs/simclrr.py'" in _error_line(proc)
  assert "Traceback" not in proc.stderr


def _signalled_run(tmp_path, tfds_dir, name, when, *flags):
  """Runs main.py on tmp_path/run, sends SIGTERM once `when` is in its log
  (never if None); returns (exit status, log)."""
  env = dict(os.environ, JAX_PLATFORMS="cpu",
             XLA_FLAGS="--xla_force_host_platform_device_count=2 --xla_backend_optimization_level=0",
             JAX_COMPILATION_CACHE_DIR=str(tmp_path / "xla_cache"),
             JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
             JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="-1")
  log = tmp_path / f"{name}.log"
  with open(log, "w") as out:
    proc = subprocess.Popen(
        [sys.executable, "main.py", "--config=configs/simclr.py:smoke",
         "--config.eval.random_init_baseline=False", f"--config.data.data_dir={tfds_dir}",
         f"--workdir={tmp_path / 'run'}", *flags],
        cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 240
    while when is not None and when not in log.read_text():
      assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
      time.sleep(0.05)
    if when is not None:
      proc.send_signal(signal.SIGTERM)
    return proc.wait(timeout=240), log.read_text()


@pytest.mark.slow
def test_sigterm_at_every_phase_exits_with_the_requeue_status_and_the_rerun_finishes(
    tmp_path, tfds_dir):
  requeue = preemption.PREEMPTED_EXIT_CODE
  # During start-up (JAX is up; nothing is built yet): no step, nothing to save.
  rc, log = _signalled_run(tmp_path, tfds_dir, "startup", "JAX process 0/1",
                           "--config.num_steps=100000")
  assert rc == requeue and "Stopped at step 0 (preempted) before taking a step" in log, log[-3000:]
  # (During training, tests/test_training_runs.py and test_multiprocess.py.)
  # During the final evaluation: the protocol under way finishes, the rest wait.
  last = 4
  protocols = "--config.eval.protocols=knn,rankme"
  rc, log = _signalled_run(tmp_path, tfds_dir, "evaluation", f"Evaluating step {last}",
                           f"--config.num_steps={last}", protocols)
  assert rc == requeue and "Stopped during the final evaluation (preempted)" in log, log[-3000:]
  # The rerun evaluates the final step and exits cleanly.
  rc, log = _signalled_run(tmp_path, tfds_dir, "rerun", None, f"--config.num_steps={last}",
                           protocols)
  assert rc == 0, log[-3000:]
  assert f"Resumed from step {last}" in log
  assert all((tmp_path / "run" / "eval" / f"{p}.json").exists() for p in ("knn", "rankme"))
