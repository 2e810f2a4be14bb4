"""Heads that sit on the backbone: projectors and predictors.

Every siamese/contrastive method uses the same MLP shape (Linear → BN → ReLU
repeated, then a final Linear, optionally followed by a BN without affine as in
SimCLR v2 / SimSiam); methods differ only in depth, width and the last norm.
"""

from typing import Any

import flax.linen as nn
import jax.numpy as jnp


class MLPHead(nn.Module):
  """`num_layers` dense layers; hidden layers use BN + ReLU.

  Attributes:
    hidden_dim: width of the hidden layers.
    output_dim: width of the output.
    num_layers: total dense layers (>= 1).
    last_bn: apply a BatchNorm without learned scale/bias to the output (SimCLR's
      projector in the TF implementation, SimSiam's projector).
    use_bn: batch-normalise hidden layers (off for e.g. MoCo v2's plain MLP).
  """
  hidden_dim: int
  output_dim: int
  num_layers: int = 2
  last_bn: bool = False
  use_bn: bool = True
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
      x = nn.relu(x)
    x = nn.Dense(self.output_dim, use_bias=not self.last_bn, dtype=self.dtype,
                 name=f"dense_{self.num_layers - 1}")(x)
    if self.last_bn:
      x = nn.BatchNorm(use_running_average=not train, momentum=self.bn_momentum,
                       use_scale=False, use_bias=False, dtype=self.dtype,
                       name="bn_out")(x)
    return x.astype(jnp.float32)
