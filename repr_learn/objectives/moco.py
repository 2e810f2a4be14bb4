"""MoCo v2 (Chen et al. 2020, "Improved Baselines...") and MoCo v3 (Chen, Xie &
He 2021, "An Empirical Study of Training Self-Supervised ViTs")."""

import jax
import jax.numpy as jnp

from repr_learn import parallel
from repr_learn.losses import instance
from repr_learn.objectives import base
from repr_learn.objectives import memory


class MoCoV2(base.Objective):
  """Query encoder vs momentum key encoder, negatives from a FIFO queue.

  Shuffle-BN: keys are permuted across the global batch, encoded with per-device
  BatchNorm (`parallel.per_device`), and un-permuted, so a query and its key
  never share BatchNorm statistics (He et al. 2020, sec. 3.3).
  """

  name = "moco_v2"
  defaults = {"temperature": 0.2, "queue_size": 65536, "momentum": 0.999,
              "shuffle_bn": True}

  def init_extra(self, rng, variables):
    dim = self.network.projector.output_dim
    return {"target_params": base.online_params_for_target(variables["params"]),
            "queue": memory.init_queue(rng, self.config.queue_size, dim),
            "queue_ptr": jnp.zeros((), jnp.int32)}

  def per_device(self, axis_name):
    if self.config.shuffle_bn:
      raise ValueError("moco_v2's shuffle_bn permutes the batch across devices, which "
                       "parallel.mode=pmap cannot; set --config.objective.shuffle_bn=False "
                       "(per-device BatchNorm already keeps each key encoder's statistics "
                       "local) or use parallel.mode=jit.")
    return super().per_device(axis_name)

  def _keys(self, target_params, batch_stats, x, rng):
    def encode(tp, bs, images):
      out, _ = self.apply(tp, bs, images, method=self.network.project)
      return out["projection"]

    if not (self.config.shuffle_bn and self.mesh is not None):
      return jax.lax.stop_gradient(encode(target_params, batch_stats, x))
    perm = jax.random.permutation(rng, x.shape[0])
    keys = parallel.per_device(encode, self.mesh, 2)(target_params, batch_stats, x[perm])
    return jax.lax.stop_gradient(keys[jnp.argsort(perm)])

  def loss(self, params, batch_stats, extra, views, batch, rng, step):
    del batch, step
    v1, v2 = views
    out, batch_stats = self.apply(params, batch_stats, v1)
    q = out["projection"]
    k = self._keys(extra["target_params"], batch_stats, v2, rng)
    loss = instance.info_nce_with_queue(q, k, extra["queue"], self.config.temperature)
    metrics = base.geometry_metrics(q, k)
    return loss, base.LossOutput(batch_stats=batch_stats, metrics=metrics,
                                 aux={"keys": k})

  def update_extra(self, extra, params, aux, step):
    del step
    queue, ptr = memory.enqueue(extra["queue"], instance.l2_normalize(aux["keys"]),
                                extra["queue_ptr"])
    target = memory.ema(extra["target_params"], base.online_params_for_target(params),
                        self.config.momentum)
    return {"target_params": target, "queue": queue, "queue_ptr": ptr}


class MoCoV3(base.EmaTargetObjective):
  """Symmetric contrastive loss between predictor outputs and momentum keys of
  the other view, over the global batch (no queue); momentum rises to 1 on a
  cosine schedule."""

  name = "moco_v3"
  defaults = {"temperature": 0.2, "base_momentum": 0.99}

  def loss(self, params, batch_stats, extra, views, batch, rng, step):
    del batch, rng, step
    (o1, o2), new_stats = self.forward_views(params, batch_stats, views)
    k1, k2 = self.target_forward(extra["target_params"], batch_stats, views)
    t = self.config.temperature
    loss = (instance.moco_v3_contrastive(o1["prediction"], k2, t)
            + instance.moco_v3_contrastive(o2["prediction"], k1, t))
    metrics = base.geometry_metrics(o1["projection"], o2["projection"])
    return loss, base.LossOutput(batch_stats=new_stats, metrics=metrics)
