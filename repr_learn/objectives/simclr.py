"""SimCLR (Chen et al. 2020): two views, NT-Xent over the global batch."""

from repr_learn.losses import contrastive
from repr_learn.objectives import base


class SimCLR(base.Objective):
  """Both views go through one forward pass so BatchNorm sees all 2N images."""

  name = "simclr"
  defaults = {"temperature": 0.5}
  supports_matryoshka = True

  def loss(self, params, batch_stats, extra, views, batch, rng, step):
    del extra, batch, rng, step
    (o1, o2), batch_stats = self.forward_views(params, batch_stats, views)
    z1, z2 = o1["projection"], o2["projection"]
    loss, nested = self.nested_loss(
        lambda a, b: contrastive.nt_xent(a["projection"], b["projection"],
                                         self.config.temperature), o1, o2)
    metrics = {"contrastive_acc": contrastive.contrastive_accuracy(z1, z2),
               **base.geometry_metrics(z1, z2), **nested}
    return loss, base.LossOutput(batch_stats=batch_stats, metrics=metrics)
