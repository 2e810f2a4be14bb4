"""Weighted k-nearest-neighbour classification of frozen features.

The protocol of Wu et al. (2018, NPID), used by DINO's `eval_knn`: cosine
similarity to every training feature, the top-k neighbours vote with weight
exp(similarity / temperature), the class with the largest total wins.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np

from repr_learn.evaluation import features


@functools.partial(jax.jit, static_argnames=("k", "num_classes"))
def _knn_votes(train_x, train_y, test_x, *, k, num_classes, temperature):
  # Full float32 matmul: TF32/bf16 defaults on accelerators can reorder near neighbours.
  sims = jnp.matmul(test_x, train_x.T, precision=jax.lax.Precision.HIGHEST)
  top_sims, top_idx = jax.lax.top_k(sims, k)
  weights = jnp.exp(top_sims / temperature)
  onehot = jax.nn.one_hot(train_y[top_idx], num_classes, dtype=jnp.float32)
  return jnp.einsum("tk,tkc->tc", weights, onehot)


def _normalize(x: np.ndarray) -> np.ndarray:
  x = np.asarray(x, np.float32)
  return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def weighted_knn(train_features, train_labels, test_features, test_labels, *,
                 num_classes: int, k: int = 20, temperature: float = 0.07,
                 chunk_size: int = 256) -> dict:
  """Top-1 (and top-5) accuracy in percent of the weighted kNN classifier.

  Test points are processed in fixed-size chunks (the last one padded) so a
  single compilation serves any test-set size and memory stays bounded.
  """
  train_x, test_x = _normalize(train_features), _normalize(test_features)
  train_y = np.asarray(train_labels, np.int32)
  test_y = np.asarray(test_labels, np.int32)
  features.check_labeled_splits(train_x, train_y, test_x, test_y)
  if chunk_size < 1:
    raise ValueError(f"chunk_size={chunk_size} must be positive.")
  if not 0 < k <= len(train_x):
    raise ValueError(f"k={k} must be in [1, {len(train_x)}] (the number of train points).")
  for name, y in (("train", train_y), ("test", test_y)):
    if y.size and (y.min() < 0 or y.max() >= num_classes):
      raise ValueError(f"{name} labels must lie in [0, {num_classes}); got "
                       f"[{y.min()}, {y.max()}].")
  num_test = len(test_x)
  padded = -(-num_test // chunk_size) * chunk_size
  test_x = np.concatenate([test_x, np.zeros((padded - num_test, test_x.shape[1]), np.float32)])
  train_x_dev, train_y_dev = jnp.asarray(train_x), jnp.asarray(train_y)
  votes = np.concatenate([
      np.asarray(_knn_votes(train_x_dev, train_y_dev, jnp.asarray(test_x[i:i + chunk_size]),
                            k=k, num_classes=num_classes, temperature=temperature))
      for i in range(0, padded, chunk_size)])[:num_test]
  # Stable ordering: ties go to the smaller class id, as argmax does.
  ranking = np.argsort(-votes, axis=1, kind="stable")
  result = {"top1": float(100.0 * np.mean(ranking[:, 0] == test_y)),
            "k": int(k), "temperature": float(temperature),
            "num_train": int(len(train_x)), "num_test": int(num_test)}
  if num_classes >= 5:
    result["top5"] = float(100.0 * np.mean(np.any(ranking[:, :5] == test_y[:, None], axis=1)))
  return result


@functools.partial(jax.jit, static_argnames=("k",))
def _top_k_others(chunk, chunk_start, all_x, *, k):
  sims = jnp.matmul(chunk, all_x.T, precision=jax.lax.Precision.HIGHEST)
  own = chunk_start + jnp.arange(chunk.shape[0])
  sims = sims.at[jnp.arange(chunk.shape[0]), own].set(-jnp.inf)
  return jax.lax.top_k(sims, k)[1]


def mine_neighbours(features: np.ndarray, k: int, chunk_size: int = 4096) -> np.ndarray:
  """[N, k] indices of each example's k most cosine-similar other examples
  (SCAN's mining step), computed in row chunks so N x N never materialises."""
  if not 0 < k < len(features):
    raise ValueError(f"Cannot mine {k} neighbours among {len(features)} examples.")
  x = _normalize(np.asarray(features, np.float32))
  out = []
  for start in range(0, len(x), chunk_size):
    chunk = x[start:start + chunk_size]
    out.append(np.asarray(_top_k_others(chunk, start, x, k=k)))
  return np.concatenate(out).astype(np.int32)
