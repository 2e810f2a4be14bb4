"""Weighted kNN against a direct numpy transcription and a hand computation."""

import jax.numpy as jnp
import numpy as np
import pytest

from repr_learn.evaluation import knn


def _knn_by_hand(train_x, train_y, test_x, num_classes, k, t):
  """Loops over test points exactly as NPID/DINO describe the classifier."""
  tr = train_x / np.linalg.norm(train_x, axis=1, keepdims=True)
  te = test_x / np.linalg.norm(test_x, axis=1, keepdims=True)
  preds = []
  for x in te:
    sims = tr @ x
    order = np.argsort(-sims, kind="stable")[:k]
    votes = np.zeros(num_classes)
    for j in order:
      votes[train_y[j]] += np.exp(sims[j] / t)
    preds.append(np.argsort(-votes, kind="stable"))
  return np.array(preds)


@pytest.mark.parametrize("k,t", [(1, 0.07), (5, 0.1), (20, 0.5)])
def test_matches_numpy_transcription(k, t):
  rng = np.random.default_rng(k)
  train_x, test_x = rng.normal(size=(200, 8)), rng.normal(size=(70, 8))
  train_y, test_y = rng.integers(0, 6, 200), rng.integers(0, 6, 70)
  got = knn.weighted_knn(train_x, train_y, test_x, test_y, num_classes=6, k=k,
                         temperature=t, chunk_size=32)
  ranking = _knn_by_hand(train_x, train_y, test_x, 6, k, t)
  assert got["top1"] == float(100 * np.mean(ranking[:, 0] == test_y))
  assert got["top5"] == float(100 * np.mean((ranking[:, :5] == test_y[:, None]).any(1)))
  assert got["top1"] < 100  # Random labels: a perfect score would mean a broken comparison.
  assert (got["num_train"], got["num_test"], got["k"], got["temperature"]) == (200, 70, k, t)
  # jax inputs give the same answer as numpy ones.
  as_jax = knn.weighted_knn(jnp.asarray(train_x), jnp.asarray(train_y), jnp.asarray(test_x),
                            jnp.asarray(test_y), num_classes=6, k=k, temperature=t,
                            chunk_size=32)
  assert as_jax == got


def test_matches_sklearn():
  neighbors = pytest.importorskip("sklearn.neighbors")
  rng = np.random.default_rng(3)
  train_x, test_x = rng.normal(size=(150, 5)), rng.normal(size=(60, 5))
  train_y, test_y = rng.integers(0, 3, 150), rng.integers(0, 3, 60)
  t = 0.2
  clf = neighbors.KNeighborsClassifier(
      n_neighbors=10, metric="cosine", algorithm="brute",
      weights=lambda dist: np.exp((1 - dist) / t)).fit(train_x, train_y)
  expected = 100 * np.mean(clf.predict(test_x) == test_y)
  got = knn.weighted_knn(train_x, train_y, test_x, test_y, num_classes=3, k=10, temperature=t)
  assert got["top1"] == float(expected)


def test_tiny_case_by_hand():
  # Train points at angles 0, 10, 90 and 100 degrees; classes 0, 0, 1, 1. The
  # test point at 80 degrees has cosines cos80=0.174, cos70=0.342, cos10=0.985,
  # cos20=0.940. With k=3 and t=1 the neighbours are 90 (class 1, e^0.985=2.68),
  # 100 (class 1, e^0.940=2.56) and 10 (class 0, e^0.342=1.41): class 1 wins.
  angles = np.deg2rad([0, 10, 90, 100])
  train_x = np.stack([np.cos(angles), np.sin(angles)], 1)
  test_x = np.array([[np.cos(np.deg2rad(80)), np.sin(np.deg2rad(80))]])
  got = knn.weighted_knn(train_x, [0, 0, 1, 1], test_x, [1], num_classes=2, k=3,
                         temperature=1.0)
  assert got["top1"] == 100.0 and "top5" not in got
  # With k=4 and a very high temperature the weights are nearly equal: a 2-2 tie
  # broken towards the class with the larger summed weight, still class 1.
  got = knn.weighted_knn(train_x, [0, 0, 1, 1], test_x, [0], num_classes=2, k=4,
                         temperature=100.0)
  assert got["top1"] == 0.0


def test_separable_clusters_are_perfect():
  rng = np.random.default_rng(0)
  centres = np.eye(4) * 10
  train_y, test_y = np.repeat(np.arange(4), 25), np.repeat(np.arange(4), 10)
  train_x = centres[train_y] + rng.normal(size=(100, 4))
  test_x = centres[test_y] + rng.normal(size=(40, 4))
  got = knn.weighted_knn(train_x, train_y, test_x, test_y, num_classes=4, k=10)
  assert got["top1"] == 100.0


def test_scale_invariance():
  rng = np.random.default_rng(1)
  train_x, test_x = rng.normal(size=(120, 6)), rng.normal(size=(50, 6))
  train_y, test_y = rng.integers(0, 5, 120), rng.integers(0, 5, 50)
  kwargs = dict(num_classes=5, k=7, temperature=0.1)
  a = knn.weighted_knn(train_x, train_y, test_x, test_y, **kwargs)
  b = knn.weighted_knn(3.0 * train_x, train_y, 0.25 * test_x, test_y, **kwargs)
  assert a == b


def test_padding_independence():
  # 50 test points: chunk 7 pads the last chunk by 6 rows, chunk 256 by 206.
  rng = np.random.default_rng(2)
  train_x, test_x = rng.normal(size=(120, 6)), rng.normal(size=(50, 6))
  train_y, test_y = rng.integers(0, 5, 120), rng.integers(0, 5, 50)
  results = [knn.weighted_knn(train_x, train_y, test_x, test_y, num_classes=5, k=7,
                              chunk_size=c) for c in (7, 50, 256)]
  assert results[0] == results[1] == results[2]
  assert results[0]["num_test"] == 50


def test_errors():
  x = np.ones((3, 2))
  with pytest.raises(ValueError, match="k=4"):
    knn.weighted_knn(x, [0, 1, 0], x, [0, 1, 0], num_classes=2, k=4)
  with pytest.raises(ValueError, match="labels must lie"):
    knn.weighted_knn(x, [0, 1, 2], x, [0, 1, 0], num_classes=2, k=1)
  with pytest.raises(ValueError, match="same dim"):
    knn.weighted_knn(x, [0, 1, 0], np.ones((3, 5)), [0, 1, 0], num_classes=2, k=1)
  with pytest.raises(ValueError, match="test labels must lie"):
    knn.weighted_knn(x, [0, 1, 0], x, [0, -1, 0], num_classes=2, k=1)
  with pytest.raises(ValueError, match="one label per feature row"):
    knn.weighted_knn(x, [0, 1], x, [0, 1, 0], num_classes=2, k=1)
  with pytest.raises(ValueError, match="k=0"):
    knn.weighted_knn(x, [0, 1, 0], x, [0, 1, 0], num_classes=2, k=0)
  with pytest.raises(ValueError, match="empty"):
    knn.weighted_knn(x, [0, 1, 0], np.ones((0, 2)), [], num_classes=2, k=1)
  with pytest.raises(ValueError, match="chunk_size"):
    knn.weighted_knn(x, [0, 1, 0], x, [0, 1, 0], num_classes=2, k=1, chunk_size=0)
