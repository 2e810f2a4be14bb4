"""iBOT (Zhou et al. 2022, "iBOT: Image BERT Pre-Training with Online
Tokenizer") and DINOv2 (Oquab et al. 2024, "DINOv2: Learning Robust Visual
Features without Supervision"): DINO on the class token plus self-distillation
of masked patch tokens.

The student sees the global crops with some patches replaced by the mask token
(and the local crops unmasked); the EMA teacher sees the global crops unmasked.
Class tokens are distilled across views as in DINO; the student's masked patch
tokens are distilled towards the teacher's tokens at the same positions.

Masks are drawn inside the step from its rng (`data.masking`), for the global
batch's crops (each device of the per-device mode uses its rows), at static
shapes: iBOT scores every patch token and weights the masked ones (its own
form); DINOv2 gathers the masked tokens into a buffer of the official static
bound, with validity weights, so the step compiles once whatever the per-crop
counts. In the per-device mode each device packs its own crops, as the
official per-GPU collate does, into a buffer that holds any share of the
global draw (`mask_budgets.dinov2_mask_bound(crops_held=)`), and the buffers
are gathered: the loss and the centres are sums over the masked tokens, so
they equal the jit mode's.
"""

from typing import ClassVar

import jax
import jax.numpy as jnp

from repr_learn.data import mask_budgets
from repr_learn.data import masking
from repr_learn.losses import clustering
from repr_learn.losses import distillation
from repr_learn.objectives import base

NUM_GLOBAL_VIEWS = 2
CENTERINGS = ("softmax", "sinkhorn_knopp")


