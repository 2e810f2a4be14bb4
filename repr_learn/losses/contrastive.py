"""Contrastive losses written on the global batch.

Under `jax.jit` with the batch sharded over a data-parallel mesh, the similarity
matrix below spans every device's examples, so each example sees all
2(N-1) negatives of the global batch, as in SimCLR's cross-replica version.
"""

import jax
import jax.numpy as jnp


def inverse_norm(x: jax.Array, axis: int = -1, eps: float = 1e-12) -> jax.Array:
  """1 / ||x|| along `axis` (kept, size 1), with ||x||^2 floored at `eps`."""
  return jax.lax.rsqrt(jnp.maximum(jnp.sum(x * x, axis=axis, keepdims=True), eps))


def l2_normalize(x: jax.Array, axis: int = -1, eps: float = 1e-12) -> jax.Array:
  """x / ||x||, safe at zero (the gradient stays finite)."""
  return x * inverse_norm(x, axis, eps)


def nt_xent(z1: jax.Array, z2: jax.Array, temperature: float) -> jax.Array:
  """SimCLR's normalised-temperature cross entropy (Chen et al. 2020, eq. 1).

  Args:
    z1, z2: [N, D] projections of two views of the same N images.
    temperature: tau in the paper.

  Returns:
    Scalar loss averaged over all 2N anchors: for anchor i the positive is its
    other view and the negatives are the other 2N-2 samples.
  """
  n = z1.shape[0]
  z = l2_normalize(jnp.concatenate([z1, z2], axis=0).astype(jnp.float32))
  logits = z @ z.T / temperature
  # An anchor is never its own negative: remove the diagonal from the softmax.
  logits = jnp.where(jnp.eye(2 * n, dtype=bool), -jnp.inf, logits)
  positives = jnp.concatenate([jnp.arange(n, 2 * n), jnp.arange(0, n)])
  log_probs = jax.nn.log_softmax(logits, axis=-1)
  return -jnp.mean(jnp.take_along_axis(log_probs, positives[:, None], axis=-1))


def contrastive_accuracy(z1: jax.Array, z2: jax.Array) -> jax.Array:
  """Fraction of anchors in z1 whose nearest z2 (cosine) is their own pair."""
  sims = l2_normalize(z1) @ l2_normalize(z2).T
  return jnp.mean(jnp.argmax(sims, axis=-1) == jnp.arange(z1.shape[0]))
