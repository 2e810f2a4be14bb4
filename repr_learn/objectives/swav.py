"""SwAV (Caron et al. 2020, "Unsupervised Learning of Visual Features by
Contrasting Cluster Assignments")."""

import jax
import jax.numpy as jnp

from repr_learn.losses import clustering
from repr_learn.losses import contrastive
from repr_learn.objectives import base
from repr_learn.objectives import memory

NUM_GLOBAL_VIEWS = 2


class SwAV(base.Objective):
  """Swapped prediction of Sinkhorn codes between multi-crop views.

  Codes come from the two global views only, computed by Sinkhorn-Knopp over the
  global batch (and, once it is full and `queue_start_epochs` have passed, a
  queue of earlier global-view projections). Prototypes are normalised in the
  forward pass and receive no gradient during the first
  `freeze_prototypes_epochs`.
  """

  name = "swav"
  defaults = {"temperature": 0.1, "epsilon": 0.05, "sinkhorn_iters": 3,
              "queue_size": 0, "queue_start_epochs": 15.0,
              "freeze_prototypes_epochs": 1.0}
  supports_matryoshka = True

  def init_extra(self, rng, variables):
    del variables
    if self.config.queue_size <= 0:
      return {}
    dim = self.network.projector.output_dim
    keys = jax.random.split(rng, NUM_GLOBAL_VIEWS)
    return {"queue": jnp.stack([memory.init_queue(k, self.config.queue_size, dim)
                                for k in keys]),
            "queue_ptr": jnp.zeros((), jnp.int32),
            "queue_filled": jnp.zeros((), jnp.int32)}

  def _codes(self, scores, prototypes, extra, step):
    """Sinkhorn codes of the global views, with the queue when it is in use."""
    sinkhorn = lambda s: clustering.sinkhorn(s, self.config.epsilon, self.config.sinkhorn_iters)
    if self.config.queue_size <= 0:
      return [sinkhorn(s) for s in scores], jnp.zeros((), bool)
    use_queue = ((extra["queue_filled"] >= self.config.queue_size)
                 & (step >= self.steps_in(self.config.queue_start_epochs)))
    codes = []
    for i, s in enumerate(scores):
      with_queue = lambda s=s, i=i: sinkhorn(
          jnp.concatenate([extra["queue"][i] @ prototypes, s]))[-s.shape[0]:]
      codes.append(jax.lax.cond(use_queue, with_queue, lambda s=s: sinkhorn(s)))
    return codes, use_queue

  def frozen_parts(self, step):
    return {"prototypes": step < self.steps_in(self.config.freeze_prototypes_epochs)}

  def loss(self, params, batch_stats, extra, views, batch, rng, step):
    del batch, rng
    outs, new_stats = self.forward_views(params, batch_stats, views)
    scores = [o["scores"] for o in outs]
    prototypes = contrastive.l2_normalize(
        jax.lax.stop_gradient(params["prototypes"]["kernel"]), axis=0)
    global_scores = [jax.lax.stop_gradient(s) for s in scores[:NUM_GLOBAL_VIEWS]]
    codes, used_queue = self._codes(global_scores, prototypes, extra, step)
    # The codes (of the full-size scores) are every size's targets.
    loss, nested = self.nested_loss(
        lambda *o: clustering.swapped_prediction([v["scores"] for v in o], codes,
                                                 self.config.temperature), *outs)
    z = [contrastive.l2_normalize(jax.lax.stop_gradient(o["projection"]))
         for o in outs[:NUM_GLOBAL_VIEWS]]
    metrics = {**base.geometry_metrics(z[0], z[1]),
               "used_queue": used_queue.astype(jnp.float32),
               "code_entropy": clustering.mean_entropy(codes[0]), **nested}
    return loss, base.LossOutput(batch_stats=new_stats, metrics=metrics,
                                 aux={"embeddings": z})

  def update_extra(self, extra, params, aux, step):
    del params, step
    if self.config.queue_size <= 0:
      return extra
    queue = []
    for i, z in enumerate(aux["embeddings"]):
      q, new_ptr = memory.enqueue(extra["queue"][i], z, extra["queue_ptr"])
      queue.append(q)
    filled = jnp.minimum(extra["queue_filled"] + aux["embeddings"][0].shape[0],
                         self.config.queue_size)
    return {"queue": jnp.stack(queue), "queue_ptr": new_ptr, "queue_filled": filled}

