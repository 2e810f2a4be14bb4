"""iBOT and DINOv2: each loss against a numpy transcription of the official code
(bytedance/ibot main_ibot.py `iBOTLoss`; facebookresearch/dinov2 loss/*.py,
data/collate.py, data/masking.py), the mask samplers' counts and ratio
statistics, and the objectives' steps (compile once, frozen last layer, the
optimizer's per-part rules)."""

import math
import random

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import dinov2 as dinov2_config
from repr_learn import optim
from repr_learn.data import mask_budgets
from repr_learn.data import masking
from repr_learn.losses import clustering
from repr_learn.losses import distillation
from tests import test_objectives
from tests import test_train_step as step_helpers


def _log_softmax(x):
  x = x - x.max(-1, keepdims=True)
  return x - np.log(np.exp(x).sum(-1, keepdims=True))


def _softmax(x):
  return np.exp(_log_softmax(x))


# --------------------------------------------------------------------------
# Official code, transcribed to numpy.


def official_ibot_patch_term(student_patch, teacher_patch, center2, mask, ts, tt2):
  """main_ibot.py iBOTLoss.forward, the v == q terms over the two global crops."""
  total, terms = 0.0, 0
  for q in range(2):
    t = _softmax((teacher_patch[q] - center2) / tt2)
    loss2 = np.sum(-t * _log_softmax(student_patch[q] / ts), axis=-1)
    m = mask[q].reshape(mask[q].shape[0], -1).astype(np.float64)
    loss2 = np.sum(loss2 * m, axis=-1) / np.maximum(m.sum(-1), 1.0)
    total += loss2.mean()
    terms += 1
  return total / terms


def official_collate_weights(masks):
  """collate.py: mask_indices_list and masks_weight of [C, N] bool masks."""
  flat = masks.reshape(-1)
  indices = np.nonzero(flat)[0]
  per_crop = np.maximum(masks.sum(-1), 1.0)
  weights = np.broadcast_to((1.0 / per_crop)[:, None], masks.shape)[masks]
  return indices, weights


def official_forward_masked(s, t, masks, weights, ts):
  """iBOTPatchLoss.forward_masked (the loss_scales x ibot_loss_scale = 1)."""
  loss = np.sum(t * _log_softmax(s / ts), axis=-1)
  return -np.sum(loss * weights) / masks.shape[0]


def official_koleo(x, eps=1e-8):
  x = x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), eps)
  dots = x @ x.T
  np.fill_diagonal(dots, -1)
  nn = np.argmax(dots, axis=1)
  distances = np.linalg.norm(x - x[nn] + eps, axis=-1)
  return -np.log(distances + eps).mean()


def official_sinkhorn(teacher_output, tt, n_iterations=3):
  """DINOLoss / iBOTPatchLoss.sinkhorn_knopp_teacher, one process, float64."""
  q = np.exp(teacher_output / tt).T
  b, k = q.shape[1], q.shape[0]
  q /= q.sum()
  for _ in range(n_iterations):
    q /= q.sum(axis=1, keepdims=True)
    q /= k
    q /= q.sum(axis=0, keepdims=True)
    q /= b
  return (q * b).T


def official_masking_generator(height, width, num_masking_patches, min_num_patches,
                               max_num_patches, rng):
  """dinov2 MaskingGenerator.__call__ (min_aspect 0.3), with `rng` for random."""
  log_aspect = (math.log(0.3), math.log(1 / 0.3))
  mask = np.zeros((height, width), bool)
  count = 0
  while count < num_masking_patches:
    max_mask = min(num_masking_patches - count, max_num_patches)
    delta = 0
    for _ in range(10):
      area = rng.uniform(min_num_patches, max_mask)
      aspect = math.exp(rng.uniform(*log_aspect))
      h = int(round(math.sqrt(area * aspect)))
      w = int(round(math.sqrt(area / aspect)))
      if w < width and h < height:
        top = rng.randint(0, height - h)
        left = rng.randint(0, width - w)
        new = h * w - mask[top:top + h, left:left + w].sum()
        if 0 < new <= max_mask:
          delta += new
          mask[top:top + h, left:left + w] = True
      if delta > 0:
        break
    if delta == 0:
      break
    count += delta
  return mask


# --------------------------------------------------------------------------
# Losses.


