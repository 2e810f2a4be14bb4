"""DEC (Xie, Girshick & Farhadi 2016, "Unsupervised Deep Embedding for
Clustering Analysis") on an encoder pretrained by any method here."""

from repr_learn.evaluation import clustering as clustering_eval
from repr_learn.losses import clustering
from repr_learn.objectives import base


class DEC(base.Objective):
  """Cluster centres in the projection space, initialised by k-means over the
  pretrained projections of the training set (`kmeans_restarts` runs, as the
  paper's 20), are the `student_t` prototypes. KL(P || Q) sharpens the soft
  assignments Q towards the auxiliary target P; P is recomputed from each global
  batch's Q (the paper recomputes it over the dataset every T iterations)."""

  name = "dec"
  matryoshka_refusal = ("it clusters a pretrained encoder (model.init_from); train that encoder "
                        "with objective.matryoshka_dims instead")
  defaults = {"kmeans_restarts": 20}
  dataset_outputs = "projection"
  needs_pretrained_encoder = True

  def setup_from_dataset(self, params, extra, outputs):
    num_clusters = self.network.prototypes.num_prototypes
    _, centres = clustering_eval.kmeans(outputs, num_clusters, seed=0,
                                        restarts=self.config.kmeans_restarts)
    prototypes = {**params["prototypes"], "kernel": centres.T.copy()}
    return {**params, "prototypes": prototypes}, extra

  def loss(self, params, batch_stats, extra, views, batch, rng, step):
    del extra, batch, rng, step
    (out,), new_stats = self.forward_views(params, batch_stats, views[:1])
    q = out["scores"]
    p = clustering.dec_target(q)
    loss = clustering.kl_divergence(p, q)
    metrics = {"assignment_entropy": clustering.mean_entropy(q)}
    return loss, base.LossOutput(batch_stats=new_stats, metrics=metrics)
