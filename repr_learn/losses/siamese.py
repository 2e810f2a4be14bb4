"""Non-contrastive siamese losses and representation-geometry measures."""

import jax
import jax.numpy as jnp

from repr_learn.losses.contrastive import l2_normalize


def negative_cosine(p: jax.Array, z: jax.Array) -> jax.Array:
  """SimSiam's D(p, z) = -cos(p, stopgrad(z)), batch mean (Chen & He 2021, eq. 1)."""
  z = jax.lax.stop_gradient(z)
  return -jnp.mean(jnp.sum(l2_normalize(p) * l2_normalize(z), axis=-1))


def byol_regression(p: jax.Array, z: jax.Array) -> jax.Array:
  """BYOL's 2 - 2 cos(p, stopgrad(z)), batch mean (Grill et al. 2020, eq. 2)."""
  return 2.0 + 2.0 * negative_cosine(p, z)


def _standardize(z: jax.Array, eps: float = 1e-5) -> jax.Array:
  """Per-feature (z - mean) / sqrt(var + eps) over the batch (BN without affine)."""
  mean = jnp.mean(z, axis=0)
  var = jnp.mean(jnp.square(z - mean), axis=0)
  return (z - mean) * jax.lax.rsqrt(var + eps)


def barlow_twins(z1: jax.Array, z2: jax.Array, lambda_offdiag: float = 0.0051) -> jax.Array:
  """Zbontar et al. 2021, eq. 1: push the cross-correlation matrix towards I."""
  n = z1.shape[0]
  c = _standardize(z1.astype(jnp.float32)).T @ _standardize(z2.astype(jnp.float32)) / n
  on_diag = jnp.sum(jnp.square(1.0 - jnp.diag(c)))
  off_diag = jnp.sum(jnp.square(c)) - jnp.sum(jnp.square(jnp.diag(c)))
  return on_diag + lambda_offdiag * off_diag


def _off_diagonal_sq_sum(m: jax.Array) -> jax.Array:
  return jnp.sum(jnp.square(m)) - jnp.sum(jnp.square(jnp.diag(m)))


def vicreg(z1: jax.Array, z2: jax.Array, sim_weight: float = 25.0, var_weight: float = 25.0,
           cov_weight: float = 1.0, eps: float = 1e-4) -> tuple[jax.Array, dict]:
  """VICReg (Bardes et al. 2022, eqs. 1-6), as in the official implementation."""
  z1, z2 = z1.astype(jnp.float32), z2.astype(jnp.float32)
  n, d = z1.shape
  invariance = jnp.mean(jnp.square(z1 - z2))
  z1c, z2c = z1 - jnp.mean(z1, axis=0), z2 - jnp.mean(z2, axis=0)
  std1 = jnp.sqrt(jnp.sum(jnp.square(z1c), axis=0) / (n - 1) + eps)
  std2 = jnp.sqrt(jnp.sum(jnp.square(z2c), axis=0) / (n - 1) + eps)
  variance = jnp.mean(jax.nn.relu(1.0 - std1)) / 2 + jnp.mean(jax.nn.relu(1.0 - std2)) / 2
  cov1, cov2 = z1c.T @ z1c / (n - 1), z2c.T @ z2c / (n - 1)
  covariance = _off_diagonal_sq_sum(cov1) / d + _off_diagonal_sq_sum(cov2) / d
  loss = sim_weight * invariance + var_weight * variance + cov_weight * covariance
  return loss, {"invariance": invariance, "variance": variance, "covariance": covariance}


def alignment(z1: jax.Array, z2: jax.Array, alpha: float = 2.0) -> jax.Array:
  """Wang & Isola 2020: E ||f(x) - f(y)||^alpha over positive pairs (normalised f)."""
  diff = l2_normalize(z1.astype(jnp.float32)) - l2_normalize(z2.astype(jnp.float32))
  return jnp.mean(jnp.sum(jnp.square(diff), axis=-1) ** (alpha / 2))


def uniformity(z: jax.Array, t: float = 2.0) -> jax.Array:
  """Wang & Isola 2020: log E_{i<j} exp(-t ||f(x_i) - f(x_j)||^2) (normalised f)."""
  z = l2_normalize(z.astype(jnp.float32))
  n = z.shape[0]
  sq_dists = jnp.maximum(2.0 - 2.0 * z @ z.T, 0.0)
  upper = jnp.triu(jnp.ones((n, n), bool), k=1)
  logits = jnp.where(upper, -t * sq_dists, -jnp.inf)
  return jax.nn.logsumexp(logits) - jnp.log(n * (n - 1) / 2)
