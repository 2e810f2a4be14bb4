"""Clustering and self-distillation losses: pure functions of arrays.

Written on the global batch: under `jax.jit` over a data-parallel mesh the sums
in Sinkhorn-Knopp and the mean in DINO's centre run over every device's
examples, as the papers' all-reduces do.
"""

import jax
import jax.numpy as jnp

from repr_learn.losses.contrastive import l2_normalize


def sinkhorn(scores: jax.Array, epsilon: float, num_iters: int,
             num_valid: int | None = None, valid: jax.Array | None = None) -> jax.Array:
  """Equipartitioned soft assignments (SwAV, Caron et al. 2020, eq. 3; SeLa).

  Solves max_Q Tr(Q^T S) + eps H(Q) over the transportation polytope whose rows
  (examples) sum to 1/B and columns (prototypes) to 1/K, by alternating
  normalisation, in float32.

  Args:
    scores: [B, K] example-prototype similarities.
    epsilon: entropy weight (SwAV: 0.05).
    num_iters: normalisation rounds (SwAV: 3).
    num_valid: only the first `num_valid` rows are examples (the rest pad a
      dataset-sized bank to a shardable size): they get zero assignments and
      take no part in the column sums, so the valid rows equal the unpadded
      result. None: every row.
    valid: [B] bool, traced: the rows that are examples (DINOv2's masked
      tokens packed to a static bound, `mask_budgets.pack_masked`); the row count B
      of the column normalisation is then their number, as the official
      `n_masked_patches`. Excludes `num_valid`.

  Returns:
    [B, K] assignments; each (valid) row sums to 1, each column to B/K.
  """
  b, k = scores.shape
  if valid is not None:
    if num_valid is not None:
      raise ValueError("sinkhorn takes num_valid or valid, not both.")
    rows = valid.reshape(b, 1)
    b = jnp.maximum(jnp.sum(valid), 1).astype(jnp.float32)
  else:
    rows = _valid_rows(b, num_valid)
    b = b if num_valid is None else num_valid
  scores = jnp.where(rows, scores.astype(jnp.float32) / epsilon, -jnp.inf)
  # The global max keeps exp in range and cancels in the normalisations.
  shift = jnp.max(scores)
  q = jnp.exp(scores - jax.lax.stop_gradient(jnp.where(jnp.isfinite(shift), shift, 0.0)))
  tiny = jnp.finfo(q.dtype).tiny  # only empty sums (no valid row) meet it
  q = q / jnp.maximum(jnp.sum(q), tiny)
  for _ in range(num_iters):
    q = q / (jnp.maximum(jnp.sum(q, axis=0, keepdims=True), tiny) * k)
    q = q / (jnp.maximum(jnp.sum(q, axis=1, keepdims=True), tiny) * b)
  return jax.lax.stop_gradient(q * b)


def _valid_rows(rows: int, num_valid: int | None) -> jax.Array:
  """[rows, 1] True for the first `num_valid` rows (all when None)."""
  if num_valid is None:
    return jnp.ones((rows, 1), bool)
  if not 0 < num_valid <= rows:
    raise ValueError(f"num_valid={num_valid} must be in [1, {rows}].")
  return (jnp.arange(rows) < num_valid)[:, None]


def swapped_prediction(scores: list[jax.Array], codes: list[jax.Array],
                       temperature: float) -> jax.Array:
  """SwAV's swapped prediction (eq. 1): predict each global view's code from
  every other view.

  Args:
    scores: per view, [B, K] cosine similarities to the prototypes.
    codes: per global view (the first `len(codes)` views), [B, K] Sinkhorn
      assignments.
    temperature: softmax temperature tau (0.1).
  """
  total, pairs = 0.0, 0
  for i, q in enumerate(codes):
    for v, s in enumerate(scores):
      if v == i:
        continue
      total += -jnp.mean(jnp.sum(q * jax.nn.log_softmax(s / temperature, axis=-1), axis=-1))
      pairs += 1
  return total / pairs


def teacher_temperature(step, warmup_steps: int, start: float, end: float):
  """DINO's teacher temperature: linear from `start` to `end`, then constant."""
  if warmup_steps <= 0:
    return jnp.asarray(end, jnp.float32)
  progress = jnp.minimum(step / warmup_steps, 1.0)
  return start + (end - start) * progress


