"""`parallel.mode="pmap"`: the same step compiled per device on 8 fake CPU
devices. With SyncBN it equals the jit mode (loss, gradients through the
update, BatchNorm statistics, objective state); with per-device BatchNorm it
equals a by-hand computation that normalises each device's examples alone."""

import importlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from repr_learn import config_checks
from repr_learn import parallel
from repr_learn import train
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


# Every family and every per-device path: contrastive with labels gathered
# across devices (SupCon); MoCo v2's shuffle-BN (a cross-device permutation with
# per-device key statistics, local even under SyncBN); masks drawn for the
# global batch with the encoder's ids (MAE) or a mask token and gathered
# images for the HOG target (MaskFeat; SimMIM's pixel target takes the same
# path), cloned examples and the decoder's noise (data2vec 2.0), multi-block
# masks (I-JEPA); multi-crop self-distillation with teacher centres and masked
# patch tokens packed per device into gathered buffers (DINOv2, whose
# class-token loss is DINO's; iBOT scores the tokens in place, with the same
# masks); fine-tuning's mixup, whose partners live on the mirror device. SGD,
# so that the update is linear in the gradient: Adam's first step turns the
# float noise of a gradient that is zero in exact arithmetic (attention's key
# bias) into a full step of either sign.
@pytest.mark.parametrize("method", ["supcon", "moco_v2", "mae", "maskfeat", "data2vec2",
                                    "ijepa", "dinov2", "finetune"])
def test_pmap_with_syncbn_equals_the_jit_mode(method):
  sgd = {"optimizer.name": "sgd"}
  _, _, _, jit_state, jit_metrics = _one_step(_config(method, **sgd))
  _, _, _, pmap_state, pmap_metrics = _one_step(
      _config(method, **sgd, **{"parallel.mode": "pmap", "parallel.sync_batchnorm": True}))
  assert jit_metrics.keys() == pmap_metrics.keys()
  for name in jit_metrics:
    np.testing.assert_allclose(pmap_metrics[name], jit_metrics[name], rtol=1e-4, atol=1e-6,
                               err_msg=name)
  _assert_close(pmap_state.params, jit_state.params)
  _assert_close(pmap_state.batch_stats, jit_state.batch_stats)
  _assert_close(pmap_state.extra, jit_state.extra)


def test_pmap_with_per_device_batchnorm_equals_normalising_each_shard_alone():
  config = _config("simclr", **{"parallel.mode": "pmap"})
  setup, state, batch, new_state, metrics = _one_step(config)
  objective = setup.objective
  # The step's views: each example's key is the same in both modes.
  aug_rng, _ = jax.random.split(jax.random.fold_in(state.rng, state.step))
  views = step_helpers.draw_views(aug_rng, batch["image"], objective.views)
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


def test_local_mirrored_and_gathered_rows_address_the_global_batch():
  mesh = parallel.make_mesh()
  x = np.arange(16 * 3, dtype=np.float32).reshape(16, 3)
  axis = parallel.DATA_AXIS
  local = jax.shard_map(lambda a: parallel.local_rows(a, axis), mesh=mesh,
                        in_specs=P(), out_specs=P(axis))
  mirrored = jax.shard_map(lambda a: parallel.mirrored_rows(a, axis), mesh=mesh,
                           in_specs=P(axis), out_specs=P(axis))
  gathered = jax.shard_map(lambda a: parallel.gathered_rows(a, axis), mesh=mesh,
                           in_specs=P(axis), out_specs=P(), check_vma=False)
  np.testing.assert_array_equal(local(x), x)
  np.testing.assert_array_equal(mirrored(x), x[::-1])
  np.testing.assert_array_equal(gathered(x), x)


def test_per_device_batchnorm_needs_the_pmap_mode():
  config = _config("simclr", **{"parallel.sync_batchnorm": False})
  with pytest.raises(ValueError, match="parallel.mode=pmap"):
    config_checks.validate(config)
