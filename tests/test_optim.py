"""Optimizer options for masked image modelling: warm-up start / min lr, global
clipping, adam_b1, weight-decay exclusion by name, layer-wise lr decay, and the
linear EMA momentum schedule. Small trees on CPU."""

import sys

from absl import flags
import flax.linen as nn
import jax
import jax.numpy as jnp
from ml_collections import config_flags
import numpy as np
import optax
import pytest

from repr_learn import config_checks
from repr_learn import config_schema
from repr_learn import optim
from repr_learn.models import resnet
from repr_learn.models import vit
from repr_learn.objectives import memory


def _optimizer_config(**overrides):
  config = config_schema.base_config().optimizer
  config.update(overrides)
  return config


class _WithHead(nn.Module):
  """The backbone (named 'backbone' by its attribute) and a linear head."""
  backbone: nn.Module

  @nn.compact
  def __call__(self, x):
    return nn.Dense(3, name="head")(self.backbone(x))


def _param_shapes(backbone: nn.Module, image_size: int = 8):
  variables = jax.eval_shape(_WithHead(backbone).init, jax.random.PRNGKey(0),
                             jnp.zeros((1, image_size, image_size, 3)))
  return variables["params"]


def _tiny_vit_params():
  """A 2-block ViT with a learned position embedding and a cls token, plus a head."""
  shapes = _param_shapes(vit.ViT(width=8, depth=2, num_heads=2, mlp_dim=16, patch_size=4,
                                 pos_embedding="learned"))
  return jax.tree.map(lambda s: jnp.ones(s.shape, s.dtype), shapes)


# ---------------------------------------------------------------- schedule


def _ijepa_lr(step, start, ref, final, warmup, total):
  """I-JEPA's WarmupCosineSchedule at (0-based) step; held at `final` after
  `total` (I-JEPA's cosine would rise again, but its runs end there)."""
  step = min(step, total)
  if step < warmup:
    return start + step / max(1, warmup) * (ref - start)
  progress = (step - warmup) / max(1, total - warmup)
  return max(final, final + (ref - final) * 0.5 * (1.0 + np.cos(np.pi * progress)))


def test_warmup_cosine_with_start_and_min_lr_follows_ijepa_formula():
  peak, start, final, warmup, total = 1e-3, 2e-4, 1e-6, 10, 110
  schedule = optim.warmup_cosine(peak, warmup, total, start_lr=start, end_lr=final)
  for step in (0, 5, 10, 35, 60, 109, 110, 200):
    np.testing.assert_allclose(schedule(step), _ijepa_lr(step, start, peak, final, warmup, total),
                               rtol=1e-5, atol=1e-10, err_msg=f"step {step}")
  np.testing.assert_allclose(schedule(0), start, rtol=1e-6)
  np.testing.assert_allclose(schedule(warmup), peak, rtol=1e-6)
  np.testing.assert_allclose(schedule(60), (peak + final) / 2, rtol=1e-5)  # middle of the cosine
  np.testing.assert_allclose(schedule(total), final, rtol=1e-5)


def test_schedule_from_config_reads_fields_and_defaults_to_the_original():
  old = optax.warmup_cosine_decay_schedule(0.0, 0.5, 10, 100, 0.0)  # the previous warmup_cosine
  default = optim.schedule_from_config(_optimizer_config(), 0.5, 10, 100)
  positional = optim.warmup_cosine(0.5, 10, 100)
  for step in (0, 3, 10, 50, 99, 100, 120):
    assert float(default(step)) == float(old(step)) == float(positional(step))
  schedule = optim.schedule_from_config(
      _optimizer_config(warmup_start_lr=2e-4, min_lr=1e-6), 1e-3, 10, 100)
  np.testing.assert_allclose(schedule(0), 2e-4, rtol=1e-6)
  np.testing.assert_allclose(schedule(100), 1e-6, rtol=1e-4)


# ---------------------------------------------------------------- clipping


