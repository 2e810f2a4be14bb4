"""Redundancy reduction: Barlow Twins (Zbontar et al. 2021) and VICReg (Bardes,
Ponce & LeCun 2022). No negatives, no target network, no predictor."""

from repr_learn.losses import siamese
from repr_learn.objectives import base


class BarlowTwins(base.Objective):

  name = "barlow_twins"
  # scale_loss: solo-learn's CIFAR recipe multiplies the loss by 0.1.
  defaults = {"lambda_offdiag": 0.0051, "scale_loss": 1.0}
  supports_matryoshka = True

  def loss(self, params, batch_stats, extra, views, batch, rng, step):
    del extra, batch, rng, step
    (o1, o2), new_stats = self.forward_views(params, batch_stats, views)
    z1, z2 = o1["projection"], o2["projection"]
    loss, nested = self.nested_loss(
        lambda a, b: self.config.scale_loss * siamese.barlow_twins(
            a["projection"], b["projection"], self.config.lambda_offdiag), o1, o2)
    return loss, base.LossOutput(batch_stats=new_stats,
                                 metrics={**base.geometry_metrics(z1, z2), **nested})


class VICReg(base.Objective):

  name = "vicreg"
  defaults = {"sim_weight": 25.0, "var_weight": 25.0, "cov_weight": 1.0}
  supports_matryoshka = True

  def loss(self, params, batch_stats, extra, views, batch, rng, step):
    del extra, batch, rng, step
    (o1, o2), new_stats = self.forward_views(params, batch_stats, views)
    z1, z2 = o1["projection"], o2["projection"]
    c = self.config
    _, terms = siamese.vicreg(z1, z2, c.sim_weight, c.var_weight, c.cov_weight)
    loss, nested = self.nested_loss(
        lambda a, b: siamese.vicreg(a["projection"], b["projection"], c.sim_weight,
                                    c.var_weight, c.cov_weight)[0], o1, o2)
    return loss, base.LossOutput(batch_stats=new_stats,
                                 metrics={**base.geometry_metrics(z1, z2), **terms, **nested})
