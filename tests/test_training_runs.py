"""End-to-end runs of `train_and_evaluate` on the embedded digits dataset:
outputs, exact resume, and every bad input the trainer must refuse clearly."""

import json
import os
import pathlib
import shutil

import jax
import numpy as np
import pytest

from configs import scan as scan_config
from configs import simclr as simclr_config
from repr_learn import checkpointing
from repr_learn import train
from repr_learn import workdir as workdir_lib
from repr_learn.data import catalog
from tests import config_overrides

pytestmark = pytest.mark.slow


@pytest.fixture
def data_dir(tfds_dir):
  return tfds_dir


def smoke_config(data_dir, **overrides):
  config = simclr_config.get_config("smoke")
  config.data.data_dir = data_dir
  config.eval.random_init_baseline = False
  return config_overrides.override(config, **overrides)


def _params(state):
  return jax.device_get(state.params)


def test_smoke_run_writes_the_contract_files(tmp_path, data_dir):
  config = smoke_config(data_dir, **{"eval.random_init_baseline": True,
                                     "eval.online_probe": True})
  result = train.train_and_evaluate(config, str(tmp_path))
  lines = [json.loads(l) for l in (tmp_path / "metrics.jsonl").read_text().splitlines()]
  assert [l["step"] for l in lines if "train/loss" in l] == [2, 4]
  for key in ("train/loss", "train/grad_norm", "train/param_norm", "train/learning_rate",
              "train/online_top1"):
    assert np.isfinite(lines[0][key])
  knn = json.loads((tmp_path / "eval" / "knn.json").read_text())
  assert 0.0 <= knn["top1"] <= 100.0 and 0.0 <= knn["random_init_top1"] <= 100.0
  assert knn["num_test"] == 360 and knn["num_train"] == 1437
  assert result.eval["knn"]["top1"] == knn["top1"]
  saved = json.loads((tmp_path / "config.json").read_text())
  assert saved["objective"]["name"] == "simclr" and saved["num_steps"] == 4
  assert any(p.name.startswith("events.out.tfevents") for p in tmp_path.iterdir())


def test_stop_and_resume_equals_an_uninterrupted_run(tmp_path, data_dir):
  config = smoke_config(data_dir, num_steps=6)
  straight = train.train_and_evaluate(config, str(tmp_path / "straight"))
  first = train.train_and_evaluate(config, str(tmp_path / "resumed"), interrupt_after_steps=3)
  assert int(first.state.step) == 3
  resumed = train.train_and_evaluate(config, str(tmp_path / "resumed"))
  assert int(resumed.state.step) == 6
  jax.tree.map(np.testing.assert_array_equal, _params(straight.state), _params(resumed.state))
  jax.tree.map(np.testing.assert_array_equal, jax.device_get(straight.state.opt_state),
               jax.device_get(resumed.state.opt_state))
  steps = [json.loads(l)["step"] for l in
           (tmp_path / "resumed" / "metrics.jsonl").read_text().splitlines()]
  assert steps == sorted(steps)  # the interrupted run's lines are not duplicated


def test_corrupt_latest_checkpoint_falls_back_to_the_previous(tmp_path, data_dir, caplog):
  config = smoke_config(data_dir, num_steps=4)
  train.train_and_evaluate(config, str(tmp_path))
  ckpt_dir = tmp_path / "checkpoints"
  assert sorted(int(p.name) for p in ckpt_dir.iterdir() if p.name.isdigit()) == [2, 4]
  for f in (ckpt_dir / "4" / checkpointing.STATE_ITEM).rglob("*"):
    if f.is_file():
      f.write_bytes(b"garbage")
  config.num_steps = 5
  result = train.train_and_evaluate(config, str(tmp_path))
  assert int(result.state.step) == 5
  assert "unreadable" in caplog.text


