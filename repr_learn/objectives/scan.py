"""SCAN (Van Gansbeke et al. 2020, "SCAN: Learning to Classify Images without
Labels"), its second and third steps, on an encoder pretrained by any method
here (`model.init_from`)."""

import jax.numpy as jnp

from repr_learn.data import augment
from repr_learn.evaluation import knn
from repr_learn.losses import clustering
from repr_learn.objectives import base


class SCAN(base.Objective):
  """A clustering head (the projector, `output_dim` = number of clusters) is
  trained so that each image and a random one of its `num_neighbours` nearest
  neighbours (mined once from the pretrained backbone features) agree, with an
  entropy term against collapse. The last `selflabel_epochs` then self-label:
  confident predictions (> `confidence_threshold`) on the first view supervise
  the second, class-balanced. `update_head_only` freezes the backbone (the
  paper's ImageNet setting)."""

  name = "scan"
  matryoshka_refusal = ("it clusters a pretrained encoder (model.init_from); train that encoder "
                        "with objective.matryoshka_dims instead")
  defaults = {"num_neighbours": 20, "entropy_weight": 5.0, "selflabel_epochs": 0.0,
              "confidence_threshold": 0.99, "update_head_only": False}
  dataset_outputs = "features"
  pairs_with_neighbours = True
  needs_pretrained_encoder = True

  def init_extra(self, rng, variables):
    del rng, variables
    if self.num_examples <= self.config.num_neighbours:
      raise ValueError(f"SCAN needs more than {self.config.num_neighbours} training "
                       "examples (lower objective.num_neighbours).")
    return {"neighbours": jnp.zeros((self.num_examples, self.config.num_neighbours),
                                    jnp.int32)}

  def setup_from_dataset(self, params, extra, outputs):
    neighbours = knn.mine_neighbours(outputs, self.config.num_neighbours)
    return params, {**extra, "neighbours": neighbours}

  def cluster_logits(self, outputs, extra):
    del extra
    return outputs["projection"]

  def selflabel_start(self) -> int:
    return self.total_steps - int(round(self.config.selflabel_epochs * self.steps_per_epoch))

  def frozen_parts(self, step):
    del step
    return {"backbone": jnp.array(True)} if self.config.update_head_only else {}

  def loss(self, params, batch_stats, extra, views, batch, rng, step):
    del extra
    neighbour_view = augment.make_views(rng, batch["neighbour_image"], self.views[:1],
                                        self.pixel_mean, self.pixel_std,
                                        self.device_axis, batch.get("neighbour_image_hw"))[0]
    # One forward over anchor, neighbour and strong views; both phases' losses
    # come from it and the step picks one. (A lax.cond over two forward passes
    # ran over 100x slower per step on CPU: no step in 10 minutes on digits.)
    # A frozen backbone also keeps its BatchNorm statistics (SCAN's model.eval()).
    (anchor, neighbour, strong), stats = self.forward_views(
        params, batch_stats, [views[0], neighbour_view, views[1]],
        train=not self.config.update_head_only)
    scan, consistency, entropy = clustering.scan_loss(
        anchor["projection"], neighbour["projection"], self.config.entropy_weight)
    selflabel_loss, confident = clustering.self_labelling_loss(
        anchor["projection"], strong["projection"], self.config.confidence_threshold)
    selflabel = step >= self.selflabel_start()
    loss = jnp.where(selflabel, selflabel_loss, scan)
    metrics = {"consistency": consistency, "entropy": entropy,
               "confident_fraction": confident, "selflabel": selflabel.astype(jnp.float32)}
    return loss, base.LossOutput(batch_stats=stats, metrics=metrics)
