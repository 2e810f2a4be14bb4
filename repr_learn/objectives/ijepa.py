"""I-JEPA (Assran et al. 2023, "Self-Supervised Learning from Images with a
Joint-Embedding Predictive Architecture"; facebookresearch/ijepa `src/train.py`,
`src/masks/multiblock.py`, `src/models/vision_transformer.py`).

The EMA target encoder sees the whole image; its layer-normalised outputs at 4
target blocks are the targets. The context encoder sees one large block minus
the targets (a fixed number of tokens, padding flagged invalid), and a narrow
transformer predictor predicts each target block's representations from the
context and the block's positions. Smooth-L1 in representation space; the
target's momentum rises linearly.
"""

import jax
import jax.numpy as jnp

from repr_learn.data import masking
from repr_learn.losses import masked as masked_losses
from repr_learn.objectives import base
from repr_learn.objectives import mim


class IJEPA(mim.RepresentationTargetObjective):
  """Context encoder + predictor trained; target encoder = EMA of the encoder."""

  name = "ijepa"
  defaults = {"num_targets": 4, "target_scale": (0.15, 0.2), "target_aspect": (0.75, 1.5),
              "context_scale": (0.85, 1.0), "context_tokens": 64, "max_target_tokens": 0,
              "ema_start": 0.996, "ema_end": 1.0, "ema_ramp_fraction": 1.0}

  def ema_ramp_steps(self) -> int:
    return int(round(self.total_steps * self.config.ema_ramp_fraction))

  def sample_masks(self, rng, batch: int, grid: int) -> masking.MultiBlockMask:
    c = self.config
    return masking.multi_block_mask(
        rng, batch, grid, num_context_tokens=c.context_tokens, num_targets=c.num_targets,
        target_scale=tuple(c.target_scale), target_aspect=tuple(c.target_aspect),
        context_scale=tuple(c.context_scale), max_target_tokens=c.max_target_tokens or None)

  def loss(self, params, batch_stats, extra, views, batch, rng, step):
    del batch
    images = views[0]
    backbone = self.network.backbone
    grid = backbone.grid(images.shape[1])
    mask_rng, net_rng = self.split_rng(rng)
    masks, local = self.drawn_for_global_batch(
        lambda rows: self.sample_masks(mask_rng, rows, grid), images.shape[0])

    teacher, _ = self.apply(extra["target_params"], batch_stats, images, train=False,
                            method=self.network.encode)
    tokens = teacher["tokens"][:, 1:] if backbone.has_cls else teacher["tokens"]
    normed = masked_losses.ijepa_targets(tokens.astype(jnp.float32))
    n, b, lt = masks.target_ids.shape
    target = jnp.take_along_axis(normed, masks.target_ids.reshape(n, b * lt)[..., None], axis=1)
    target = jax.lax.stop_gradient(target.reshape(n, b, lt, -1))

    def forward(net, x, train):
      context = net.encode(x, ids_keep=local.context_ids, key_mask=local.context_valid,
                           train=train)["tokens"]
      if net.backbone.has_cls:
        context = context[:, 1:]
      return net.decode(context, local.context_ids, local.context_valid, local.target_ids,
                        local.target_valid, grid * grid, train=train)

    pred, _ = self.apply(params, batch_stats, images, method=forward, rng=net_rng)
    valid = jnp.broadcast_to(masks.target_valid[..., None], pred.shape)
    loss = masked_losses.smooth_l1(pred, target, weight=valid.astype(jnp.float32))
    metrics = {"context_fraction": jnp.mean(masks.context_valid.sum(-1)) / (grid * grid),
               "target_tokens": jnp.mean(masks.target_valid.sum((-1, -2))),
               "teacher_momentum": self.momentum(step)}
    return loss, base.LossOutput(batch_stats=batch_stats, metrics=metrics)