def test_ibot_patch_loss_matches_the_official_masked_average():
  rng = np.random.default_rng(0)
  b, t, k = 3, 9, 7
  student = rng.normal(size=(2, b, t, k))
  teacher = rng.normal(size=(2, b, t, k))
  center2 = rng.normal(size=(k,)) * 0.1
  mask = rng.random((2, b, t)) < 0.4
  mask[0, 1] = False  # an unmasked image counts as 0 in the batch mean
  expected = official_ibot_patch_term(student, teacher, center2, mask, 0.1, 0.05)
  probs = jax.nn.softmax((jnp.asarray(teacher) - center2) / 0.05, axis=-1)
  ours = np.mean([distillation.ibot_patch_loss(student[q], probs[q], mask[q], 0.1)
                  for q in range(2)])
  np.testing.assert_allclose(ours, expected, rtol=1e-5)
  # Averaging over every token instead of the masked ones is caught.
  every = np.mean(np.sum(-np.asarray(probs) * _log_softmax(student / 0.1), -1))
  assert abs(every - expected) > 1e-2


def test_masked_token_loss_matches_dinov2_forward_masked_with_padding():
  rng = np.random.default_rng(1)
  crops, tokens, k = 4, 6, 5
  masks = np.zeros((crops, tokens), bool)
  masks[0, [1, 2, 5]] = True
  masks[2, [0]] = True
  masks[3, [0, 1, 2, 3]] = True  # crop 1 unmasked: still counts in the 2B mean
  indices, weights = official_collate_weights(masks)
  packed = mask_budgets.pack_masked(jnp.asarray(masks), capacity=12)
  np.testing.assert_array_equal(np.asarray(packed.ids)[:len(indices)], indices)
  np.testing.assert_allclose(np.asarray(packed.weights)[:len(indices)], weights, rtol=1e-6)
  assert not np.asarray(packed.valid)[len(indices):].any()
  assert np.all(np.asarray(packed.weights)[len(indices):] == 0)

  s = rng.normal(size=(12, k))
  t = _softmax(rng.normal(size=(12, k)) / 0.07)
  expected = official_forward_masked(s[:len(indices)], t[:len(indices)], masks, weights, 0.1)
  ours = distillation.masked_token_loss(s, t, packed.weights, crops, 0.1)
  np.testing.assert_allclose(ours, expected, rtol=1e-5)
  # Padding rows carry garbage here and must not count; dividing by the
  # masked crops only (a plausible slip) is caught.
  assert abs(float(ours) * crops / 3 - expected) > 1e-3


def test_koleo_matches_dinov2_including_groups_and_near_duplicates():
  rng = np.random.default_rng(2)
  x = rng.normal(size=(8, 5)).astype(np.float32)
  np.testing.assert_allclose(distillation.koleo_loss(x), official_koleo(x.astype(np.float64)),
                             rtol=1e-5)
  per_gpu = np.mean([official_koleo(g.astype(np.float64)) for g in np.split(x, 2)])
  np.testing.assert_allclose(distillation.koleo_loss(x, group_size=4), per_gpu, rtol=1e-5)
  # Two identical rows: distance eps, finite (-log(2e-8) ~ 17.7), as there.
  dup = np.concatenate([x[:1], x[:1], x[2:]])
  value = float(distillation.koleo_loss(dup))
  np.testing.assert_allclose(value, official_koleo(dup.astype(np.float64)), rtol=1e-4)
  with pytest.raises(ValueError, match="koleo_group_size"):
    distillation.koleo_loss(x, group_size=3)


def test_sinkhorn_over_valid_tokens_only_equals_the_official_on_those_tokens():
  rng = np.random.default_rng(3)
  scores = rng.normal(size=(10, 6)) * 0.3
  valid = np.zeros(10, bool)
  valid[[0, 1, 2, 3, 5, 8]] = True
  expected = official_sinkhorn(scores[valid], 0.05)
  ours = clustering.sinkhorn(jnp.asarray(scores, jnp.float32), 0.05, 3, valid=jnp.asarray(valid))
  np.testing.assert_allclose(np.asarray(ours)[valid], expected, rtol=1e-4, atol=1e-6)
  np.testing.assert_array_equal(np.asarray(ours)[~valid], 0.0)
  # Treating the padding as tokens changes the result.
  every = clustering.sinkhorn(jnp.asarray(scores, jnp.float32), 0.05, 3)
  assert not np.allclose(np.asarray(every)[valid], expected, atol=1e-3)


