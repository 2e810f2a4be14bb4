"""`parallel.mode="pmap"`: the same step compiled per device on 8 fake CPU
devices. With SyncBN it equals the jit mode (loss, gradients through the
update, BatchNorm statistics, objective state); with per-device BatchNorm it
equals a by-hand computation that normalises each device's examples alone."""

import importlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from repr_learn import config_schema
from repr_learn import parallel
from repr_learn import train
from repr_learn.data import augment
from repr_learn.data import catalog
from repr_learn.losses import contrastive
from tests import config_overrides
from tests import test_train_step as step_helpers


def _config(method, **overrides):
  config = importlib.import_module(f"configs.{method}").get_config("smoke")
  return config_overrides.override(config, **overrides)


def _one_step(config):
  mesh = parallel.make_mesh()
  setup = train.build_setup(config, catalog.get_spec("digits"), config.batch_size, mesh)
  state = setup.initial_state()
  before = jax.device_get(state)  # the step donates `state`
  batch = step_helpers._batch(config, mesh)
  new_state, metrics = setup.compiled_train_step(state)(state, batch)
  return setup, before, batch, jax.device_get(new_state), jax.device_get(metrics)


def _assert_close(a, b, rtol=1e-4, atol=1e-6):
  jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, rtol=rtol, atol=atol), a, b)


@pytest.mark.parametrize("method", ["dino", "supcon"])
def test_pmap_with_syncbn_equals_the_jit_mode(method):
  """Multi-crop with an EMA teacher and centre; contrastive with BatchNorm and
  labels gathered across devices (SupCon, SimCLR's loss with labels)."""
  _, _, _, jit_state, jit_metrics = _one_step(_config(method))
  _, _, _, pmap_state, pmap_metrics = _one_step(
      _config(method, **{"parallel.mode": "pmap", "parallel.sync_batchnorm": True}))
  np.testing.assert_allclose(pmap_metrics["loss"], jit_metrics["loss"], rtol=1e-5)
  np.testing.assert_allclose(pmap_metrics["grad_norm"], jit_metrics["grad_norm"], rtol=1e-4)
  _assert_close(pmap_state.params, jit_state.params)
  _assert_close(pmap_state.batch_stats, jit_state.batch_stats)
  _assert_close(pmap_state.extra, jit_state.extra)


def test_pmap_with_per_device_batchnorm_equals_normalising_each_shard_alone():
  config = _config("simclr", **{"parallel.mode": "pmap"})
  setup, state, batch, new_state, metrics = _one_step(config)
  objective = setup.objective
  # The step's views: each example's key is the same in both modes.
  aug_rng, _ = jax.random.split(jax.random.fold_in(state.rng, state.step))
  views = augment.make_views(aug_rng, batch["image"], objective.views,
                             augment.IMAGENET_MEAN, augment.IMAGENET_STD)
  shards = np.split(np.arange(config.batch_size), jax.device_count())

  def loss_by_hand(params):
    outputs, stats = [], []
    for rows in shards:  # each device's examples normalised by their own statistics
      (o1, o2), s = objective.forward_views(params, state.batch_stats,
                                            [v[rows] for v in views])
      outputs.append((o1["projection"], o2["projection"]))
      stats.append(s)
    z1 = jnp.concatenate([o[0] for o in outputs])
    z2 = jnp.concatenate([o[1] for o in outputs])
    mean_stats = jax.tree.map(lambda *s: jnp.mean(jnp.stack(s), axis=0), *stats)
    return contrastive.nt_xent(z1, z2, config.objective.temperature), mean_stats

  (loss, stats), grads = jax.jit(jax.value_and_grad(loss_by_hand, has_aux=True))(state.params)
  np.testing.assert_allclose(metrics["loss"], loss, rtol=1e-5)
  np.testing.assert_allclose(metrics["grad_norm"], jnp.sqrt(sum(
      jnp.sum(g ** 2) for g in jax.tree.leaves(grads))), rtol=1e-4)
  _assert_close(new_state.batch_stats, jax.device_get(stats))
  # ...and differs from global statistics (the jit mode).
  _, _, _, _, jit_metrics = _one_step(_config("simclr"))
  assert abs(float(jit_metrics["loss"]) - float(metrics["loss"])) > 1e-4


@pytest.mark.parametrize("method, overrides, message", [
    ("mae", {}, "mae cannot run in parallel.mode=pmap"),
    ("moco_v2", {}, "shuffle_bn=False"),
])
def test_methods_the_per_device_mode_cannot_run_say_so_at_build_time(method, overrides,
                                                                    message):
  config = _config(method, **{"parallel.mode": "pmap", **overrides})
  with pytest.raises(ValueError, match=message):
    train.build_objective(config, mesh=parallel.make_mesh())


def test_per_device_batchnorm_needs_the_pmap_mode():
  config = _config("simclr", **{"parallel.sync_batchnorm": False})
  with pytest.raises(ValueError, match="parallel.mode=pmap"):
    config_schema.validate(config)
