"""Clustering metrics and k-means; the only user of scipy and scikit-learn's
clustering code, so the standard implementations define the numbers.

ACC is the accuracy under the best one-to-one matching of clusters to classes
(Hungarian algorithm); with more clusters than classes the unmatched clusters
count as errors. NMI and ARI are scikit-learn's (arithmetic-mean NMI).
"""

import numpy as np
from scipy import optimize
from sklearn import cluster
from sklearn import metrics


def hungarian_accuracy(labels: np.ndarray, clusters: np.ndarray) -> float:
  """Fraction of examples whose cluster maps to their class under the best
  one-to-one cluster -> class assignment."""
  labels, clusters = np.asarray(labels), np.asarray(clusters)
  if labels.shape != clusters.shape or labels.ndim != 1 or not len(labels):
    raise ValueError(f"Need two equal-length 1-D label arrays, got {labels.shape} "
                     f"and {clusters.shape}.")
  _, y = np.unique(labels, return_inverse=True)
  _, c = np.unique(clusters, return_inverse=True)
  counts = np.zeros((c.max() + 1, y.max() + 1), np.int64)
  np.add.at(counts, (c, y), 1)
  rows, cols = optimize.linear_sum_assignment(counts, maximize=True)
  return float(counts[rows, cols].sum() / len(labels))


def scores(labels: np.ndarray, clusters: np.ndarray) -> dict[str, float]:
  """{'acc', 'nmi', 'ari'} in percent, and the number of non-empty clusters."""
  return {"acc": 100.0 * hungarian_accuracy(labels, clusters),
          "nmi": 100.0 * float(metrics.normalized_mutual_info_score(labels, clusters)),
          "ari": 100.0 * float(metrics.adjusted_rand_score(labels, clusters)),
          "num_clusters": int(len(np.unique(clusters)))}


def kmeans(features: np.ndarray, num_clusters: int, *, seed: int = 0,
           restarts: int = 10) -> tuple[np.ndarray, np.ndarray]:
  """k-means++ with `restarts` initialisations; returns (assignments, centres)."""
  if num_clusters > len(features):
    raise ValueError(f"Cannot form {num_clusters} clusters from {len(features)} examples.")
  km = cluster.KMeans(n_clusters=num_clusters, n_init=restarts, random_state=seed)
  assignments = km.fit_predict(np.asarray(features, np.float64))
  return assignments.astype(np.int32), km.cluster_centers_.astype(np.float32)


def l2_normalize(x: np.ndarray) -> np.ndarray:
  return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
