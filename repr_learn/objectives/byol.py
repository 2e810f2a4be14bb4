"""BYOL (Grill et al. 2020) and SimSiam (Chen & He 2021): a predictor regresses
the other view's projection; BYOL's target is an EMA, SimSiam's a stop-gradient."""

import jax.numpy as jnp

from repr_learn.losses import contrastive
from repr_learn.losses import siamese
from repr_learn.objectives import base


class BYOL(base.EmaTargetObjective):
  """Symmetrised regression onto an EMA target whose momentum follows BYOL's
  cosine schedule from `base_momentum` to 1."""

  name = "byol"
  defaults = {"base_momentum": 0.996}
  supports_matryoshka = True

  def loss(self, params, batch_stats, extra, views, batch, rng, step):
    del batch, rng, step
    (o1, o2), new_stats = self.forward_views(params, batch_stats, views)
    t1, t2 = self.target_forward(extra["target_params"], batch_stats, views)
    loss, nested = self.nested_loss(
        lambda a, b: (siamese.byol_regression(a["prediction"], t2)
                      + siamese.byol_regression(b["prediction"], t1)), o1, o2)
    metrics = {**base.geometry_metrics(o1["projection"], o2["projection"]), **nested}
    return loss, base.LossOutput(batch_stats=new_stats, metrics=metrics)


class SimSiam(base.Objective):
  """D(p1, sg(z2))/2 + D(p2, sg(z1))/2: no target network, no negatives."""

  name = "simsiam"
  defaults = {}
  supports_matryoshka = True

  def loss(self, params, batch_stats, extra, views, batch, rng, step):
    del extra, batch, rng, step
    (o1, o2), new_stats = self.forward_views(params, batch_stats, views)
    z1, z2 = o1["projection"], o2["projection"]
    loss, nested = self.nested_loss(
        lambda a, b: 0.5 * (siamese.negative_cosine(a["prediction"], z2)
                            + siamese.negative_cosine(b["prediction"], z1)), o1, o2)
    # Collapse monitor from the paper (fig. 2): std of normalised z ~ 1/sqrt(d).
    z_std = jnp.mean(jnp.std(contrastive.l2_normalize(z1), axis=0))
    metrics = {**base.geometry_metrics(z1, z2), "z_std": z_std, **nested}
    return loss, base.LossOutput(batch_stats=new_stats, metrics=metrics)
