"""Optimizers, learning-rate schedules and weight-decay masks.

Durations arrive already resolved to steps (see `train.resolve_durations`), so
nothing here needs to know the dataset size.
"""

import math
import re
from typing import Any, Iterable, NamedTuple

import jax
import jax.numpy as jnp
import ml_collections
import optax

OPTIMIZERS = ("lars", "sgd", "adamw", "adam")
LR_SCALINGS = ("linear", "sqrt", "sqrt_wrt_1024", "none")


def scaled_learning_rate(config: ml_collections.ConfigDict, batch_size: int) -> float:
  """Peak learning rate from the base rate and the global batch size.

  'linear': base_lr * batch / 256 (Goyal et al.; SimCLR with LARS at large
  batch). 'sqrt': base_lr * sqrt(batch) (SimCLR appendix B.1, better for small
  batches and long schedules). 'sqrt_wrt_1024': base_lr * sqrt(batch / 1024)
  (DINOv2's `scaling_rule`). 'none': base_lr as given.
  """
  if config.lr_scaling == "linear":
    return config.base_lr * batch_size / 256
  if config.lr_scaling == "sqrt":
    return config.base_lr * math.sqrt(batch_size)
  if config.lr_scaling == "sqrt_wrt_1024":
    return config.base_lr * math.sqrt(batch_size / 1024)
  if config.lr_scaling == "none":
    return config.base_lr
  raise ValueError(f"Unknown optimizer.lr_scaling {config.lr_scaling!r}; "
                   f"choose one of {LR_SCALINGS}.")


def warmup_cosine(peak: float, warmup_steps: int, total_steps: int, *,
                  start_lr: float = 0.0, end_lr: float = 0.0) -> optax.Schedule:
  """Linear warm-up from `start_lr` to `peak`, then cosine decay to `end_lr`.

  With W = warmup_steps and T = total_steps, at step s (counted from 0):
    s < W:       start_lr + (peak - start_lr) * s / W
    W <= s <= T: end_lr + (peak - end_lr) * (1 + cos(pi * (s - W) / (T - W))) / 2
    s > T:       end_lr
  This is I-JEPA's `WarmupCosineSchedule` (start_lr, ref_lr, final_lr) and MAE's
  `lr_sched` with `min_lr`; I-JEPA counts from 1 (its scheduler steps before the
  first update), MAE and this function from 0. The defaults (0 -> peak -> 0)
  are the original schedule. Rates are absolute, not batch-size scaled.
  """
  warmup_steps = min(warmup_steps, max(total_steps - 1, 0))
  return optax.warmup_cosine_decay_schedule(
      init_value=start_lr, peak_value=peak, warmup_steps=warmup_steps,
      decay_steps=max(total_steps, warmup_steps + 1), end_value=end_lr)


def warmup_steps_decay(peak: float, warmup_steps: int, boundaries: Iterable[int],
                       factor: float, *, start_lr: float = 0.0) -> optax.Schedule:
  """Linear warm-up from `start_lr` to `peak`, then `peak` x `factor`^k after
  the k-th of `boundaries` (steps): the step schedule of NPID's
  `adjust_learning_rate` (lemniscate main.py: x 0.1 at epochs 120 and 160)."""
  boundaries = sorted(int(b) for b in boundaries)

  def schedule(step):
    passed = sum(jnp.asarray(step >= b, jnp.float32) for b in boundaries) if boundaries else 0.0
    decayed = peak * factor ** passed
    if warmup_steps <= 0:
      return jnp.asarray(decayed, jnp.float32)
    warm = start_lr + (peak - start_lr) * step / warmup_steps
    return jnp.where(step < warmup_steps, warm, decayed)

  return schedule


SCHEDULES = ("cosine", "steps", "constant")


def schedule_from_config(config: ml_collections.ConfigDict, peak: float,
                         warmup_steps: int, total_steps: int,
                         steps_per_epoch: int = 1) -> optax.Schedule:
  """The `optimizer` section's schedule: `warmup_cosine` with
  `warmup_start_lr` and `min_lr` (both default to 0, the original schedule),
  or with `schedule='steps'` `warmup_steps_decay` at `lr_decay_epochs`
  ('constant': the same without drops: SCAN's `scheduler: constant`)."""
  start_lr = config.get("warmup_start_lr", 0.0) or 0.0
  if config.get("schedule", "cosine") in ("steps", "constant"):
    return warmup_steps_decay(peak, warmup_steps,
                              [round(e * steps_per_epoch) for e in config.lr_decay_epochs],
                              config.lr_decay_factor, start_lr=start_lr)
  return warmup_cosine(peak, warmup_steps, total_steps, start_lr=start_lr,
                       end_lr=config.get("min_lr", 0.0) or 0.0)


