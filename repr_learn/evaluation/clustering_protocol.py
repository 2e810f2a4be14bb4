"""The clustering protocol, written to DIR/eval/clustering.json.

On the test split: k-means (k = number of classes) on the frozen, normalised
backbone features of every method, and, for methods with a clustering head
(prototypes, centroids, SCAN's classifier, DEC's centres), the head's own
assignments. Both are scored with ACC (Hungarian), NMI and ARI.
"""

import json
import os
from typing import Any

from absl import logging
import jax
import numpy as np

from repr_learn.data import catalog
from repr_learn.data import sources
from repr_learn.evaluation import clustering
from repr_learn.evaluation import features

EVAL_FILE = "clustering.json"


class ClusteringEvaluator:

  def __init__(self, objective, config, spec: catalog.DatasetSpec, mesh, image_size: int):
    self._config = config
    self._spec = spec

    def outputs(params, batch_stats, extra, x):
      out, _ = objective.apply(params, batch_stats, x, train=False,
                               method=objective.network.project)
      result = {"features": out["features"]}
      logits = objective.cluster_logits(out, extra)
      if logits is not None:
        result["cluster_logits"] = logits
      return result

    self._extract = features.FeatureExtractor(outputs, mesh, image_size,
                                              config.eval.batch_size)
    self._source = sources.open_source(spec, spec.eval_test_split, config.data)

  def evaluate(self, state, step: int) -> dict[str, Any]:
    outputs, labels = self._extract(state, self._source)
    if np.any(labels < 0):
      raise ValueError(f"Dataset {self._spec.name!r} has unlabeled test examples; "
                       "clustering metrics need labels.")
    num_classes = self._spec.num_classes or int(labels.max()) + 1
    assignments, _ = clustering.kmeans(
        clustering.l2_normalize(outputs["features"]), num_classes,
        seed=self._config.seed, restarts=self._config.eval.kmeans_restarts)
    result = {"step": int(step), "dataset": self._spec.name,
              "split": self._spec.eval_test_split, "num_classes": num_classes,
              "kmeans": clustering.scores(labels, assignments)}
    if "cluster_logits" in outputs:
      head = np.argmax(outputs["cluster_logits"], axis=-1)
      result["head"] = {**clustering.scores(labels, head),
                        "head_size": int(outputs["cluster_logits"].shape[-1])}
    logging.info("Clustering at step %d: k-means ACC %.2f%% NMI %.2f%%%s", step,
                 result["kmeans"]["acc"], result["kmeans"]["nmi"],
                 f", head ACC {result['head']['acc']:.2f}%" if "head" in result else "")
    return result

  @staticmethod
  def write(workdir: str, result: dict[str, Any]) -> None:
    if jax.process_index() != 0:
      return
    os.makedirs(os.path.join(workdir, "eval"), exist_ok=True)
    with open(os.path.join(workdir, "eval", EVAL_FILE), "w") as f:
      json.dump(result, f, indent=2, sort_keys=True)