def test_dino_loss_equals_dinov2_local_plus_global_terms():
  """ssl_meta_arch: local crops vs both teachers, plus the global crops vs the
  reversed teachers x 2, all over the 2L + 2 pairs."""
  rng = np.random.default_rng(4)
  b, k, num_local = 3, 5, 2
  teacher = [_softmax(rng.normal(size=(b, k)) / 0.04) for _ in range(2)]
  student = [rng.normal(size=(b, k)) for _ in range(2 + num_local)]

  def ce(t, s):
    return -np.sum(t * _log_softmax(s / 0.1), -1).mean()

  terms = num_local * 2 + 2
  local = sum(ce(t, s) for s in student[2:] for t in teacher) / terms
  glob = ce(np.concatenate(teacher[::-1]), np.concatenate(student[:2])) * 2 / terms
  ours = clustering.cross_view_loss(student, teacher, 0.1)
  np.testing.assert_allclose(ours, local + glob, rtol=1e-5)


# --------------------------------------------------------------------------
# Masks.


def test_dinov2_targets_are_stratified_with_the_official_bound():
  targets = mask_budgets.dinov2_mask_targets(jax.random.PRNGKey(0), 128, 256, 0.5,
                                             (0.1, 0.5))
  assert mask_budgets.dinov2_mask_bound(128, 256, 0.5, (0.1, 0.5)) == 4941  # the collate's upperbound at 64 images per GPU, 16x16 tokens
  targets = np.asarray(targets)
  assert (targets > 0).sum() == 64
  strata = np.sort(targets[targets > 0]) / 256
  edges = np.linspace(0.1, 0.5, 65)
  assert np.all(strata >= edges[:-1] - 1 / 256) and np.all(strata <= edges[1:])


def test_a_devices_share_of_the_dinov2_crops_fits_its_bound():
  """The per-device mode packs each device's 16 of 128 crops: any 16 can be
  the most masked ones, so the bound is the 16 largest per-crop caps."""
  bound = mask_budgets.dinov2_mask_bound(128, 256, 0.5, (0.1, 0.5), crops_held=16)
  assert bound == sum(int(256 * p) for p in np.linspace(0.1, 0.5, 65, dtype=np.float32)[-16:])
  assert bound < 4941
  for seed in range(20):
    targets = np.asarray(mask_budgets.dinov2_mask_targets(jax.random.PRNGKey(seed), 128, 256,
                                                          0.5, (0.1, 0.5)))
    assert targets.reshape(8, 16).sum(axis=1).max() <= bound
  worst = np.sort(targets)[-16:]  # the 16 most masked crops on one device
  assert worst.sum() <= bound


def test_ibot_targets_mask_half_the_crops_at_ratios_in_0_1_to_0_5():
  targets = np.asarray(mask_budgets.ibot_mask_targets(jax.random.PRNGKey(1), 4000, 196,
                                                 (0.0, 0.3), (0.0, 0.2))) / 196
  masked = targets[targets > 0]
  assert abs(len(masked) / 4000 - 0.5) < 0.03
  assert masked.min() >= 0.1 - 1e-6 and masked.max() <= 0.5 + 1e-6
  assert abs(masked.mean() - 0.3) < 0.01


def test_block_masks_never_exceed_their_targets_and_match_the_official_counts():
  grid, crops = 16, 600
  py = random.Random(0)
  targets = np.array([int(256 * py.uniform(0.1, 0.5)) for _ in range(crops)])
  official = np.array([official_masking_generator(grid, grid, t, 4, 128, py).sum()
                       for t in targets])
  ours = np.asarray(jax.jit(
      lambda r, t: masking.block_mask_up_to(r, t, grid, grid, min_block_tokens=4,
                                            max_block_tokens=128))(
                                                jax.random.PRNGKey(2), jnp.asarray(targets)))
  counts = ours.sum(-1)
  assert np.all(counts <= targets)
  # Same shortfall statistics as the official generator (it also stops short).
  np.testing.assert_allclose((counts / targets).mean(), (official / targets).mean(), atol=0.02)
  np.testing.assert_allclose((counts == targets).mean(), (official == targets).mean(), atol=0.06)
  zero = np.asarray(masking.block_mask_up_to(jax.random.PRNGKey(3), jnp.zeros(4), grid, grid,
                                             min_block_tokens=4))
  assert not zero.any()


# --------------------------------------------------------------------------
# Objectives and optimizer.


def _step_setup(method, **overrides):
  config = test_objectives.smoke(method, **overrides)
  return config, *step_helpers._setup(config, jax.devices())