def weight_decay(config: ml_collections.ConfigDict,
                 total_steps: int) -> float | optax.Schedule:
  """`weight_decay`, or with `weight_decay_end` set a cosine from one to the
  other over training (DINO's ViT recipe: 0.04 -> 0.4)."""
  start, end = config.weight_decay, config.weight_decay_end
  if end is None:
    return start
  total = max(total_steps, 1)

  def schedule(step):
    progress = jnp.minimum(step, total) / total
    return end + 0.5 * (start - end) * (1.0 + jnp.cos(jnp.pi * progress))

  return schedule


def clip_each_parameter_norm(max_norm: float) -> optax.GradientTransformation:
  """Scales each parameter's gradient to norm <= `max_norm` separately.

  DINO clips per parameter tensor (not the global norm) at 3.0; its 1e-6
  guards all-zero gradients.
  """

  def clip(updates, params=None):
    del params
    return jax.tree.map(
        lambda g: g * jnp.minimum(1.0, max_norm / (jnp.linalg.norm(g) + 1e-6)), updates)

  return optax.stateless(clip)


def clip_each_module_norm(max_norm: float) -> optax.GradientTransformation:
  """Scales the gradient of each top-level module (backbone, each head) to
  global norm <= `max_norm` separately: DINOv2's `clip_grad_norm_` per
  student submodule (dinov2/train/train.py)."""

  def clip(updates, params=None):
    del params
    return {name: optax.clip_by_global_norm(max_norm).update(part, optax.EmptyState())[0]
            for name, part in updates.items()}

  return optax.stateless(clip)


def scale_patch_embed_lr(scale: float) -> optax.GradientTransformation:
  """Multiplies the ViT patch projection's update by `scale` (DINOv2's
  `patch_embed_lr_mult`, which scales that group's lr, so its decoupled weight
  decay too, as chaining after AdamW does)."""

  def apply(updates, params=None):
    del params
    return jax.tree_util.tree_map_with_path(
        lambda path, u: u * jnp.asarray(scale, u.dtype) if "patch_embed" in _path_names(path)
        else u, updates)

  return optax.stateless(apply)


def _key_name(key) -> str:
  """The name of one step of a pytree path (dict key, attribute or index)."""
  for attr in ("key", "name", "idx"):
    if hasattr(key, attr):
      return str(getattr(key, attr))
  return str(key)


def _path_names(path) -> tuple[str, ...]:
  return tuple(_key_name(k) for k in path)


def name_set(names: str | Iterable[str] | None) -> frozenset[str]:
  """A set of names from a tuple, a list, or a comma/space-separated string
  (so a command-line override `--config.optimizer.no_decay_names=a,b` works)."""
  if not names:
    return frozenset()
  if isinstance(names, str):
    names = (names,)
  out = set()
  for name in names:
    out.update(n for n in re.split(r"[,\s]+", str(name)) if n)
  return frozenset(out)


def decay_mask(params, no_decay_names: str | Iterable[str] = (), *,
               decay_rank1: bool = False):
  """True for weights that get weight decay and LARS adaptation.

  Biases (of any rank) and BatchNorm scales/offsets (every parameter of rank
  <= 1) are excluded, as in SimCLR and BYOL, unless `decay_rank1` (torch SGD's
  `weight_decay`, which MoCo v2, SimSiam, SupCon and NPID apply to every
  parameter). Every parameter whose path (module or leaf names) contains one
  of `no_decay_names`, matched exactly, is excluded: MAE and BEiT exclude the
  position embedding, cls and mask tokens
  (`("pos_embedding", "cls_token", "mask_token")` here).
  """
  names = name_set(no_decay_names)

  def decayed(path, p):
    path_names = _path_names(path)
    # A bias is a bias whatever its rank (the ViT's fused qkv bias is
    # [3, heads, head_dim]); every official parameter-group rule skips it.
    weight = jnp.ndim(p) > 1 and path_names[-1] != "bias"
    return (decay_rank1 or weight) and not names.intersection(path_names)

  return jax.tree_util.tree_map_with_path(decayed, params)


_VIT_EMBEDDINGS = frozenset({"patch_embed", "pos_embedding", "cls_token", "mask_token",
                             "register_tokens"})
_VIT_BLOCK = re.compile(r"block_(\d+)$")
_RESNET_STEM = frozenset({"stem_conv", "stem_bn"})
_RESNET_BLOCK = re.compile(r"(?:BasicBlock|Bottleneck)_(\d+)$")
BACKBONE = "backbone"