def dino_loss(student: list[jax.Array], teacher: list[jax.Array], centre: jax.Array,
              student_temperature: float, teacher_temperature) -> jax.Array:
  """DINO's cross-entropy between sharpened, centred teacher outputs on the
  global views and the student's outputs on all other views (Caron et al.
  2021, algorithm 1).

  Args:
    student: per view (global views first), [B, K] logits.
    teacher: per global view, [B, K] logits (gradients are stopped here).
    centre: [K] running mean of teacher logits.
    student_temperature: tau_s (0.1).
    teacher_temperature: tau_t (0.04 -> 0.07), may be traced.
  """
  probs = [jax.nn.softmax(jax.lax.stop_gradient(t - centre) / teacher_temperature, axis=-1)
           for t in teacher]
  return cross_view_loss(student, probs, student_temperature)


def cross_view_loss(student: list[jax.Array], teacher_probs: list[jax.Array],
                    student_temperature: float) -> jax.Array:
  """The mean over (teacher view i, student view v != i) pairs of the batch-mean
  cross-entropy between teacher distributions and the student's softmax: DINO's
  loss once the teacher is centred and sharpened (or Sinkhorn-normalised, as
  DINOv2 may), which also equals DINOv2's local + global terms divided by
  their 2L + 2 pairs (`ssl_meta_arch.forward_backward`)."""
  total, pairs = 0.0, 0
  for i, p_t in enumerate(teacher_probs):
    p_t = jax.lax.stop_gradient(p_t)
    for v, s in enumerate(student):
      if v == i:
        continue
      log_p_s = jax.nn.log_softmax(s / student_temperature, axis=-1)
      total += -jnp.mean(jnp.sum(p_t * log_p_s, axis=-1))
      pairs += 1
  return total / pairs


def update_centre(centre: jax.Array, teacher: list[jax.Array], momentum: float) -> jax.Array:
  """c <- m c + (1 - m) mean of the teacher logits over the global batch and
  the global views (DINO, eq. 4)."""
  batch_mean = jnp.mean(jnp.concatenate([jax.lax.stop_gradient(t) for t in teacher]), axis=0)
  return momentum * centre + (1.0 - momentum) * batch_mean


def cross_entropy_to_labels(logits: jax.Array, labels: jax.Array,
                            weights: jax.Array | None = None) -> jax.Array:
  """Mean (optionally weighted) cross-entropy of integer labels."""
  log_p = jax.nn.log_softmax(logits, axis=-1)
  nll = -jnp.take_along_axis(log_p, labels[:, None], axis=-1)[:, 0]
  if weights is None:
    return jnp.mean(nll)
  return jnp.sum(weights * nll) / jnp.maximum(jnp.sum(weights), 1e-12)


def spherical_kmeans(x: jax.Array, rng: jax.Array, num_clusters: int, num_iters: int,
                     chunk_size: int = 16384,
                     num_valid: int | None = None) -> tuple[jax.Array, jax.Array]:
  """Cosine k-means as DeepCluster-v2 runs it on its memory bank.

  Centroids start at distinct random rows of `x`; an empty cluster keeps its
  previous centroid. Assignments are computed `chunk_size` rows at a time and
  centroids by segment sums, so memory stays O(chunk x K + N x D) for an
  ImageNet-sized bank. Static shapes throughout: it runs inside the step.
  With `num_valid`, rows past it pad the bank (see `sinkhorn`): they seed no
  centroid and count in no cluster; their assignments are meaningless.

  Returns:
    ([K, D] unit centroids, [N] int32 assignments).
  """
  valid = _valid_rows(x.shape[0], num_valid)
  x = jnp.where(valid, l2_normalize(x.astype(jnp.float32)), 0.0)
  n = x.shape[0]
  rows = jax.random.choice(rng, n if num_valid is None else num_valid, (num_clusters,),
                           replace=False)
  centroids = x[rows]
  chunk = min(chunk_size, n)
  padded = jnp.pad(x, ((0, -n % chunk), (0, 0))).reshape(-1, chunk, x.shape[1])

  def assign(c):
    per_chunk = jax.lax.map(lambda rows: jnp.argmax(rows @ c.T, axis=-1), padded)
    return per_chunk.reshape(-1)[:n].astype(jnp.int32)

  def body(_, c):
    labels = assign(c)
    sums = jax.ops.segment_sum(x, labels, num_segments=num_clusters)
    counts = jax.ops.segment_sum(valid[:, 0].astype(x.dtype), labels,
                                 num_segments=num_clusters)
    return jnp.where(counts[:, None] > 0, l2_normalize(sums), c)

  centroids = jax.lax.fori_loop(0, num_iters, body, centroids)
  return centroids, assign(centroids)


