"""The compiled train step: device-count invariance, learning, no retracing,
non-finite handling. Uses the real smoke config, shrunk further where useful."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import simclr as simclr_config
from repr_learn import optim
from repr_learn import parallel
from repr_learn import steps
from repr_learn import train
from repr_learn import train_state as train_state_lib
from repr_learn.data import augment


def _setup(config, devices):
  mesh = parallel.make_mesh(devices)
  objective = train.build_objective(config, total_steps=100, num_examples=config.batch_size,
                                    mesh=mesh)
  schedule = optim.warmup_cosine(
      optim.scaled_learning_rate(config.optimizer, config.batch_size), 0, 100)
  tx = optim.make_optimizer(config.optimizer, schedule)
  init_fn = train._init_fn(objective, config, config.augment.crop_size)
  state = train_state_lib.create(init_fn, tx, jax.random.PRNGKey(0), mesh)
  step_fn = jax.jit(steps.make_train_step(objective, tx, schedule, augment.IMAGENET_MEAN,
                                          augment.IMAGENET_STD))
  return mesh, objective, state, step_fn


def _batch(config, mesh, seed=0):
  rng = np.random.default_rng(seed)
  size = 32
  local = {"image": rng.integers(0, 256, (config.batch_size, size, size, 3), dtype=np.uint8),
           "label": rng.integers(0, 10, (config.batch_size,), dtype=np.int32),
           "index": np.arange(config.batch_size, dtype=np.int32)}
  return parallel.global_batch(local, mesh)


@pytest.fixture
def config():
  return simclr_config.get_config("smoke")


def test_eight_devices_give_the_same_loss_and_update_as_one(config):
  assert jax.device_count() == 8
  results = []
  for devices in (jax.devices()[:1], jax.devices()):
    mesh, _, state, step_fn = _setup(config, devices)
    new_state, metrics = step_fn(state, _batch(config, mesh))
    results.append((jax.device_get(metrics), jax.device_get(new_state.params)))
  (m1, p1), (m8, p8) = results
  np.testing.assert_allclose(m1["loss"], m8["loss"], rtol=1e-5)
  np.testing.assert_allclose(m1["grad_norm"], m8["grad_norm"], rtol=1e-4)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6), p1, p8)


def test_steps_lower_the_loss_on_a_fixed_batch(config):
  config.optimizer.base_lr = 2.0
  mesh, objective, state, step_fn = _setup(config, jax.devices())
  batch = _batch(config, mesh)
  views = augment.make_views(jax.random.PRNGKey(7), batch["image"], objective.views,
                             augment.IMAGENET_MEAN, augment.IMAGENET_STD)

  def fixed_loss(s):
    loss, _ = objective.loss(s.params, s.batch_stats, s.extra, views, batch,
                             jax.random.PRNGKey(1), s.step)
    return float(loss)

  before = fixed_loss(state)
  for _ in range(5):
    state, _ = step_fn(state, batch)
  assert fixed_loss(state) < before - 0.05


def test_one_compilation_for_many_steps(config):
  mesh, _, state, step_fn = _setup(config, jax.devices())
  for seed in range(3):
    state, _ = step_fn(state, _batch(config, mesh, seed))
  assert step_fn._cache_size() == 1


def test_non_finite_step_is_skipped_and_recorded(config):
  config.objective.temperature = 0.0  # logits / 0 -> non-finite loss
  mesh, _, state, step_fn = _setup(config, jax.devices())
  before = jax.device_get(state.params)
  state, metrics = step_fn(state, _batch(config, mesh))
  assert not np.isfinite(metrics["loss"])
  assert int(state.first_nonfinite_step) == 0
  assert int(state.step) == 1
  jax.tree.map(np.testing.assert_array_equal, before, jax.device_get(state.params))


def test_lars_excludes_biases_and_batchnorm_from_decay(config):
  _, objective, state, _ = _setup(config, jax.devices()[:1])
  mask = optim.decay_mask(state.params)
  flat = jax.tree_util.tree_flatten_with_path(mask)[0]
  for path, decayed in flat:
    name = jax.tree_util.keystr(path)
    if "bias" in name or "scale" in name:
      assert not decayed, name
    if "kernel" in name:
      assert decayed, name