class LarsState(NamedTuple):
  count: jax.Array
  momentum: optax.Updates


def solo_learn_lars(learning_rate: optax.ScalarOrSchedule, weight_decay: float | optax.Schedule,
                    *, trust_coefficient: float, clip_lr: bool, momentum: float,
                    mask=decay_mask, eps: float = 1e-8) -> optax.GradientTransformation:
  """LARS as solo-learn steps it (`solo/utils/lars.py`, from Lightning Bolts),
  the optimizer of its CIFAR recipes. For a parameter in `mask` with nonzero
  weight and gradient:

    local = eta * |w| / (|g| + wd * |w| + eps)
    scale = min(local / lr, 1) if clip_lr else local
    d = (g + wd * w) * scale

  and d = g otherwise (biases and norms: no decay, no adaptation). Then
  m = momentum * m + d and w -= lr * m. With `clip_lr` the step is
  min(local, lr) * (g + wd * w): LARS only ever lowers a layer's rate.

  It differs from `optax.lars` in three places: the denominator (optax:
  |g + wd * w|), the clipping (optax: none), and where the rate enters (optax
  keeps momentum on lr-scaled updates, so a schedule change reaches the
  momentum only gradually; here the current lr multiplies all of it).
  """
  lr_at = learning_rate if callable(learning_rate) else (lambda _: learning_rate)
  decay_at = weight_decay if callable(weight_decay) else (lambda _: weight_decay)

  def init(params):
    return LarsState(count=jnp.zeros((), jnp.int32),
                     momentum=jax.tree.map(jnp.zeros_like, params))

  def update(grads, state, params):
    lr, wd = lr_at(state.count), decay_at(state.count)

    def direction(g, w, adapt):
      if not adapt:
        return g
      w_norm, g_norm = jnp.linalg.norm(w), jnp.linalg.norm(g)
      local = trust_coefficient * w_norm / (g_norm + wd * w_norm + eps)
      scale = jnp.minimum(local / lr, 1.0) if clip_lr else local
      return jnp.where((w_norm > 0) & (g_norm > 0), (g + wd * w) * scale, g)

    adapt = mask(params) if callable(mask) else mask
    directions = jax.tree.map(direction, grads, params, adapt)
    trace = jax.tree.map(lambda m, d: momentum * m + d, state.momentum, directions)
    updates = jax.tree.map(lambda m: -lr * m, trace)
    return updates, LarsState(count=optax.safe_increment(state.count), momentum=trace)

  return optax.GradientTransformation(init, update)


def _layer_assignment(params) -> tuple[list[tuple[int, int] | None], Any]:
  """For each leaf: (layer id, top id of its backbone), or None outside every
  backbone; and the treedef. Uses only names (static under jit)."""
  leaves, treedef = jax.tree_util.tree_flatten_with_path(params)
  paths = [_path_names(path) for path, _ in leaves]

  # Group the leaves by the backbone they sit in (the first `backbone` key).
  backbones: dict[tuple[str, ...], list[tuple[int, tuple[str, ...]]]] = {}
  for i, names in enumerate(paths):
    if BACKBONE in names:
      at = names.index(BACKBONE) + 1
      backbones.setdefault(names[:at], []).append((i, names[at:]))
  if not backbones:
    raise ValueError("Layer decay needs a parameter subtree named 'backbone' "
                     "(a ViT or a ResNet from repr_learn.models).")

  assigned: list[tuple[int, int] | None] = [None] * len(leaves)
  for prefix, members in backbones.items():
    children = {rest[0] for _, rest in members if rest}
    vit_blocks = {int(m.group(1)) for c in children if (m := _VIT_BLOCK.match(c))}
    resnet_blocks = {int(m.group(1)) for c in children if (m := _RESNET_BLOCK.match(c))}
    if vit_blocks:
      # BEiT / MAE lr_decay.py: embeddings 0, block i -> i + 1, the rest L + 1.
      top = max(vit_blocks) + 1 + 1

      def layer(child, top=top):
        if child in _VIT_EMBEDDINGS:
          return 0
        m = _VIT_BLOCK.match(child)
        return int(m.group(1)) + 1 if m else top
    elif resnet_blocks or children & _RESNET_STEM:
      # Per stage: stem 0, stage s -> s + 1, the rest num_stages + 1. A stage
      # starts at each block after the first that has a projection shortcut
      # (its stride-2 first block); block 0 always starts stage 0.
      with_proj = {
          int(m.group(1)) for _, rest in members
          if len(rest) > 1 and rest[1] == "proj_conv" and (m := _RESNET_BLOCK.match(rest[0]))}
      stage, s = {}, 0
      for b in sorted(resnet_blocks):
        if b in with_proj and b != min(resnet_blocks):
          s += 1
        stage[b] = s
      top = (s + 1 if resnet_blocks else 0) + 1

      def layer(child, top=top, stage=stage):
        if child in _RESNET_STEM:
          return 0
        m = _RESNET_BLOCK.match(child)
        return stage[int(m.group(1))] + 1 if m else top
    else:
      raise ValueError(f"Layer decay: the backbone at {'/'.join(prefix)} is neither "
                       f"a ViT (block_i) nor a ResNet (stem_conv); its children are "
                       f"{sorted(children)}.")
    for i, rest in members:
      assigned[i] = (layer(rest[0]) if rest else top, top)

  outer_top = max(a[1] for a in assigned if a is not None)
  assigned = [a if a is not None else (outer_top, outer_top) for a in assigned]
  return assigned, treedef


