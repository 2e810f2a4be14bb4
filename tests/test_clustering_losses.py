"""Clustering and self-distillation maths against numpy transcriptions of the
papers' formulas and the properties they are built for (marginals, centring,
sharpening, cluster recovery)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from repr_learn.evaluation import clustering as clustering_eval
from repr_learn.evaluation import knn
from repr_learn.losses import clustering
from repr_learn.objectives import base

RTOL = 1e-5


def _rand(*shape, seed=0):
  return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


def _softmax(x, axis=-1):
  e = np.exp(x - x.max(axis=axis, keepdims=True))
  return e / e.sum(axis=axis, keepdims=True)


def _log_softmax(x, axis=-1):
  return np.log(_softmax(x, axis))


@pytest.mark.parametrize("b,k", [(32, 8), (12, 30), (256, 30)])
def test_sinkhorn_matches_the_target_marginals(b, k):
  cosines = np.random.default_rng(0).uniform(-1, 1, (b, k)).astype(np.float32)
  q = np.asarray(clustering.sinkhorn(cosines, epsilon=0.05, num_iters=100))
  # Each example's code sums to 1, each prototype receives B/K examples.
  np.testing.assert_allclose(q.sum(axis=1), np.ones(b), rtol=1e-5)
  np.testing.assert_allclose(q.sum(axis=0), np.full(k, b / k), rtol=1e-4)
  assert np.all(q >= 0)
  # SwAV's 3 iterations already move the prototype marginals towards B/K.
  q3 = np.asarray(clustering.sinkhorn(cosines, epsilon=0.05, num_iters=3))
  q0 = _softmax(cosines / 0.05)
  assert (np.abs(q3.sum(0) - b / k).max() < np.abs(q0.sum(0) - b / k).max())


def test_sinkhorn_equals_swav_reference_loop():
  """SwAV's distributed_sinkhorn, transcribed in numpy (one process)."""
  scores, eps, iters = _rand(16, 6, seed=1), 0.5, 3
  q = np.exp(scores / eps).T
  q /= q.sum()
  k, b = q.shape
  for _ in range(iters):
    q /= q.sum(axis=1, keepdims=True)
    q /= k
    q /= q.sum(axis=0, keepdims=True)
    q /= b
  expected = (q * b).T
  np.testing.assert_allclose(clustering.sinkhorn(scores, eps, iters), expected, rtol=1e-4)


def test_sinkhorn_spreads_a_collapsed_batch_over_all_prototypes():
  """Every example prefers prototype 0; equipartition still uses them all."""
  scores = np.tile(np.array([[1.0, 0.0, 0.0, 0.0]], np.float32), (8, 1))
  scores += 0.01 * _rand(8, 4, seed=2)
  q = np.asarray(clustering.sinkhorn(scores, epsilon=0.05, num_iters=100))
  np.testing.assert_allclose(q.sum(axis=0), np.full(4, 2.0), rtol=1e-2)


def test_swapped_prediction_formula():
  scores = [_rand(5, 4, seed=s) for s in range(4)]  # 2 global + 2 local views
  codes = [_softmax(_rand(5, 4, seed=10 + s)) for s in range(2)]
  t = 0.1
  terms = [-np.mean(np.sum(codes[i] * _log_softmax(scores[v] / t), axis=1))
           for i in range(2) for v in range(4) if v != i]
  np.testing.assert_allclose(clustering.swapped_prediction(scores, codes, t),
                             np.mean(terms), rtol=RTOL)


def test_dino_loss_formula():
  student = [_rand(6, 5, seed=s) for s in range(4)]
  teacher = [_rand(6, 5, seed=20 + s) for s in range(2)]
  centre, ts, tt = _rand(5, seed=30), 0.1, 0.04
  terms = []
  for i, t in enumerate(teacher):
    p_t = _softmax((t - centre) / tt)
    for v, s in enumerate(student):
      if v != i:
        terms.append(-np.mean(np.sum(p_t * _log_softmax(s / ts), axis=1)))
  np.testing.assert_allclose(clustering.dino_loss(student, teacher, centre, ts, tt),
                             np.mean(terms), rtol=RTOL)


def test_dino_centring_and_sharpening():
  teacher = [_rand(6, 5, seed=s) for s in range(2)]
  student = [_rand(6, 5, seed=9 + s) for s in range(3)]
  centre = _rand(5, seed=3)
  # Centring: a shift shared by the teacher outputs and the centre cancels.
  shift = 7.0 * _rand(5, seed=4)
  a = clustering.dino_loss(student, teacher, centre, 0.1, 0.04)
  b = clustering.dino_loss(student, [t + shift for t in teacher], centre + shift, 0.1, 0.04)
  np.testing.assert_allclose(a, b, rtol=1e-4)
  # Centre update: c <- m c + (1 - m) mean over both global views and the batch.
  new = clustering.update_centre(centre, teacher, 0.9)
  np.testing.assert_allclose(new, 0.9 * centre + 0.1 * np.concatenate(teacher).mean(0),
                             rtol=RTOL)
  # Sharpening: a lower teacher temperature gives lower-entropy targets.
  entropies = [float(clustering.mean_entropy(jax.nn.softmax((teacher[0] - centre) / t)))
               for t in (0.07, 0.04, 0.01)]
  assert entropies[0] > entropies[1] > entropies[2]