@pytest.mark.parametrize("method", ["dinov2"])  # iBOT's masks are dense: no bound to pad to
def test_step_compiles_once_across_mask_counts_and_freezes_the_last_layer(method):
  config, mesh, objective, state, step_fn = _step_setup(
      method, **{"optimizer.weight_decay": 0.5, "objective.freeze_last_layer_epochs": 5.0})
  masked_fractions, before = [], jax.device_get(state.params)
  for seed in range(3):
    state, metrics = step_fn(state, step_helpers._batch(config, mesh, seed))
    assert np.isfinite(metrics["loss"]) and np.isfinite(metrics["patch_loss"])
    masked_fractions.append(float(metrics["masked_fraction"]))
  assert step_fn._cache_size() == 1
  if method == "ibot":  # different total mask counts, one program
    assert len(set(masked_fractions)) > 1
  else:  # stratified: the total barely moves, the per-crop counts do
    counts = np.asarray(objective.draw_masks(jax.random.PRNGKey(0), 64, 4, 0)).sum(-1)
    assert len(set(counts.tolist())) > 2
  after = jax.device_get(state.params)
  # Within the frozen epochs (one step each here): the prototypes stay, no
  # decay either, while the rest trains.
  assert objective.steps_in(5.0) > 3
  jax.tree.map(np.testing.assert_array_equal, before["dino_head"]["prototypes"],
               after["dino_head"]["prototypes"])
  assert not np.allclose(before["dino_head"]["mlp"]["dense_0"]["kernel"],
                         after["dino_head"]["mlp"]["dense_0"]["kernel"])
  assert float(jnp.abs(state.extra["patch_centre"]).sum()) > 0


def test_dinov2_sinkhorn_centring_trains():
  config, mesh, _, state, step_fn = _step_setup(
      "dinov2", **{"objective.centering": "sinkhorn_knopp"})
  state, metrics = step_fn(state, step_helpers._batch(config, mesh))
  assert np.isfinite(metrics["loss"]) and np.isfinite(metrics["koleo_loss"])
  np.testing.assert_array_equal(state.extra["centre"], 0.0)  # SK keeps no centre


def test_dinov2_optimizer_rules_match_the_official_parameter_groups():
  """Weight decay on everything but biases, norms and LayerScale (tokens
  decayed); per-module clipping; patch embedding lr x 0.2; layer decay with
  registers at layer 0 (dinov2 utils/param_groups.py)."""
  config = dinov2_config.get_config("smoke")
  config.model.update(num_registers=2)
  from repr_learn import train
  objective = train.build_objective(config, num_examples=64)
  params = jax.eval_shape(train._init_fn(objective, config, 16), jax.random.PRNGKey(0))[0]
  mask = optim.decay_mask(params)
  flat = jax.tree_util.tree_flatten_with_path(mask)[0]
  for path, decayed in flat:
    name = ".".join(optim._path_names(path))
    official = not (name.endswith(("bias", "scale")) or "norm" in name.split(".")[-2:-1]
                    or "gamma" in name)
    if name.endswith("prototypes.norm"):
      official = True  # weight_g of the weight-normalised last layer: decayed there
    assert decayed == official, name
  ids = optim.layer_ids(params)
  assert ids["backbone"]["register_tokens"] == 0 and ids["backbone"]["cls_token"] == 0

  grads = jax.tree.map(lambda p: jnp.ones(p.shape), params)
  clipped, _ = optim.clip_each_module_norm(1.0).update(grads, optax_state(), None)
  for name in clipped:
    np.testing.assert_allclose(optim.optax.global_norm(clipped[name]), 1.0, rtol=1e-5)
  scaled, _ = optim.scale_patch_embed_lr(0.2).update(grads, optax_state(), None)
  np.testing.assert_allclose(scaled["backbone"]["patch_embed"]["kernel"], 0.2)
  np.testing.assert_allclose(scaled["backbone"]["cls_token"], 1.0)
  np.testing.assert_allclose(optim.scaled_learning_rate(
      dinov2_config.get_config("imagenet").optimizer, 2048), 4e-3 * math.sqrt(2), rtol=1e-7)


def optax_state():
  return optim.optax.EmptyState()


def test_dinov2_linear_features_are_normalised_class_tokens_of_the_last_blocks():
  """n=1 without avgpool is the class-token feature; the avgpool part is the
  mean patch token of `encode`; block n-2's class token is the class token of
  the same ViT cut one block short."""
  from repr_learn import models
  from repr_learn import config_schema
  config = config_schema.base_config().model
  config.update(backbone="vit_test", patch_size=4, num_registers=1)
  vit_model = models.build_backbone(config, image_size=16)
  x = jax.random.normal(jax.random.PRNGKey(0), (2, 16, 16, 3))
  variables = vit_model.init(jax.random.PRNGKey(1), x)
  run = lambda **kw: vit_model.apply(variables, x, method=vit_model.linear_features, **kw)
  np.testing.assert_allclose(run(n_last_blocks=1, avgpool=False), vit_model.apply(variables, x),
                             rtol=1e-6)
  tokens = vit_model.apply(variables, x, method=vit_model.encode)["tokens"]
  both = run(n_last_blocks=2, avgpool=True)
  assert both.shape == (2, 3 * 32)
  np.testing.assert_allclose(both[:, 64:], tokens[:, 2:].mean(1), rtol=1e-5, atol=1e-6)
  config.num_heads = 2
  shorter = models.build_backbone(config.copy_and_resolve_references(), image_size=16)
  shorter = shorter.clone(depth=1)
  params = {k: v for k, v in variables["params"].items() if k != "block_1"}
  np.testing.assert_allclose(both[:, :32], shorter.apply({"params": params}, x), rtol=1e-5,
                             atol=1e-6)
  with pytest.raises(ValueError, match="linear_n_last_blocks"):
    run(n_last_blocks=3, avgpool=False)


