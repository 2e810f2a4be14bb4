"""NT-Xent against a direct transcription of the SimCLR paper's equation 1."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from repr_learn.losses import contrastive


def _nt_xent_by_hand(z1, z2, tau):
  """Loops over the 2N anchors exactly as written in Chen et al. (2020), eq. 1."""
  z = np.concatenate([z1, z2]).astype(np.float64)
  z = z / np.linalg.norm(z, axis=1, keepdims=True)
  n2 = len(z)
  n = n2 // 2
  total = 0.0
  for i in range(n2):
    j = (i + n) % n2
    numerator = np.exp(z[i] @ z[j] / tau)
    denominator = sum(np.exp(z[i] @ z[k] / tau) for k in range(n2) if k != i)
    total += -np.log(numerator / denominator)
  return total / n2


@pytest.mark.parametrize("n,d,tau", [(2, 3, 0.5), (5, 8, 0.1), (16, 4, 1.0)])
def test_nt_xent_matches_paper_formula(n, d, tau):
  rng = np.random.default_rng(n * d)
  z1, z2 = rng.normal(size=(n, d)), rng.normal(size=(n, d))
  got = contrastive.nt_xent(jnp.asarray(z1, jnp.float32), jnp.asarray(z2, jnp.float32), tau)
  np.testing.assert_allclose(got, _nt_xent_by_hand(z1, z2, tau), rtol=1e-5)


def test_nt_xent_tiny_case_by_hand():
  # Two images, 2-D projections: view pairs are identical unit vectors, and the
  # two images are orthogonal. For every anchor: positive sim 1, the two
  # negatives sim 0, so loss = -log(e^{1/t} / (e^{1/t} + 2)).
  z1 = jnp.array([[1.0, 0.0], [0.0, 1.0]])
  tau = 0.5
  expected = -np.log(np.exp(2.0) / (np.exp(2.0) + 2.0))
  np.testing.assert_allclose(contrastive.nt_xent(z1, z1, tau), expected, rtol=1e-6)


def test_nt_xent_is_symmetric_in_views_and_scale_invariant():
  rng = np.random.default_rng(0)
  z1, z2 = (jnp.asarray(rng.normal(size=(6, 5)), jnp.float32) for _ in range(2))
  a = contrastive.nt_xent(z1, z2, 0.2)
  np.testing.assert_allclose(a, contrastive.nt_xent(z2, z1, 0.2), rtol=1e-6)
  np.testing.assert_allclose(a, contrastive.nt_xent(3.0 * z1, 0.5 * z2, 0.2), rtol=1e-5)


def test_nt_xent_gradient_finite_at_zero_vector():
  z = jnp.zeros((3, 4)).at[0].set(1.0)
  grads = jax.grad(lambda x: contrastive.nt_xent(x, x + 0.1, 0.5))(z)
  assert np.all(np.isfinite(grads))


def test_contrastive_accuracy():
  z = jnp.eye(4)
  assert contrastive.contrastive_accuracy(z, z) == 1.0
  assert contrastive.contrastive_accuracy(z, z[::-1]) == 0.0
