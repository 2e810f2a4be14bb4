"""Two JAX processes on this machine act as two hosts (2 CPU devices each):
the global batch is split across processes, checkpoints and eval files are
written once, and the run matches its single-process loss at step 2."""

import json
import os
import pathlib
import socket
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def _free_port():
  with socket.socket() as s:
    s.bind(("localhost", 0))
    return s.getsockname()[1]


def _launch(workdir, data_dir, num_processes):
  env = dict(os.environ, JAX_PLATFORMS="cpu",
             XLA_FLAGS=f"--xla_force_host_platform_device_count={4 // num_processes} "
                       "--xla_backend_optimization_level=0")
  port = _free_port()
  common = ["--config=configs/simclr.py:smoke", "--config.eval.random_init_baseline=False",
            f"--config.data.data_dir={data_dir}", f"--workdir={workdir}"]
  if num_processes > 1:
    procs = [subprocess.Popen(
        [sys.executable, "main.py", *common, f"--coordinator_address=localhost:{port}",
         f"--num_processes={num_processes}", f"--process_id={i}"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for i in range(num_processes)]
  else:
    procs = [subprocess.Popen([sys.executable, "main.py", *common], cwd=ROOT, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)]
  outputs = [p.communicate(timeout=600)[0] for p in procs]
  for p, out in zip(procs, outputs):
    assert p.returncode == 0, out[-3000:]


def test_two_processes_match_one(tmp_path, tfds_dir):
  _launch(tmp_path / "one", tfds_dir, 1)
  _launch(tmp_path / "two", tfds_dir, 2)
  logs = {}
  for name in ("one", "two"):
    lines = [json.loads(l) for l in (tmp_path / name / "metrics.jsonl").read_text().splitlines()]
    logs[name] = {l["step"]: l for l in lines if "train/loss" in l}
  assert logs["one"][2]["train/loss"] == pytest.approx(logs["two"][2]["train/loss"], rel=1e-4)
  knn = json.loads((tmp_path / "two" / "eval" / "knn.json").read_text())
  assert knn["num_test"] == 360 and knn["num_train"] == 1437
  assert (tmp_path / "two" / "checkpoints" / "4").is_dir()
