"""NPID (Wu et al. 2018): every image is its own class, scored against a memory
bank holding one feature per training example; the bank is checkpointed."""

from repr_learn.losses import contrastive
from repr_learn.losses import instance
from repr_learn.objectives import base
from repr_learn.objectives import memory


class NPID(base.Objective):
  """Non-parametric softmax over the whole bank (the paper's exact variant,
  affordable on the datasets here; NCE approximates it for ImageNet-scale)."""

  name = "npid"
  defaults = {"temperature": 0.07, "bank_momentum": 0.5}
  dataset_sized_extra = ("bank",)
  supports_matryoshka = True

  def init_extra(self, rng, variables):
    del variables
    if self.num_examples <= 0:
      raise ValueError("NPID needs the dataset size for its memory bank.")
    dim = self.network.projector.output_dim
    return {"bank": memory.pad_rows(memory.init_queue(rng, self.num_examples, dim),
                                    self.dataset_rows())}

  def loss(self, params, batch_stats, extra, views, batch, rng, step):
    del rng, step
    (out,), new_stats = self.forward_views(params, batch_stats, views[:1])
    f = out["projection"]
    loss, nested = self.nested_loss(
        lambda o: instance.npid_softmax(o["projection"], extra["bank"], batch["index"],
                                        self.config.temperature, num_valid=self.num_examples),
        out)
    own = contrastive.l2_normalize(extra["bank"][batch["index"]])
    metrics = {**base.geometry_metrics(f, own), **nested}
    return loss, base.LossOutput(batch_stats=new_stats, metrics=metrics,
                                 aux={"features": f, "indices": batch["index"]})

  def update_extra(self, extra, params, aux, step):
    del params, step
    return {"bank": memory.update_memory_bank(extra["bank"], aux["features"],
                                              aux["indices"], self.config.bank_momentum)}
