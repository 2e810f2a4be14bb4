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
  training example ([N, bank views, D]: the projections of the first
  `num_bank_views()` views), and one or more label sets for every example
  ([N, label sets]), refreshed by `relabel` every `relabel_epochs`. The loss
  averages the label sets' cross-entropies and is inactive until the first
  relabelling (after one epoch, the bank is full), which stands in for the
  papers' initial pass over the dataset."""

  dataset_sized_extra = ("bank", "labels")
  supports_matryoshka = True

  def _check_dataset(self):
    if self.num_examples <= 0:
      raise ValueError(f"{self.name} needs the dataset size for its memory bank.")

  def num_bank_views(self) -> int:
    return 1

  def num_label_sets(self) -> int:
    return 1

  def init_extra(self, rng, variables):
    del variables
    self._check_dataset()
    dim = self.network.projector.output_dim
    bank_rng, label_rng = jax.random.split(rng)
    num_clusters, sets = self.num_clusters(), self.num_label_sets()
    # Balanced random labels until the first relabelling.
    labels = jnp.stack([jax.random.permutation(r, jnp.arange(self.num_examples) % num_clusters)
                        for r in jax.random.split(label_rng, sets)], axis=1)
    bank = memory.init_queue(bank_rng, self.num_examples * self.num_bank_views(), dim)
    rows = self.dataset_rows()
    return {"bank": memory.pad_rows(bank.reshape(self.num_examples, -1, dim), rows),
            "labels": memory.pad_rows(labels.astype(jnp.int32), rows),
            "relabelled": jnp.zeros((), jnp.bool_),
            "rng": jax.random.fold_in(rng, 1)}

  def num_clusters(self) -> int:
    raise NotImplementedError

  def relabel_every_steps(self) -> int:
    return max(1, int(round(self.config.relabel_epochs * self.steps_per_epoch)))

  def logits(self, params, extra, out):
    """[label sets, batch, clusters] scores of one view's outputs."""
    raise NotImplementedError

  def loss(self, params, batch_stats, extra, views, batch, rng, step):
    del rng, step
    outs, new_stats = self.forward_views(params, batch_stats, views)
    labels = extra["labels"][batch["index"]]  # [batch, label sets]
    active = extra["relabelled"].astype(jnp.float32)

    def cross_entropy(*outs):
      per_view = []
      for o in outs:
        logits = self.logits(params, extra, o) / self.config.temperature
        per_view.append(sum(clustering.cross_entropy_to_labels(logits[h], labels[:, h])
                            for h in range(logits.shape[0])) / logits.shape[0])
      return active * sum(per_view) / len(per_view)

    # The labels (from the full-size bank) are every size's targets.
    loss, nested = self.nested_loss(cross_entropy, *outs)
    z = [jax.lax.stop_gradient(o["projection"]) for o in outs[:2]]
    metrics = {"labels_active": active, **nested}
    if len(z) == 2:
      metrics.update(base.geometry_metrics(*z))
    bank_views = jnp.stack(z[:self.num_bank_views()], axis=1)
    return loss, base.LossOutput(batch_stats=new_stats, metrics=metrics,
                                 aux={"embeddings": bank_views, "indices": batch["index"]})

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
  """Spherical k-means on the bank after every epoch, once per head; each
  head's centroids are its (non-trainable) prototypes for the next epoch, its
  assignments its labels. As main_deepclusterv2.py: the bank keeps both
  global views' projections (`crops_for_assign` [0, 1]) and head h clusters
  view h mod 2's; the loss averages the heads (`nmb_prototypes`: 3 x 3000)."""

  name = "deepcluster_v2"
  defaults = {"temperature": 0.1, "num_clusters": 3000, "num_heads": 3, "kmeans_iters": 10,
              "relabel_epochs": 1.0}

  def num_clusters(self):
    return self.config.num_clusters

  def num_bank_views(self):
    return min(2, len(self.views))

  def num_label_sets(self):
    if self.config.num_heads < 1:
      raise ValueError(f"objective.num_heads={self.config.num_heads} must be at least 1.")
    return self.config.num_heads

  def init_extra(self, rng, variables):
    extra = super().init_extra(rng, variables)
    dim = self.network.projector.output_dim
    centroids = memory.init_queue(jax.random.fold_in(rng, 2),
                                  self.config.num_heads * self.config.num_clusters, dim)
    return {**extra, "centroids": centroids.reshape(self.config.num_heads, -1, dim)}

  def logits(self, params, extra, out):
    del params
    return jnp.einsum("bd,hkd->hbk", contrastive.l2_normalize(out["projection"]),
                      extra["centroids"])

  def cluster_logits(self, outputs, extra):
    return self.logits(None, extra, outputs)[0]

  def relabel(self, extra, params, step):
    del params
    rng = jax.random.fold_in(extra["rng"], step)
    centroids, labels = [], []
    for h in range(self.config.num_heads):
      c, l = clustering.spherical_kmeans(
          extra["bank"][:, h % self.num_bank_views()], jax.random.fold_in(rng, h),
          self.config.num_clusters, self.config.kmeans_iters, num_valid=self.num_examples)
      centroids.append(c)
      labels.append(l)
    return {**extra, "centroids": jnp.stack(centroids), "labels": jnp.stack(labels, axis=1)}


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
    return out["scores"][None]

  def relabel(self, extra, params, step):
    del step
    prototypes = contrastive.l2_normalize(params["prototypes"]["kernel"], axis=0)
    q = clustering.sinkhorn(extra["bank"][:, 0] @ prototypes, self.config.epsilon,
                            self.config.sinkhorn_iters, num_valid=self.num_examples)
    return {**extra, "labels": jnp.argmax(q, axis=-1).astype(jnp.int32)[:, None]}
