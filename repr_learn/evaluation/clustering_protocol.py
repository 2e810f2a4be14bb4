"""The clustering protocol, written to DIR/eval/clustering.json.

On the test split: k-means (k = number of classes) on the frozen, normalised
backbone features of every method, and, for methods with a clustering head
(prototypes, centroids, SCAN's classifier, DEC's centres), the head's own
assignments. Both are scored with ACC (Hungarian), NMI and ARI.
"""

from typing import Any

import numpy as np

from repr_learn.evaluation import clustering
from repr_learn.evaluation import protocol_base

SCORES = ("acc", "nmi", "ari")


@protocol_base.register
class ClusteringProtocol(protocol_base.Protocol):
  name = "clustering"
  needs_labels = True
  headline = tuple(f"{part}_{k}" for part in ("kmeans", "head") for k in SCORES)

  def __init__(self, context: protocol_base.EvalContext):
    super().__init__(context)
    objective = context.objective

    def outputs(params, batch_stats, extra, x):
      out, _ = objective.apply(params, batch_stats, x, train=False,
                               method=objective.network.project)
      result = {"features": out["features"]}
      logits = objective.cluster_logits(out, extra)
      if logits is not None:
        result["cluster_logits"] = logits
      return result

    self._extract = context.extractor(outputs)

  def evaluate(self, state, step: int) -> dict[str, Any]:
    split = self.context.splits[1]
    outputs, labels = self._extract(state, self.context.source(split))
    self.context.require_labels(labels, split, self.name)
    num_classes = self.context.num_classes(labels)
    assignments, _ = clustering.kmeans(
        clustering.l2_normalize(outputs["features"]), num_classes,
        seed=self.config.seed, restarts=self.config.eval.kmeans_restarts)
    result = {"step": int(step), "dataset": self.context.spec.name, "split": split,
              "num_classes": num_classes,
              "kmeans": clustering.scores(labels, assignments)}
    if "cluster_logits" in outputs:
      head = np.argmax(outputs["cluster_logits"], axis=-1)
      result["head"] = {**clustering.scores(labels, head),
                        "head_size": int(outputs["cluster_logits"].shape[-1])}
    for part in ("kmeans", "head"):
      if part in result:
        result.update({f"{part}_{k}": result[part][k] for k in SCORES})
    return result
