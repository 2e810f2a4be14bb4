"""Heads that sit on the backbone: projectors and predictors.

Every siamese/contrastive method uses the same MLP shape (Linear → BN → ReLU
repeated, then a final Linear, optionally followed by a BN without affine as in
SimCLR v2 / SimSiam); methods differ only in depth, width and the last norm.
"""

from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from repr_learn.losses import clustering
from repr_learn.losses import contrastive


ACTIVATIONS = {"relu": nn.relu, "gelu": nn.gelu}


class MLPHead(nn.Module):
  """`num_layers` dense layers; hidden layers use BN + ReLU.

  Attributes:
    hidden_dim: width of the hidden layers.
    output_dim: width of the output.
    num_layers: total dense layers (>= 1).
    last_bn: apply a BatchNorm without learned scale/bias to the output (SimCLR's
      projector in the TF implementation, SimSiam's projector).
    use_bn: batch-normalise hidden layers (off for e.g. MoCo v2's plain MLP).
    activation: 'relu', or 'gelu' as in DINO's head.
  """
  hidden_dim: int
  output_dim: int
  num_layers: int = 2
  last_bn: bool = False
  use_bn: bool = True
  activation: str = "relu"
  bn_momentum: float = 0.9
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = True):
    for i in range(self.num_layers - 1):
      x = nn.Dense(self.hidden_dim, use_bias=not self.use_bn, dtype=self.dtype,
                   name=f"dense_{i}")(x)
      if self.use_bn:
        x = nn.BatchNorm(use_running_average=not train, momentum=self.bn_momentum,
                         dtype=self.dtype, name=f"bn_{i}")(x)
      x = ACTIVATIONS[self.activation](x)
    x = nn.Dense(self.output_dim, use_bias=not self.last_bn, dtype=self.dtype,
                 name=f"dense_{self.num_layers - 1}")(x)
    if self.last_bn:
      x = nn.BatchNorm(use_running_average=not train, momentum=self.bn_momentum,
                       use_scale=False, use_bias=False, dtype=self.dtype,
                       name="bn_out")(x)
    return x.astype(jnp.float32)


class Prototypes(nn.Module):
  """K learnable prototypes compared with the projection.

  kind='cosine': cosine similarities between the normalised input and the
    normalised prototypes, i.e. SwAV's normalised prototype layer and DINO's
    weight-normalised last layer with its norm fixed to 1 (norm_last_layer).
  kind='student_t': DEC's soft assignment of the input to K centres (Xie et al.
    2016, eq. 1), the centres being the prototypes.
  """
  num_prototypes: int
  kind: str = "cosine"

  @nn.compact
  def __call__(self, x):
    x = x.astype(jnp.float32)
    kernel = self.param("kernel", nn.initializers.normal(1.0),
                        (x.shape[-1], self.num_prototypes), jnp.float32)
    if self.kind == "student_t":
      return clustering.student_t_assignment(x, kernel.T)
    return contrastive.l2_normalize(x) @ contrastive.l2_normalize(kernel, axis=0)
