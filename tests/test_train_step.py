"""The compiled train step: device-count invariance, learning, no retracing,
non-finite handling. Uses the real smoke config, shrunk further where useful."""

import functools

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
from repr_learn.data import catalog


def _setup(config, devices):
  mesh = parallel.make_mesh(devices)
  objective = train.build_objective(config, total_steps=100, num_examples=config.batch_size,
                                    mesh=mesh)
  schedule = optim.warmup_cosine(
      optim.scaled_learning_rate(config.optimizer, config.batch_size), 0, 100)
  tx = optim.make_optimizer(config.optimizer, schedule, 100)
  init_fn = train._init_fn(objective, config, config.augment.crop_size)
  state = train_state_lib.create(init_fn, tx, jax.random.PRNGKey(0), mesh)
  step_fn = jax.jit(steps.make_train_step(objective, tx, schedule, augment.IMAGENET_MEAN,
                                          augment.IMAGENET_STD))
  return mesh, objective, state, step_fn


def draw_views(rng, images, view_cfgs):
  """The step's views, jitted: drawn eagerly, one small compile per op and
  shape made the 8-device tests several seconds slower each."""
  return _jitted_views(rng, images, tuple(view_cfgs))


@functools.partial(jax.jit, static_argnums=2)
def _jitted_views(rng, images, view_cfgs):
  return augment.make_views(rng, images, view_cfgs, augment.IMAGENET_MEAN, augment.IMAGENET_STD)


def _batch(config, mesh, seed=0):
  """A random global batch of 32-px images; with captions (tokens ending in an
  EOT at position 5, 1 to data.max_captions per image) for captioned data."""
  rng = np.random.default_rng(seed)
  size, n = 32, config.batch_size
  local = {"image": rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8),
           "label": rng.integers(0, 10, (n,), dtype=np.int32),
           "index": np.arange(n, dtype=np.int32)}
  if catalog.get_spec(config.data.name).captioned:
    captions, length = config.data.max_captions, config.data.context_length
    tokens = rng.integers(3, 200, (n, captions, length)).astype(np.int32)
    tokens[:, :, 0], tokens[:, :, 5], tokens[:, :, 6:] = 1, 2, 0  # SOT, EOT, padding
    local.update(tokens=tokens,
                 num_captions=rng.integers(1, captions + 1, (n,)).astype(np.int32))
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
  views = draw_views(jax.random.PRNGKey(7), batch["image"], objective.views)

  @jax.jit
  def loss_on(s):
    return objective.loss(s.params, s.batch_stats, s.extra, views, batch,
                          jax.random.PRNGKey(1), s.step)[0]

  def fixed_loss(s):
    return float(loss_on(s))

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


def test_weight_decay_end_gives_dinos_cosine_schedule(config):
  config.optimizer.update(name="adamw", weight_decay=0.04, weight_decay_end=0.4)
  decay = optim.weight_decay(config.optimizer, total_steps=100)
  for step in (0, 25, 50, 100, 150):
    # DINO's cosine_scheduler: end + (start - end) / 2 * (1 + cos(pi * i / N)).
    expected = 0.4 + 0.5 * (0.04 - 0.4) * (1 + np.cos(np.pi * min(step, 100) / 100))
    np.testing.assert_allclose(decay(step), expected, rtol=1e-6)
  # AdamW applies it: with zero gradients the update is -lr * wd(step) * w.
  tx = optim.make_optimizer(config.optimizer, lambda step: 1.0, total_steps=100)
  params = {"kernel": jnp.full((2, 2), 2.0)}
  opt_state = tx.init(params)
  zeros = jax.tree.map(jnp.zeros_like, params)
  for step in range(2):
    updates, opt_state = tx.update(zeros, opt_state, params)
    np.testing.assert_allclose(updates["kernel"], -decay(step) * 2.0, rtol=1e-6)
  config.optimizer.weight_decay_end = None
  assert optim.weight_decay(config.optimizer, total_steps=100) == 0.04


def test_each_parameter_gradient_is_clipped_to_the_norm_separately():
  clip = optim.clip_each_parameter_norm(1.0)
  grads = {"big": jnp.array([3.0, 4.0]), "small": jnp.array([0.3, 0.4]),
           "zero": jnp.zeros(2)}
  clipped, _ = clip.update(grads, clip.init(grads))
  np.testing.assert_allclose(clipped["big"], [0.6, 0.8], rtol=1e-5)  # norm 5 -> 1
  np.testing.assert_array_equal(clipped["small"], grads["small"])  # a global clip would scale it
  np.testing.assert_array_equal(clipped["zero"], 0.0)


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
