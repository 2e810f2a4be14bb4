"""Masked image modeling with a regression target per hidden patch: MAE, SimMIM
and MaskFeat.

The three differ in where the mask acts and what is predicted:
  MAE       the encoder sees only the visible 25% (a fixed count: static shapes);
            an 8-block decoder predicts each hidden patch's normalised pixels.
  SimMIM    a mask token replaces 60% of the patches, in 32-px cells; one linear
            layer predicts the pixels; L1 on the hidden pixels.
  MaskFeat  a mask token replaces 40% of the patches, in blocks; LayerNorm +
            linear predict each hidden patch's HOG descriptor; MSE.
Masks are drawn inside the step from its rng, for the global batch (each
device of the per-device mode encodes its rows of them, and the pixel targets
come from the gathered images); the loss is reduced over the global batch
(masked tokens only).
"""

from typing import ClassVar

import jax
import jax.numpy as jnp
import ml_collections

from repr_learn.data import masking
from repr_learn.losses import masked as masked_losses
from repr_learn.models import vit
from repr_learn.objectives import base
from repr_learn.objectives import memory


class MaskedModelingObjective(base.Objective):
  """Shared pieces: the token grid of the (single) view and the rng split."""

  name = "masked_modeling"
  # Has `reconstruct` (pixel targets): the reconstructions protocol draws it.
  reconstructs: ClassVar[bool] = False
  matryoshka_refusal = ("its loss predicts hidden tokens (pixels or features per patch), not "
                        "an embedding of the pooled features")

  @property
  def patch_size(self) -> int:
    return self.network.backbone.patch_size

  def grid(self, image) -> int:
    return self.network.backbone.grid(image.shape[1])

  @staticmethod
  def split_rng(rng):
    """(mask rng, network rng for drop path and decoder noise)."""
    return jax.random.split(rng)


class RepresentationTargetObjective(MaskedModelingObjective, base.EmaTargetObjective):
  """Base for objectives that regress an EMA teacher's representations of the
  hidden tokens (data2vec 2.0, I-JEPA): the teacher mirrors the encoder only, its
  momentum rises linearly from `ema_start` to `ema_end` over `ema_ramp_steps()`,
  and the head predicts vectors of the encoder's width."""
  target_parts = ("backbone",)

  @classmethod
  def decoder_output_dim(cls, config: ml_collections.ConfigDict) -> int:
    return vit.VIT_SIZES[config.model.backbone][0]

  def ema_ramp_steps(self) -> int:
    raise NotImplementedError

  def momentum(self, step):
    c = self.config
    return memory.linear_momentum(step, self.ema_ramp_steps(), c.ema_start, c.ema_end)


class PixelObjective(MaskedModelingObjective):
  """Base for objectives whose decoder predicts pixels, with `reconstruct`."""
  reconstructs = True

  @classmethod
  def decoder_output_dim(cls, config: ml_collections.ConfigDict) -> int:
    return config.model.patch_size ** 2 * 3

  def reconstruct(self, params, batch_stats, images, rng) -> dict[str, jax.Array]:
    """{'hidden': [N, H, W] 1 on hidden pixels, 'masked': images with hidden
    patches zeroed, 'reconstruction': the prediction pasted into the hidden
    patches}, for plots; normalised images."""
    loss_out = self.predict(params, batch_stats, images, rng, train=False)
    p = self.patch_size
    grid = self.grid(images)
    hidden = loss_out["masked"][..., None].astype(images.dtype)
    pixels = masked_losses.patchify(images, p)
    predicted = loss_out["pixels"]
    if loss_out.get("normalized", False):
      # norm-pix predictions are in per-patch normalised units: they are shown
      # with the original patch's mean and spread, so the picture (and the
      # protocol's error) judges only the pattern predicted inside each patch.
      # (MAE's own demo uses a model trained on raw pixels for this reason.)
      mean = jnp.mean(pixels, axis=-1, keepdims=True)
      std = jnp.std(pixels, axis=-1, keepdims=True, ddof=1)
      predicted = predicted * std + mean
    return {"hidden": masked_losses.token_mask_to_pixels(loss_out["masked"], p, grid),
            "masked": masked_losses.unpatchify(pixels * (1 - hidden), p, grid),
            "reconstruction": masked_losses.unpatchify(
                pixels * (1 - hidden) + predicted * hidden, p, grid)}


