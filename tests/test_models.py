"""Backbones: feature sizes, stems, parameter counts against the papers."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import moco_v3
from repr_learn import config_checks
from repr_learn import config_schema
from repr_learn import models
from repr_learn import optim
from repr_learn.models import heads
from repr_learn.models import vit


def _model_config(**overrides):
  config = config_schema.base_config().model
  config.update(overrides)
  return config


def _param_count(tree):
  return sum(np.prod(x.shape) for x in jax.tree.leaves(tree))


@pytest.mark.parametrize("name,stem,size,features,millions", [
    ("resnet18", "cifar", 32, 512, 11.17),
    ("resnet18", "imagenet", 64, 512, 11.18),
    ("resnet34", "imagenet", 64, 512, 21.28),
    ("resnet50", "imagenet", 64, 2048, 23.5),
])
def test_resnet_features_and_size(name, stem, size, features, millions):
  backbone = models.build_backbone(_model_config(backbone=name, stem=stem))
  x = jnp.zeros((2, size, size, 3))
  variables = jax.eval_shape(lambda: backbone.init(jax.random.PRNGKey(0), x, train=False))
  out = jax.eval_shape(lambda v: backbone.apply(v, x, train=False), variables)
  assert out.shape == (2, features) and backbone.num_features == features
  # torchvision's counts without the classifier: 11.18M / 21.28M / 23.51M.
  assert _param_count(variables["params"]) / 1e6 == pytest.approx(millions, rel=0.01)


def test_vit_sizes_pooling_and_positions():
  for name, millions in (("vit_tiny", 5.5), ("vit_small", 21.7)):
    backbone = models.build_backbone(_model_config(backbone=name, patch_size=16))
    x = jnp.zeros((1, 224, 224, 3))
    params = jax.eval_shape(lambda: backbone.init(jax.random.PRNGKey(0), x))["params"]
    assert _param_count(params) / 1e6 == pytest.approx(millions, rel=0.03)
  x = jax.random.normal(jax.random.PRNGKey(1), (2, 16, 16, 3))
  for pooling in ("cls", "gap", "mean"):
    for pos in ("sincos", "learned"):
      backbone = models.build_backbone(_model_config(backbone="vit_test", patch_size=4,
                                                     pooling=pooling, pos_embedding=pos),
                                       image_size=16)
      variables = backbone.init(jax.random.PRNGKey(0), x)
      pooled = backbone.apply(variables, x)
      assert pooled.shape == (2, 32)
      assert ("pos_embedding" in variables["params"]) == (pos == "learned")
      assert ("cls_token" in variables["params"]) == (pooling != "mean")
      tokens = backbone.apply(variables, x, method=backbone.encode)["tokens"]
      expected = {"cls": tokens[:, 0], "gap": tokens[:, 1:].mean(1), "mean": tokens.mean(1)}
      np.testing.assert_allclose(pooled, expected[pooling], rtol=1e-5, atol=1e-6)


def test_sincos_positions_formula():
  pos = vit.sincos_2d_positions(2, 4)
  # width 4: one frequency (omega=1) per sin/cos of x and y; rows in (y, x) order.
  expected = [[np.sin(x), np.cos(x), np.sin(y), np.cos(y)] for y in (0, 1) for x in (0, 1)]
  np.testing.assert_allclose(pos, expected, rtol=1e-6)


def test_network_heads():
  config = _model_config(backbone="resnet_tiny", width=8)
  config.projector.update(hidden_dim=16, output_dim=8)
  config.predictor.update(num_layers=2, hidden_dim=12)
  net = models.build_network(config)
  x = jnp.zeros((4, 16, 16, 3))
  variables = net.init(jax.random.PRNGKey(0), x, train=False)
  out = net.apply(variables, x, train=False)
  assert out["projection"].shape == (4, 8) and out["prediction"].shape == (4, 8)
  assert out["features"].shape == (4, 16)
  with pytest.raises(ValueError, match="Unknown backbone"):
    models.build_backbone(_model_config(backbone="resnet19"))


def test_attention_implementation_choice(monkeypatch):
  """'cudnn' takes the fused kernel only for calls cuDNN accepts; XLA elsewhere."""
  choose = vit.attention_implementation
  assert choose("cudnn", jnp.bfloat16, 64, 50, masked=False) == "xla"  # this CPU
  monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
  assert choose("cudnn", jnp.bfloat16, 64, 50, masked=False) == "cudnn"  # MAE's encoder
  assert choose("cudnn", jnp.float16, 128, 196, masked=False) == "cudnn"
  assert choose("cudnn", jnp.bfloat16, 64, 197, masked=False) == "xla"  # odd: refused in training
  assert choose("cudnn", jnp.float32, 64, 50, masked=False) == "xla"    # half precision only
  assert choose("cudnn", jnp.bfloat16, 64, 50, masked=True) == "xla"    # I-JEPA's key masks
  assert choose("cudnn", jnp.bfloat16, 12, 50, masked=False) == "xla"   # head size
  assert choose("cudnn", jnp.bfloat16, 256, 50, masked=False) == "xla"
  assert choose("xla", jnp.bfloat16, 64, 50, masked=False) == "xla"
  with pytest.raises(ValueError, match="Unknown attention 'flash'"):
    choose("flash", jnp.bfloat16, 64, 50, masked=False)


def test_num_heads_override_and_frozen_patch_projection():
  """`num_heads` overrides the size's default; `freeze_patch_embed` stops every
  gradient into the patch projection (MoCo v3's --stop-grad-conv1) and no other."""
  backbone = models.build_backbone(_model_config(backbone="vit_test", patch_size=4,
                                                 num_heads=4, freeze_patch_embed=True),
                                   image_size=8)
  assert backbone.num_heads == 4
  x = jax.random.normal(jax.random.PRNGKey(0), (2, 8, 8, 3))
  params = backbone.init(jax.random.PRNGKey(1), x)["params"]
  grads = jax.jit(jax.grad(lambda p: jnp.sum(backbone.apply({"params": p}, x) ** 2)))(params)
  assert all(not np.any(g) for g in jax.tree.leaves(grads["patch_embed"]))
  assert any(np.any(g) for g in jax.tree.leaves(grads["block_0"]))


def test_frozen_patch_projection_must_be_kept_from_weight_decay():
  config = moco_v3.get_config("imagenet")
  config.optimizer.no_decay_names = ()
  with pytest.raises(ValueError, match="no_decay_names"):
    config_checks.validate(config)


def test_dino_last_layer_with_learned_norm_scales_cosines_and_is_decayed():
  """--norm_last_layer false: scores = g_k * cos(x, v_k), g init 1, learned, and 2-D
  like DINO's weight_g, so the default decay mask (rank > 1) reaches it."""
  head = heads.Prototypes(num_prototypes=4, learned_norm=True)
  x = jax.random.normal(jax.random.PRNGKey(0), (3, 5))
  params = head.init(jax.random.PRNGKey(1), x)["params"]
  assert params["norm"].shape == (1, 4) and np.all(params["norm"] == 1.0)
  fixed = heads.Prototypes(num_prototypes=4).apply({"params": {"kernel": params["kernel"]}}, x)
  scaled = head.apply({"params": {**params, "norm": jnp.array([[1.0, 2.0, 3.0, 4.0]])}}, x)
  np.testing.assert_allclose(scaled, fixed * jnp.array([1.0, 2.0, 3.0, 4.0]), rtol=1e-6)
  assert bool(optim.decay_mask(params)["norm"])


def test_cosine_prototypes_scale_the_scores_not_the_kernel():
  """Scores are cosines (checked in numpy), and the kernel enters the matrix
  product as stored: XLA:CPU fused a column-normalised kernel into a small-batch
  dot 40x slower (DINO's teacher head, BENCHMARKS.md)."""
  head = heads.Prototypes(num_prototypes=6)
  x = jax.random.normal(jax.random.PRNGKey(0), (3, 5))
  params = head.init(jax.random.PRNGKey(1), x)["params"]
  kernel = np.asarray(params["kernel"], np.float64)
  want = ((np.asarray(x) / np.linalg.norm(np.asarray(x), axis=1, keepdims=True))
          @ (kernel / np.linalg.norm(kernel, axis=0, keepdims=True)))
  np.testing.assert_allclose(head.apply({"params": params}, x), want, rtol=1e-5, atol=1e-6)
  jaxpr = jax.make_jaxpr(lambda k: head.apply({"params": {"kernel": k}}, x))(params["kernel"])
  dots = [e for e in jaxpr.jaxpr.eqns if e.primitive.name == "dot_general"]
  assert len(dots) == 1 and dots[0].invars[1] is jaxpr.jaxpr.invars[0]
