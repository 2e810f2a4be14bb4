"""data2vec 2.0 (Baevski et al. 2023, "Efficient Self-supervised Learning with
Contextualized Target Representations for Vision, Speech and Language";
fairseq `examples/data2vec/models/data2vec2.py`, `modalities/images.py`).

An EMA teacher encodes the full image once; its target for every patch is the
average of the top-K blocks' FFN outputs, each instance-normalised over tokens,
then layer-normalised. The student encodes M clones of each image, each clone
keeping a different inverse-block mask (about 20% of the patches, a static
count); a convolutional decoder fills in the hidden patches and regresses the
targets there. The teacher's momentum rises linearly.
"""

import jax
import jax.numpy as jnp

from repr_learn.data import masking
from repr_learn.losses import masked as masked_losses
from repr_learn.objectives import base
from repr_learn.objectives import mim


class Data2Vec2(mim.RepresentationTargetObjective):
  """Student = encoder + decoder; teacher = EMA of the encoder only."""

  name = "data2vec2"
  defaults = {"num_clones": 16, "mask_ratio": 0.8, "mask_prob_adjust": 0.07,
              "block_size": 3, "top_k_blocks": 10, "cls_loss_weight": 0.01,
              "ema_start": 0.9998, "ema_end": 0.99999, "ema_ramp_steps": 100_000}

  def ema_ramp_steps(self) -> int:
    return self.config.ema_ramp_steps

  def loss(self, params, batch_stats, extra, views, batch, rng, step):
    del batch
    c = self.config
    images = views[0]
    backbone = self.network.backbone
    grid = backbone.grid(images.shape[1])
    num_patches = grid * grid
    num_keep = num_patches - masking.num_masked(num_patches, c.mask_ratio)
    mask_rng, net_rng = self.split_rng(rng)

    teacher, _ = self.apply(extra["target_params"], batch_stats, images, train=False,
                            method=self.network.encode, return_blocks=True)
    skip = 1 if backbone.has_cls else 0
    blocks = [b[:, skip:].astype(jnp.float32) for b in teacher["blocks"]]
    target = jax.lax.stop_gradient(masked_losses.data2vec_targets(blocks, c.top_k_blocks))

    clones = jnp.repeat(images, c.num_clones, axis=0)
    # Clone j of example e is row e * num_clones + j, so a device's clones are
    # its rows of the global batch's clones: its rows of their masks, and of
    # their keys for the decoder's noise at hidden positions.
    noise_rng, net_rng = jax.random.split(net_rng)
    mask, local = self.drawn_for_global_batch(lambda rows: masking.inverse_block_mask(
        mask_rng, rows * c.num_clones, grid, num_keep, mask_prob=c.mask_ratio,
        mask_prob_adjust=c.mask_prob_adjust, block=c.block_size), images.shape[0])
    noise_keys = self.local_rows(jax.random.split(
        noise_rng, self.global_batch_size(clones.shape[0])))
    width = teacher["tokens"].shape[-1]
    noise = jax.vmap(lambda key: jax.random.normal(key, (num_patches, width)))(noise_keys)

    def forward(net, x, train):
      tokens = net.encode(x, ids_keep=local.ids_keep, train=train)["tokens"]
      pred = net.decode(tokens, local.ids_keep, num_patches, net.backbone.has_cls, train=train,
                        noise=noise)
      return pred, tokens[:, 0]

    (pred, cls), _ = self.apply(params, batch_stats, clones, method=forward, rng=net_rng)
    target_clones = jnp.repeat(target, c.num_clones, axis=0)
    hidden = mask.masked.astype(jnp.float32)
    # fairseq: squared error scaled by 1/sqrt(D), summed over dimensions and
    # averaged over the hidden tokens of the global batch.
    per_token = jnp.sum(jnp.square(pred - target_clones), axis=-1) / jnp.sqrt(pred.shape[-1])
    loss = masked_losses.masked_mean(per_token, hidden)
    metrics = {"masked_fraction": jnp.mean(hidden), "teacher_momentum": self.momentum(step)}
    if backbone.has_cls and c.cls_loss_weight > 0:
      cls_target = jnp.repeat(jnp.mean(target, axis=1), c.num_clones, axis=0)
      cls_loss = jnp.mean(jnp.sum(jnp.square(cls - cls_target), axis=-1)) / jnp.sqrt(pred.shape[-1])
      loss = loss + c.cls_loss_weight * cls_loss
      metrics["cls_loss"] = cls_loss
    return loss, base.LossOutput(batch_stats=batch_stats, metrics=metrics)
