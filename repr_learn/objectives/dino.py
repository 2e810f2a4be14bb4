"""DINO (Caron et al. 2021, "Emerging Properties in Self-Supervised Vision
Transformers"): self-distillation with no labels."""

import jax
import jax.numpy as jnp

from repr_learn.losses import clustering
from repr_learn.objectives import base

NUM_GLOBAL_VIEWS = 2


class DINO(base.EmaTargetObjective):
  """The student sees every multi-crop view, the EMA teacher only the two global
  views; the teacher's outputs are centred (running mean, momentum
  `centre_momentum`) and sharpened (temperature warmed up linearly from
  `warmup_teacher_temperature` over `warmup_teacher_temperature_epochs`). The
  last layer (the prototypes) is frozen for `freeze_last_layer_epochs`."""

  name = "dino"
  defaults = {"student_temperature": 0.1, "teacher_temperature": 0.07,
              "warmup_teacher_temperature": 0.04,
              "warmup_teacher_temperature_epochs": 30.0, "centre_momentum": 0.9,
              "base_momentum": 0.996, "freeze_last_layer_epochs": 1.0}
  supports_matryoshka = True

  def init_extra(self, rng, variables):
    num_prototypes = variables["params"]["prototypes"]["kernel"].shape[-1]
    return {**super().init_extra(rng, variables),
            "centre": jnp.zeros((num_prototypes,), jnp.float32)}

  def teacher_temperature(self, step):
    c = self.config
    warmup = self.steps_in(c.warmup_teacher_temperature_epochs)
    return clustering.teacher_temperature(step, warmup, c.warmup_teacher_temperature,
                                          c.teacher_temperature)

  def frozen_parts(self, step):
    return {"prototypes": step < self.steps_in(self.config.freeze_last_layer_epochs)}

  def loss(self, params, batch_stats, extra, views, batch, rng, step):
    del batch
    outs, new_stats = self.forward_views(params, batch_stats, views, rng=rng)
    teacher_outs, _ = self.forward_views(extra["target_params"], batch_stats,
                                         views[:NUM_GLOBAL_VIEWS],
                                         method=self.network.project)
    teacher = [jax.lax.stop_gradient(o["scores"]) for o in teacher_outs]
    temperature = self.teacher_temperature(step)
    loss, nested = self.nested_loss(
        lambda *o: clustering.dino_loss([v["scores"] for v in o], teacher, extra["centre"],
                                        self.config.student_temperature, temperature), *outs)
    p_t = jax.nn.softmax((teacher[0] - extra["centre"]) / temperature)
    metrics = {"teacher_temperature": temperature,
               "teacher_entropy": clustering.mean_entropy(p_t),
               **base.geometry_metrics(outs[0]["projection"], outs[1]["projection"]), **nested}
    return loss, base.LossOutput(batch_stats=new_stats, metrics=metrics,
                                 aux={"teacher": teacher})

  def update_extra(self, extra, params, aux, step):
    extra = super().update_extra(extra, params, aux, step)
    centre = clustering.update_centre(extra["centre"], aux["teacher"],
                                      self.config.centre_momentum)
    return {**extra, "centre": centre}
