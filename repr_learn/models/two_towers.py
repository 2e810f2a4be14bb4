"""The image-text network: an image tower, a text tower and the learned
temperature (and, for SigLIP, bias) that scale their similarities.

The image tower is any backbone here (`backbone`, so `model.init_from`,
evaluation and export treat it like every other run's) with an optional linear
head to the shared embedding; without one (big_vision's LiT `img_head=False`)
the pooled features are the image embedding and the text tower projects to
their width. `embed` and `project` give what every evaluation protocol reads,
as for `SiameseNetwork`; `encode_text` feeds zero-shot and retrieval.
"""

import math

import flax.linen as nn
import jax.numpy as jnp


class TwoTowerNetwork(nn.Module):
  """Attributes:
    backbone: the image trunk (pooled features).
    image_head: linear map of the features to the embedding, or None.
    text: the text tower (`text.TextTransformer`).
    context_length: its token sequence length (to create its parameters).
    logit_scale_init: the temperature t at initialisation; the parameter holds
      log t, as open_clip's and big_vision's do (CLIP 1/0.07, SigLIP 10).
    logit_bias_init: SigLIP's bias b at initialisation (-10); None: no bias.
  """
  backbone: nn.Module
  image_head: nn.Module | None
  text: nn.Module
  context_length: int
  logit_scale_init: float = 1 / 0.07
  logit_bias_init: float | None = None

  def setup(self):
    self.logit_scale = self.param("logit_scale", nn.initializers.constant(
        math.log(self.logit_scale_init)), ())
    if self.logit_bias_init is not None:
      self.logit_bias = self.param("logit_bias", nn.initializers.constant(
          self.logit_bias_init), ())

  def __call__(self, x, tokens=None, train: bool = True):
    """Both towers and the temperature (creates every parameter)."""
    if tokens is None:
      tokens = jnp.zeros((x.shape[0], self.context_length), jnp.int32)
    return {**self.encode_image(x, train=train), "text": self.encode_text(tokens),
            **self.temperature()}

  def encode_image(self, x, train: bool = True):
    """{'features': pooled backbone features, 'embedding': the image embedding}."""
    features = self.backbone(x, train=train)
    embedding = self.image_head(features) if self.image_head is not None else features
    return {"features": features, "embedding": embedding}

  def encode_text(self, tokens, train: bool = True):
    """The text embedding of token sequences [N, L] (not normalised)."""
    return self.text(tokens, train=train)

  def temperature(self):
    return temperature_of({"logit_scale": self.logit_scale,
                           **({"logit_bias": self.logit_bias}
                              if self.logit_bias_init is not None else {})})

  def project(self, x, train: bool = False):
    out = self.encode_image(x, train=train)
    return {"features": out["features"], "projection": out["embedding"]}

  def embed(self, x, train: bool = False):
    return self.backbone(x, train=train)


def temperature_of(params) -> dict:
  """{'logit_scale': t = exp(the parameter)[, 'logit_bias': b]} from the
  network's parameters (a scalar each, read directly rather than through a
  forward pass)."""
  out = {"logit_scale": jnp.exp(jnp.asarray(params["logit_scale"], jnp.float32))}
  if "logit_bias" in params:
    out["logit_bias"] = jnp.asarray(params["logit_bias"], jnp.float32)
  return out
