"""Mixup, CutMix and label smoothing on device, as timm's `Mixup` (batch mode).

Pure functions of a key, a batch of (normalised) images [N, H, W, C] and soft
targets [N, num_classes], for the supervised fine-tuning objective. They follow
timm/data/mixup.py, the implementation MAE's, BEiT's and solo-learn's
fine-tuning call, in its default mode='batch': one lambda per global batch and
every example paired with its mirror in the batch (`x.flip(0)`, here
`x[::-1]`). Under a sharded global batch that reversal is a cross-device
permutation, which XLA inserts under `jax.jit`.

Everything has static shapes: the CutMix box is a mask built with `iota`
comparisons, and mixup, CutMix and "no mixing" are one formula,
`w * x + (1 - w) * x[::-1]` with a per-pixel weight `w` (lambda everywhere for
mixup; 0 in the box and 1 outside for CutMix; 1 everywhere when not mixing),
so the step compiles once and CutMix copies pixels exactly. In the per-device
mode the images are a device's rows and their mirrors come from the mirror
device (`mirror`); the targets are the global batch's.
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp


class Mixed(NamedTuple):
  """A mixed batch.

  images: [N, H, W, C], example i mixed with example N - 1 - i.
  targets: [N, num_classes], lam * targets + (1 - lam) * targets[::-1].
  lam: scalar weight of the original example (after CutMix's box correction;
    1 when the batch was left unmixed).
  used_cutmix: scalar bool, True when the batch was CutMix'ed.
  """
  images: jax.Array
  targets: jax.Array
  lam: jax.Array
  used_cutmix: jax.Array


def one_hot_smoothed(labels: jax.Array, num_classes: int, smoothing: float = 0.0
                     ) -> jax.Array:
  """One-hot targets [N, num_classes] with label smoothing, as timm's
  `mixup_target`: off = smoothing / num_classes, on = 1 - smoothing + off
  (so each row sums to 1). Labels outside [0, num_classes) give rows of `off`."""
  off = smoothing / num_classes
  on = 1.0 - smoothing + off
  hot = jax.nn.one_hot(labels, num_classes, dtype=jnp.float32)
  return hot * (on - off) + off


def cutmix_box(rng: jax.Array, height: int, width: int, lam: jax.Array
               ) -> tuple[jax.Array, jax.Array]:
  """timm's `rand_bbox` and `cutmix_bbox_and_lam(correct_lam=True)`.

  The box has sides int(H * sqrt(1 - lam)) and int(W * sqrt(1 - lam)) around a
  uniformly drawn integer centre, halves rounded down and clipped to the image.

  Returns:
    (box, corrected lam): box = int32 [y_low, y_high, x_low, x_high] (high
    exclusive), corrected lam = 1 - box area / (height * width).
  """
  y_rng, x_rng = jax.random.split(rng)
  ratio = jnp.sqrt(1.0 - lam)
  cut_h = jnp.floor(height * ratio).astype(jnp.int32)
  cut_w = jnp.floor(width * ratio).astype(jnp.int32)
  cy = jax.random.randint(y_rng, (), 0, height)
  cx = jax.random.randint(x_rng, (), 0, width)
  y_low, y_high = jnp.clip(cy - cut_h // 2, 0, height), jnp.clip(cy + cut_h // 2, 0, height)
  x_low, x_high = jnp.clip(cx - cut_w // 2, 0, width), jnp.clip(cx + cut_w // 2, 0, width)
  area = (y_high - y_low) * (x_high - x_low)
  corrected = 1.0 - area.astype(jnp.float32) / float(height * width)
  return jnp.stack([y_low, y_high, x_low, x_high]), corrected


def box_mask(box: jax.Array, height: int, width: int) -> jax.Array:
  """Bool [height, width], True inside `box` = [y_low, y_high, x_low, x_high)."""
  ys = jax.lax.broadcasted_iota(jnp.int32, (height, width), 0)
  xs = jax.lax.broadcasted_iota(jnp.int32, (height, width), 1)
  return (ys >= box[0]) & (ys < box[1]) & (xs >= box[2]) & (xs < box[3])


def _reversed(x: jax.Array) -> jax.Array:
  return x[::-1]


def _blend(images: jax.Array, targets: jax.Array, pixel_weight: jax.Array,
           lam: jax.Array, used_cutmix: jax.Array, mirror=_reversed) -> Mixed:
  """w * x + (1 - w) * x[::-1] with w [H, W] (exact copies where w is 0 or 1)."""
  w = pixel_weight.astype(images.dtype)[None, :, :, None]
  mixed_images = images * w + mirror(images) * (1 - w)
  lam = jnp.asarray(lam, jnp.float32)
  mixed_targets = targets * lam + targets[::-1] * (1.0 - lam)
  return Mixed(mixed_images, mixed_targets, lam, jnp.asarray(used_cutmix, bool))


def _check(images: jax.Array, targets: jax.Array, mirror=_reversed) -> None:
  if images.ndim != 4:
    raise ValueError(f"Mixing needs images [N, H, W, C], got shape {images.shape}.")
  rows_differ = mirror is _reversed and targets.shape[0] != images.shape[0]
  if targets.ndim != 2 or rows_differ:
    raise ValueError(f"Targets must be [N, num_classes] for {images.shape[0]} images, "
                     f"got shape {targets.shape}.")


def mixup(rng: jax.Array, images: jax.Array, targets: jax.Array, alpha: float) -> Mixed:
  """Mixup (Zhang et al. 2018): lam ~ Beta(alpha, alpha) for the whole batch,
  x <- lam x + (1 - lam) x[::-1], y <- lam y + (1 - lam) y[::-1]."""
  _check(images, targets)
  lam = jax.random.beta(rng, alpha, alpha)
  h, w = images.shape[1:3]
  return _blend(images, targets, jnp.full((h, w), lam), lam, False)


def cutmix(rng: jax.Array, images: jax.Array, targets: jax.Array, alpha: float) -> Mixed:
  """CutMix (Yun et al. 2019): lam ~ Beta(alpha, alpha), one box for the whole
  batch (`cutmix_box`) filled with the mirrored example's pixels; lam becomes
  1 - box area / image area, and y <- lam y + (1 - lam) y[::-1]."""
  _check(images, targets)
  lam_rng, box_rng = jax.random.split(rng)
  h, w = images.shape[1:3]
  box, lam = cutmix_box(box_rng, h, w, jax.random.beta(lam_rng, alpha, alpha))
  return _blend(images, targets, ~box_mask(box, h, w), lam, True)


def mix(rng: jax.Array, images: jax.Array, targets: jax.Array, *, mixup_alpha: float,
        cutmix_alpha: float, mix_prob: float = 1.0, switch_prob: float = 0.5,
        mirror=_reversed) -> Mixed:
  """timm's `Mixup(mode='batch', correct_lam=True)` on one global batch.

  With probability `mix_prob` the batch is mixed, else returned as is (lam 1).
  When both alphas are positive, CutMix is chosen with probability
  `switch_prob` (lam ~ Beta(cutmix_alpha, cutmix_alpha)), mixup otherwise
  (lam ~ Beta(mixup_alpha, mixup_alpha)); with one alpha positive, that one
  always; with both 0, never (the targets stay as given: label smoothing alone).
  The choice is drawn on device; shapes never depend on it.

  `mirror(images)` gives each row's partner (default `x[::-1]`); the
  per-device step passes `parallel.mirrored_rows`, with this device's images
  and the global batch's targets.
  """
  _check(images, targets, mirror)
  if mixup_alpha < 0 or cutmix_alpha < 0:
    raise ValueError(f"mixup_alpha={mixup_alpha} and cutmix_alpha={cutmix_alpha} "
                     "must be >= 0 (0 disables one).")
  if (mixup_alpha == 0 and cutmix_alpha == 0) or mix_prob <= 0:
    h, w = images.shape[1:3]
    return _blend(images, targets, jnp.ones((h, w)), 1.0, False, mirror)
  apply_rng, switch_rng, mixup_rng, cutmix_rng = jax.random.split(rng, 4)
  apply = jax.random.uniform(apply_rng) < mix_prob
  if mixup_alpha > 0 and cutmix_alpha > 0:
    use_cutmix = jax.random.uniform(switch_rng) < switch_prob
  else:
    use_cutmix = jnp.asarray(cutmix_alpha > 0)
  h, w = images.shape[1:3]
  mixup_lam = (jax.random.beta(mixup_rng, mixup_alpha, mixup_alpha) if mixup_alpha > 0
               else jnp.ones(()))
  cutmix_lam, box = jnp.ones(()), jnp.zeros((4,), jnp.int32)
  if cutmix_alpha > 0:
    lam_rng, box_rng = jax.random.split(cutmix_rng)
    box, cutmix_lam = cutmix_box(box_rng, h, w,
                                 jax.random.beta(lam_rng, cutmix_alpha, cutmix_alpha))
  weight = jnp.where(use_cutmix, (~box_mask(box, h, w)).astype(jnp.float32), mixup_lam)
  lam = jnp.where(use_cutmix, cutmix_lam, mixup_lam)
  weight = jnp.where(apply, weight, 1.0)
  lam = jnp.where(apply, lam, 1.0)
  return _blend(images, targets, weight, lam, apply & use_cutmix, mirror)