def test_global_norm_clipping_bounds_the_global_norm_before_the_optimizer():
  config = _optimizer_config(name="sgd", momentum=0.0, weight_decay=0.0, clip_global_norm=1.0)
  tx = optim.make_optimizer(config, lambda step: 1.0, total_steps=10)
  params = {"a": jnp.zeros(2), "b": jnp.zeros((2, 2))}
  grads = {"a": jnp.array([3.0, 0.0]), "b": jnp.array([[0.0, 4.0], [0.0, 0.0]])}  # norm 5
  updates, _ = tx.update(grads, tx.init(params), params)
  np.testing.assert_allclose(optax.global_norm(updates), 1.0, rtol=1e-6)
  np.testing.assert_allclose(updates["a"], [-0.6, 0.0], rtol=1e-6)  # direction kept
  small = jax.tree.map(lambda g: g / 10, grads)  # norm 0.5: untouched
  updates, _ = tx.update(small, tx.init(params), params)
  jax.tree.map(lambda u, g: np.testing.assert_allclose(u, -g, rtol=1e-6), updates, small)


def test_global_clipping_comes_before_per_parameter_clipping():
  config = _optimizer_config(name="sgd", momentum=0.0, weight_decay=0.0,
                             clip_global_norm=1.0, clip_each_parameter_norm=0.5)
  tx = optim.make_optimizer(config, lambda step: 1.0, total_steps=10)
  params = {"a": jnp.zeros(2), "b": jnp.zeros(2)}
  grads = {"a": jnp.array([3.0, 4.0]), "b": jnp.array([0.0, 0.0])}
  updates, _ = tx.update(grads, tx.init(params), params)
  # Global: norm 5 -> 1; then per-parameter: 1 -> 0.5.
  np.testing.assert_allclose(updates["a"], [-0.3, -0.4], rtol=1e-5)


# ---------------------------------------------------------------- adam_b1


def test_adam_b1_is_used():
  params = {"w": jnp.zeros(3)}
  grads = [{"w": jnp.array([1.0, -2.0, 0.5])}, {"w": jnp.array([-1.0, 1.0, 2.0])}]

  def run(tx):
    state, out = tx.init(params), None
    for g in grads:
      out, state = tx.update(g, state, params)
    return out["w"]

  config = _optimizer_config(name="adamw", weight_decay=0.0, adam_b1=0.8, adam_b2=0.95)
  got = run(optim.make_optimizer(config, lambda step: 0.1, total_steps=10))
  np.testing.assert_allclose(got, run(optax.adamw(0.1, b1=0.8, b2=0.95, weight_decay=0.0)),
                             rtol=1e-6)
  assert not np.allclose(got, run(optax.adamw(0.1, b1=0.9, b2=0.95, weight_decay=0.0)))


# ---------------------------------------------------------------- weight-decay exclusion


def _decay_params():
  return {"backbone": {"pos_embedding": jnp.full((4, 8), 2.0),
                       "cls_token": jnp.full((1, 1, 8), 2.0),
                       "block_0": {"mlp_in": {"kernel": jnp.full((8, 8), 2.0),
                                              "bias": jnp.full((8,), 2.0)}}}}


@pytest.mark.parametrize("names", [("pos_embedding", "cls_token", "mask_token"),
                                   ("pos_embedding,cls_token",)])  # as `--...=a,b` gives
def test_no_decay_names_exclude_parameters_from_adamw_decay(names):
  params = _decay_params()
  zeros = jax.tree.map(jnp.zeros_like, params)
  config = _optimizer_config(name="adamw", weight_decay=0.1, no_decay_names=names)
  tx = optim.make_optimizer(config, lambda step: 1.0, total_steps=10)
  updates, _ = tx.update(zeros, tx.init(params), params)
  b = updates["backbone"]
  np.testing.assert_array_equal(b["pos_embedding"], 0.0)
  np.testing.assert_array_equal(b["cls_token"], 0.0)
  np.testing.assert_array_equal(b["block_0"]["mlp_in"]["bias"], 0.0)  # rank 1, as before
  np.testing.assert_allclose(b["block_0"]["mlp_in"]["kernel"], -0.1 * 2.0, rtol=1e-6)

  # Without the names, the rank rule alone decays both (the previous behaviour).
  tx = optim.make_optimizer(_optimizer_config(name="adamw", weight_decay=0.1),
                            lambda step: 1.0, total_steps=10)
  updates, _ = tx.update(zeros, tx.init(params), params)
  np.testing.assert_allclose(updates["backbone"]["pos_embedding"], -0.2, rtol=1e-6)
  np.testing.assert_allclose(updates["backbone"]["cls_token"], -0.2, rtol=1e-6)


