"""Redundancy reduction: Barlow Twins (Zbontar et al. 2021) and VICReg (Bardes,
Ponce & LeCun 2022). No negatives, no target network, no predictor."""

from repr_learn.losses import siamese
from repr_learn.objectives import base


class BarlowTwins(base.Objective):

  name = "barlow_twins"
  # scale_loss: solo-learn's CIFAR recipe multiplies the loss by 0.1.
  defaults = {"lambda_offdiag": 0.0051, "scale_loss": 1.0}

  def loss(self, params, batch_stats, extra, views, batch, rng, step):
    del extra, batch, rng, step
    (o1, o2), new_stats = self.forward_views(params, batch_stats, views)
    z1, z2 = o1["projection"], o2["projection"]
    loss = self.config.scale_loss * siamese.barlow_twins(z1, z2, self.config.lambda_offdiag)
    return loss, base.LossOutput(batch_stats=new_stats,
                                 metrics=base.geometry_metrics(z1, z2))


class VICReg(base.Objective):

  name = "vicreg"
  defaults = {"sim_weight": 25.0, "var_weight": 25.0, "cov_weight": 1.0}

  def loss(self, params, batch_stats, extra, views, batch, rng, step):
    del extra, batch, rng, step
    (o1, o2), new_stats = self.forward_views(params, batch_stats, views)
    z1, z2 = o1["projection"], o2["projection"]
    loss, terms = siamese.vicreg(z1, z2, self.config.sim_weight, self.config.var_weight,
                                 self.config.cov_weight)
    return loss, base.LossOutput(batch_stats=new_stats,
                                 metrics={**base.geometry_metrics(z1, z2), **terms})
