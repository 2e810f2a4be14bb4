"""Targets and losses of masked image modelling: pure functions of arrays.

MAE (pixels, norm-pix), SimMIM (L1 on pixels), MaskFeat (HOG), data2vec 2.0
(averaged, normalised teacher blocks) and I-JEPA (normalised teacher tokens,
smooth L1), each transcribed from the official PyTorch code so that numbers
match it: unbiased variance in norm-pix, torch's default epsilons, SlowFast's
HOG feature order. Images are NHWC, tokens raster order ([N, T, D]). Targets
are computed in float32 and carry no gradient; reductions over masked tokens
are global `sum / sum(mask)`, so under `jax.jit` over a data-parallel mesh they
weight every token of the global batch equally, as the official all-reduces do.
"""

from typing import Sequence

import jax
import jax.numpy as jnp


def _grid(grid) -> tuple[int, int]:
  if isinstance(grid, int):
    return grid, grid
  return int(grid[0]), int(grid[1])


def patchify(images: jax.Array, patch: int) -> jax.Array:
  """[N, H, W, C] -> [N, T, patch * patch * C] in MAE's order.

  Tokens are row-major over the patch grid; each patch is flattened as
  (row, column, channel), MAE's `einsum('nchpwq->nhwpqc')`.
  """
  n, h, w, c = images.shape
  if h % patch or w % patch:
    raise ValueError(f"image {h}x{w} is not divisible into {patch}-px patches")
  gh, gw = h // patch, w // patch
  x = images.reshape(n, gh, patch, gw, patch, c).transpose(0, 1, 3, 2, 4, 5)
  return x.reshape(n, gh * gw, patch * patch * c)


def unpatchify(patches: jax.Array, patch: int, grid=None) -> jax.Array:
  """Inverse of `patchify`: [N, T, p*p*C] -> [N, H, W, C]; grid (tokens) defaults
  to square."""
  n, t, d = patches.shape
  if grid is None:
    side = int(round(t**0.5))
    grid = (side, side)
  gh, gw = _grid(grid)
  if gh * gw != t or d % (patch * patch):
    raise ValueError(f"cannot unpatchify {patches.shape} with patch {patch}, grid {grid}")
  c = d // (patch * patch)
  x = patches.reshape(n, gh, gw, patch, patch, c).transpose(0, 1, 3, 2, 4, 5)
  return x.reshape(n, gh * patch, gw * patch, c)


def normalized_pixel_targets(patches: jax.Array, eps: float = 1e-6) -> jax.Array:
  """MAE's `norm_pix_loss` target: each patch standardised over its p*p*C values.

  Torch's `.var` is unbiased, so the variance uses ddof=1, as in MAE.
  """
  patches = jax.lax.stop_gradient(patches.astype(jnp.float32))
  mean = jnp.mean(patches, axis=-1, keepdims=True)
  var = jnp.var(patches, axis=-1, keepdims=True, ddof=1)
  return (patches - mean) / jnp.sqrt(var + eps)


def masked_mean(per_token: jax.Array, weight: jax.Array) -> jax.Array:
  """sum(l * w) / sum(w) over the whole (global) batch, [N, T] each."""
  weight = weight.astype(jnp.float32)
  total = jnp.sum(per_token.astype(jnp.float32) * weight)
  return total / jnp.maximum(jnp.sum(weight), 1e-12)


def mae_loss(pred: jax.Array, target: jax.Array, masked: jax.Array) -> jax.Array:
  """MAE: per-patch MSE (mean over the D values), averaged over masked patches.

  Also MaskFeat's loss, with HOG targets. pred, target [N, T, D]; masked [N, T].
  """
  err = jnp.mean(jnp.square(pred.astype(jnp.float32) - target.astype(jnp.float32)), axis=-1)
  return masked_mean(err, masked)


