"""Siamese and memory-based losses against numpy transcriptions of the papers'
formulas, plus the properties that matter (stop-gradients, queue order, EMA)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from repr_learn.losses import contrastive
from repr_learn.losses import instance
from repr_learn.losses import siamese
from repr_learn.objectives import memory

RTOL = 1e-5


def _norm(x):
  return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _rand(*shape, seed=0):
  return np.random.default_rng(seed).normal(size=shape)


def _log_softmax(x):
  x = x - x.max()
  return x - np.log(np.exp(x).sum())


def test_byol_and_simsiam_values():
  p, z = _rand(6, 5), _rand(6, 5, seed=1)
  cos = np.sum(_norm(p) * _norm(z), axis=1)
  np.testing.assert_allclose(siamese.negative_cosine(p, z), -cos.mean(), rtol=RTOL)
  np.testing.assert_allclose(siamese.byol_regression(p, z), np.mean(2 - 2 * cos), rtol=RTOL)
  e = np.eye(2)
  assert float(siamese.byol_regression(e, e)) == pytest.approx(0.0, abs=1e-6)
  assert float(siamese.byol_regression(e, e[::-1])) == pytest.approx(2.0, abs=1e-6)


@pytest.mark.parametrize("fn", [siamese.negative_cosine, siamese.byol_regression])
def test_no_gradient_through_the_target(fn):
  p, z = jnp.asarray(_rand(4, 3)), jnp.asarray(_rand(4, 3, seed=1))
  assert np.all(jax.grad(lambda t: fn(p, t))(z) == 0)
  assert np.any(jax.grad(lambda q: fn(q, z))(p) != 0)


def _barlow_by_hand(z1, z2, lam):
  n, d = z1.shape
  a = (z1 - z1.mean(0)) / np.sqrt(z1.var(0) + 1e-5)
  b = (z2 - z2.mean(0)) / np.sqrt(z2.var(0) + 1e-5)
  c = a.T @ b / n
  total = 0.0
  for i in range(d):
    for j in range(d):
      total += (1 - c[i, i]) ** 2 if i == j else lam * c[i, j] ** 2
  return total


def test_barlow_twins_formula_and_symmetry():
  z1, z2 = _rand(16, 6), _rand(16, 6, seed=1)
  got = siamese.barlow_twins(z1, z2, 0.0051)
  np.testing.assert_allclose(got, _barlow_by_hand(z1, z2, 0.0051), rtol=1e-4)
  np.testing.assert_allclose(got, siamese.barlow_twins(z2, z1, 0.0051), rtol=1e-5)
  # Two uncorrelated, standardised features that agree across views: C = I.
  z = np.array([[1.0, 1.0], [1.0, -1.0], [-1.0, 1.0], [-1.0, -1.0]])
  assert float(siamese.barlow_twins(z, z)) == pytest.approx(0.0, abs=1e-4)


def _vicreg_by_hand(x, y, s, v, c, eps=1e-4):
  n, d = x.shape
  inv = np.mean((x - y) ** 2)
  std_x, std_y = np.sqrt(x.var(0, ddof=1) + eps), np.sqrt(y.var(0, ddof=1) + eps)
  var = np.mean(np.maximum(0, 1 - std_x)) / 2 + np.mean(np.maximum(0, 1 - std_y)) / 2
  cov = 0.0
  for m in (x, y):
    cm = np.cov(m, rowvar=False)
    cov += (np.sum(cm ** 2) - np.sum(np.diag(cm) ** 2)) / d
  return s * inv + v * var + c * cov


def test_vicreg_formula_and_symmetry():
  z1, z2 = 0.3 * _rand(12, 5), 0.3 * _rand(12, 5, seed=1)
  loss, terms = siamese.vicreg(z1, z2)
  np.testing.assert_allclose(loss, _vicreg_by_hand(z1, z2, 25, 25, 1), rtol=1e-4)
  np.testing.assert_allclose(loss, siamese.vicreg(z2, z1)[0], rtol=1e-5)
  assert set(terms) == {"invariance", "variance", "covariance"}


def test_alignment_and_uniformity():
  z1, z2 = _rand(8, 3), _rand(8, 3, seed=1)
  a, b = _norm(z1), _norm(z2)
  np.testing.assert_allclose(siamese.alignment(z1, z2),
                             np.mean(np.sum((a - b) ** 2, 1)), rtol=RTOL)
  assert float(siamese.alignment(z1, 2 * z1)) == pytest.approx(0.0, abs=1e-6)
  pairs = [np.exp(-2 * np.sum((a[i] - a[j]) ** 2)) for i in range(8) for j in range(i + 1, 8)]
  np.testing.assert_allclose(siamese.uniformity(z1), np.log(np.mean(pairs)), rtol=1e-4)
  antipodal = np.array([[1.0, 0.0], [-1.0, 0.0]])  # ||z1 - z2||^2 = 4 -> log e^-8
  assert float(siamese.uniformity(antipodal)) == pytest.approx(-8.0, abs=1e-4)


def test_info_nce_with_queue_formula_and_stop_gradient():
  q, k, queue = _rand(4, 5), _rand(4, 5, seed=1), _norm(_rand(8, 5, seed=2))
  t = 0.2
  expected = np.mean([-_log_softmax(np.concatenate(
      [[_norm(q)[i] @ _norm(k)[i]], queue @ _norm(q)[i]]) / t)[0] for i in range(4)])
  np.testing.assert_allclose(instance.info_nce_with_queue(q, k, queue, t), expected, rtol=RTOL)
  q, k, queue = map(jnp.asarray, (q, k, queue))
  grads = jax.grad(lambda kk, qq: instance.info_nce_with_queue(q, kk, qq, t),
                   argnums=(0, 1))(k, queue)
  assert all(np.all(g == 0) for g in grads)


def test_moco_v3_contrastive_formula():
  q, k, t = _rand(5, 4), _rand(5, 4, seed=1), 0.2
  logits = _norm(q) @ _norm(k).T / t
  expected = 2 * t * np.mean([-_log_softmax(logits[i])[i] for i in range(5)])
  np.testing.assert_allclose(instance.moco_v3_contrastive(q, k, t), expected, rtol=RTOL)
  grad_k = jax.grad(lambda kk: instance.moco_v3_contrastive(jnp.asarray(q), kk, t))(
      jnp.asarray(k))
  assert np.all(grad_k == 0)


def test_nearest_neighbour_and_nnclr():
  support = _norm(_rand(10, 4, seed=3))
  z1, z2, p1, p2 = (_rand(3, 4, seed=s) for s in range(4))
  nn1 = support[np.argmax(_norm(z1) @ support.T, axis=1)]
  np.testing.assert_allclose(instance.nearest_neighbour(z1, support), nn1, rtol=RTOL)
  nn2 = support[np.argmax(_norm(z2) @ support.T, axis=1)]
  t = 0.1

  def side(nn, p):
    logits = nn @ _norm(p).T / t
    return np.mean([-_log_softmax(logits[i])[i] for i in range(3)])

  expected = 0.5 * (side(nn1, p2) + side(nn2, p1))
  np.testing.assert_allclose(instance.nnclr_loss(z1, z2, p1, p2, support, t), expected,
                             rtol=1e-4)
  grad = jax.grad(lambda s: instance.nearest_neighbour(jnp.asarray(z1), s).sum())(
      jnp.asarray(support))
  assert np.all(grad == 0)


def _supcon_by_hand(z, labels, t, base_t):
  n, v, _ = z.shape
  f = _norm(z.reshape(n * v, -1))
  lab = np.repeat(labels, v)
  img = np.repeat(np.arange(n), v)
  losses = []
  for i in range(n * v):
    others = [a for a in range(n * v) if a != i]
    logits = np.array([f[i] @ f[a] / t for a in others])
    logp = _log_softmax(logits)
    pos = [k for k, a in enumerate(others)
           if img[a] == img[i] or (lab[i] >= 0 and lab[a] == lab[i])]
    losses.append(-np.mean(logp[pos]))
  return t / base_t * np.mean(losses)


def test_supcon_formula_and_reduction_to_simclr():
  z = _rand(6, 2, 5)
  labels = np.array([0, 1, 0, 2, 1, -1])
  np.testing.assert_allclose(instance.supcon(z, labels, 0.1, 0.07),
                             _supcon_by_hand(z, labels, 0.1, 0.07), rtol=1e-4)
  distinct = np.arange(6)
  np.testing.assert_allclose(instance.supcon(z, distinct, 0.5),
                             contrastive.nt_xent(z[:, 0], z[:, 1], 0.5), rtol=1e-5)


def test_npid_softmax_and_bank_update():
  f, bank = _rand(3, 4), _norm(_rand(10, 4, seed=1))
  idx = np.array([7, 2, 5])
  t = 0.07
  logits = _norm(f) @ bank.T / t
  expected = np.mean([-_log_softmax(logits[i])[idx[i]] for i in range(3)])
  np.testing.assert_allclose(instance.npid_softmax(f, bank, idx, t), expected, rtol=1e-4)
  new = np.asarray(memory.update_memory_bank(jnp.asarray(bank), f, idx, 0.5))
  np.testing.assert_allclose(new[idx], _norm(0.5 * bank[idx] + 0.5 * _norm(f)), rtol=1e-5)
  untouched = np.setdiff1d(np.arange(10), idx)
  np.testing.assert_array_equal(new[untouched], bank[untouched].astype(np.float32))
  # Zero rows padding the bank to a shardable size are left out of the softmax.
  padded = memory.pad_rows(jnp.asarray(bank), 16)
  assert padded.shape == (16, 4) and not np.any(np.asarray(padded[10:]))
  np.testing.assert_allclose(instance.npid_softmax(f, padded, idx, t, num_valid=10), expected,
                             rtol=1e-4)
  # Unmasked, each zero row would add exp(0) to every denominator (visible at T = 1).
  warm = np.mean([-_log_softmax(_norm(f)[i] @ bank.T)[idx[i]] for i in range(3)])
  np.testing.assert_allclose(instance.npid_softmax(f, padded, idx, 1.0, num_valid=10), warm,
                             rtol=1e-4)
  assert not np.isclose(float(instance.npid_softmax(f, padded, idx, 1.0)), warm, rtol=1e-2)


def test_queue_is_fifo_with_static_shape():
  queue, ptr = jnp.zeros((4, 1)), jnp.zeros((), jnp.int32)
  for value in (1.0, 2.0, 3.0):
    queue, ptr = memory.enqueue(queue, jnp.full((2, 1), value), ptr)
  # Third batch overwrote the oldest (the first) rows.
  np.testing.assert_array_equal(queue[:, 0], [3.0, 3.0, 2.0, 2.0])
  assert int(ptr) == 2
  with pytest.raises(ValueError, match="multiple of the global batch"):
    memory.enqueue(jnp.zeros((5, 1)), jnp.ones((2, 1)), ptr)


def test_ema_and_cosine_momentum():
  target, online = {"w": jnp.array([1.0, 2.0])}, {"w": jnp.array([3.0, 6.0])}
  np.testing.assert_allclose(memory.ema(target, online, 0.9)["w"],
                             [0.9 * 1 + 0.1 * 3, 0.9 * 2 + 0.1 * 6], rtol=1e-6)
  assert float(memory.cosine_momentum(0, 100, 0.996)) == pytest.approx(0.996)
  assert float(memory.cosine_momentum(50, 100, 0.996)) == pytest.approx(0.998)
  assert float(memory.cosine_momentum(100, 100, 0.996)) == pytest.approx(1.0)