def test_dinov2_crops_reproduce_the_official_blur_as_run():
  from repr_learn import train
  config = dinov2_config.get_config("imagenet")
  views = train.build_objective(config, num_examples=1000).views
  assert [v.size for v in views] == [224, 224] + [96] * 8
  assert [v.blur_prob for v in views] == [0.0, 0.9] + [0.5] * 8
  assert {v.blur_kernel for v in views} == {9}
  assert [v.solarize_prob for v in views[:3]] == [0.0, 0.2, 0.0]
  assert (views[0].brightness, views[0].contrast, views[0].saturation, views[0].hue) == (
      0.4, 0.4, 0.2, 0.1)
  assert (views[0].min_scale, views[2].min_scale, views[2].max_scale) == (0.32, 0.05, 0.32)
  s14 = train.build_objective(dinov2_config.get_config("imagenet_vits14"), num_examples=1000)
  assert [v.size for v in s14.views] == [224, 224] + [98] * 8
  assert s14.network.backbone.grid(98) == 7 and s14.network.backbone.num_registers == 4


def test_separate_patch_head_has_its_own_prototypes_centre_and_frozen_last_layer():
  """vitl14.yaml's form: `ibot.separate_head` with its own prototype count."""
  from repr_learn import train
  config = test_objectives.smoke("dinov2", **{
      "model.patch_head.kind": "separate", "model.patch_head.num_prototypes": 24,
      "model.patch_head.hidden_dim": 32, "model.patch_head.output_dim": 8,
      "model.patch_head.num_layers": 2})
  objective = train.build_objective(config, total_steps=10, num_examples=64)
  params, _, extra = jax.eval_shape(train._init_fn(objective, config, 16),
                                    jax.random.PRNGKey(0))
  assert params["ibot_head"]["prototypes"]["kernel"].shape == (8, 24)
  assert params["dino_head"]["prototypes"]["kernel"].shape[-1] == 32
  assert extra["patch_centre"].shape == (24,) and extra["centre"].shape == (32,)
  assert "ibot_head" in extra["target_params"]
  assert set(objective.frozen_parts(0)) == {"dino_head/prototypes", "ibot_head/prototypes"}
  bad = test_objectives.smoke("dinov2", **{"model.patch_head.kind": "none"})
  with pytest.raises(ValueError, match="patch_head.kind"):
    train.build_objective(bad, num_examples=64)


def test_random_init_baseline_is_recomputed_when_evaluation_settings_change(tmp_path):
  """A cached random-init result served only under the settings it ran with:
  re-evaluating with eval.linear_features=dinov2 must not reuse the pooled one."""
  import types
  from repr_learn import config_schema
  from repr_learn.evaluation import protocols

  calls = []

  class Counting(protocols.Protocol):
    name = "counting"

    def evaluate(self, state, step):
      calls.append(state)
      return {"top1": float(len(calls))}

  config = config_schema.base_config()
  context = types.SimpleNamespace(config=config, data_config=config.data)
  baseline = protocols.Baseline(make_state=lambda: "random")
  for _ in range(2):
    protocols.run([Counting(context)], "trained", 1, str(tmp_path), baseline=baseline)
  assert calls.count("random") == 1
  config.eval.linear_features = "dinov2"
  result = protocols.run([Counting(context)], "trained", 1, str(tmp_path), baseline=baseline)
  assert calls.count("random") == 2 and result["counting"]["random_init_top1"] == 4.0


def test_a_koleo_group_that_does_not_divide_the_batch_is_refused_in_one_line():
  from repr_learn import config_checks
  config = dinov2_config.get_config("digits")
  config.batch_size = 96
  with pytest.raises(ValueError, match="koleo_group_size=64 must divide"):
    config_checks.validate(config)
  config.objective.koleo_group_size = 32
  config_checks.validate(config)
