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


@pytest.mark.slow
def test_sigterm_checkpoints_and_exits_with_the_requeue_status(tmp_path, tfds_dir):
  env = dict(os.environ, JAX_PLATFORMS="cpu",
             XLA_FLAGS="--xla_force_host_platform_device_count=2 --xla_backend_optimization_level=0")
  log = tmp_path / "log.txt"
  with open(log, "w") as out:
    proc = subprocess.Popen(
        [sys.executable, "main.py", "--config=configs/simclr.py:smoke",
         "--config.num_steps=100000", f"--config.data.data_dir={tfds_dir}",
         f"--workdir={tmp_path / 'run'}"], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 240
    while "Training simclr on" not in log.read_text():
      assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
      time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=240) == preemption.PREEMPTED_EXIT_CODE, log.read_text()[-3000:]
  steps = [int(p.name) for p in (tmp_path / "run" / "checkpoints").iterdir() if p.name.isdigit()]
  assert len(steps) >= 1 and f"Stopped at step {max(steps)} (preempted)" in log.read_text()
