"""Instance-discrimination losses with memories: queues, banks, neighbours, labels."""

import jax
import jax.numpy as jnp

from repr_learn.losses.contrastive import l2_normalize


def _cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
  log_probs = jax.nn.log_softmax(logits.astype(jnp.float32), axis=-1)
  return -jnp.mean(jnp.take_along_axis(log_probs, labels[:, None], axis=-1))


def info_nce_with_queue(q: jax.Array, k: jax.Array, queue: jax.Array,
                        temperature: float) -> jax.Array:
  """MoCo's InfoNCE (He et al. 2020, eq. 1): positive key vs a queue of negatives."""
  q = l2_normalize(q.astype(jnp.float32))
  k = jax.lax.stop_gradient(l2_normalize(k.astype(jnp.float32)))
  queue = jax.lax.stop_gradient(queue)
  positive = jnp.sum(q * k, axis=-1, keepdims=True)
  logits = jnp.concatenate([positive, q @ queue.T], axis=1) / temperature
  return _cross_entropy(logits, jnp.zeros((q.shape[0],), jnp.int32))


def moco_v3_contrastive(q: jax.Array, k: jax.Array, temperature: float) -> jax.Array:
  """MoCo v3's `ctr` (Chen et al. 2021, Alg. 1): keys of the global batch, x 2T."""
  q = l2_normalize(q.astype(jnp.float32))
  k = jax.lax.stop_gradient(l2_normalize(k.astype(jnp.float32)))
  logits = q @ k.T / temperature
  return 2.0 * temperature * _cross_entropy(logits, jnp.arange(q.shape[0]))


def nearest_neighbour(z: jax.Array, support: jax.Array) -> jax.Array:
  """The support-set row most cosine-similar to each row of z (no gradient)."""
  z, support = l2_normalize(z), l2_normalize(support)
  idx = jnp.argmax(z @ support.T, axis=-1)
  return jax.lax.stop_gradient(support[idx])


def nnclr_loss(z1, z2, p1, p2, support, temperature: float) -> jax.Array:
  """NNCLR (Dwibedi et al. 2021, eq. 2), symmetrised: NN(z1) must pick out p2."""
  labels = jnp.arange(z1.shape[0])

  def one_side(z, p):
    nn = l2_normalize(nearest_neighbour(z, support))
    return _cross_entropy(nn @ l2_normalize(p).T / temperature, labels)

  return 0.5 * (one_side(z1, p2) + one_side(z2, p1))


def supcon(z: jax.Array, labels: jax.Array, temperature: float,
           base_temperature: float | None = None) -> jax.Array:
  """Supervised contrastive loss L_out (Khosla et al. 2020, eq. 2).

  Args:
    z: [N, V, D] projections of V views of N images.
    labels: [N] class ids; negative ids (unlabeled) only match their own views,
      which reduces the loss to SimCLR's.
    temperature, base_temperature: the loss is scaled by T / base_T as in the
      official implementation (no scaling when base_temperature is None).
  """
  n, v, _ = z.shape
  feats = l2_normalize(z.reshape(n * v, -1).astype(jnp.float32))
  image_ids = jnp.repeat(jnp.arange(n), v)
  anchor_labels = jnp.repeat(labels, v)
  same_label = (anchor_labels[:, None] == anchor_labels[None, :]) & (anchor_labels[:, None] >= 0)
  same_image = image_ids[:, None] == image_ids[None, :]
  self_mask = jnp.eye(n * v, dtype=bool)
  positives = (same_label | same_image) & ~self_mask
  logits = jnp.where(self_mask, -jnp.inf, feats @ feats.T / temperature)
  log_probs = jax.nn.log_softmax(logits, axis=-1)
  per_anchor = -jnp.sum(jnp.where(positives, log_probs, 0.0), axis=-1) / jnp.sum(positives, -1)
  scale = 1.0 if base_temperature is None else temperature / base_temperature
  return scale * jnp.mean(per_anchor)


def npid_softmax(features: jax.Array, bank: jax.Array, indices: jax.Array,
                 temperature: float, num_valid: int | None = None) -> jax.Array:
  """Non-parametric softmax over a memory bank (Wu et al. 2018, eq. 2); with
  `num_valid`, bank rows past it (padding) are left out of the softmax."""
  f = l2_normalize(features.astype(jnp.float32))
  logits = f @ jax.lax.stop_gradient(bank).T / temperature
  if num_valid is not None:
    logits = jnp.where(jnp.arange(bank.shape[0]) < num_valid, logits, -jnp.inf)
  return _cross_entropy(logits, indices)
