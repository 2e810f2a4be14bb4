"""Alignment and uniformity on the hypersphere (Wang & Isola 2020) as a loss."""

from repr_learn.losses import siamese
from repr_learn.objectives import base


class AlignUniform(base.Objective):
  """align_weight * L_align(alpha) + unif_weight * (L_unif(z1) + L_unif(z2)) / 2."""

  name = "align_uniform"
  defaults = {"align_weight": 1.0, "unif_weight": 1.0, "alpha": 2.0, "t": 2.0}
  supports_matryoshka = True

  def loss(self, params, batch_stats, extra, views, batch, rng, step):
    del extra, batch, rng, step
    (o1, o2), new_stats = self.forward_views(params, batch_stats, views)
    z1, z2 = o1["projection"], o2["projection"]
    c = self.config

    def align_uniform(a, b):
      a, b = a["projection"], b["projection"]
      return (c.align_weight * siamese.alignment(a, b, c.alpha)
              + c.unif_weight * (siamese.uniformity(a, c.t) + siamese.uniformity(b, c.t)) / 2)

    loss, nested = self.nested_loss(align_uniform, o1, o2)
    return loss, base.LossOutput(batch_stats=new_stats,
                                 metrics={**base.geometry_metrics(z1, z2), **nested})