class MAE(PixelObjective):
  """He et al. 2022, "Masked Autoencoders Are Scalable Vision Learners"
  (facebookresearch/mae `models_mae.py`)."""

  name = "mae"
  defaults = {"mask_ratio": 0.75, "norm_pix_loss": True}

  def predict(self, params, batch_stats, images, rng, *, train=True):
    mask_rng, net_rng = self.split_rng(rng)
    num_patches = self.grid(images) ** 2
    mask, local = self.drawn_for_global_batch(lambda rows: masking.random_mask(
        mask_rng, rows, num_patches, masking.num_masked(num_patches, self.config.mask_ratio)),
        images.shape[0])

    def forward(net, x, train):
      tokens = net.encode(x, ids_keep=local.ids_keep, train=train)["tokens"]
      return net.decode(tokens, local.ids_keep, num_patches, net.backbone.has_cls, train=train)

    pred, _ = self.apply(params, batch_stats, images, method=forward, train=train, rng=net_rng)
    return {"pixels": pred, "masked": mask.masked, "normalized": self.config.norm_pix_loss}

  def loss(self, params, batch_stats, extra, views, batch, rng, step):
    del extra, batch, step
    images = views[0]
    out = self.predict(params, batch_stats, images, rng)
    target = masked_losses.patchify(self.gathered(images), self.patch_size)
    if self.config.norm_pix_loss:
      target = masked_losses.normalized_pixel_targets(target)
    loss = masked_losses.mae_loss(out["pixels"], target, out["masked"])
    return loss, base.LossOutput(batch_stats=batch_stats,
                                 metrics={"masked_fraction": jnp.mean(out["masked"])})


class SimMIM(PixelObjective):
  """Xie et al. 2022, "SimMIM: a Simple Framework for Masked Image Modeling"
  (microsoft/SimMIM `models/simmim.py`, `data/data_simmim.py`)."""

  name = "simmim"
  defaults = {"mask_ratio": 0.6, "mask_patch_size": 32}

  def _cell(self) -> int:
    cell, rem = divmod(self.config.mask_patch_size, self.patch_size)
    if rem or cell < 1:
      raise ValueError(f"objective.mask_patch_size={self.config.mask_patch_size} must be a "
                       f"multiple of model.patch_size={self.patch_size}.")
    return cell

  def predict(self, params, batch_stats, images, rng, *, train=True):
    mask_rng, net_rng = self.split_rng(rng)
    grid, cell = self.grid(images), self._cell()
    mask, local = self.drawn_for_global_batch(lambda rows: masking.cell_mask(
        mask_rng, rows, grid, cell,
        masking.simmim_num_masked_cells(grid, cell, self.config.mask_ratio)), images.shape[0])

    def forward(net, x, train):
      tokens = net.encode(x, token_mask=local.masked, train=train)["tokens"]
      return net.decode(tokens[:, 1:] if net.backbone.has_cls else tokens, train=train)

    pred, _ = self.apply(params, batch_stats, images, method=forward, train=train, rng=net_rng)
    return {"pixels": pred, "masked": mask.masked}

  def loss(self, params, batch_stats, extra, views, batch, rng, step):
    del extra, batch, step
    images = views[0]
    out = self.predict(params, batch_stats, images, rng)
    p = self.patch_size
    predicted = masked_losses.unpatchify(out["pixels"], p)
    pixel_mask = masked_losses.token_mask_to_pixels(out["masked"], p)
    loss = masked_losses.simmim_loss(predicted, self.gathered(images), pixel_mask)
    return loss, base.LossOutput(batch_stats=batch_stats,
                                 metrics={"masked_fraction": jnp.mean(out["masked"])})


class MaskFeat(MaskedModelingObjective):
  """Wei et al. 2022, "Masked Feature Prediction for Self-Supervised Visual
  Pre-Training" (facebookresearch/SlowFast `models/masked.py`, HOGLayerC in
  `models/operators.py`, `datasets/transform.py` MaskingGenerator)."""

  name = "maskfeat"
  defaults = {"mask_ratio": 0.4, "hog_cell": 8, "hog_bins": 9}

  @classmethod
  def decoder_output_dim(cls, config: ml_collections.ConfigDict) -> int:
    o = config.objective
    if config.model.patch_size % o.hog_cell:
      raise ValueError(f"model.patch_size={config.model.patch_size} must be a multiple of "
                       f"objective.hog_cell={o.hog_cell}.")
    return (config.model.patch_size // o.hog_cell) ** 2 * o.hog_bins * 3

  def loss(self, params, batch_stats, extra, views, batch, rng, step):
    del extra, batch, step
    images = views[0]
    mask_rng, net_rng = self.split_rng(rng)
    grid = self.grid(images)
    mask, local = self.drawn_for_global_batch(lambda rows: masking.block_mask(
        mask_rng, rows, grid, grid,
        masking.maskfeat_num_masked(grid * grid, self.config.mask_ratio)), images.shape[0])

    def forward(net, x, train):
      tokens = net.encode(x, token_mask=local.masked, train=train)["tokens"]
      return net.decode(tokens[:, 1:] if net.backbone.has_cls else tokens, train=train)

    pred, _ = self.apply(params, batch_stats, images, method=forward, rng=net_rng)
    target = masked_losses.hog_targets(self.gathered(images), self.patch_size,
                                       cell=self.config.hog_cell, bins=self.config.hog_bins)
    loss = masked_losses.mae_loss(pred, jax.lax.stop_gradient(target), mask.masked)
    return loss, base.LossOutput(batch_stats=batch_stats,
                                 metrics={"masked_fraction": jnp.mean(mask.masked)})

