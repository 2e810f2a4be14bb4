"""Few-shot accuracy by closed-form regularised least squares (big_vision's probe).

As big_vision's `fewshot_lsr` evaluator builds it: for each seed, every class's
train examples are shuffled once and the first `shots` of each class form the
training set (so a seed's 5-shot set contains its 1-shot set). Features are
z-scored with that small set's statistics (std + 1e-5), a constant column of
100 stands in for a bias that the ridge penalty barely touches, targets are
one-vs-all in {-1, +1}, and W = argmin ||XW - Y||^2 + l2 ||W||^2 is solved in
closed form; the predicted class is argmax XW. The regulariser is a fixed
2^10, big_vision's default (its evaluator solves for one fixed `l2_reg`, no
selection).
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np

from repr_learn.evaluation import features

DEFAULT_L2_REG = 2.0 ** 10
BIAS_CONSTANT = 100.0
STD_EPSILON = 1e-5
_HIGHEST = jax.lax.Precision.HIGHEST


def _prepare(x, mean, std):
  x = (x - mean) / std
  return jnp.concatenate([x, jnp.full((x.shape[0], 1), BIAS_CONSTANT, x.dtype)], axis=1)


@functools.partial(jax.jit, static_argnames=("num_classes",))
def _fit(x, y, l2_reg, *, num_classes):
  mean = jnp.mean(x, 0)
  std = jnp.std(x, 0) + STD_EPSILON
  x = _prepare(x, mean, std)
  targets = 2.0 * jax.nn.one_hot(y, num_classes, dtype=x.dtype) - 1.0
  num, dim = x.shape
  # The ridge solution in whichever of its two forms has the smaller system:
  # (X^T X + l2 I)^-1 X^T Y, or X^T (X X^T + l2 I)^-1 Y with fewer rows than columns.
  if num >= dim:
    gram = jnp.matmul(x.T, x, precision=_HIGHEST) + l2_reg * jnp.eye(dim, dtype=x.dtype)
    w = jax.scipy.linalg.solve(gram, jnp.matmul(x.T, targets, precision=_HIGHEST),
                               assume_a="pos")
  else:
    gram = jnp.matmul(x, x.T, precision=_HIGHEST) + l2_reg * jnp.eye(num, dtype=x.dtype)
    w = jnp.matmul(x.T, jax.scipy.linalg.solve(gram, targets, assume_a="pos"),
                   precision=_HIGHEST)
  return {"w": w, "mean": mean, "std": std}


@jax.jit
def _correct(model, x, y):
  scores = jnp.matmul(_prepare(x, model["mean"], model["std"]), model["w"], precision=_HIGHEST)
  return jnp.sum(jnp.argmax(scores, axis=1) == y)


def fit_least_squares(x: np.ndarray, y: np.ndarray, *, num_classes: int,
                      l2_reg: float = DEFAULT_L2_REG) -> dict[str, np.ndarray]:
  """{'w': [D + 1, C] (last row: the bias feature's), 'mean', 'std'} of the
  ridge regression described above."""
  model = _fit(jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.int32), jnp.float32(l2_reg),
               num_classes=num_classes)
  return jax.tree.map(np.asarray, model)


def accuracy(model, x: np.ndarray, y: np.ndarray) -> float:
  """Top-1 in percent of `model` (from `fit_least_squares`) on (x, y)."""
  correct = _correct(jax.tree.map(jnp.asarray, model), jnp.asarray(x, jnp.float32),
                     jnp.asarray(y, jnp.int32))
  return 100.0 * float(correct) / len(y)


def sample_shots(labels: np.ndarray, num_classes: int, shots: int, seed: int) -> np.ndarray:
  """Row indices: the first `shots` of each class after a per-seed shuffle."""
  rng = np.random.default_rng(seed)
  per_class = [rng.permutation(np.flatnonzero(labels == c)) for c in range(num_classes)]
  return np.concatenate([rows[:shots] for rows in per_class])


def fewshot(train_x, train_y, test_x, test_y, *, num_classes: int, shots=(1, 5, 10, 25),
            num_seeds: int = 5, l2_reg: float = DEFAULT_L2_REG) -> dict:
  """Mean and std (over seeds 0..num_seeds-1, ddof 0) of the test top-1 per shot count.

  A shot count above the smallest class's number of train examples is skipped
  and listed under 'skipped' with the reason.
  """
  train_x = np.asarray(train_x, np.float32)
  test_x = np.asarray(test_x, np.float32)
  train_y = np.asarray(train_y, np.int64)
  test_y = np.asarray(test_y, np.int64)
  features.check_labeled_splits(train_x, train_y, test_x, test_y)
  for name, labels in (("train", train_y), ("test", test_y)):
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
      raise ValueError(f"{name} labels must lie in [0, {num_classes}).")
  if num_seeds < 1:
    raise ValueError(f"num_seeds={num_seeds} must be at least 1.")
  shots = sorted({int(s) for s in shots})
  if not shots or shots[0] < 1:
    raise ValueError(f"shots={shots} must be positive integers.")
  smallest = int(np.bincount(train_y, minlength=num_classes).min())
  result = {"shots": shots, "num_seeds": int(num_seeds), "l2_reg": float(l2_reg),
            "num_classes": int(num_classes), "num_train": int(len(train_x)),
            "num_test": int(len(test_x)), "feature_dim": int(train_x.shape[1]),
            "min_examples_per_class": smallest, "per_seed": {}, "skipped": {}}
  usable = [s for s in shots if s <= smallest]
  for s in shots:
    if s > smallest:
      result["skipped"][str(s)] = (f"{s} shots > {smallest} train examples in the "
                                   "smallest class")
  test_x_dev, test_y_dev = jnp.asarray(test_x), jnp.asarray(test_y, jnp.int32)
  for s in usable:
    scores = []
    for seed in range(num_seeds):
      rows = sample_shots(train_y, num_classes, s, seed)
      model = _fit(jnp.asarray(train_x[rows]), jnp.asarray(train_y[rows], jnp.int32),
                   jnp.float32(l2_reg), num_classes=num_classes)
      scores.append(100.0 * float(_correct(model, test_x_dev, test_y_dev)) / len(test_y))
    result["per_seed"][str(s)] = scores
    result[f"{s}shot_top1"] = float(np.mean(scores))
    result[f"{s}shot_top1_std"] = float(np.std(scores))
  return result
