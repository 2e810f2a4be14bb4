"""SupCon (Khosla et al. 2020): views of same-class images are positives.

Uses the dataset's labels; unlabeled examples (label -1, e.g. image folders
without class subfolders or STL-10's unlabelled split) fall back to SimCLR.
"""

import jax.numpy as jnp

from repr_learn.losses import instance
from repr_learn.objectives import base


class SupCon(base.Objective):

  name = "supcon"
  defaults = {"temperature": 0.1, "base_temperature": 0.07}
  supports_matryoshka = True

  def loss(self, params, batch_stats, extra, views, batch, rng, step):
    del extra, rng, step
    (o1, o2), new_stats = self.forward_views(params, batch_stats, views)
    z1, z2 = o1["projection"], o2["projection"]
    loss, nested = self.nested_loss(
        lambda a, b: instance.supcon(jnp.stack([a["projection"], b["projection"]], axis=1),
                                     batch["label"], self.config.temperature,
                                     self.config.base_temperature), o1, o2)
    metrics = {**base.geometry_metrics(z1, z2), **nested,
               "labeled_fraction": jnp.mean(batch["label"] >= 0)}
    return loss, base.LossOutput(batch_stats=new_stats, metrics=metrics)