def test_all_checkpoints_corrupt_refuses_to_restart_silently(tmp_path, data_dir):
  config = smoke_config(data_dir, num_steps=2)
  train.train_and_evaluate(config, str(tmp_path))
  for f in (tmp_path / "checkpoints").rglob("*"):
    if f.is_file() and checkpointing.STATE_ITEM in str(f):
      f.write_bytes(b"garbage")
  config.num_steps = 3
  with pytest.raises(checkpointing.CheckpointError, match="No readable checkpoint"):
    train.train_and_evaluate(config, str(tmp_path))


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, data_dir):
  config = smoke_config(data_dir, num_steps=8, log_every_steps=1,
                        **{"optimizer.base_lr": 1e25, "optimizer.name": "sgd"})
  with pytest.raises(train.NonFiniteLossError, match=r"non-finite at step \d+") as info:
    train.train_and_evaluate(config, str(tmp_path))
  bad_step = int(str(info.value).split("at step ")[1].split(";")[0])
  saved = sorted(int(p.name) for p in (tmp_path / "checkpoints").iterdir() if p.name.isdigit())
  assert all(s <= bad_step for s in saved)


def test_unknown_dataset_names_the_nearest(tmp_path, data_dir):
  config = smoke_config(data_dir, **{"data.name": "cifar1"})
  with pytest.raises(catalog.UnknownDatasetError, match="cifar10"):
    train.train_and_evaluate(config, str(tmp_path))


def test_methods_on_a_pretrained_encoder_need_init_from(tmp_path, data_dir):
  config = config_overrides.override(scan_config.get_config("smoke"),
                                     **{"data.data_dir": data_dir})
  with pytest.raises(ValueError, match="init_from"):
    train.train_and_evaluate(config, str(tmp_path / "scan"))
  config.model.init_from = str(tmp_path / "never_trained")
  with pytest.raises(FileNotFoundError, match="No checkpoints"):
    train.train_and_evaluate(config, str(tmp_path / "scan"))


def test_unknown_config_key_names_the_nearest(tmp_path, data_dir):
  config = smoke_config(data_dir)
  config.unlock()
  config.optimizer.weight_decy = 0.1
  with pytest.raises(KeyError, match="weight_decay"):
    train.train_and_evaluate(config, str(tmp_path))


def test_batch_not_divisible_by_devices(tmp_path, data_dir):
  config = smoke_config(data_dir, batch_size=12)
  with pytest.raises(ValueError, match="not divisible by the 8 devices"):
    train.train_and_evaluate(config, str(tmp_path))
  assert not (tmp_path / "checkpoints").exists()


def test_missing_manual_dir_for_imagenet(tmp_path, data_dir):
  config = smoke_config(data_dir, **{"data.name": "imagenet2012"})
  with pytest.raises(FileNotFoundError, match="manual_dir"):
    train.train_and_evaluate(config, str(tmp_path))


def test_unwritable_workdir(tmp_path, data_dir):
  blocker = tmp_path / "a_file"
  blocker.write_text("not a directory")
  with pytest.raises(workdir_lib.WorkdirError, match="not writable"):
    train.train_and_evaluate(smoke_config(data_dir), str(blocker / "run"))


def test_workdir_of_another_run_is_refused_then_moved_aside(tmp_path, data_dir):
  config = smoke_config(data_dir, num_steps=2)
  train.train_and_evaluate(config, str(tmp_path))
  other = smoke_config(data_dir, num_steps=2, batch_size=64)
  with pytest.raises(workdir_lib.WorkdirError, match="batch_size: 32 -> 64"):
    train.train_and_evaluate(other, str(tmp_path))
  assert json.loads((tmp_path / "config.json").read_text())["batch_size"] == 32
  train.train_and_evaluate(other, str(tmp_path), overwrite=True)
  aside = [p for p in tmp_path.iterdir() if p.name.startswith("replaced-")]
  assert len(aside) == 1 and (aside[0] / "checkpoints").exists()
  assert json.loads((tmp_path / "config.json").read_text())["batch_size"] == 64