class IBOT(base.EmaTargetObjective):
  """bytedance/ibot `main_ibot.py` (`iBOTLoss`) with `loader.py`'s masks.

  cls loss: DINO's, over (teacher global view, other student view) pairs;
  patch loss: on each global crop, the cross-entropy of the masked patches
  averaged per image, then over the batch and the two crops; total
  `cls_loss_weight` x cls + `patch_loss_weight` x patch (lambda1, lambda2).
  Teacher class and patch outputs have their own centres (momentum
  `centre_momentum`, `patch_centre_momentum`; the patch centre averages every
  patch token) and temperatures, each warmed up linearly over
  `warmup_teacher_temperature_epochs`. Each global crop gets a mask ratio from
  `mask_ratios` (one chosen uniformly, spread by +- `mask_ratio_spreads`) from
  `mask_start_epochs` on, as BEiT-style blocks of at least (grid // 3)^2 tokens.
  """

  name = "ibot"
  matryoshka_refusal = ("its patch loss and KoLeo act on every token of a ViT, which the nested "
                        "projector heads do not reach; DINO (class token only) can")
  defaults = {"student_temperature": 0.1, "teacher_temperature": 0.07,
              "warmup_teacher_temperature": 0.04, "teacher_patch_temperature": 0.07,
              "warmup_teacher_patch_temperature": 0.04,
              "warmup_teacher_temperature_epochs": 30.0, "centre_momentum": 0.9,
              "patch_centre_momentum": 0.9, "base_momentum": 0.996,
              "freeze_last_layer_epochs": 1.0, "cls_loss_weight": 1.0,
              "patch_loss_weight": 1.0, "mask_ratios": (0.0, 0.3),
              "mask_ratio_spreads": (0.0, 0.2), "mask_start_epochs": 0.0}
  # DINOv2: the masked tokens gathered into a padded buffer, heads run on it.
  packs_masked_tokens: ClassVar[bool] = False

  def __post_init__(self):
    if not hasattr(self.network, "patch_scores"):
      raise ValueError(f"objective {self.name!r} needs DINO heads on the class and patch "
                       "tokens of a ViT: set model.patch_head.kind to 'shared' or 'separate' "
                       f"(start from configs/{self.name}.py).")
    centering = self.config.get("centering", "softmax")
    if centering not in CENTERINGS:
      raise ValueError(f"objective.centering={centering!r} is not one of {CENTERINGS}.")

  def init_extra(self, rng, variables):
    params = variables["params"]
    patch_head = params.get("ibot_head", params["dino_head"])
    return {**super().init_extra(rng, variables),
            "centre": jnp.zeros((_num_prototypes(params["dino_head"]),), jnp.float32),
            "patch_centre": jnp.zeros((_num_prototypes(patch_head),), jnp.float32)}

  def _warmed(self, step, start: float, end: float):
    warmup = self.steps_in(self.config.warmup_teacher_temperature_epochs)
    return clustering.teacher_temperature(step, warmup, start, end)

  def teacher_temperature(self, step):
    c = self.config
    return self._warmed(step, c.warmup_teacher_temperature, c.teacher_temperature)

  def teacher_patch_temperature(self, step):
    c = self.config
    return self._warmed(step, c.warmup_teacher_patch_temperature, c.teacher_patch_temperature)

  def frozen_parts(self, step):
    frozen = step < self.steps_in(self.config.freeze_last_layer_epochs)
    parts = {"dino_head/prototypes": frozen}
    if self.network.ibot_head is not None:
      parts["ibot_head/prototypes"] = frozen
    return parts

  def draw_masks(self, rng, num_crops: int, grid: int, step) -> jax.Array:
    """[num_crops, grid * grid] bool, True = masked for the student."""
    c = self.config
    k_targets, k_blocks = jax.random.split(rng)
    targets = mask_budgets.ibot_mask_targets(k_targets, num_crops, grid * grid,
                                             c.mask_ratios, c.mask_ratio_spreads)
    targets = jnp.where(step >= self.steps_in(c.mask_start_epochs), targets, 0.0)
    return masking.block_mask_up_to(k_blocks, targets, grid, grid,
                                    min_block_tokens=(grid // 3) ** 2)

  def loss(self, params, batch_stats, extra, views, batch, rng, step):
    del batch
    mask_rng, net_rng = jax.random.split(rng)
    global_views, local_views = views[:NUM_GLOBAL_VIEWS], views[NUM_GLOBAL_VIEWS:]
    x = _interleave(global_views)  # row 2n + v: view v of example n
    grid = self.network.backbone.grid(x.shape[1])
    masked, local_masked = self.drawn_for_global_batch(
        lambda crops: self.draw_masks(mask_rng, crops, grid, step), x.shape[0])
    local_packed = self.pack(local_masked, num_crops=masked.shape[0])
    packed = self.gathered(local_packed)  # its ids index the local tokens: unused below

    def student_fn(net, images, token_mask, train):
      tokens = net.tokens(images, token_mask=token_mask, train=train)
      return {"features": tokens["cls"],
              "scores": net.cls_scores(tokens["cls"], train=train)["scores"],
              "patch_scores": net.patch_scores(_patches(tokens["patches"], local_packed),
                                               train=train)["scores"]}

    def teacher_fn(net, images, train):
      return student_fn(net, images, None, train)

    k_global, k_local = jax.random.split(net_rng)
    student, batch_stats = self.apply(params, batch_stats, x, local_masked,
                                      method=student_fn, rng=k_global)
    local_outs, batch_stats = self.forward_views(params, batch_stats, local_views,
                                                 method=self.network.project, rng=k_local)
    teacher, _ = self.apply(extra["target_params"], batch_stats, x, method=teacher_fn)
    teacher = jax.lax.stop_gradient(teacher)

    cls_probs, patch_probs, centre_stats = self.teacher_targets(teacher, extra, packed, step)
    student_cls = _split_views(student["scores"]) + [o["scores"] for o in local_outs]
    cls_loss = clustering.cross_view_loss(student_cls, _split_views(cls_probs),
                                          self.config.student_temperature)
    patch_loss = self.patch_loss(student["patch_scores"], patch_probs, masked, packed)
    loss, metrics = self.combine(cls_loss, patch_loss, student["features"])
    p_t = _split_views(cls_probs)[0]
    metrics.update(teacher_temperature=self.teacher_temperature(step),
                   teacher_entropy=clustering.mean_entropy(p_t),
                   masked_fraction=jnp.mean(masked))
    return loss, base.LossOutput(batch_stats=batch_stats, metrics=metrics, aux=centre_stats)

  # -- The parts iBOT and DINOv2 compute differently. ------------------------

  def pack(self, masked, num_crops: int):
    """iBOT scores every patch token: nothing to pack."""
    del masked, num_crops
    return None

  def teacher_targets(self, teacher, extra, packed, step):
    """Centred, sharpened teacher distributions for the class and patch tokens,
    and the batch means the centres move towards."""
    del packed
    cls_t = jax.nn.softmax((teacher["scores"] - extra["centre"])
                           / self.teacher_temperature(step), axis=-1)
    patch_t = jax.nn.softmax((teacher["patch_scores"] - extra["patch_centre"])
                             / self.teacher_patch_temperature(step), axis=-1)
    stats = {"centre": jnp.mean(teacher["scores"], axis=0),
             "patch_centre": jnp.mean(teacher["patch_scores"], axis=(0, 1))}
    return cls_t, patch_t, stats

  def patch_loss(self, student_patches, teacher_probs, masked, packed):
    del packed
    return distillation.ibot_patch_loss(student_patches, teacher_probs, masked,
                                        self.config.student_temperature)

  def combine(self, cls_loss, patch_loss, student_cls_features):
    del student_cls_features
    c = self.config
    loss = c.cls_loss_weight * cls_loss + c.patch_loss_weight * patch_loss
    return loss, {"cls_loss": cls_loss, "patch_loss": patch_loss}

  def update_extra(self, extra, params, aux, step):
    extra = super().update_extra(extra, params, aux, step)
    if aux is None:  # Sinkhorn-Knopp centring keeps no centre.
      return extra
    c = self.config
    momentum = {"centre": c.centre_momentum,
                "patch_centre": c.get("patch_centre_momentum", c.centre_momentum)}
    return {**extra, **{name: momentum[name] * extra[name] + (1 - momentum[name]) * mean
                        for name, mean in aux.items()}}


class DINOv2(IBOT):
  """facebookresearch/dinov2 `SSLMetaArch.forward_backward` (with
  `DINOLoss`, `iBOTPatchLoss.forward_masked`, `KoLeoLoss`) and its collate.

  Of the 2B global crops, B are masked, with stratified ratios in
  `mask_ratio_range`; the masked tokens are gathered into a buffer of the
  official static bound, each weighted 1 / (its crop's masked count), and the
  iBOT loss divides their weighted sum by 2B. Total: `cls_loss_weight` x the
  DINO loss (mean over the 2L + 2 pairs) + `koleo_loss_weight` x the KoLeo
  loss of the student's backbone class token, summed over the two global
  crops (groups of `koleo_group_size`, the official per-GPU batch; 0: the
  whole batch) + `patch_loss_weight` x the iBOT loss. The teacher is centred
  with softmax centres (`centering='softmax'`; the patch centre averages the
  masked tokens) or by Sinkhorn-Knopp over the batch and over the valid masked
  tokens (`'sinkhorn_knopp'`, 3 iterations); one temperature serves both.
  """

  name = "dinov2"
  defaults = {"student_temperature": 0.1, "teacher_temperature": 0.07,
              "warmup_teacher_temperature": 0.04,
              "warmup_teacher_temperature_epochs": 30.0, "centre_momentum": 0.9,
              "base_momentum": 0.992, "freeze_last_layer_epochs": 1.0,
              "cls_loss_weight": 1.0, "patch_loss_weight": 1.0, "koleo_loss_weight": 0.1,
              "koleo_group_size": 0, "centering": "softmax", "mask_probability": 0.5,
              "mask_ratio_range": (0.1, 0.5)}
  packs_masked_tokens = True

  def teacher_patch_temperature(self, step):
    return self.teacher_temperature(step)

  def draw_masks(self, rng, num_crops: int, grid: int, step):
    del step
    c = self.config
    k_targets, k_blocks = jax.random.split(rng)
    targets = mask_budgets.dinov2_mask_targets(k_targets, num_crops, grid * grid,
                                               c.mask_probability, tuple(c.mask_ratio_range))
    return masking.block_mask_up_to(k_blocks, targets, grid, grid, min_block_tokens=4,
                                    max_block_tokens=int(0.5 * grid * grid))

  def pack(self, masked, num_crops: int):
    """`masked`: this program's crops of the `num_crops` global crops."""
    c = self.config
    crops_held, num_tokens = masked.shape
    return mask_budgets.pack_masked(masked, mask_budgets.dinov2_mask_bound(
        num_crops, num_tokens, c.mask_probability, tuple(c.mask_ratio_range), crops_held))

  def teacher_targets(self, teacher, extra, packed, step):
    if self.config.centering == "softmax":
      cls_t, patch_t, stats = super().teacher_targets(teacher, extra, packed, step)
      valid = packed.valid.astype(jnp.float32)[:, None]
      stats["patch_centre"] = (jnp.sum(teacher["patch_scores"] * valid, axis=0)
                               / jnp.maximum(jnp.sum(valid), 1.0))
      return cls_t, patch_t, stats
    temperature = self.teacher_temperature(step)
    cls_t = clustering.sinkhorn(teacher["scores"], temperature, num_iters=3)
    patch_t = clustering.sinkhorn(teacher["patch_scores"], temperature, num_iters=3,
                                  valid=packed.valid)
    return cls_t, patch_t, None

  def patch_loss(self, student_patches, teacher_probs, masked, packed):
    return distillation.masked_token_loss(student_patches, teacher_probs, packed.weights,
                                          masked.shape[0], self.config.student_temperature)

  def combine(self, cls_loss, patch_loss, student_cls_features):
    c = self.config
    koleo = sum(distillation.koleo_loss(f, c.koleo_group_size or None)
                for f in _split_views(student_cls_features))
    loss = (c.cls_loss_weight * cls_loss + c.koleo_loss_weight * koleo
            + c.patch_loss_weight * patch_loss)
    return loss, {"cls_loss": cls_loss, "patch_loss": patch_loss, "koleo_loss": koleo}


def _num_prototypes(head_params) -> int:
  return head_params["prototypes"]["kernel"].shape[-1]


def _interleave(views):
  """[V] x [N, ...] -> [N * V, ...], row n * V + v = view v of example n, so
  each device keeps its own examples' crops under batch sharding."""
  n, v = views[0].shape[0], len(views)
  return jnp.stack(views, axis=1).reshape((n * v,) + views[0].shape[1:])


def _split_views(x, num_views: int = NUM_GLOBAL_VIEWS):
  """Inverse of `_interleave` for the leading axis: a list of per-view arrays."""
  x = x.reshape((-1, num_views) + x.shape[1:])
  return [x[:, v] for v in range(num_views)]


def _patches(patches, packed):
  """Every patch token [C, T, D] (iBOT), or the packed masked ones [U, D] (DINOv2)."""
  if packed is None:
    return patches
  return patches.reshape(-1, patches.shape[-1])[packed.ids]
