"""Label-free quality measures of an embedding matrix: RankMe and uniformity.

RankMe (Garrido et al., 2023) is the entropy-based effective rank of the
[N, D] embeddings Z: with singular values s_k, p_k = s_k / sum(s) + eps and
RankMe = exp(-sum_k p_k log p_k), eps = 1e-7 as in the paper. It lies in
[1, min(N, D)] (up to eps) and equals r for r equal non-zero singular values.
The embeddings are neither centred nor normalised, as in the paper.

Uniformity (Wang & Isola, 2020) is log E_{i != j} exp(-t ||x_i - x_j||^2) over
l2-normalised embeddings, t = 2: 0 when everything collapses to one point,
about -4 when embeddings are near-orthogonal (as uniform points on a
high-dimensional sphere are); lower is more uniform. Their other measure,
alignment, needs positive pairs (two views of each image), which frozen
features of a split do not have, so it is not reported.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np

RANKME_EPSILON = 1e-7
UNIFORMITY_T = 2.0


def rankme(z: np.ndarray, eps: float = RANKME_EPSILON) -> float:
  """exp(entropy(s / ||s||_1 + eps)) of z's singular values s; 0 for z = 0."""
  z = np.asarray(z, np.float64)
  if z.ndim != 2 or not z.size:
    raise ValueError(f"RankMe needs a non-empty [num, dim] matrix, got shape {z.shape}.")
  s = np.linalg.svd(z, compute_uv=False)
  total = s.sum()
  if total <= 0:
    return 0.0
  p = s / total + eps
  return float(np.exp(-np.sum(p * np.log(p))))


@functools.partial(jax.jit, static_argnames=("t",))
def _chunk_pair_sum(chunk, chunk_mask, x, x_mask, *, t):
  sims = jnp.matmul(chunk, x.T, precision=jax.lax.Precision.HIGHEST)
  sq_dist = jnp.maximum(2.0 - 2.0 * sims, 0.0)
  weights = chunk_mask[:, None] * x_mask[None, :]
  return jnp.sum(jnp.exp(-t * sq_dist) * weights)


def uniformity(z: np.ndarray, t: float = UNIFORMITY_T, chunk_size: int = 1024) -> float:
  """log mean_{i != j} exp(-t ||x_i - x_j||^2) of the l2-normalised rows of z.

  Rows are processed in fixed-size chunks against all rows (one compilation
  per N), so the N x N matrix never materialises.
  """
  x = np.asarray(z, np.float64)
  if x.ndim != 2 or len(x) < 2:
    raise ValueError(f"Uniformity needs at least 2 rows of a [num, dim] matrix, got {x.shape}.")
  x = (x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)).astype(np.float32)
  num = len(x)
  padded = -(-num // chunk_size) * chunk_size
  x_pad = np.concatenate([x, np.zeros((padded - num, x.shape[1]), np.float32)])
  mask = (np.arange(padded) < num).astype(np.float32)
  x_dev, mask_dev = jnp.asarray(x_pad), jnp.asarray(mask)
  total = 0.0
  for start in range(0, padded, chunk_size):
    total += float(_chunk_pair_sum(x_dev[start:start + chunk_size],
                                   mask_dev[start:start + chunk_size], x_dev, mask_dev, t=t))
  # The diagonal contributes exp(0) = 1 per row (a zero row is at distance 0
  # from itself too); what remains are the N (N - 1) ordered pairs.
  return float(np.log(max(total - num, 1e-300) / (num * (num - 1))))


def subsample(z: np.ndarray, max_examples: int, seed: int = 0) -> np.ndarray:
  """At most `max_examples` rows of z, a seeded uniform draw without replacement."""
  if max_examples <= 0 or len(z) <= max_examples:
    return z
  rows = np.sort(np.random.default_rng(seed).choice(len(z), max_examples, replace=False))
  return z[rows]
