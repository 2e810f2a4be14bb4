"""End-to-end runs of `train_and_evaluate` on the embedded digits dataset:
outputs, exact resume, and every bad input the trainer must refuse clearly."""

import json
import os
import shutil
import signal
import threading

import jax
import numpy as np
from PIL import Image
import pytest

from configs import scan as scan_config
from configs import simclr as simclr_config
from repr_learn import checkpointing
from repr_learn import config_checks
from repr_learn import config_schema
from repr_learn import finished_run
from repr_learn import parallel
from repr_learn import preemption
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
  # A relative data_dir is stored resolved, for tools run from elsewhere.
  config = smoke_config(os.path.relpath(data_dir), **{"eval.random_init_baseline": True,
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
  assert saved["data"]["data_dir"] == os.path.abspath(data_dir)
  assert any(p.name.startswith("events.out.tfevents") for p in tmp_path.iterdir())


def test_tools_read_a_live_run_without_disturbing_it(tmp_path, data_dir):
  """`evaluate`/`embed` restore through `finished_run.load`: looped against a
  run that saves every step and keeps one checkpoint (so steps are written
  and deleted under the reader), it always reads a complete, verified
  checkpoint, and the run ends exactly as an undisturbed one."""
  config = smoke_config(data_dir, num_steps=12, checkpoint_every_steps=1, keep_checkpoints=1,
                        **{"eval.protocols": "knn"})
  straight = train.train_and_evaluate(config, str(tmp_path / "straight"))
  live = str(tmp_path / "live")
  steps_read, errors, done = [], [], threading.Event()

  def read_in_a_loop():
    while not done.is_set():
      try:
        steps_read.append(finished_run.load(live).step)
      except finished_run.RunError:
        pass  # before the first checkpoint
      except Exception as e:  # pylint: disable=broad-except
        errors.append(e)

  reader = threading.Thread(target=read_in_a_loop)
  reader.start()
  try:
    disturbed = train.train_and_evaluate(config, live)
  finally:
    done.set()
    reader.join()
  assert not errors, errors[0]
  assert steps_read and set(steps_read) <= set(range(1, 13))
  jax.tree.map(np.testing.assert_array_equal, _params(straight.state), _params(disturbed.state))


def test_sigterm_checkpoints_and_the_rerun_equals_an_uninterrupted_run(tmp_path, data_dir,
                                                                       monkeypatch, caplog):
  config = smoke_config(data_dir, num_steps=6)
  straight = train.train_and_evaluate(config, str(tmp_path / "straight"))
  # SIGTERM arrives while step 3's batch is being assembled.
  calls, original = [], parallel.global_batch
  def global_batch_then_sigterm(local, mesh):
    calls.append(1)
    if len(calls) == 3:
      signal.raise_signal(signal.SIGTERM)
    return original(local, mesh)
  monkeypatch.setattr(parallel, "global_batch", global_batch_then_sigterm)
  first = train.train_and_evaluate(config, str(tmp_path / "resumed"))
  monkeypatch.undo()
  assert first.stopped == preemption.StopReason.PREEMPTED and int(first.state.step) == 3
  assert (tmp_path / "resumed" / "checkpoints" / "3").is_dir()
  assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the handler is put back
  # As if step 3 had been saved on 2 devices: the resume says so.
  layout = tmp_path / "resumed" / "checkpoints" / "3" / "layout" / "metadata"
  assert json.loads(layout.read_text()) == {"devices": 8, "processes": 1}
  layout.write_text(json.dumps({"devices": 2, "processes": 1}))
  resumed = train.train_and_evaluate(config, str(tmp_path / "resumed"))
  assert "Step 3 was saved on 2 devices in 1 process(es); resuming it on 8 in 1" in caplog.text
  assert int(resumed.state.step) == 6 and resumed.stopped is None
  jax.tree.map(np.testing.assert_array_equal, _params(straight.state), _params(resumed.state))
  jax.tree.map(np.testing.assert_array_equal, jax.device_get(straight.state.opt_state),
               jax.device_get(resumed.state.opt_state))
  steps = [json.loads(l)["step"] for l in
           (tmp_path / "resumed" / "metrics.jsonl").read_text().splitlines()]
  assert steps == sorted(steps)  # the interrupted run's lines are not duplicated


def _checkpoint_steps(directory):
  return sorted(int(p.name) for p in directory.iterdir() if p.name.isdigit())


def test_damaged_latest_checkpoint_is_detected_set_aside_and_retrained(tmp_path, data_dir,
                                                                       caplog):
  config = smoke_config(data_dir, num_steps=4)
  train.train_and_evaluate(config, str(tmp_path))
  ckpt_dir = tmp_path / "checkpoints"
  assert _checkpoint_steps(ckpt_dir) == [2, 4]
  # Silent damage: step 4's state replaced by a well-formed but different one
  # (step 2's). orbax reads it without complaint; only the digest can tell.
  shutil.rmtree(ckpt_dir / "4" / checkpointing.STATE_ITEM)
  shutil.copytree(ckpt_dir / "2" / checkpointing.STATE_ITEM, ckpt_dir / "4" / checkpointing.STATE_ITEM)
  params, _, step = checkpointing.read_latest_variables(str(ckpt_dir))  # model.init_from's path
  assert step == 2
  assert "digest mismatch" in caplog.text
  result = train.train_and_evaluate(config, str(tmp_path))
  assert int(result.state.step) == 4
  assert [p.name.split("-")[0] for p in (tmp_path / "checkpoints.unreadable").iterdir()] == ["4"]
  # The re-trained step 4 replaced the bad one, so the next resume needs no fallback.
  caplog.clear()
  assert checkpointing.read_latest_variables(str(ckpt_dir))[2] == 4
  assert "unreadable" not in caplog.text


def test_bit_flip_and_garbage_are_detected(tmp_path, data_dir, caplog):
  config = smoke_config(data_dir, num_steps=4)
  train.train_and_evaluate(config, str(tmp_path))
  ckpt_dir = tmp_path / "checkpoints"
  files = [f for f in (ckpt_dir / "4" / checkpointing.STATE_ITEM).rglob("*") if f.is_file()]
  biggest = max(files, key=lambda f: f.stat().st_size)
  data = bytearray(biggest.read_bytes())
  data[len(data) // 2] ^= 0x10
  biggest.write_bytes(bytes(data))
  assert checkpointing.read_latest_variables(str(ckpt_dir))[2] == 2
  for f in (ckpt_dir / "2" / checkpointing.STATE_ITEM).rglob("*"):
    if f.is_file():
      f.write_bytes(b"garbage")
  with pytest.raises(checkpointing.CheckpointError, match="No readable checkpoint"):
    train.train_and_evaluate(config, str(tmp_path))
  assert _checkpoint_steps(ckpt_dir) == [2, 4]  # nothing moved when nothing fits


def test_a_second_run_on_a_live_workdir_is_refused(tmp_path, data_dir):
  config = smoke_config(data_dir, num_steps=2)
  with workdir_lib.RunLock(str(tmp_path)):
    with pytest.raises(workdir_lib.WorkdirError, match=rf"in use by a live run \(pid {os.getpid()} "):
      train.train_and_evaluate(config, str(tmp_path))
  assert not (tmp_path / "config.json").exists()
  # A lock file left by a dead process holds no lock: the run goes ahead.
  (tmp_path / ".lock.0").write_text("pid 999999 on elsewhere, started long ago\n")
  assert int(train.train_and_evaluate(config, str(tmp_path)).state.step) == 2


@pytest.mark.parametrize("override, message", [
    ({"keep_checkpoints": 0}, "keep_checkpoints must be at least 1"),
    ({"checkpoint_every_steps": 0}, "checkpoint_every_steps must be at least 1"),
    ({"log_every_steps": 0}, "log_every_steps must be at least 1"),
    ({"num_steps": 0}, "num_steps must be at least 1"),
    ({"optimizer.base_lr": -0.1}, "base_lr must be positive"),
    ({"optimizer.weight_decay": -1e-4}, "weight_decay must not be negative"),
    ({"eval.every_steps": -5}, "every_steps must not be negative"),
])
def test_values_that_would_fail_later_fail_at_validation(override, message):
  config = config_overrides.override(simclr_config.get_config("smoke"), **override)
  with pytest.raises(ValueError, match=message):
    config_checks.validate(config)


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
  assert not (tmp_path / "config.json").exists()  # so the corrected command is not refused
  assert not list(tmp_path.iterdir())  # nor a lock file
  # A failed start leaves no workdir it created.
  with pytest.raises(ValueError, match="not divisible"):
    train.train_and_evaluate(config, str(tmp_path / "new"))
  assert not (tmp_path / "new").exists()


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
  # An architecture field is named before any checkpoint is tried.
  wider = smoke_config(data_dir, num_steps=2, **{"model.projector.output_dim": 24})
  with pytest.raises(workdir_lib.WorkdirError, match="model.projector.output_dim: .* -> 24"):
    train.train_and_evaluate(wider, str(tmp_path))
  train.train_and_evaluate(other, str(tmp_path), overwrite=True)
  aside = [p for p in tmp_path.iterdir() if p.name.startswith("replaced-")]
  assert len(aside) == 1 and (aside[0] / "checkpoints").exists()
  assert json.loads((tmp_path / "config.json").read_text())["batch_size"] == 64


def test_an_unreadable_config_json_is_named_and_overwrite_moves_it_aside(tmp_path, data_dir):
  config = smoke_config(data_dir, num_steps=2, **{"eval.protocols": ""})
  for content in ("", '{"objective": {"na'):
    (tmp_path / "config.json").write_text(content)
    with pytest.raises(workdir_lib.UnreadableConfigError,
                       match=r"config.json is unreadable \(.*\).*pass --overwrite"):
      train.train_and_evaluate(config, str(tmp_path))
  assert not list(tmp_path.glob(".lock*"))
  train.train_and_evaluate(config, str(tmp_path), overwrite=True)
  aside = [p for p in tmp_path.iterdir() if p.name.startswith("replaced-")]
  assert len(aside) == 1 and (aside[0] / "config.json").read_text() == '{"objective": {"na'
  assert json.loads((tmp_path / "config.json").read_text())["num_steps"] == 2


def test_a_disk_too_small_for_one_checkpoint_is_refused_before_anything_is_written(
    tmp_path, data_dir, monkeypatch):
  monkeypatch.setattr(checkpointing.shutil, "disk_usage",
                      lambda path: shutil._ntuple_diskusage(10**9, 10**9 - 4096, 4096))
  with pytest.raises(checkpointing.DiskFullError, match=r"run has 4 KiB free, but one "
                     r"checkpoint of this run takes about \d+ KiB"):
    train.train_and_evaluate(smoke_config(data_dir), str(tmp_path / "run"))
  assert not (tmp_path / "run").exists()


def test_a_full_disk_during_a_save_is_one_line_and_the_rerun_resumes(tmp_path, data_dir,
                                                                     monkeypatch):
  """The second save fails as orbax reports ENOSPC (tensorstore's text): a
  one-line error, the first checkpoint intact, and the rerun resumes from it."""
  config = smoke_config(data_dir, num_steps=6, **{"eval.protocols": ""})
  saves, original = [], checkpointing.ocp.CheckpointManager.save

  def save_until_the_disk_is_full(manager, step, *args, **kwargs):
    saves.append(step)
    if len(saves) == 2:
      raise ValueError('RESOURCE_EXHAUSTED: Error writing local file "_sharding": Failed to '
                       "write 16029 bytes to file 14: No space left on device "
                       "[os_error_code='28']")
    return original(manager, step, *args, **kwargs)

  monkeypatch.setattr(checkpointing.ocp.CheckpointManager, "save", save_until_the_disk_is_full)
  with pytest.raises(checkpointing.DiskFullError) as error:
    train.train_and_evaluate(config, str(tmp_path))
  message = str(error.value)
  assert "\n" not in message and f"The disk of {tmp_path}/checkpoints is full" in message
  assert "the checkpoints saved before are intact" in message
  monkeypatch.undo()
  assert _checkpoint_steps(tmp_path / "checkpoints") == [2]
  resumed = train.train_and_evaluate(config, str(tmp_path))
  assert int(resumed.state.step) == 6


def test_attention_implementation_and_block_scanning_are_not_part_of_a_runs_identity():
  old = config_schema.base_config().to_dict()
  new = config_schema.base_config()
  new.model.attention = "cudnn"
  new.model.scan_blocks = True
  new.model.remat_blocks = True
  assert workdir_lib.identity_differences(old, new.to_dict()) == []
  new.model.patch_size = 8
  assert workdir_lib.identity_differences(old, new.to_dict()) == ["model.patch_size: 16 -> 8"]


def test_an_unlabeled_image_folder_pretrains_and_skips_label_based_evaluation(tmp_path, caplog):
  rng = np.random.default_rng(0)
  for i in range(40):
    path = tmp_path / "photos" / f"{i}.png"
    path.parent.mkdir(exist_ok=True)
    Image.fromarray(rng.integers(0, 256, (24, 24, 3), dtype=np.uint8)).save(path)
  config = smoke_config(None, num_steps=2, batch_size=16,
                        **{"data.name": "image_folder", "data.data_dir": str(tmp_path / "photos"),
                           "eval.protocols": "knn,rankme"})
  result = train.train_and_evaluate(config, str(tmp_path / "run"))
  assert int(result.state.step) == 2 and set(result.eval) == {"rankme"}
  assert "unlabeled: skipping knn" in caplog.text