def student_t_assignment(z: jax.Array, centres: jax.Array, alpha: float = 1.0) -> jax.Array:
  """DEC's soft assignment q_ij ~ (1 + |z_i - mu_j|^2 / alpha)^(-(alpha+1)/2)
  (Xie et al. 2016, eq. 1)."""
  d2 = jnp.sum((z[:, None, :] - centres[None, :, :]) ** 2, axis=-1)
  q = (1.0 + d2 / alpha) ** (-(alpha + 1.0) / 2.0)
  return q / jnp.sum(q, axis=1, keepdims=True)


def dec_target(q: jax.Array) -> jax.Array:
  """DEC's auxiliary target p_ij = (q_ij^2 / f_j) / sum_j' (eq. 3), f_j the
  soft cluster frequency; gradients stopped."""
  q = jax.lax.stop_gradient(q)
  weight = q ** 2 / jnp.sum(q, axis=0)
  return weight / jnp.sum(weight, axis=1, keepdims=True)


def kl_divergence(p: jax.Array, q: jax.Array, eps: float = 1e-12) -> jax.Array:
  """KL(P || Q) summed over clusters, averaged over examples (DEC, eq. 2)."""
  return jnp.mean(jnp.sum(p * (jnp.log(p + eps) - jnp.log(q + eps)), axis=-1))


def scan_loss(anchor_logits: jax.Array, neighbour_logits: jax.Array,
              entropy_weight: float) -> tuple[jax.Array, jax.Array, jax.Array]:
  """SCAN's objective (Van Gansbeke et al. 2020, eq. 2).

  -mean log <p(anchor), p(neighbour)> minus `entropy_weight` times the entropy
  of the mean prediction, which keeps clusters from collapsing.

  Returns:
    (total, consistency, entropy).
  """
  p_a = jax.nn.softmax(anchor_logits, axis=-1)
  p_n = jax.nn.softmax(neighbour_logits, axis=-1)
  consistency = -jnp.mean(jnp.log(jnp.clip(jnp.sum(p_a * p_n, axis=-1), 1e-7)))
  mean_p = jnp.clip(jnp.mean(p_a, axis=0), 1e-7)
  entropy = -jnp.sum(mean_p * jnp.log(mean_p))
  return consistency - entropy_weight * entropy, consistency, entropy


def self_labelling_loss(weak_logits: jax.Array, strong_logits: jax.Array,
                        threshold: float) -> tuple[jax.Array, jax.Array]:
  """SCAN's self-labelling step (sec. 2.3): confident predictions (max p >
  `threshold`) on the weak view become labels for the strong view; the cross
  entropy is weighted inversely to each pseudo-class's frequency.

  Returns:
    (loss, fraction of confident examples).
  """
  p = jax.nn.softmax(jax.lax.stop_gradient(weak_logits), axis=-1)
  labels = jnp.argmax(p, axis=-1)
  confident = (jnp.max(p, axis=-1) > threshold).astype(jnp.float32)
  k = p.shape[-1]
  counts = jnp.sum(jax.nn.one_hot(labels, k) * confident[:, None], axis=0)
  class_weight = jnp.where(counts > 0, jnp.sum(confident) / (k * jnp.maximum(counts, 1.0)), 0.0)
  weights = confident * class_weight[labels]
  return cross_entropy_to_labels(strong_logits, labels, weights), jnp.mean(confident)


def mean_entropy(p: jax.Array) -> jax.Array:
  """Mean entropy of the rows of `p`: log K when uninformative, 0 when one-hot."""
  return -jnp.mean(jnp.sum(p * jnp.log(jnp.clip(p, 1e-12)), axis=-1))
