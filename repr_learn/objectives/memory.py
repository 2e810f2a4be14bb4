"""State that objectives keep beside the parameters: EMA targets, queues, banks.

All updates are pure, static-shape functions so the step compiles once and the
state checkpoints like any other array.
"""

import math

import jax
import jax.numpy as jnp

from repr_learn.losses.contrastive import l2_normalize


def ema(target, online, momentum):
  """target <- momentum * target + (1 - momentum) * online, leaf by leaf."""
  return jax.tree.map(lambda t, o: momentum * t + (1.0 - momentum) * o, target, online)


def cosine_momentum(step, total_steps: int, base: float, final: float = 1.0):
  """BYOL's schedule: base at step 0, rising to `final` (1) at the end (Grill et
  al. 2020); solo-learn's `MomentumUpdater` with its `final_tau`."""
  progress = jnp.minimum(step / max(total_steps, 1), 1.0)
  return final - (final - base) * (jnp.cos(math.pi * progress) + 1.0) / 2.0


def linear_momentum(step, ramp_steps: int, start: float, end: float):
  """`start` at step 0, linear to `end` at `ramp_steps`, then constant.

  data2vec 2.0 (fairseq's EMA `ema_anneal_end_step`): 0.9998 -> 0.99999 over
  100k updates; I-JEPA: 0.996 -> 1.0 over the whole run (ramp_steps = total
  steps). `ramp_steps` <= 0 gives `end` from the start.
  """
  step = jnp.asarray(step, jnp.float32)
  if ramp_steps <= 0:
    return jnp.full_like(step, end)
  progress = jnp.minimum(step / ramp_steps, 1.0)
  return jnp.where(progress >= 1.0, end, start + (end - start) * progress)


def enqueue(queue: jax.Array, keys: jax.Array, ptr: jax.Array) -> tuple[jax.Array, jax.Array]:
  """FIFO ring buffer: writes `keys` over the oldest rows and advances the pointer."""
  size, n = queue.shape[0], keys.shape[0]
  if size % n:
    raise ValueError(f"Queue size {size} must be a multiple of the global batch {n}.")
  queue = jax.lax.dynamic_update_slice(queue, keys.astype(queue.dtype), (ptr, 0))
  return queue, (ptr + n) % size


def init_queue(rng: jax.Array, size: int, dim: int) -> jax.Array:
  """Random unit vectors, as MoCo initialises its queue."""
  return l2_normalize(jax.random.normal(rng, (size, dim)))


def pad_rows(x: jax.Array, rows: int) -> jax.Array:
  """`x` with zero rows appended up to `rows` (dataset-sized state padded to a
  shardable size; the objectives mask the padding out)."""
  return jnp.pad(x, [(0, rows - x.shape[0])] + [(0, 0)] * (x.ndim - 1))


def update_memory_bank(bank: jax.Array, features: jax.Array, indices: jax.Array,
                       momentum: float) -> jax.Array:
  """NPID's proximal update of the visited rows, renormalised (Wu et al. 2018)."""
  f = l2_normalize(jax.lax.stop_gradient(features).astype(bank.dtype))
  rows = l2_normalize(momentum * bank[indices] + (1.0 - momentum) * f)
  return bank.at[indices].set(rows)