def layer_ids(params):
  """Pytree of ints, like `params`: each parameter's layer for layer-wise lr decay.

  ViT backbone (`params[...]['backbone']` with `block_0`..`block_{L-1}`):
  0 for `patch_embed`, `pos_embedding`, `cls_token`, `mask_token`,
  `register_tokens` (DINOv2's `get_vit_lr_decay_rate`); i + 1 for
  `block_i`; L + 1 for the rest (final norm, and every parameter outside the
  backbone: heads, decoders, predictors). ResNet backbone: 0 for the stem,
  s + 1 for the blocks of stage s, num_stages + 1 for the rest.
  """
  assigned, treedef = _layer_assignment(params)
  return jax.tree_util.tree_unflatten(treedef, [layer for layer, _ in assigned])


def layer_scales(params, decay: float):
  """Pytree of floats: decay ** (top - layer id), top = L + 1 (ViT) or
  num_stages + 1 (ResNet). As MAE's util/lr_decay.py (after BEiT): the last
  layer and the heads get 1, ViT-B's embeddings 0.65 ** 13 at decay 0.65."""
  assigned, treedef = _layer_assignment(params)
  return jax.tree_util.tree_unflatten(
      treedef, [float(decay) ** (top - layer) for layer, top in assigned])


def scale_by_layer_decay(decay: float) -> optax.GradientTransformation:
  """Multiplies each parameter's update by `layer_scales(updates, decay)`.

  Chained after the optimizer, this scales the whole step, AdamW's decoupled
  weight decay included, exactly like a PyTorch param group's lr. The scales
  come from the update tree's names when `update` is traced, so nothing about
  the parameter tree is needed in advance, and the transform has no state.
  """

  def scale(updates, params=None):
    del params
    scales = layer_scales(updates, decay)
    return jax.tree.map(lambda u, s: u if s == 1.0 else u * jnp.asarray(s, u.dtype),
                        updates, scales)

  return optax.stateless(scale)


def make_optimizer(config: ml_collections.ConfigDict, schedule: optax.Schedule,
                   total_steps: int, peak_lr: float | None = None
                   ) -> optax.GradientTransformation:
  """The optax chain named by `config.name`:

  clip_by_global_norm (`clip_global_norm` > 0) -> per-parameter clipping
  (`clip_each_parameter_norm` > 0) -> per-module clipping
  (`clip_each_module_norm` > 0) -> optimizer (weight decay and LARS
  adaptation masked by `decay_mask` with `no_decay_names` and
  `decay_all_parameters`; learning rates per `parameter_groups`) -> layer-wise
  lr decay (`layer_decay` < 1) -> the patch projection's lr multiplier
  (`patch_embed_lr_scale`). The defaults give the optimizer alone.
  `peak_lr` is the rate of the `fixed_lr_names` group (required with it).
  """
  mask = _decay_mask_fn(config.get("no_decay_names", ()),
                        config.get("decay_all_parameters", False))
  parts = []
  if config.get("clip_global_norm", 0.0) > 0:
    parts.append(optax.clip_by_global_norm(config.clip_global_norm))
  if config.clip_each_parameter_norm > 0:
    parts.append(clip_each_parameter_norm(config.clip_each_parameter_norm))
  if config.get("clip_each_module_norm", 0.0) > 0:
    parts.append(clip_each_module_norm(config.clip_each_module_norm))
  decay = weight_decay(config, total_steps)
  schedules = _group_schedules(config, schedule, peak_lr)
  if len(schedules) == 1:
    parts.append(_base_optimizer(config, schedule, decay, mask))
  else:
    fixed_names = name_set(config.get("fixed_lr_names", ()))
    rank1_scaled = config.get("bias_lr_scale", 1.0) != 1.0

    def labels(params):
      groups = parameter_groups(params, fixed_names, rank1_scaled)
      if fixed_names and "fixed" not in jax.tree.leaves(groups):
        raise ValueError(f"optimizer.fixed_lr_names={sorted(fixed_names)} names no parameter; "
                         f"use module names of the model (e.g. 'predictor').")
      return groups

    parts.append(optax.multi_transform(
        {group: _base_optimizer(config, s, decay, mask) for group, s in schedules.items()},
        labels))
  layer_decay = config.get("layer_decay", 1.0)
  if layer_decay != 1.0:
    if not 0.0 < layer_decay <= 1.0:
      raise ValueError(f"optimizer.layer_decay={layer_decay} must be in (0, 1].")
    parts.append(scale_by_layer_decay(layer_decay))
  if config.get("patch_embed_lr_scale", 1.0) != 1.0:
    parts.append(scale_patch_embed_lr(config.patch_embed_lr_scale))
  return parts[0] if len(parts) == 1 else optax.chain(*parts)


