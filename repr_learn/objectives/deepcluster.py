"""DeepCluster-v2 (Caron et al. 2020, the SwAV paper's improved DeepCluster)
and SeLa (Asano et al. 2020, "Self-labelling via simultaneous clustering and
representation learning"): pseudo-labels for the whole dataset, recomputed
from a memory bank of projections, supervise a cross-entropy over prototypes."""

import jax
import jax.numpy as jnp

from repr_learn.losses import clustering
from repr_learn.losses import contrastive
from repr_learn.objectives import base
from repr_learn.objectives import memory


class _DatasetPseudoLabels(base.Objective):
  """Shared machinery: a bank holding the latest normalised projection of each
  training example (first view), and labels for every example, refreshed by
  `relabel` every `relabel_epochs`. The loss is inactive until the first
  relabelling (after one epoch, the bank is full), which stands in for the
  papers' initial pass over the dataset."""

  dataset_sized_extra = ("bank", "labels")

  def _check_dataset(self):
    if self.num_examples <= 0:
      raise ValueError(f"{self.name} needs the dataset size for its memory bank.")

  def init_extra(self, rng, variables):
    del variables
    self._check_dataset()
    dim = self.network.projector.output_dim
    bank_rng, label_rng = jax.random.split(rng)
    num_clusters = self.num_clusters()
    # Balanced random labels until the first relabelling.
    labels = jax.random.permutation(label_rng, jnp.arange(self.num_examples) % num_clusters)
    rows = self.dataset_rows()
    return {"bank": memory.pad_rows(memory.init_queue(bank_rng, self.num_examples, dim), rows),
            "labels": memory.pad_rows(labels.astype(jnp.int32), rows),
            "relabelled": jnp.zeros((), jnp.bool_),
            "rng": jax.random.fold_in(rng, 1)}

  def num_clusters(self) -> int:
    raise NotImplementedError

  def relabel_every_steps(self) -> int:
    return max(1, int(round(self.config.relabel_epochs * self.steps_per_epoch)))

  def logits(self, params, extra, out):
    raise NotImplementedError

  def loss(self, params, batch_stats, extra, views, batch, rng, step):
    del rng, step
    outs, new_stats = self.forward_views(params, batch_stats, views)
    labels = extra["labels"][batch["index"]]
    active = extra["relabelled"].astype(jnp.float32)
    loss = active * sum(clustering.cross_entropy_to_labels(
        self.logits(params, extra, o) / self.config.temperature, labels) for o in outs) / len(outs)
    z = [jax.lax.stop_gradient(o["projection"]) for o in outs[:2]]
    metrics = {"labels_active": active}
    if len(z) == 2:
      metrics.update(base.geometry_metrics(*z))
    return loss, base.LossOutput(batch_stats=new_stats, metrics=metrics,
                                 aux={"embeddings": z[0], "indices": batch["index"]})

  def update_extra(self, extra, params, aux, step):
    bank = memory.update_memory_bank(extra["bank"], aux["embeddings"], aux["indices"], 0.0)
    extra = {**extra, "bank": bank}
    due = (step + 1) % self.relabel_every_steps() == 0
    return jax.lax.cond(due, lambda e: {**self.relabel(e, params, step),
                                        "relabelled": jnp.ones((), jnp.bool_)},
                        lambda e: e, extra)

  def relabel(self, extra, params, step):
    raise NotImplementedError


class DeepClusterV2(_DatasetPseudoLabels):
  """Spherical k-means on the bank after every epoch; its centroids are
  the (non-trainable) prototypes for the next epoch, its assignments the labels."""

  name = "deepcluster_v2"
  defaults = {"temperature": 0.1, "num_clusters": 3000, "kmeans_iters": 10,
              "relabel_epochs": 1.0}

  def num_clusters(self):
    return self.config.num_clusters

  def init_extra(self, rng, variables):
    extra = super().init_extra(rng, variables)
    dim = self.network.projector.output_dim
    centroids = memory.init_queue(jax.random.fold_in(rng, 2), self.config.num_clusters, dim)
    return {**extra, "centroids": centroids}

  def logits(self, params, extra, out):
    del params
    return contrastive.l2_normalize(out["projection"]) @ extra["centroids"].T

  def cluster_logits(self, outputs, extra):
    return self.logits(None, extra, outputs)

  def relabel(self, extra, params, step):
    del params
    rng = jax.random.fold_in(extra["rng"], step)
    centroids, labels = clustering.spherical_kmeans(
        extra["bank"], rng, self.config.num_clusters, self.config.kmeans_iters,
        num_valid=self.num_examples)
    return {**extra, "centroids": centroids, "labels": labels}


class SeLa(_DatasetPseudoLabels):
  """Labels from Sinkhorn-Knopp over the whole dataset (every example to one of
  K equally sized clusters) against the trainable prototypes, refreshed every
  `relabel_epochs`; SeLa-v2's normalised prototype head (SwAV, appendix)."""

  name = "sela"
  defaults = {"temperature": 0.1, "epsilon": 0.05, "sinkhorn_iters": 10,
              "relabel_epochs": 1.0}

  def num_clusters(self):
    return self.network.prototypes.num_prototypes

  def logits(self, params, extra, out):
    del params, extra
    return out["scores"]

  def relabel(self, extra, params, step):
    del step
    prototypes = contrastive.l2_normalize(params["prototypes"]["kernel"], axis=0)
    q = clustering.sinkhorn(extra["bank"] @ prototypes, self.config.epsilon,
                            self.config.sinkhorn_iters, num_valid=self.num_examples)
    return {**extra, "labels": jnp.argmax(q, axis=-1).astype(jnp.int32)}