def test_no_decay_names_also_turn_off_lars_adaptation():
  params = _decay_params()
  mask = optim.decay_mask(params, ("pos_embedding",))
  assert mask["backbone"]["pos_embedding"] is False
  assert mask["backbone"]["cls_token"] is True
  assert mask["backbone"]["block_0"]["mlp_in"]["kernel"] is True
  # Names match whole path components, not substrings.
  assert optim.decay_mask(params, ("pos",))["backbone"]["pos_embedding"] is True
  # LARS with zero decay: excluded leaves get the plain momentum-SGD step.
  config = _optimizer_config(name="lars", weight_decay=0.0, momentum=0.0,
                             no_decay_names=("pos_embedding",))
  tx = optim.make_optimizer(config, lambda step: 1.0, total_steps=10)
  grads = jax.tree.map(jnp.ones_like, params)
  updates, _ = tx.update(grads, tx.init(params), params)
  np.testing.assert_allclose(updates["backbone"]["pos_embedding"], -1.0, rtol=1e-6)
  # Adapted: trust 0.001 * |w| / |g| = 0.001 * 2.
  np.testing.assert_allclose(updates["backbone"]["cls_token"], -0.002, rtol=1e-5)


@pytest.mark.parametrize("argument", ["('pos_embedding', 'cls_token')",
                                      "pos_embedding,cls_token"])
def test_no_decay_names_command_line_override(argument, monkeypatch):
  argv = ["prog", f"--config.optimizer.no_decay_names={argument}"]
  monkeypatch.setattr(sys, "argv", argv)  # config_flags reads the overrides from sys.argv
  fv = flags.FlagValues()
  config_flags.DEFINE_config_dict("config", config_schema.base_config(), flag_values=fv)
  fv(argv)
  names = fv.config.optimizer.no_decay_names
  assert isinstance(names, tuple)
  mask = optim.decay_mask(_decay_params(), names)
  assert not mask["backbone"]["pos_embedding"] and not mask["backbone"]["cls_token"]
  assert mask["backbone"]["block_0"]["mlp_in"]["kernel"]


# ---------------------------------------------------------------- layer decay


def test_layer_ids_of_a_vit():
  ids = optim.layer_ids(_tiny_vit_params())
  b = ids["backbone"]
  for name in ("patch_embed", "pos_embedding", "cls_token"):
    assert set(jax.tree.leaves(b[name])) == {0}, name
  assert set(jax.tree.leaves(b["block_0"])) == {1}
  assert set(jax.tree.leaves(b["block_1"])) == {2}
  assert set(jax.tree.leaves(b["norm"])) == {3}
  assert set(jax.tree.leaves(ids["head"])) == {3}
  scales = optim.layer_scales(_tiny_vit_params(), 0.5)
  assert scales["backbone"]["cls_token"] == 0.125
  assert set(jax.tree.leaves(scales["backbone"]["block_1"])) == {0.5}
  assert set(jax.tree.leaves(scales["head"])) == {1.0}


@pytest.mark.parametrize("stages,block,expected", [
    ((2, 2, 2, 2), resnet.BasicBlock, [1, 1, 2, 2, 3, 3, 4, 4]),  # resnet18
    ((3, 4, 6, 3), resnet.Bottleneck, [1] * 3 + [2] * 4 + [3] * 6 + [4] * 3),  # resnet50
])
def test_layer_ids_of_a_resnet_are_per_stage(stages, block, expected):
  shapes = _param_shapes(resnet.ResNet(stage_sizes=stages, block=block, width=4,
                                       stem="cifar"))
  ids = optim.layer_ids(shapes)
  b = ids["backbone"]
  prefix = block.__name__
  assert set(jax.tree.leaves(b["stem_conv"])) == set(jax.tree.leaves(b["stem_bn"])) == {0}
  got = [set(jax.tree.leaves(b[f"{prefix}_{i}"])) for i in range(len(expected))]
  assert got == [{e} for e in expected]
  assert set(jax.tree.leaves(ids["head"])) == {5}