def test_dino_teacher_gets_no_gradient():
  teacher = jnp.asarray(_rand(4, 3))
  grad = jax.grad(lambda t: clustering.dino_loss([teacher, teacher], [t, t],
                                                 jnp.zeros(3), 0.1, 0.04))(teacher)
  np.testing.assert_array_equal(grad, 0.0)


def test_teacher_temperature_schedule():
  schedule = lambda s: float(clustering.teacher_temperature(s, 30, 0.04, 0.07))
  assert schedule(0) == pytest.approx(0.04)
  assert schedule(15) == pytest.approx(0.055)
  assert schedule(30) == pytest.approx(0.07)
  assert schedule(1000) == pytest.approx(0.07)
  assert float(clustering.teacher_temperature(5, 0, 0.04, 0.07)) == pytest.approx(0.07)


def test_spherical_kmeans_converges_to_normalised_cluster_means():
  rng = np.random.default_rng(0)
  labels = rng.integers(0, 4, 200)
  x = np.eye(8, dtype=np.float32)[labels] + 0.3 * rng.normal(size=(200, 8)).astype(np.float32)
  xn = x / np.linalg.norm(x, axis=1, keepdims=True)
  key = jax.random.PRNGKey(0)
  _, start = clustering.spherical_kmeans(jnp.asarray(x), key, num_clusters=4, num_iters=0)
  centroids, assignments = clustering.spherical_kmeans(jnp.asarray(x), key, num_clusters=4,
                                                      num_iters=20)
  centroids, assignments = np.asarray(centroids), np.asarray(assignments)
  np.testing.assert_allclose(np.linalg.norm(centroids, axis=1), 1.0, rtol=1e-5)
  np.testing.assert_array_equal(assignments, np.argmax(xn @ centroids.T, axis=1))
  for c in np.unique(assignments):  # A fixed point: centroid = normalised member mean.
    mean = xn[assignments == c].mean(0)
    np.testing.assert_allclose(centroids[c], mean / np.linalg.norm(mean), atol=1e-5)
  # Lloyd iterations raise the within-cluster cosine similarity.
  start_centroids = np.stack([xn[np.asarray(start) == c].mean(0) for c in range(4)])
  start_centroids /= np.linalg.norm(start_centroids, axis=1, keepdims=True)
  assert (np.mean(np.max(xn @ centroids.T, 1))
          >= np.mean(np.sum(xn * start_centroids[np.asarray(start)], 1)) - 1e-6)


def test_dec_assignment_and_target_formulas():
  z, mu = _rand(5, 3), _rand(4, 3, seed=1)
  d2 = ((z[:, None] - mu[None]) ** 2).sum(-1)
  q = 1.0 / (1.0 + d2)
  q /= q.sum(1, keepdims=True)
  np.testing.assert_allclose(clustering.student_t_assignment(z, mu), q, rtol=RTOL)
  f = q.sum(0)
  p = q ** 2 / f
  p /= p.sum(1, keepdims=True)
  np.testing.assert_allclose(clustering.dec_target(q), p, rtol=RTOL)
  np.testing.assert_allclose(clustering.kl_divergence(p, q),
                             np.mean(np.sum(p * np.log(p / q), 1)), rtol=1e-4)
  # The target is sharper than the assignment it comes from.
  assert float(clustering.mean_entropy(p)) < float(clustering.mean_entropy(q))


def test_scan_loss_formula():
  a, n, w = _rand(6, 4), _rand(6, 4, seed=1), 5.0
  pa, pn = _softmax(a), _softmax(n)
  consistency = -np.mean(np.log(np.sum(pa * pn, 1)))
  mean_p = pa.mean(0)
  entropy = -np.sum(mean_p * np.log(mean_p))
  total, c, e = clustering.scan_loss(a, n, w)
  np.testing.assert_allclose([total, c, e], [consistency - w * entropy, consistency, entropy],
                             rtol=1e-5)


def test_self_labelling_uses_only_confident_examples():
  weak = np.array([[10.0, 0, 0], [0, 10.0, 0], [0.1, 0, 0], [10.0, 0, 0]], np.float32)
  strong = _rand(4, 3)
  loss, fraction = clustering.self_labelling_loss(weak, strong, threshold=0.99)
  assert float(fraction) == pytest.approx(0.75)
  # Class 0 has two confident examples, class 1 one: weights 1/2, 1/2 and 1.
  nll = -_log_softmax(strong)[np.arange(4), [0, 1, 0, 0]]
  weights = np.array([0.5, 1.0, 0.0, 0.5])
  np.testing.assert_allclose(loss, np.sum(weights * nll) / weights.sum(), rtol=1e-5)


