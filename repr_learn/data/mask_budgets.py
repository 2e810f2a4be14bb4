"""How many tokens iBOT and DINOv2 mask in each crop, and the static-shape
packing of the masked tokens.

The block masks themselves come from `masking.block_mask_up_to`; these are
the per-crop targets it fills (iBOT's per-crop ratios, DINOv2's stratified
ratios with their static bound) and DINOv2's gather of the masked tokens into
a buffer of that bound with validity weights, so its step compiles once.
"""

from typing import NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np


def ibot_mask_targets(rng: jax.Array, num_crops: int, num_tokens: int,
                      ratios: Sequence[float], ratio_spreads: Sequence[float]) -> jax.Array:
  """iBOT's per-crop target counts [num_crops] (`get_pred_ratio`): one of
  `ratios` chosen uniformly, spread uniformly by +- its `ratio_spreads` entry,
  times the token count. The ViT-S/16 command's `--pred_ratio 0 0.3
  --pred_ratio_var 0 0.2` masks half the crops not at all and the rest at
  U(0.1, 0.5)."""
  ratios, spreads = jnp.asarray(ratios, jnp.float32), jnp.asarray(ratio_spreads, jnp.float32)
  if ratios.shape != spreads.shape:
    raise ValueError(f"mask_ratios={tuple(ratios.tolist())} and mask_ratio_spreads="
                     f"{tuple(spreads.tolist())} need one spread per ratio.")
  k_choice, k_spread = jax.random.split(rng)
  pick = jax.random.randint(k_choice, (num_crops,), 0, ratios.shape[0])
  offset = jax.random.uniform(k_spread, (num_crops,), jnp.float32, -1.0, 1.0)
  return (ratios[pick] + spreads[pick] * offset) * num_tokens


def dinov2_mask_targets(rng: jax.Array, num_crops: int, num_tokens: int,
                        mask_probability: float, ratio_range: tuple[float, float]) -> jax.Array:
  """DINOv2's per-crop target counts [num_crops] (`collate_data_and_cast`):
  int(num_crops * mask_probability) crops are masked, crop k of them at
  int(N * U(p_k, p_k+1)) with p = linspace(min, max, masked + 1) (stratified
  ratios), the list shuffled over all crops; `dinov2_mask_bound` is their
  static bound. Here the crops are the global batch's; the official collate
  stratifies each GPU's batch (same marginal distribution)."""
  num_masked_crops = int(num_crops * mask_probability)
  edges = _dinov2_ratio_edges(num_crops, mask_probability, ratio_range)
  k_ratio, k_perm = jax.random.split(rng)
  u = jax.random.uniform(k_ratio, (num_masked_crops,), jnp.float32)
  lo, hi = jnp.asarray(edges[:-1]), jnp.asarray(edges[1:])
  masked_targets = jnp.floor(num_tokens * (lo + (hi - lo) * u))
  targets = jnp.concatenate([masked_targets,
                             jnp.zeros((num_crops - num_masked_crops,), jnp.float32)])
  return jax.random.permutation(k_perm, targets)


def _dinov2_ratio_edges(num_crops: int, mask_probability: float,
                        ratio_range: tuple[float, float]) -> np.ndarray:
  return np.linspace(ratio_range[0], ratio_range[1], int(num_crops * mask_probability) + 1,
                     dtype=np.float32)


def dinov2_mask_bound(num_crops: int, num_tokens: int, mask_probability: float,
                      ratio_range: tuple[float, float], crops_held: int | None = None) -> int:
  """The static bound on the masked tokens of `dinov2_mask_targets`:
  sum_k int(N * p_k+1), the official `upperbound` (4941 for 128 crops of 256
  tokens), at least 1. With `crops_held` (a device's share of the crops in the
  per-device mode, which can hold any of them): the bound on that many crops,
  the sum of the `crops_held` largest terms."""
  edges = _dinov2_ratio_edges(num_crops, mask_probability, ratio_range)
  caps = sorted((int(num_tokens * float(p)) for p in edges[1:]), reverse=True)
  return max(sum(caps[:num_crops if crops_held is None else crops_held]), 1)


class PackedMask(NamedTuple):
  """The masked tokens of a [C, T] mask, front-packed to a static length U."""
  ids: jax.Array  # [U] int32 flat indices c * T + t of masked tokens, 0 on padding.
  valid: jax.Array  # [U] bool, False on padding.
  weights: jax.Array  # [U] 1 / (masked tokens of the token's crop), 0 on padding.


def pack_masked(masked: jax.Array, capacity: int) -> PackedMask:
  """DINOv2's `mask_indices_list` and `masks_weight`, padded to `capacity`
  (its `upperbound`): masks drawn within the bound always fit."""
  num_crops, num_tokens = masked.shape
  (ids,) = jnp.nonzero(masked.reshape(-1), size=capacity, fill_value=0)
  valid = jnp.arange(capacity) < jnp.sum(masked)
  per_crop = jnp.maximum(jnp.sum(masked, axis=1), 1).astype(jnp.float32)
  weights = jnp.where(valid, 1.0 / per_crop[ids // num_tokens], 0.0)
  del num_crops
  return PackedMask(ids.astype(jnp.int32), valid, weights)