def token_mask_to_pixels(masked: jax.Array, patch: int, grid=None) -> jax.Array:
  """[N, T] token mask -> [N, H, W] float pixel mask (SimMIM's repeat_interleave)."""
  n, t = masked.shape
  if grid is None:
    side = int(round(t**0.5))
    grid = (side, side)
  gh, gw = _grid(grid)
  m = masked.reshape(n, gh, gw).astype(jnp.float32)
  return jnp.repeat(jnp.repeat(m, patch, axis=1), patch, axis=2)


def simmim_loss(pred_images: jax.Array, images: jax.Array, pixel_mask: jax.Array) -> jax.Array:
  """SimMIM: `sum(|x - x_hat| * m) / (sum(m) + 1e-5) / C` over masked pixels.

  pred_images, images [N, H, W, C]; pixel_mask [N, H, W] (see
  `token_mask_to_pixels`), summed once per pixel, hence the division by C.
  """
  channels = images.shape[-1]
  m = pixel_mask.astype(jnp.float32)
  err = jnp.abs(images.astype(jnp.float32) - pred_images.astype(jnp.float32))
  return jnp.sum(err * m[..., None]) / (jnp.sum(m) + 1e-5) / channels


def hog_features(images: jax.Array, cell: int = 8, bins: int = 9) -> jax.Array:
  """MaskFeat's HOG (SlowFast `HOGLayerC`): [N, H, W, C] -> [N, H/cell, W/cell, C, bins].

  Per colour channel: reflect-pad by 1, cross-correlate with the Sobel kernel
  [[1, 0, -1], [2, 0, -2], [1, 0, -1]] (gx) and its transpose (gy); magnitude
  sqrt(gx^2 + gy^2); bin floor(atan2(gx, gy) / pi * bins) mod bins (note the
  official argument order: gx first, so the angle is measured from the gy
  axis; unsigned, since angles differing by pi share a bin); hard assignment
  weighted by magnitude; sum over `cell` x `cell` pixels (trailing pixels
  dropped, as `unfold` does); L2 normalisation over the bins of each cell and
  channel (`F.normalize`, eps 1e-12). No Gaussian window, no block norm.
  Feed it the ImageNet-normalised image, as MaskFeat does.
  """
  x = jax.lax.stop_gradient(images.astype(jnp.float32))
  n, h, w, c = x.shape
  p = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="reflect")
  # Cross-correlation: out[y, x] = sum_ij k[i, j] * p[y + i, x + j].
  rows = lambda i: p[:, i:i + h]
  cols = lambda a, j: a[:, :, j:j + w]
  smooth_rows = rows(0) + 2.0 * rows(1) + rows(2)
  gx = cols(smooth_rows, 0) - cols(smooth_rows, 2)
  smooth_cols = cols(p, 0) + 2.0 * cols(p, 1) + cols(p, 2)
  gy = smooth_cols[:, 0:h] - smooth_cols[:, 2:h + 2]
  magnitude = jnp.sqrt(jnp.square(gx) + jnp.square(gy))
  phase = jnp.arctan2(gx, gy) / jnp.pi * bins
  bin_ids = jnp.floor(phase).astype(jnp.int32) % bins
  hist = jax.nn.one_hot(bin_ids, bins, dtype=jnp.float32) * magnitude[..., None]
  hc, wc = h // cell, w // cell
  hist = hist[:, :hc * cell, :wc * cell]
  hist = hist.reshape(n, hc, cell, wc, cell, c, bins).sum(axis=(2, 4))
  norm = jnp.sqrt(jnp.sum(jnp.square(hist), axis=-1, keepdims=True))
  return hist / jnp.maximum(norm, 1e-12)