@pytest.mark.parametrize("name", ["sgd", "adamw"])
def test_layer_decay_scales_each_layers_update(name):
  params = _tiny_vit_params()
  grads = jax.tree.map(lambda p: jnp.full_like(p, 0.3), params)

  def update(decay):
    config = _optimizer_config(name=name, weight_decay=0.05, momentum=0.0, layer_decay=decay)
    tx = optim.make_optimizer(config, lambda step: 0.1, total_steps=10)
    updates, _ = jax.jit(tx.update)(grads, tx.init(params), params)  # scales found while tracing
    return updates

  full, decayed = update(1.0), update(0.5)
  ids = optim.layer_ids(params)
  jax.tree.map(
      lambda f, d, i: np.testing.assert_allclose(d, f * 0.5 ** (3 - i), rtol=1e-6),
      full, decayed, ids)
  # The weight decay term is scaled too (AdamW decoupled decay == PyTorch group lr).
  kernel = decayed["backbone"]["block_0"]["mlp_in"]["kernel"]
  assert np.all(kernel != full["backbone"]["block_0"]["mlp_in"]["kernel"])


def test_layer_decay_without_a_backbone_is_an_error():
  with pytest.raises(ValueError, match="backbone"):
    optim.layer_scales({"dense": {"kernel": jnp.ones((2, 2))}}, 0.65)


# ---------------------------------------------------------------- EMA momentum


def test_linear_momentum():
  # data2vec 2.0: 0.9998 -> 0.99999 over 100k updates, then constant.
  for step, expected in ((0, 0.9998), (50_000, (0.9998 + 0.99999) / 2),
                         (100_000, 0.99999), (300_000, 0.99999)):
    np.testing.assert_allclose(memory.linear_momentum(step, 100_000, 0.9998, 0.99999),
                               expected, rtol=1e-7, atol=0)
  # I-JEPA: 0.996 -> 1.0 over the run; exactly 1 at the end.
  np.testing.assert_allclose(memory.linear_momentum(250, 1000, 0.996, 1.0), 0.997, rtol=1e-7)
  assert float(memory.linear_momentum(1000, 1000, 0.996, 1.0)) == 1.0
  assert float(memory.linear_momentum(5, 0, 0.996, 1.0)) == 1.0
  jitted = jax.jit(lambda s: memory.linear_momentum(s, 1000, 0.996, 1.0))
  np.testing.assert_allclose(jitted(jnp.int32(500)), 0.998, rtol=1e-7)


# ---------------------------------------------------------------- defaults unchanged


def _previous_optimizer(config, schedule, decay):
  """repr_learn.optim.make_optimizer before these options (constant decay)."""
  mask = lambda params: jax.tree.map(lambda p: jnp.ndim(p) > 1, params)
  if config.name == "lars":
    tx = optax.lars(learning_rate=schedule, weight_decay=decay, weight_decay_mask=mask,
                    trust_coefficient=config.trust_coefficient, eps=0.0,
                    trust_ratio_mask=mask, momentum=config.momentum, nesterov=False)
  elif config.name == "sgd":
    tx = optax.chain(optax.add_decayed_weights(decay, mask=mask),
                     optax.sgd(schedule, momentum=config.momentum))
  else:
    tx = optax.adamw(schedule, b1=0.9, b2=config.adam_b2, weight_decay=decay, mask=mask)
  if config.clip_each_parameter_norm > 0:
    tx = optax.chain(optim.clip_each_parameter_norm(config.clip_each_parameter_norm), tx)
  return tx


@pytest.mark.parametrize("name,clip", [("lars", 0.0), ("sgd", 0.0), ("adamw", 0.0),
                                       ("adamw", 3.0)])
def test_default_fields_reproduce_the_previous_optimizer(name, clip):
  config = _optimizer_config(name=name, weight_decay=0.05, clip_each_parameter_norm=clip)
  schedule = optim.schedule_from_config(config, 0.5, 2, 10)
  params = _decay_params()
  new = optim.make_optimizer(config, schedule, total_steps=10)
  old = _previous_optimizer(config, optim.warmup_cosine(0.5, 2, 10), 0.05)
  new_state, old_state = new.init(params), old.init(params)
  for step in range(3):
    grads = jax.tree.map(
        lambda p: jax.random.normal(jax.random.PRNGKey(step), p.shape), params)
    u_new, new_state = new.update(grads, new_state, params)
    u_old, old_state = old.update(grads, old_state, params)
    jax.tree.map(np.testing.assert_array_equal, u_new, u_old)
    params = optax.apply_updates(params, u_new)


