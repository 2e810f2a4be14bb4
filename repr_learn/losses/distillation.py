"""Masked-token self-distillation (iBOT, DINOv2) and DINOv2's KoLeo regulariser.

Pure functions of arrays on the global batch, in float32. The cls-token DINO
loss, the centre and Sinkhorn-Knopp live in `losses.clustering`; here are the
pieces that act on patch tokens and the ones DINOv2 adds.
"""

import jax
import jax.numpy as jnp


def _cross_entropy(teacher_probs: jax.Array, student_logits: jax.Array,
                   student_temperature: float) -> jax.Array:
  """-sum_k t_k log softmax(s / tau_s)_k over the last axis."""
  log_p = jax.nn.log_softmax(student_logits.astype(jnp.float32) / student_temperature, axis=-1)
  return -jnp.sum(jax.lax.stop_gradient(teacher_probs) * log_p, axis=-1)


def ibot_patch_loss(student: jax.Array, teacher_probs: jax.Array, masked: jax.Array,
                    student_temperature: float) -> jax.Array:
  """iBOT's MIM loss on one global crop (bytedance/ibot `iBOTLoss.forward`,
  the `v == q` term): per image, the cross-entropy summed over its masked
  patches and divided by their count (at least 1), then averaged over the
  batch; images without masked patches count as 0.

  Args:
    student: [B, T, K] patch logits of the masked crop.
    teacher_probs: [B, T, K] the teacher's centred, sharpened patch
      distributions on the same crop unmasked.
    masked: [B, T] bool, the student's mask.
  """
  ce = _cross_entropy(teacher_probs, student, student_temperature)
  m = masked.astype(jnp.float32)
  per_image = jnp.sum(ce * m, axis=-1) / jnp.maximum(jnp.sum(m, axis=-1), 1.0)
  return jnp.mean(per_image)


def masked_token_loss(student: jax.Array, teacher_probs: jax.Array, weights: jax.Array,
                      num_crops: int, student_temperature: float) -> jax.Array:
  """DINOv2's iBOT loss on the packed masked tokens (dinov2
  `iBOTPatchLoss.forward_masked`): sum_u w_u CE_u / num_crops, with w_u =
  1 / (masked count of token u's crop) and 0 on padding, so each masked crop's
  tokens are averaged and every global crop, masked or not, counts in the mean.

  Args:
    student, teacher_probs: [U, K] for the packed tokens (`mask_budgets.pack_masked`).
    weights: [U] `PackedMask.weights`.
    num_crops: the global crops of the batch (2B).
  """
  ce = _cross_entropy(teacher_probs, student, student_temperature)
  return jnp.sum(ce * weights) / num_crops


def koleo_loss(x: jax.Array, group_size: int | None = None, eps: float = 1e-8) -> jax.Array:
  """Kozachenko-Leonenko entropy regulariser (Sablayrolles et al. 2019), as
  DINOv2's `KoLeoLoss`: normalise (eps 1e-8), find each row's nearest
  neighbour by inner product with the diagonal set to -1, and average
  -log(|x - x_nn + eps| + eps), in float32.

  DINOv2 computes it on each GPU's batch; `group_size` splits the rows into
  consecutive groups of that size (the per-GPU batch of the recipe) and
  averages the groups' losses, so the value does not depend on how many devices
  run it. None: one group.
  """
  x = x.astype(jnp.float32)
  n, d = x.shape
  group = n if not group_size else group_size
  if n % group:
    raise ValueError(f"KoLeo groups of {group} do not divide the batch of {n}; set "
                     "objective.koleo_group_size to a divisor of the batch size.")
  x = x.reshape(n // group, group, d)
  x = x / jnp.maximum(jnp.linalg.norm(x, axis=-1, keepdims=True), eps)
  dots = jnp.einsum("gid,gjd->gij", x, x)
  dots = jnp.where(jnp.eye(group, dtype=bool), -1.0, dots)
  nearest = jnp.take_along_axis(x, jnp.argmax(dots, axis=-1)[..., None], axis=1)
  # torch.nn.PairwiseDistance(eps=1e-8) adds eps to the difference.
  distance = jnp.linalg.norm(x - nearest + eps, axis=-1)
  return -jnp.mean(jnp.log(distance + eps))
