"""SimCLR (Chen et al. 2020): two views, NT-Xent over the global batch."""

import jax.numpy as jnp

from repr_learn.losses import contrastive
from repr_learn.objectives import base


class SimCLR(base.Objective):
  """Both views go through one forward pass so BatchNorm sees all 2N images."""

  name = "simclr"
  defaults = {"temperature": 0.5}

  def loss(self, params, batch_stats, extra, views, batch, rng):
    del extra, batch, rng
    v1, v2 = views
    n = v1.shape[0]
    # Interleave as [N, 2, ...] -> [2N, ...] so each device keeps its own
    # examples' views and the concatenation needs no cross-device shuffle.
    x = jnp.stack([v1, v2], axis=1).reshape((2 * n,) + v1.shape[1:])
    out, batch_stats = self.apply(params, batch_stats, x)
    z = out["projection"].reshape((n, 2, -1))
    z1, z2 = z[:, 0], z[:, 1]
    loss = contrastive.nt_xent(z1, z2, self.config.temperature)
    metrics = {"contrastive_acc": contrastive.contrastive_accuracy(z1, z2)}
    return loss, base.LossOutput(batch_stats=batch_stats, metrics=metrics)
