"""Every objective: trains from its smoke config, same loss on 8 devices as on
1, and stop -> restart restores its extra state (queues, targets, banks)."""

import importlib

import jax
import numpy as np
import pytest

from repr_learn import objectives
from repr_learn import parallel
from repr_learn import train
from repr_learn.data import augment
from tests import config_overrides
from tests import test_train_step as step_helpers

METHODS = sorted(objectives.REGISTRY)
WITH_EXTRA_STATE = ("byol", "moco_v2", "moco_v3", "nnclr", "npid")


def smoke(method, **overrides):
  config = importlib.import_module(f"configs.{method}").get_config("smoke")
  if "shuffle_bn" in config.objective:
    config.objective.shuffle_bn = overrides.pop("shuffle_bn", True)
  return config_overrides.override(config, **overrides)


@pytest.mark.parametrize("method", METHODS)
def test_eight_devices_match_one_device(method):
  """The loss on the same global batch, views and parameters, on 1 and 8 devices."""
  config = smoke(method, shuffle_bn=False)
  _, _, one_device_state, _ = step_helpers._setup(config, jax.devices()[:1])
  losses = []
  for devices in (jax.devices()[:1], jax.devices()):
    mesh = parallel.make_mesh(devices)
    objective = train.build_objective(config, total_steps=100,
                                      num_examples=config.batch_size, mesh=mesh)
    # The same initial state, replicated over this mesh (one initialisation).
    state = jax.device_put(one_device_state, parallel.replicated(mesh))
    batch = step_helpers._batch(config, mesh)
    views = augment.make_views(jax.random.PRNGKey(5), batch["image"], objective.views,
                               augment.IMAGENET_MEAN, augment.IMAGENET_STD)
    loss, _ = jax.jit(objective.loss)(state.params, state.batch_stats, state.extra, views,
                                      batch, jax.random.PRNGKey(0), state.step)
    losses.append(float(loss))
    assert np.isfinite(losses[-1])
  np.testing.assert_allclose(losses[0], losses[1], rtol=1e-5, atol=1e-6)


def test_moco_v2_shuffle_bn_encodes_keys_per_device():
  config = smoke("moco_v2")
  mesh, objective, state, _ = step_helpers._setup(config, jax.devices())
  images = step_helpers._batch(config, mesh)["image"]
  x = augment.center_view(images, 16, augment.IMAGENET_MEAN, augment.IMAGENET_STD)
  rng = jax.random.PRNGKey(3)
  keys = objective._keys(state.extra["target_params"], state.batch_stats, x, rng)
  # By hand: permute, encode each device's 4 examples with their own BatchNorm
  # statistics, undo the permutation.
  perm = np.asarray(jax.random.permutation(rng, x.shape[0]))
  shuffled = np.asarray(x)[perm]
  chunks = []
  for chunk in np.split(shuffled, 8):
    out, _ = objective.apply(state.extra["target_params"], state.batch_stats, chunk,
                             method=objective.network.project)
    chunks.append(np.asarray(out["projection"]))
  expected = np.concatenate(chunks)[np.argsort(perm)]
  np.testing.assert_allclose(keys, expected, rtol=1e-4, atol=1e-5)
  # ...which differs from global (SyncBN) statistics.
  global_out, _ = objective.apply(state.extra["target_params"], state.batch_stats, x,
                                  method=objective.network.project)
  assert not np.allclose(keys, global_out["projection"], atol=1e-3)


@pytest.mark.slow
@pytest.mark.parametrize("method", [m for m in METHODS if m not in WITH_EXTRA_STATE
                                    and m != "simclr"])
def test_trains_from_smoke_config(method, tmp_path, tfds_dir):
  config = smoke(method, **{"data.data_dir": tfds_dir, "eval.random_init_baseline": False})
  result = train.train_and_evaluate(config, str(tmp_path))
  assert int(result.state.step) == 4 and 0 <= result.eval["top1"] <= 100
  assert (tmp_path / "eval" / "knn.json").exists()


@pytest.mark.slow
@pytest.mark.parametrize("method", WITH_EXTRA_STATE)
def test_resume_restores_extra_state_exactly(method, tmp_path, tfds_dir):
  config = smoke(method, **{"data.data_dir": tfds_dir, "eval.random_init_baseline": False})
  straight = train.train_and_evaluate(config, str(tmp_path / "straight"))
  train.train_and_evaluate(config, str(tmp_path / "resumed"), interrupt_after_steps=2)
  resumed = train.train_and_evaluate(config, str(tmp_path / "resumed"))
  a, b = jax.device_get((straight.state.extra, straight.state.params)), jax.device_get(
      (resumed.state.extra, resumed.state.params))
  assert jax.tree.structure(a) == jax.tree.structure(b)
  jax.tree.map(np.testing.assert_array_equal, a, b)
  assert straight.eval["top1"] == resumed.eval["top1"]


def test_vit_backbone_trains_with_a_siamese_objective():
  config = smoke("moco_v3", **{"model.backbone": "vit_test", "model.patch_size": 4,
                               "optimizer.name": "adamw", "optimizer.base_lr": 1e-3})
  mesh, objective, state, step_fn = step_helpers._setup(config, jax.devices())
  batch = step_helpers._batch(config, mesh)
  before = jax.device_get(state.params["backbone"]["block_0"]["attention"]["qkv"]["kernel"])
  for _ in range(2):
    state, metrics = step_fn(state, batch)
  assert np.isfinite(metrics["loss"])
  after = jax.device_get(state.params["backbone"]["block_0"]["attention"]["qkv"]["kernel"])
  assert not np.allclose(before, after)
