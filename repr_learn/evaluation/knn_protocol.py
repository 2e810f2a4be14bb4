"""The kNN protocol on frozen backbone features, written to DIR/eval/knn.json.

Features of the labeled train and test splits come from the backbone in eval
mode (BatchNorm running statistics) on centre views; `knn.weighted_knn` then
classifies the test split. The same figure for the randomly initialised encoder
is reported beside it, so every run shows what training added.
"""

import json
import os
from typing import Any, Callable

from absl import logging
import jax
import ml_collections
import numpy as np

from repr_learn.data import catalog
from repr_learn.data import sources
from repr_learn.evaluation import features
from repr_learn.evaluation import knn

EVAL_DIR = "eval"
RANDOM_INIT_CACHE = "knn_random_init.json"


class KnnEvaluator:
  """Extracts backbone features with one compiled forward and runs weighted kNN."""

  def __init__(self, objective, config: ml_collections.ConfigDict,
               spec: catalog.DatasetSpec, mesh, image_size: int):
    self._config = config
    self._spec = spec
    self._extract = features.FeatureExtractor(
        features.backbone_outputs(objective), mesh, image_size, config.eval.batch_size)
    self._train_source = sources.open_source(spec, spec.eval_train_split, config.data)
    self._test_source = sources.open_source(spec, spec.eval_test_split, config.data)

  def _features(self, state, source) -> tuple[np.ndarray, np.ndarray]:
    outputs, labels = self._extract(state, source)
    return outputs["features"], labels

  def evaluate(self, state, step: int) -> dict[str, Any]:
    """kNN top-1/top-5 of the encoder in `state` on the test split."""
    train_x, train_y = self._features(state, self._train_source)
    test_x, test_y = self._features(state, self._test_source)
    if np.any(train_y < 0) or np.any(test_y < 0):
      raise ValueError(f"Dataset {self._spec.name!r} has unlabeled examples in its "
                       "eval splits; kNN needs labels (use class subfolders).")
    k = min(self._config.eval.knn_k, len(train_x))
    result = knn.weighted_knn(train_x, train_y, test_x, test_y,
                              num_classes=self._spec_num_classes(train_y, test_y),
                              k=k, temperature=self._config.eval.knn_temperature)
    result.update(step=int(step), dataset=self._spec.name,
                  train_split=self._spec.eval_train_split,
                  test_split=self._spec.eval_test_split,
                  feature_dim=int(train_x.shape[1]))
    logging.info("kNN at step %d: top-1 %.2f%%", step, result["top1"])
    return result

  def _spec_num_classes(self, train_y, test_y) -> int:
    if self._spec.num_classes:
      return self._spec.num_classes
    return int(max(train_y.max(), test_y.max())) + 1

  def random_init_top1(self, make_initial_state: Callable[[], Any], workdir: str) -> float:
    """kNN top-1 of the untrained encoder, cached in the workdir."""
    cache = os.path.join(workdir, EVAL_DIR, RANDOM_INIT_CACHE)
    if os.path.exists(cache):
      with open(cache) as f:
        return json.load(f)["top1"]
    result = self.evaluate(make_initial_state(), step=0)
    self.write(workdir, result, name=RANDOM_INIT_CACHE)
    return result["top1"]

  @staticmethod
  def write(workdir: str, results: dict[str, Any], name: str = "knn.json") -> None:
    if jax.process_index() != 0:
      return
    os.makedirs(os.path.join(workdir, EVAL_DIR), exist_ok=True)
    with open(os.path.join(workdir, EVAL_DIR, name), "w") as f:
      json.dump(results, f, indent=2, sort_keys=True)