def hog_targets(images: jax.Array, patch_size: int, cell: int = 8, bins: int = 9) -> jax.Array:
  """MaskFeat's per-token HOG target: [N, T, C * bins * (patch/cell)^2].

  SlowFast flattens HOG as [N, C*bins, Hc, Wc], then unfolds each token's
  u x u cells (u = patch/cell) last, so a token's vector is ordered
  (channel, bin, cell row, cell column): 3 * 9 * 2 * 2 = 108 at 16 px. This is
  NOT the (row, column, channel) order of `patchify`.
  """
  if patch_size % cell:
    raise ValueError(f"patch {patch_size} is not a multiple of the HOG cell {cell}")
  hog = hog_features(images, cell, bins)  # [N, Hc, Wc, C, bins]
  n, hc, wc, c, _ = hog.shape
  u = patch_size // cell
  gh, gw = hc // u, wc // u
  hog = hog[:, :gh * u, :gw * u].reshape(n, gh, u, gw, u, c, bins)
  hog = hog.transpose(0, 1, 3, 5, 6, 2, 4)  # [N, gh, gw, C, bins, u, u]
  return hog.reshape(n, gh * gw, c * bins * u * u)


def _instance_norm_tokens(x: jax.Array, eps: float) -> jax.Array:
  """F.instance_norm on [N, D, T]: per example and channel, over tokens."""
  mean = jnp.mean(x, axis=1, keepdims=True)
  var = jnp.var(x, axis=1, keepdims=True)
  return (x - mean) / jnp.sqrt(var + eps)


def _layer_norm(x: jax.Array, eps: float) -> jax.Array:
  """F.layer_norm over the last axis without affine (biased variance)."""
  mean = jnp.mean(x, axis=-1, keepdims=True)
  var = jnp.var(x, axis=-1, keepdims=True)
  return (x - mean) / jnp.sqrt(var + eps)


def data2vec_targets(block_outputs: Sequence[jax.Array], top_k: int,
                     eps: float = 1e-5) -> jax.Array:
  """data2vec 2.0's teacher target from per-block outputs, each [N, T, D].

  fairseq `make_targets` (image config): each of the last `top_k` blocks
  instance-normalised over tokens (per example and channel, eps 1e-5, no
  affine), averaged, then layer-normalised over D (eps 1e-5, no affine), in
  float32. Pass patch tokens only: fairseq strips the cls token before this,
  and the blocks' outputs are their FFN outputs before the residual.
  """
  if not 1 <= top_k <= len(block_outputs):
    raise ValueError(f"top_k={top_k} with {len(block_outputs)} blocks")
  layers = [jax.lax.stop_gradient(y.astype(jnp.float32)) for y in block_outputs[-top_k:]]
  y = sum(_instance_norm_tokens(layer, eps) for layer in layers) / top_k
  return _layer_norm(y, eps)


def ijepa_targets(h: jax.Array, eps: float = 1e-5) -> jax.Array:
  """I-JEPA's target: `F.layer_norm(h, (D,))` (no affine, eps 1e-5), float32."""
  return _layer_norm(jax.lax.stop_gradient(h.astype(jnp.float32)), eps)


def smooth_l1(pred: jax.Array, target: jax.Array, beta: float = 1.0,
              weight: jax.Array | None = None) -> jax.Array:
  """`F.smooth_l1_loss`, averaged over the valid elements.

  0.5 d^2 / beta where |d| < beta, else |d| - 0.5 beta. `weight` has a prefix
  of pred's shape (e.g. I-JEPA's target validity [N, M, K] for [N, M, K, D])
  and is broadcast over the trailing axes; with all weights 1 this is torch's
  mean over every element.
  """
  d = jnp.abs(pred.astype(jnp.float32) - target.astype(jnp.float32))
  if beta > 0:
    loss = jnp.where(d < beta, 0.5 * jnp.square(d) / beta, d - 0.5 * beta)
  else:  # Torch falls back to L1.
    loss = d
  if weight is None:
    return jnp.mean(loss)
  weight = weight.astype(jnp.float32)
  if loss.shape[:weight.ndim] != weight.shape:
    raise ValueError(f"weight {weight.shape} is not a prefix of {loss.shape}")
  weight = weight.reshape(weight.shape + (1,) * (loss.ndim - weight.ndim))
  weight = jnp.broadcast_to(weight, loss.shape)
  return jnp.sum(loss * weight) / jnp.maximum(jnp.sum(weight), 1e-12)