def _decay_mask_fn(no_decay_names, decay_rank1: bool = False):
  names = name_set(no_decay_names)
  if not names and not decay_rank1:
    return decay_mask
  return lambda params: decay_mask(params, names, decay_rank1=decay_rank1)


def parameter_groups(params, fixed_lr_names: frozenset[str] = frozenset(),
                     rank1_scaled: bool = False):
  """Each parameter's learning-rate group: 'fixed' under one of
  `fixed_lr_names` (SimSiam's predictor), else 'rank1' for biases and norm
  parameters when `rank1_scaled` (Barlow Twins' second group), else 'default'."""

  def group(path, p):
    if fixed_lr_names.intersection(_path_names(path)):
      return "fixed"
    if rank1_scaled and jnp.ndim(p) <= 1:
      return "rank1"
    return "default"

  return jax.tree_util.tree_map_with_path(group, params)


def _group_schedules(config: ml_collections.ConfigDict, schedule: optax.Schedule,
                     peak_lr: float | None) -> dict[str, optax.Schedule]:
  """The learning-rate schedule of each group of `parameter_groups`.

  SimSiam's `--fix-pred-lr` holds the predictor at the peak rate
  (facebookresearch/simsiam main_simsiam.py `adjust_learning_rate`); Barlow
  Twins gives biases and norms its weights' schedule x 0.0048 / 0.2
  (facebookresearch/barlowtwins main.py `adjust_learning_rate`)."""
  schedules = {"default": schedule}
  if name_set(config.get("fixed_lr_names", ())):
    if peak_lr is None:
      raise ValueError("optimizer.fixed_lr_names needs the peak learning rate; "
                       "pass make_optimizer(..., peak_lr=...).")
    schedules["fixed"] = optax.constant_schedule(peak_lr)
  scale = config.get("bias_lr_scale", 1.0)
  if scale != 1.0:
    schedules["rank1"] = lambda step: scale * schedule(step)
  return schedules


def _base_optimizer(config: ml_collections.ConfigDict, schedule: optax.Schedule,
                    decay: float | optax.Schedule, mask=decay_mask) -> optax.GradientTransformation:
  if config.name == "lars" and config.get("lars_variant", "optax") == "solo_learn":
    return solo_learn_lars(schedule, decay, trust_coefficient=config.trust_coefficient,
                           clip_lr=config.lars_clip_lr, momentum=config.momentum, mask=mask)
  if config.name == "lars":
    return optax.lars(
        learning_rate=schedule, weight_decay=decay,
        weight_decay_mask=mask, trust_coefficient=config.trust_coefficient,
        eps=0.0, trust_ratio_mask=mask, momentum=config.momentum,
        nesterov=False)
  if config.name == "sgd":
    return optax.chain(
        optax.add_decayed_weights(decay, mask=mask),
        optax.sgd(schedule, momentum=config.momentum))
  if config.name == "adamw":
    return optax.adamw(schedule, b1=config.get("adam_b1", 0.9), b2=config.adam_b2,
                       eps=config.get("adam_eps", 1e-8), weight_decay=decay, mask=mask)
  if config.name == "adam":
    # torch.optim.Adam's weight_decay: an L2 term added to the gradient before
    # the moments (SCAN), not AdamW's decoupled decay.
    return optax.chain(
        optax.add_decayed_weights(decay, mask=mask),
        optax.scale_by_adam(b1=config.get("adam_b1", 0.9), b2=config.adam_b2,
                            eps=config.get("adam_eps", 1e-8)),
        optax.scale_by_learning_rate(schedule))
  raise ValueError(f"Unknown optimizer.name {config.name!r}; choose one of {OPTIMIZERS}.")
