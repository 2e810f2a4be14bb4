"""Masked image modeling: the token-level ViT, the MAE encoder's cost and the
step compiling once (the paper-sized variants trace in tests/test_recipes.py).

(8-device vs 1-device losses, smoke training and exact resume of the teachers
run for every objective in tests/test_objectives.py.)
"""

import importlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from repr_learn import config_schema
from repr_learn import models
from repr_learn.data import masking
from repr_learn.models import vit
from tests import test_train_step as step_helpers

MIM_METHODS = ("mae", "simmim", "maskfeat", "data2vec2", "ijepa")


def _vit(**overrides):
  config = config_schema.base_config().model
  config.update(backbone="vit_test", patch_size=4)
  config.update(overrides)
  return models.build_backbone(config, image_size=16)


def test_encode_on_kept_tokens_matches_gathering_the_patch_tokens():
  """Kept-token encoding = the blocks run on exactly those position-carrying
  tokens (so MAE's encoder never sees the hidden patches)."""
  backbone = _vit(pooling="mean")
  x = jax.random.normal(jax.random.PRNGKey(0), (2, 16, 16, 3))
  variables = backbone.init(jax.random.PRNGKey(1), x)
  ids = jnp.array([[0, 5, 7, 15], [1, 2, 3, 4]])
  kept = backbone.apply(variables, x, ids_keep=ids, method=backbone.encode)["tokens"]
  assert kept.shape == (2, 4, 32)
  # Hidden patches do not influence the visible tokens' encoding.
  mask = np.ones((2, 16, 1, 1), np.float32)
  mask[0, 1], mask[1, 0] = 0.0, 0.0   # patches 1 and 0 are hidden in both rows
  noisy = x + jnp.asarray(np.kron(1 - mask.reshape(2, 4, 4), np.ones((4, 4)))[..., None] * 5.0)
  kept_noisy = backbone.apply(variables, noisy, ids_keep=ids, method=backbone.encode)["tokens"]
  np.testing.assert_allclose(kept, kept_noisy, rtol=1e-5, atol=1e-5)


def test_mask_token_replaces_masked_patches_only():
  backbone = _vit(mask_token=True, pooling="mean")
  x = jax.random.normal(jax.random.PRNGKey(0), (1, 16, 16, 3))
  variables = backbone.init(jax.random.PRNGKey(1), x)
  masked = jnp.zeros((1, 16), bool).at[0, 3].set(True)
  tokens = backbone.apply(variables, x, masked, method=backbone.patch_tokens)
  plain = backbone.apply(variables, x, method=backbone.patch_tokens)
  pos = vit.sincos_2d_positions(4, 32)
  np.testing.assert_allclose(tokens[0, 3], variables["params"]["mask_token"][0, 0] + pos[3],
                             rtol=1e-6)
  np.testing.assert_allclose(np.delete(tokens[0], 3, 0), np.delete(plain[0], 3, 0))


def test_drop_path_is_per_example_and_only_in_training():
  backbone = _vit(drop_path=0.5, pooling="mean")
  # One image repeated: any difference between rows comes from the drops.
  x = jnp.broadcast_to(jax.random.normal(jax.random.PRNGKey(0), (1, 16, 16, 3)), (16, 16, 16, 3))
  variables = backbone.init(jax.random.PRNGKey(1), x)
  eval_out = np.asarray(backbone.apply(variables, x))
  np.testing.assert_allclose(eval_out, np.broadcast_to(eval_out[:1], eval_out.shape), atol=1e-6)
  train_out = np.asarray(backbone.apply(variables, x, train=True,
                                        rngs={"dropout": jax.random.PRNGKey(2)}))
  distinct = {tuple(np.round(row, 4)) for row in train_out}
  assert 1 < len(distinct) <= 4  # keep/drop of the last block's two branches, per example


def test_layer_scale_and_post_norm_build_their_parameters():
  x = jnp.zeros((1, 16, 16, 3))
  scaled = _vit(layer_scale=0.1).init(jax.random.PRNGKey(0), x)["params"]["block_0"]
  np.testing.assert_allclose(scaled["gamma1"], 0.1)
  post = _vit(post_norm=True)
  pre = _vit()
  variables = pre.init(jax.random.PRNGKey(0), x)
  y = jax.random.normal(jax.random.PRNGKey(1), (2, 16, 16, 3))
  assert not np.allclose(pre.apply(variables, y), post.apply(variables, y))


def test_learned_positions_resample_to_other_resolutions():
  backbone = _vit(pos_embedding="learned")
  variables = backbone.init(jax.random.PRNGKey(0), jnp.zeros((1, 16, 16, 3)))
  assert variables["params"]["pos_embedding"].shape == (16, 32)
  # DINO's local crops: 8-px views of a ViT built for 16 px.
  assert backbone.apply(variables, jnp.ones((2, 8, 8, 3))).shape == (2, 32)
  constant = jnp.ones((4, 3))
  np.testing.assert_allclose(vit.resample_positions(constant, 4), np.ones((16, 3)), atol=1e-5)
  table = jax.random.normal(jax.random.PRNGKey(0), (9, 3))
  np.testing.assert_array_equal(vit.resample_positions(table, 3), table)


def test_mae_encoder_flops_scale_with_the_visible_fraction():
  """The compiled encoder's FLOPs (XLA cost analysis) at 25% visible tokens are
  about a quarter of the full encoder's (attention makes it a little less)."""
  config = config_schema.base_config().model
  config.update(backbone="vit_small", patch_size=4)
  backbone = models.build_backbone(config, image_size=64)
  x = jnp.zeros((2, 64, 64, 3))
  variables = jax.eval_shape(lambda: backbone.init(jax.random.PRNGKey(0), x))
  num_patches = 256

  def flops(num_keep):
    ids = jnp.zeros((2, num_keep), jnp.int32)
    fn = jax.jit(lambda v, x, ids: backbone.apply(v, x, ids_keep=ids, method=backbone.encode))
    cost = fn.lower(variables, x, ids).compile().cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    return cost["flops"]

  ratio = flops(num_patches // 4) / flops(num_patches)
  assert 0.2 < ratio < 0.3, ratio


@pytest.mark.parametrize("method", MIM_METHODS)
def test_mim_step_compiles_once_and_lowers_the_loss(method):
  config = importlib.import_module(f"configs.{method}").get_config("smoke")
  config.optimizer.update(base_lr=3e-3, warmup_epochs=0.0)
  mesh, _, state, step_fn = step_helpers._setup(config, jax.devices())
  batch = step_helpers._batch(config, mesh)
  losses = []
  for _ in range(6):
    state, metrics = step_fn(state, batch)
    losses.append(float(metrics["loss"]))
  assert step_fn._cache_size() == 1
  assert np.all(np.isfinite(losses)) and losses[-1] < losses[0], losses


def test_ijepa_context_and_targets_never_overlap():
  masks = jax.jit(lambda key: masking.multi_block_mask(key, 8, 14, num_context_tokens=64))(
      jax.random.PRNGKey(0))
  for i in range(8):
    context = set(np.asarray(masks.context_ids[i])[np.asarray(masks.context_valid[i])])
    targets = set(np.asarray(masks.target_ids[i])[np.asarray(masks.target_valid[i])].ravel())
    assert context and targets and not context & targets