def _solo_learn_lars_steps(params, grads_per_step, *, lr, wd, eta, clip, momentum):
  """numpy transcription of solo-learn's `LARS.step` (solo/utils/lars.py):
  rank-1 leaves excluded (`exclude_bias_n_norm_lars`), buffer cloned at step 1."""
  params = {k: np.array(v, np.float64) for k, v in params.items()}
  buffers = {}
  for grads in grads_per_step:
    for name, p in params.items():
      d_p = np.array(grads[name], np.float64)
      p_norm, g_norm = np.linalg.norm(p), np.linalg.norm(d_p)
      if p.ndim != 1 and p_norm != 0 and g_norm != 0:
        lars_lr = eta * p_norm / (g_norm + p_norm * wd + 1e-8)
        if clip:
          lars_lr = min(lars_lr / lr, 1)
        d_p = (d_p + wd * p) * lars_lr
      buffers[name] = d_p.copy() if name not in buffers else momentum * buffers[name] + d_p
      params[name] = p - lr * buffers[name]
  return params


@pytest.mark.parametrize("lr,clip", [(1.0, True), (0.05, True), (0.05, False)])
def test_solo_learn_lars_matches_its_update(lr, clip):
  params = {"kernel": jnp.array([[3.0, 0.0], [0.0, 4.0]]), "bias": jnp.array([1.0, 1.0])}
  grads = [{"kernel": jnp.array([[0.0, 0.6], [0.8, 0.0]]), "bias": jnp.array([0.5, 0.5])},
           {"kernel": jnp.array([[0.3, 0.0], [0.0, -0.4]]), "bias": jnp.array([-1.0, 0.2])}]
  config = _optimizer_config(name="lars", lars_variant="solo_learn", trust_coefficient=0.02,
                             lars_clip_lr=clip, weight_decay=0.1, momentum=0.9)
  tx = optim.make_optimizer(config, lambda step: lr, total_steps=10)
  state, ours = tx.init(params), params
  for g in grads:
    updates, state = tx.update(g, state, ours)
    ours = optax.apply_updates(ours, updates)
  expected = _solo_learn_lars_steps(params, grads, lr=lr, wd=0.1, eta=0.02, clip=clip,
                                    momentum=0.9)
  for name in params:
    np.testing.assert_allclose(ours[name], expected[name], rtol=1e-6, atol=1e-7)
  # By hand, step 1 of the kernel: |w| = 5, |g| = 1, local = 0.02 * 5 / (1 + 0.1 * 5).
  local = 0.1 / 1.5
  scale = min(local / lr, 1.0) if clip else local
  step1 = -lr * scale * (np.array([[0.3, 0.6], [0.8, 0.4]]))  # g + 0.1 w
  first, _ = tx.update(grads[0], tx.init(params), params)
  np.testing.assert_allclose(first["kernel"], step1, rtol=1e-6)
  np.testing.assert_allclose(first["bias"], -lr * np.array([0.5, 0.5]), rtol=1e-6)


def test_lars_clip_lr_needs_the_solo_learn_variant():
  config = config_schema.base_config()
  config.optimizer.lars_clip_lr = True
  with pytest.raises(ValueError, match="lars_clip_lr applies to .*lars_variant='solo_learn'"):
    config_checks.validate(config)


# ---------------------------------------------------------------- parameter groups


def _two_group_params():
  return {"encoder": {"kernel": jnp.array([[1.0, 2.0], [3.0, 4.0]]), "bias": jnp.array([1.0, -1.0])},
          "predictor": {"kernel": jnp.array([[1.0, 0.0], [0.0, 1.0]]),
                        "bias": jnp.array([0.5, 0.5])}}


def _sgd_steps(config, params, grads, *, steps, peak_lr=None):
  schedule = lambda step: 1.0 - 0.1 * step  # 1.0, 0.9, 0.8, ...
  tx = optim.make_optimizer(config, schedule, total_steps=10, peak_lr=peak_lr)
  state = tx.init(params)
  for _ in range(steps):
    updates, state = tx.update(grads, state, params)
    params = optax.apply_updates(params, updates)
  return params