def test_hungarian_accuracy_nmi_and_ari():
  labels = np.array([0, 0, 1, 1, 2, 2])
  permuted = np.array([2, 2, 0, 0, 1, 1])
  assert clustering_eval.scores(labels, permuted) == {
      "acc": 100.0, "nmi": 100.0, "ari": 100.0, "num_clusters": 3}
  # One example off: best matching gets 5 of 6.
  assert clustering_eval.hungarian_accuracy(labels, np.array([2, 2, 0, 0, 1, 0])) == 5 / 6
  # Everything in one cluster: only one class can be matched; NMI and ARI are 0.
  one = clustering_eval.scores(labels, np.zeros(6, int))
  assert one["acc"] == pytest.approx(100 / 3) and one["nmi"] == 0 and one["ari"] == 0
  with pytest.raises(ValueError, match="equal-length"):
    clustering_eval.hungarian_accuracy(labels, labels[:3])


def test_mined_neighbours_are_the_nearest_others():
  x = _rand(50, 6, seed=3)
  got = knn.mine_neighbours(x, k=4, chunk_size=16)
  xn = x / np.linalg.norm(x, axis=1, keepdims=True)
  sims = xn @ xn.T
  np.fill_diagonal(sims, -np.inf)
  expected = np.argsort(-sims, axis=1)[:, :4]
  np.testing.assert_array_equal(np.sort(got, 1), np.sort(expected, 1))


def test_frozen_while_blocks_gradients_and_updates_only_while_the_condition_holds():
  params = {"prototypes": jnp.ones(3), "backbone": jnp.ones(3)}

  def loss(p, frozen):
    p = base.frozen_while(p, {"prototypes": frozen})
    return jnp.sum(p["prototypes"] ** 2) + jnp.sum(p["backbone"] ** 2)

  frozen = jax.grad(loss)(params, jnp.array(True))
  np.testing.assert_array_equal(frozen["prototypes"], 0.0)
  np.testing.assert_array_equal(frozen["backbone"], 2.0)
  np.testing.assert_array_equal(jax.grad(loss)(params, jnp.array(False))["prototypes"], 2.0)
  updates = base.without_frozen_updates(params, {"prototypes": jnp.array(True)})
  np.testing.assert_array_equal(updates["prototypes"], 0.0)
  np.testing.assert_array_equal(updates["backbone"], 1.0)


def test_spherical_kmeans_chunking_does_not_change_the_result():
  x = jnp.asarray(_rand(100, 5, seed=7))
  key = jax.random.PRNGKey(3)
  whole = clustering.spherical_kmeans(x, key, num_clusters=6, num_iters=5)
  chunked = clustering.spherical_kmeans(x, key, num_clusters=6, num_iters=5, chunk_size=32)
  np.testing.assert_array_equal(whole[1], chunked[1])
  np.testing.assert_allclose(whole[0], chunked[0], rtol=1e-5, atol=1e-6)


def test_padding_rows_change_neither_sinkhorn_nor_kmeans():
  """Rows past `num_valid` (a dataset-sized bank padded to split over devices)
  take no part: the valid rows' results equal the unpadded ones."""
  x = jnp.asarray(_rand(50, 8, seed=4))
  x = x / jnp.linalg.norm(x, axis=1, keepdims=True)
  padded = jnp.pad(x, ((0, 14), (0, 0)))
  scores = x @ x[:5].T  # cosines, as SeLa's bank x prototypes
  q = clustering.sinkhorn(scores, 0.05, 10)
  q_padded = clustering.sinkhorn(jnp.pad(scores, ((0, 14), (0, 0))), 0.05, 10, num_valid=50)
  assert np.all(np.isfinite(q))
  np.testing.assert_allclose(q_padded[:50], q, rtol=1e-5, atol=1e-7)
  assert not np.any(np.asarray(q_padded[50:]))
  key = jax.random.PRNGKey(2)
  centroids, labels = clustering.spherical_kmeans(x, key, num_clusters=4, num_iters=5)
  centroids_p, labels_p = clustering.spherical_kmeans(padded, key, num_clusters=4, num_iters=5,
                                                      num_valid=50)
  np.testing.assert_allclose(centroids_p, centroids, rtol=1e-5, atol=1e-6)
  np.testing.assert_array_equal(labels_p[:50], labels)
  with pytest.raises(ValueError, match="num_valid=80 must be in"):
    clustering.sinkhorn(scores, 0.05, 3, num_valid=80)
