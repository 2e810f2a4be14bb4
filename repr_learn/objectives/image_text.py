"""Image-text contrastive objectives: CLIP, SigLIP, and LiT on either loss.

The batch carries each image's tokenized captions (`tokens` [N, C, L],
`num_captions`); every step draws one caption per image on the device (a fresh
one each time the image comes round, as open_clip and big_vision train on
COCO's five). Both towers run on the global batch, so the loss sees every
device's pairs (`losses.image_text`).

LiT (Zhai et al. 2022) locks the image tower: the backbone and its head come
from `model.init_from` (a finished run of this codebase, or imported weights),
run in eval mode (BatchNorm running statistics, open_clip's
`--lock-image-freeze-bn-stats`), pass no gradient and take no update, and only
the text tower and the temperature learn.
"""

import math

import jax
import jax.numpy as jnp

from repr_learn.losses import contrastive
from repr_learn.losses import image_text
from repr_learn.models import two_towers
from repr_learn.objectives import base


class ImageTextObjective(base.Objective):
  """Shared by CLIP and SigLIP: subclasses give `pair_loss`.

  Config fields (`defaults`):
    lock_image: LiT's locked image tower (see the module docstring).
    max_logit_scale: the temperature is clamped to [1, this] after every
      optimizer step (open_clip clamps log t to [0, ln 100] in place, for
      SigLIP too; CLIP's paper); 0: no clamp (big_vision).
    chunk_rows: > 0 computes the loss that many rows of the [N, N] logits at a
      time, recomputed in the backward pass (`losses.image_text`): memory for
      large batches on few devices; 0 holds the whole matrix.
  """
  defaults = {"lock_image": False, "max_logit_scale": 100.0, "chunk_rows": 0}

  def __post_init__(self):
    if not isinstance(self.network, two_towers.TwoTowerNetwork):
      raise ValueError(f"objective {self.name!r} trains an image tower and a text tower: set "
                       "model.text.size (e.g. 'text_mini') and a captioned dataset.")

  def needs_init_from(self) -> bool:  # LiT's image tower comes from another run.
    return bool(self.config.lock_image)

  @property
  def pretrained_parts(self):
    """LiT copies the image tower only; otherwise every part that fits (a
    CLIP run's towers and temperature)."""
    return ("backbone", "image_head") if self.config.lock_image else None

  def pair_loss(self, image, text, temperature):
    raise NotImplementedError

  def loss(self, params, batch_stats, extra, views, batch, rng, step):
    del extra, step
    tokens = self._drawn_captions(batch["tokens"], batch["num_captions"], rng)
    lock = bool(self.config.lock_image)
    image_out, new_stats = self.apply(params, batch_stats, views[0], train=not lock,
                                      method=self.network.encode_image)
    text_out, _ = self.apply(params, batch_stats, tokens, train=True,
                             method=self.network.encode_text)
    if lock:
      image_out, new_stats = jax.lax.stop_gradient(image_out), batch_stats
    temperature = two_towers.temperature_of(params)
    image = contrastive.l2_normalize(image_out["embedding"].astype(jnp.float32))
    text = contrastive.l2_normalize(text_out.astype(jnp.float32))
    loss = self.pair_loss(image, text, temperature)
    metrics = {**image_text.retrieval_accuracy(jax.lax.stop_gradient(image),
                                               jax.lax.stop_gradient(text)),
               **{k: jax.lax.stop_gradient(v) for k, v in temperature.items()}}
    return loss, base.LossOutput(batch_stats=new_stats, metrics=metrics)

  def _drawn_captions(self, tokens, num_captions, rng):
    """One caption per image, uniformly among its `num_captions`: the draw is
    made for the global batch, so both parallel modes pick the same ones."""
    draw = lambda rows: jax.random.uniform(rng, (rows,))
    _, local_draw = self.drawn_for_global_batch(draw, tokens.shape[0])
    choice = jnp.minimum((local_draw * num_captions).astype(jnp.int32),
                         jnp.maximum(num_captions - 1, 0))
    return jnp.take_along_axis(tokens, choice[:, None, None], axis=1)[:, 0]

  def frozen_parts(self, step):
    if not self.config.lock_image:
      return {}
    locked = jnp.bool_(True)
    parts = {"backbone": locked}
    if self.network.image_head is not None:
      parts["image_head"] = locked
    return parts

  def constrain_params(self, params):
    if not self.config.max_logit_scale:
      return params
    ceiling = math.log(self.config.max_logit_scale)
    return {**params, "logit_scale": jnp.clip(params["logit_scale"], 0.0, ceiling)}


class CLIP(ImageTextObjective):
  """Radford et al. 2021: symmetric cross-entropy over the global batch."""
  name = "clip"

  def pair_loss(self, image, text, temperature):
    return image_text.clip_loss(image, text, temperature["logit_scale"],
                                chunk_rows=self.config.chunk_rows)


class SigLIP(ImageTextObjective):
  """Zhai et al. 2023: the pairwise sigmoid loss with a learned bias
  (`model.logit_bias_init`, -10 in the paper)."""
  name = "siglip"

  def __post_init__(self):
    super().__post_init__()
    if self.network.logit_bias_init is None:
      raise ValueError("SigLIP learns a bias: set model.logit_bias_init (the paper's -10).")

  def pair_loss(self, image, text, temperature):
    return image_text.siglip_loss(image, text, temperature["logit_scale"],
                                  temperature["logit_bias"], chunk_rows=self.config.chunk_rows)
