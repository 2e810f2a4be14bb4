"""NNCLR (Dwibedi et al. 2021): the positive is the nearest neighbour of one
view's projection in a support set (a FIFO queue of past projections)."""

import jax.numpy as jnp

from repr_learn.losses import contrastive
from repr_learn.losses import instance
from repr_learn.objectives import base
from repr_learn.objectives import memory


class NNCLR(base.Objective):

  name = "nnclr"
  defaults = {"temperature": 0.1, "queue_size": 98304}
  supports_matryoshka = True

  def init_extra(self, rng, variables):
    del variables
    dim = self.network.projector.output_dim
    return {"support": memory.init_queue(rng, self.config.queue_size, dim),
            "support_ptr": jnp.zeros((), jnp.int32)}

  def loss(self, params, batch_stats, extra, views, batch, rng, step):
    del batch, rng, step
    (o1, o2), new_stats = self.forward_views(params, batch_stats, views)
    z1, z2 = o1["projection"], o2["projection"]
    # The neighbours (targets, no gradient) come from the full-size projections.
    loss, nested = self.nested_loss(
        lambda a, b: instance.nnclr_loss(z1, z2, a["prediction"], b["prediction"],
                                         extra["support"], self.config.temperature), o1, o2)
    nn = instance.nearest_neighbour(z1, extra["support"])
    metrics = {**base.geometry_metrics(z1, z2),
               "nn_cosine": jnp.mean(jnp.sum(contrastive.l2_normalize(z1) * nn, -1)), **nested}
    return loss, base.LossOutput(batch_stats=new_stats, metrics=metrics, aux={"z": z1})

  def update_extra(self, extra, params, aux, step):
    del params, step
    support, ptr = memory.enqueue(extra["support"], contrastive.l2_normalize(aux["z"]),
                                  extra["support_ptr"])
    return {"support": support, "support_ptr": ptr}
