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
  BatchNorm (`parallel.per_device` in the jit mode; in the per-device mode,
  each device encodes its rows of the gathered, permuted batch, with BatchNorm
  local even under SyncBN), and un-permuted, so a query and its key never
  share BatchNorm statistics (He et al. 2020, sec. 3.3; `_batch_shuffle_ddp`
  in facebookresearch/moco `moco/builder.py` gathers the images likewise).

  `symmetric` is solo-learn's MoCo v2+ (solo/methods/mocov2plus.py): both views
  are queries, each against the other's key and a queue of that view's past
  keys (two queues), the two losses averaged. `momentum_schedule='cosine'`
  raises the momentum from `momentum` to `final_momentum` (solo-learn's
  `base_tau` -> `final_tau`); 'constant' keeps `momentum` (the paper's).
  """

  name = "moco_v2"
  defaults = {"temperature": 0.2, "queue_size": 65536, "momentum": 0.999,
              "shuffle_bn": True, "symmetric": False, "momentum_schedule": "constant",
              "final_momentum": 1.0}
  supports_matryoshka = True
  MOMENTUM_SCHEDULES = ("constant", "cosine")

  @property
  def num_queues(self) -> int:
    return 2 if self.config.symmetric else 1

  def init_extra(self, rng, variables):
    if self.config.momentum_schedule not in self.MOMENTUM_SCHEDULES:  # Fails before step 0.
      raise ValueError(f"objective.momentum_schedule={self.config.momentum_schedule!r} is not "
                       f"one of {self.MOMENTUM_SCHEDULES}.")
    dim = self.network.projector.output_dim
    queues = [memory.init_queue(r, self.config.queue_size, dim)
              for r in jax.random.split(rng, self.num_queues)]
    return {"target_params": base.online_params_for_target(variables["params"]),
            "queue": jnp.stack(queues) if self.config.symmetric else queues[0],
            "queue_ptr": jnp.zeros((), jnp.int32)}

  def momentum(self, step):
    if self.config.momentum_schedule == "cosine":
      return memory.cosine_momentum(step, self.total_steps, self.config.momentum,
                                    self.config.final_momentum)
    return self.config.momentum

  def _keys(self, target_params, batch_stats, x, rng):
    def encode(tp, bs, images):
      out, _ = self.apply(tp, bs, images, method=self.network.project)
      return out["projection"]

    if not (self.config.shuffle_bn and self.mesh is not None):
      return jax.lax.stop_gradient(encode(target_params, batch_stats, x))
    perm = jax.random.permutation(rng, self.global_batch_size(x.shape[0]))
    shuffled = self.gathered(x)[perm]
    if self.device_axis is None:
      keys = parallel.per_device(encode, self.mesh, 2)(target_params, batch_stats, shuffled)
    else:  # `apply` gathers the devices' keys.
      keys, _ = self.with_local_batchnorm().apply(target_params, batch_stats,
                                                  self.local_rows(shuffled),
                                                  method=self.network.project)
      keys = keys["projection"]
    return jax.lax.stop_gradient(keys[jnp.argsort(perm)])

  def loss(self, params, batch_stats, extra, views, batch, rng, step):
    del batch, step
    t = self.config.temperature
    if not self.config.symmetric:
      v1, v2 = views
      out, batch_stats = self.apply(params, batch_stats, v1)
      q = out["projection"]
      k = self._keys(extra["target_params"], batch_stats, v2, rng)
      loss, nested = self.nested_loss(
          lambda o: instance.info_nce_with_queue(o["projection"], k, extra["queue"], t), out)
      return loss, base.LossOutput(batch_stats=batch_stats,
                                   metrics={**base.geometry_metrics(q, k), **nested},
                                   aux={"keys": k})
    (o1, o2), batch_stats = self.forward_views(params, batch_stats, views)
    r1, r2 = jax.random.split(rng)
    k1 = self._keys(extra["target_params"], batch_stats, views[0], r1)
    k2 = self._keys(extra["target_params"], batch_stats, views[1], r2)
    q1, q2 = o1["projection"], o2["projection"]
    loss, nested = self.nested_loss(
        lambda a, b: 0.5 * (instance.info_nce_with_queue(a["projection"], k2, extra["queue"][1], t)
                            + instance.info_nce_with_queue(b["projection"], k1, extra["queue"][0],
                                                           t)), o1, o2)
    return loss, base.LossOutput(batch_stats=batch_stats,
                                 metrics={**base.geometry_metrics(q1, q2), **nested},
                                 aux={"keys": jnp.stack([k1, k2])})

  def update_extra(self, extra, params, aux, step):
    keys = instance.l2_normalize(aux["keys"])
    if self.config.symmetric:
      pairs = [memory.enqueue(extra["queue"][i], keys[i], extra["queue_ptr"]) for i in range(2)]
      queue, ptr = jnp.stack([q for q, _ in pairs]), pairs[0][1]
    else:
      queue, ptr = memory.enqueue(extra["queue"], keys, extra["queue_ptr"])
    target = memory.ema(extra["target_params"], base.online_params_for_target(params),
                        self.momentum(step))
    return {"target_params": target, "queue": queue, "queue_ptr": ptr}


class MoCoV3(base.EmaTargetObjective):
  """Symmetric contrastive loss between predictor outputs and momentum keys of
  the other view, over the global batch (no queue); momentum rises to 1 on a
  cosine schedule."""

  name = "moco_v3"
  defaults = {"temperature": 0.2, "base_momentum": 0.99}
  supports_matryoshka = True

  def loss(self, params, batch_stats, extra, views, batch, rng, step):
    del batch, rng, step
    (o1, o2), new_stats = self.forward_views(params, batch_stats, views)
    k1, k2 = self.target_forward(extra["target_params"], batch_stats, views)
    t = self.config.temperature
    loss, nested = self.nested_loss(
        lambda a, b: (instance.moco_v3_contrastive(a["prediction"], k2, t)
                      + instance.moco_v3_contrastive(b["prediction"], k1, t)), o1, o2)
    metrics = {**base.geometry_metrics(o1["projection"], o2["projection"]), **nested}
    return loss, base.LossOutput(batch_stats=new_stats, metrics=metrics)