def test_fixed_lr_group_keeps_the_peak_rate_and_decay_all_reaches_biases():
  """SimSiam's --fix-pred-lr with torch SGD's weight decay on every parameter,
  by hand: w <- w - lr_t (g + wd w), lr_t = 1 - 0.1 t for the encoder and the
  peak 1.0 for the predictor."""
  config = _optimizer_config(name="sgd", momentum=0.0, weight_decay=0.1,
                             decay_all_parameters=True, fixed_lr_names=("predictor",))
  params = _two_group_params()
  grads = jax.tree.map(jnp.ones_like, params)
  got = _sgd_steps(config, params, grads, steps=2, peak_lr=1.0)
  expected = {}
  for group, rates in (("encoder", (1.0, 0.9)), ("predictor", (1.0, 1.0))):
    expected[group] = {}
    for name, w in params[group].items():
      w = np.array(w)
      for lr in rates:
        w = w - lr * (1.0 + 0.1 * w)
      expected[group][name] = w
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6), got, expected)


def test_rank1_lr_scale_follows_the_schedule_without_decay():
  """Barlow Twins' second group: biases at 0.024 x the weights' rate, and (the
  default mask) no weight decay on them."""
  config = _optimizer_config(name="sgd", momentum=0.0, weight_decay=0.1, bias_lr_scale=0.024)
  params = _two_group_params()
  grads = jax.tree.map(jnp.ones_like, params)
  got = _sgd_steps(config, params, grads, steps=2)
  for group in params:
    kernel = np.array(params[group]["kernel"])
    for lr in (1.0, 0.9):
      kernel = kernel - lr * (1.0 + 0.1 * kernel)
    np.testing.assert_allclose(got[group]["kernel"], kernel, rtol=1e-6)
    np.testing.assert_allclose(got[group]["bias"],
                               np.array(params[group]["bias"]) - 0.024 * (1.0 + 0.9), rtol=1e-6)


def test_fixed_lr_names_that_match_nothing_are_refused():
  config = _optimizer_config(name="sgd", fixed_lr_names=("predictr",))
  tx = optim.make_optimizer(config, lambda step: 1.0, total_steps=10, peak_lr=1.0)
  with pytest.raises(ValueError, match="names no parameter"):
    tx.init(_two_group_params())
  with pytest.raises(ValueError, match="peak learning rate"):
    optim.make_optimizer(config, lambda step: 1.0, total_steps=10)


def test_steps_schedule_drops_at_the_configured_epochs():
  """NPID's adjust_learning_rate: 0.03 until epoch 120, 0.003 until 160, then
  0.0003 (10 steps per epoch here), after an optional linear warm-up."""
  config = _optimizer_config(schedule="steps", lr_decay_epochs=(120.0, 160.0))
  schedule = optim.schedule_from_config(config, 0.03, 0, 2000, steps_per_epoch=10)
  got = [float(schedule(s)) for s in (0, 1199, 1200, 1599, 1600, 1999)]
  np.testing.assert_allclose(got, [0.03, 0.03, 0.003, 0.003, 0.0003, 0.0003], rtol=1e-6)
  warm = optim.schedule_from_config(config, 0.03, 10, 2000, steps_per_epoch=10)
  np.testing.assert_allclose([float(warm(s)) for s in (0, 5, 10)], [0.0, 0.015, 0.03],
                             rtol=1e-6)
  bad = config_schema.base_config()
  bad.optimizer.lr_decay_epochs = (10.0,)
  with pytest.raises(ValueError, match="schedule='steps'"):
    config_checks.validate(bad)


def test_adam_adds_l2_to_the_gradient_before_the_moments():
  """torch.optim.Adam(weight_decay=wd), SCAN's optimizer, at step 1: the moments
  see g + wd w, so the first update is -lr * sign(g + wd w) (bias-corrected)."""
  config = _optimizer_config(name="adam", weight_decay=0.5, decay_all_parameters=True)
  params = {"w": jnp.array([1.0, -2.0]), "b": jnp.array([4.0])}
  grads = {"w": jnp.array([-1.0, 0.5]), "b": jnp.array([-1.0])}
  tx = optim.make_optimizer(config, lambda step: 0.1, total_steps=10)
  updates, _ = tx.update(grads, tx.init(params), params)
  # g + wd w: w -> (-0.5, -0.5), b -> (1.0).
  np.testing.assert_allclose(updates["w"], [0.1, 0.1], rtol=1e-5)
  np.testing.assert_allclose(updates["b"], [-0.1], rtol=1e-5)
