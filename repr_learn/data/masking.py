"""Token masks for masked image modelling, sampled on device at static shapes.

The official samplers (MAE, SimMIM, BEiT/MaskFeat, data2vec 2.0, I-JEPA) run in
data-loader workers as Python loops with variable-length outputs. Inside a
jitted step shapes must be fixed, so every sampler here ends in one primitive:
pick exactly k tokens per example with `top_k(priority + U(0, 1))`. Structure
(a block, a cell, a context region) raises a token's priority in steps of 2,
so the noise only breaks ties at random. Counts are Python ints, so each
sampler compiles once per shape; everything is per example along tokens, so
nothing crosses devices under batch sharding. Draw masks from the step's rng.

Token ids are raster order (row-major) over a [grid_h, grid_w] patch grid, the
order `losses.masked.patchify` produces. `masked` is True where a token is
hidden from the encoder (and, for MAE/SimMIM/MaskFeat, where the loss is taken).
"""

import functools
import math
from typing import NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np


class Mask(NamedTuple):
  """A per-example token mask in both forms the models need."""
  ids_keep: jax.Array  # [N, K] int32, visible tokens in raster order.
  masked: jax.Array  # [N, T] bool, True = masked (hidden).


class MultiBlockMask(NamedTuple):
  """I-JEPA's context and target blocks, padded to static sizes."""
  context_ids: jax.Array  # [N, Kc] int32, raster order.
  context_valid: jax.Array  # [N, Kc] bool, False where the context ran short.
  target_ids: jax.Array  # [N, M, Kt] int32, raster order within each block.
  target_valid: jax.Array  # [N, M, Kt] bool, False on padding (ids are 0).


def _grid(grid: int | Sequence[int]) -> tuple[int, int]:
  if isinstance(grid, int):
    return grid, grid
  grid_h, grid_w = grid
  return int(grid_h), int(grid_w)


def _check_count(name: str, k: int, total: int) -> None:
  if not 0 <= k <= total:
    raise ValueError(f"{name}={k} must lie in [0, {total}]")


def num_masked(num_tokens: int, ratio: float) -> int:
  """MAE's count of masked tokens: T - int(T * (1 - ratio)) (196, 0.75 -> 147)."""
  return num_tokens - int(num_tokens * (1 - ratio))


def maskfeat_num_masked(num_tokens: int, ratio: float) -> int:
  """MaskFeat's (SlowFast) count: round(T * ratio) (196, 0.4 -> 78, not 79)."""
  return int(round(num_tokens * ratio))


def top_k_tokens(rng: jax.Array, priority: jax.Array, k: int) -> jax.Array:
  """Indices [N, k] (int32, ascending) of the k highest `priority + U(0, 1)`.

  Give structural priorities in steps of 2: U(0, 1) < 1, so the noise only
  picks uniformly at random among tokens of equal priority.
  """
  priority = jnp.asarray(priority, jnp.float32)
  _check_count("k", k, priority.shape[-1])
  noise = jax.random.uniform(rng, priority.shape, jnp.float32)
  _, ids = jax.lax.top_k(priority + noise, k)
  return jnp.sort(ids, axis=-1).astype(jnp.int32)


def ids_to_mask(ids: jax.Array, num_tokens: int) -> jax.Array:
  """[N, K] token ids -> [N, T] bool, True at the ids."""
  return jax.vmap(lambda i: jnp.zeros((num_tokens,), bool).at[i].set(True))(ids)


def mask_to_ids(mask: jax.Array, k: int) -> jax.Array:
  """The first k True tokens of each row of [N, T] `mask`, in raster order.

  Exact when every row has exactly k True entries; a row with fewer is padded
  with its first False tokens.
  """
  num_tokens = mask.shape[-1]
  _check_count("k", k, num_tokens)
  priority = jnp.where(mask, 2.0 * num_tokens, 0.0) - jnp.arange(num_tokens, dtype=jnp.float32)
  _, ids = jax.lax.top_k(priority, k)
  return jnp.sort(ids, axis=-1).astype(jnp.int32)


def _from_keep(ids_keep: jax.Array, num_tokens: int) -> Mask:
  return Mask(ids_keep, ~ids_to_mask(ids_keep, num_tokens))


def _from_masked(masked: jax.Array, num_keep: int) -> Mask:
  return Mask(mask_to_ids(~masked, num_keep), masked)


def gather_tokens(x: jax.Array, ids: jax.Array) -> jax.Array:
  """x [N, T, D], ids [N, ...] -> [N, ..., D]: the tokens at `ids`, per example."""
  n = ids.shape[0]
  flat = ids.reshape(n, -1)
  out = jnp.take_along_axis(x, flat[..., None], axis=1)
  return out.reshape(ids.shape + x.shape[2:])


def scatter_tokens(base: jax.Array, ids: jax.Array, values: jax.Array) -> jax.Array:
  """base [N, T, D] with rows `ids` [N, K] replaced by `values` [N, K, D].

  MAE's un-shuffle: scatter the decoded visible tokens into a sequence of mask
  tokens, e.g. `scatter_tokens(jnp.broadcast_to(mask_token, (N, T, D)), ids_keep,
  x_vis)`.
  """
  return jax.vmap(lambda b, i, v: b.at[i].set(v))(base, ids, values.astype(base.dtype))


def _rect(top, left, h, w, grid_h: int, grid_w: int) -> jax.Array:
  """[..., grid_h * grid_w] bool: the rectangle [top, top+h) x [left, left+w)."""
  rows = jnp.arange(grid_h)[:, None]
  cols = jnp.arange(grid_w)[None, :]
  ex = lambda a: jnp.asarray(a)[..., None, None]
  inside = ((rows >= ex(top)) & (rows < ex(top + h))
            & (cols >= ex(left)) & (cols < ex(left + w)))
  return inside.reshape(inside.shape[:-2] + (grid_h * grid_w,))


# ---------------------------------------------------------------------------
# MAE and SimMIM.


def random_mask(rng: jax.Array, batch: int, num_tokens: int,
                num_masked: int) -> Mask:  # pylint: disable=redefined-outer-name
  """MAE's per-example uniform masking: exactly `num_masked` of `num_tokens`.

  MAE keeps `ids_shuffle[:, :K]` in shuffled order; here `ids_keep` is sorted,
  which is equivalent once positions are added before the gather.
  """
  _check_count("num_masked", num_masked, num_tokens)
  ids_keep = top_k_tokens(rng, jnp.zeros((batch, num_tokens)), num_tokens - num_masked)
  return _from_keep(ids_keep, num_tokens)


def simmim_num_masked_cells(grid: int | Sequence[int], cell: int, ratio: float) -> int:
  """SimMIM's count: ceil(cells * ratio) (14x14 tokens, cell 2, 0.6 -> 30 of 49)."""
  grid_h, grid_w = _grid(grid)
  return int(math.ceil((grid_h // cell) * (grid_w // cell) * ratio))


def cell_mask(rng: jax.Array, batch: int, grid: int | Sequence[int], cell: int,
              num_masked_cells: int) -> Mask:
  """SimMIM: mask `num_masked_cells` random cells of `cell` x `cell` tokens.

  SimMIM's ViT-B masks 32-px cells of a 224-px image with 16-px patches: a 7x7
  cell grid over 14x14 tokens, cell=2; 30 masked cells are 120 masked tokens.
  """
  grid_h, grid_w = _grid(grid)
  if grid_h % cell or grid_w % cell:
    raise ValueError(f"grid {grid_h}x{grid_w} is not divisible into {cell}x{cell} cells")
  cells_h, cells_w = grid_h // cell, grid_w // cell
  _check_count("num_masked_cells", num_masked_cells, cells_h * cells_w)
  cell_ids = top_k_tokens(rng, jnp.zeros((batch, cells_h * cells_w)), num_masked_cells)
  cells = ids_to_mask(cell_ids, cells_h * cells_w).reshape(batch, cells_h, cells_w)
  masked = jnp.repeat(jnp.repeat(cells, cell, axis=1), cell, axis=2)
  num_tokens = grid_h * grid_w
  return _from_masked(masked.reshape(batch, num_tokens),
                      num_tokens - num_masked_cells * cell * cell)


# ---------------------------------------------------------------------------
# BEiT / MaskFeat blocks.


def _draw_block(u: jax.Array, lo, hi, log_aspect: tuple[float, float], grid_h: int,
                grid_w: int, covered: jax.Array):
  """One BEiT-style rectangle per example from four uniforms `u` [4, N]: area
  U(lo, hi) (also when hi < lo, as `random.uniform`), log-uniform aspect, a
  uniform position reaching the last row and column (`random.randint` is
  inclusive). Returns (rect [N, T], tokens it adds to `covered` [N], whether
  it fits: h < grid_h and w < grid_w, the official test)."""
  area = lo + (hi - lo) * u[0]
  aspect = jnp.exp(log_aspect[0] + (log_aspect[1] - log_aspect[0]) * u[1])
  h = jnp.round(jnp.sqrt(area * aspect)).astype(jnp.int32)
  w = jnp.round(jnp.sqrt(area / aspect)).astype(jnp.int32)
  top = jnp.floor(u[2] * jnp.maximum(grid_h - h + 1, 1)).astype(jnp.int32)
  left = jnp.floor(u[3] * jnp.maximum(grid_w - w + 1, 1)).astype(jnp.int32)
  rect = _rect(top, left, h, w, grid_h, grid_w)
  return rect, jnp.sum(rect & ~covered, axis=-1), (h < grid_h) & (w < grid_w)


def _dilate4(x: jax.Array) -> jax.Array:
  """4-neighbour dilation of [N, H, W] bool."""
  p = jnp.pad(x, ((0, 0), (1, 1), (1, 1)))
  return x | p[:, :-2, 1:-1] | p[:, 2:, 1:-1] | p[:, 1:-1, :-2] | p[:, 1:-1, 2:]


def block_mask(rng: jax.Array, batch: int, grid_h: int, grid_w: int,
               num_masked: int,  # pylint: disable=redefined-outer-name
               *, min_block_tokens: int | None = None, max_block_tokens: int | None = None,
               min_aspect: float = 0.3, max_aspect: float | None = None,
               num_attempts: int = 24) -> Mask:
  """BEiT/MaskFeat block-wise masking with exactly `num_masked` masked tokens.

  Follows SlowFast's `MaskingGenerator` (as MaskFeat's ImageNet loader builds
  it: `num_mask = maskfeat_num_masked(T, 0.4)` = 78 at 14x14,
  `min_num_patches = num_mask // 5` = 15, no cap per block, aspect
  log-uniform in [0.3, 1/0.3]). Each attempt draws a rectangle of area
  U(min, min(remaining, max)) and that aspect, at a uniform position (reaching
  the last row/column, as `random.randint` is inclusive), rejects it unless
  h < grid_h and w < grid_w and it adds between 1 and `remaining` new
  tokens, exactly as the official rejection test. The official loop gives up
  after 10 failed tries of one block and then returns fewer tokens (about 29%
  of masks at 14x14, by 1-2 tokens); here `num_attempts` tries run in a fixed
  loop, and any shortfall is filled with tokens bordering the blocks (then
  anywhere), so the count is always exact (at 14x14 with 24 attempts, ~81% of
  masks are unions of whole blocks; the rest gain a few border tokens).

  Args:
    min_block_tokens: smallest block area; None -> num_masked // 5 (MaskFeat;
      BEiT uses 16).
    max_block_tokens: largest block area; None -> num_masked.
    max_aspect: None -> 1 / min_aspect.
    num_attempts: rectangles tried per example (the official accepts ~4.3 blocks
      on average at 14x14, at most ~11).
  """
  num_tokens = grid_h * grid_w
  _check_count("num_masked", num_masked, num_tokens)
  lo = num_masked // 5 if min_block_tokens is None else min_block_tokens
  cap = num_masked if max_block_tokens is None else max_block_tokens
  log_aspect = (math.log(min_aspect), math.log(max_aspect or 1.0 / min_aspect))
  k_draw, k_fill = jax.random.split(rng)
  u = jax.random.uniform(k_draw, (num_attempts, 4, batch), jnp.float32)

  def attempt(r, carry):
    covered, count = carry
    remaining = num_masked - count
    hi = jnp.minimum(remaining, cap).astype(jnp.float32)
    rect, new, fits = _draw_block(u[r], lo, hi, log_aspect, grid_h, grid_w, covered)
    ok = fits & (new > 0) & (new <= remaining)
    return covered | (rect & ok[:, None]), count + jnp.where(ok, new, 0)

  init = (jnp.zeros((batch, num_tokens), bool), jnp.zeros((batch,), jnp.int32))
  covered, _ = jax.lax.fori_loop(0, num_attempts, attempt, init)
  border = _dilate4(covered.reshape(batch, grid_h, grid_w)).reshape(batch, num_tokens)
  priority = 4.0 * covered + 2.0 * (border & ~covered)
  masked = ids_to_mask(top_k_tokens(k_fill, priority, num_masked), num_tokens)
  return _from_masked(masked, num_tokens - num_masked)


# ---------------------------------------------------------------------------
# data2vec 2.0 inverse block masking.


def data2vec_num_centres(num_tokens: int, mask_prob: float = 0.8,
                         mask_prob_adjust: float = 0.07, block: int = 3) -> int:
  """fairseq's `int(L * ((1 - mask_prob + adjust) / block**2))` (196 -> 5)."""
  return int(num_tokens * (((1 - mask_prob) + mask_prob_adjust) / block**2))


def inverse_block_mask(rng: jax.Array, batch: int, grid: int | Sequence[int],
                       num_keep: int | None = None, *, mask_prob: float = 0.8,
                       mask_prob_adjust: float = 0.07, block: int = 3) -> Mask:
  """data2vec 2.0's inverse block mask: the KEPT tokens are a few blocks.

  fairseq `compute_block_mask_2d(inverse_mask=True)`: draw
  `data2vec_num_centres` centres uniformly with replacement, mark the
  `block` x `block` square around each (clamped at the edges, so edge blocks
  are smaller), then keep exactly `num_keep` (None -> int(T * (1 - mask_prob)),
  39 of 196) by uniformly dropping block tokens or adding non-block tokens,
  i.e. `top_k(2 * in_block + U)`. `ids_keep` are the student's visible tokens.
  The official code is for square grids only; this takes any grid.
  """
  grid_h, grid_w = _grid(grid)
  num_tokens = grid_h * grid_w
  if num_keep is None:
    num_keep = int(num_tokens * (1 - mask_prob))
  _check_count("num_keep", num_keep, num_tokens)
  num_centres = data2vec_num_centres(num_tokens, mask_prob, mask_prob_adjust, block)
  k_centre, k_pick = jax.random.split(rng)
  centres = jax.random.randint(k_centre, (batch, num_centres), 0, num_tokens)
  # fairseq's offsets are i - block // 2 for i in range(block); clamping them
  # to the grid is the same as intersecting the square with the grid.
  top = centres // grid_w - block // 2
  left = centres % grid_w - block // 2
  in_block = jnp.any(_rect(top, left, block, block, grid_h, grid_w), axis=1)
  return _from_keep(top_k_tokens(k_pick, 2.0 * in_block, num_keep), num_tokens)


# ---------------------------------------------------------------------------
# I-JEPA multi-block masking.


def _official_block_size(u: float, grid_h: int, grid_w: int, scale, aspect) -> tuple[int, int]:
  """I-JEPA's `_sample_block_size` for one uniform draw u, in float64."""
  max_keep = int(grid_h * grid_w * (scale[0] + u * (scale[1] - scale[0])))
  ratio = aspect[0] + u * (aspect[1] - aspect[0])
  h = int(round(math.sqrt(max_keep * ratio)))
  w = int(round(math.sqrt(max_keep / ratio)))
  return max(min(h, grid_h - 1), 1), max(min(w, grid_w - 1), 1)


@functools.lru_cache(maxsize=64)
def multi_block_shapes(grid: int | tuple[int, int], scale: tuple[float, float],
                       aspect: tuple[float, float]) -> tuple[tuple[int, int], ...]:
  """The (h, w) block shapes I-JEPA's sampler can produce, enumerated.

  224/16 targets: ((5, 6), (6, 5), (6, 6), (7, 5), (8, 5)); context (13, 13).
  """
  grid_h, grid_w = _grid(grid)
  shapes = {_official_block_size(float(u), grid_h, grid_w, scale, aspect)
            for u in np.linspace(0.0, 1.0, 20001)}
  return tuple(sorted(shapes))


def _block_size(u: jax.Array, grid_h: int, grid_w: int, scale, aspect):
  """`_official_block_size` on device (float32), from one scalar draw."""
  max_keep = jnp.floor(grid_h * grid_w * (scale[0] + u * (scale[1] - scale[0])))
  ratio = aspect[0] + u * (aspect[1] - aspect[0])
  h = jnp.round(jnp.sqrt(max_keep * ratio)).astype(jnp.int32)
  w = jnp.round(jnp.sqrt(max_keep / ratio)).astype(jnp.int32)
  return jnp.clip(h, 1, max(grid_h - 1, 1)), jnp.clip(w, 1, max(grid_w - 1, 1))


def _block_corner(rng, shape, h, w, grid_h: int, grid_w: int, official_positions: bool):
  span = 0 if official_positions else 1  # randint(0, H - h) excludes H - h.
  k_top, k_left = jax.random.split(rng)
  top = jnp.floor(jax.random.uniform(k_top, shape) * jnp.maximum(grid_h - h + span, 1))
  left = jnp.floor(jax.random.uniform(k_left, shape) * jnp.maximum(grid_w - w + span, 1))
  return top.astype(jnp.int32), left.astype(jnp.int32)


def multi_block_mask(rng: jax.Array, batch: int, grid: int | Sequence[int], *,
                     num_context_tokens: int, num_targets: int = 4,
                     target_scale: tuple[float, float] = (0.15, 0.2),
                     target_aspect: tuple[float, float] = (0.75, 1.5),
                     context_scale: tuple[float, float] = (0.85, 1.0),
                     max_target_tokens: int | None = None,
                     official_positions: bool = False) -> MultiBlockMask:
  """I-JEPA's multi-block masks (src/masks/multiblock.py `MaskCollator`).

  Reproduced from the official code:
  - Block SIZES are drawn once per batch (every example shares the target
    shape and the context shape), LOCATIONS per example and block.
  - One uniform draw sets both scale and aspect ratio of a block, so they are
    perfectly correlated: at 224/16 targets are 5x6, 6x5, 6x6, 7x5 or 8x5
    (30-40 tokens; see `multi_block_shapes`).
  - Sizes are clipped to grid - 1, so the context block (scale 0.85-1.0,
    aspect 1) is always 13x13 at 224/16, never the whole image.
  - Context = context block minus the union of all targets.
  Fixed:
  - Positions reach the last row and column (the official
    `randint(0, H - h)` excludes `H - h`, ijepa PR #40/#59), which also lets
    the context block move; `official_positions=True` restores the official
    range (then the 13x13 context is always at the top-left).
  - The official collator truncates every context to the batch minimum in
    raster order (so bottom-right tokens drop out of context, ijepa #60).
    Here exactly `num_context_tokens` are drawn uniformly from each context
    (`top_k(2 * is_context + U)`); if a context is smaller, the extra slots
    are non-context tokens flagged invalid in `context_valid`.
  - Not reproduced: the official retry that relaxes the target exclusion when
    a context has <= min_keep (10) tokens; such (rare) contexts just have few
    valid slots.

  Args:
    num_context_tokens: static context length (the notes suggest ~64 at 224/16;
      the context averages ~82 tokens, 5th percentile ~60).
    max_target_tokens: static target length; None -> the largest shape of
      `multi_block_shapes` (40 at 224/16). Larger blocks would be truncated in
      raster order.
    official_positions: use the official (biased) position range.
  """
  grid_h, grid_w = _grid(grid)
  num_tokens = grid_h * grid_w
  target_scale, target_aspect = tuple(target_scale), tuple(target_aspect)
  context_scale = tuple(context_scale)
  if max_target_tokens is None:
    max_target_tokens = max(h * w for h, w in
                            multi_block_shapes((grid_h, grid_w), target_scale, target_aspect))
  _check_count("num_context_tokens", num_context_tokens, num_tokens)
  k_size, k_target, k_context, k_pick = jax.random.split(rng, 4)
  u_target, u_context = jax.random.uniform(k_size, (2,))
  th, tw = _block_size(u_target, grid_h, grid_w, target_scale, target_aspect)
  ch, cw = _block_size(u_context, grid_h, grid_w, context_scale, (1.0, 1.0))

  top, left = _block_corner(k_target, (batch, num_targets), th, tw, grid_h, grid_w,
                            official_positions)
  k = jnp.arange(max_target_tokens)
  rows, cols = k // tw, k % tw
  target_ids = (top[..., None] + rows) * grid_w + left[..., None] + cols
  target_valid = jnp.broadcast_to(k < th * tw, target_ids.shape)
  target_ids = jnp.where(target_valid, target_ids, 0).astype(jnp.int32)
  in_targets = jnp.any(_rect(top, left, th, tw, grid_h, grid_w), axis=1)

  ctop, cleft = _block_corner(k_context, (batch,), ch, cw, grid_h, grid_w, official_positions)
  is_context = _rect(ctop, cleft, ch, cw, grid_h, grid_w) & ~in_targets
  context_ids = top_k_tokens(k_pick, 2.0 * is_context, num_context_tokens)
  context_valid = jnp.take_along_axis(is_context, context_ids, axis=1)
  return MultiBlockMask(context_ids, context_valid, target_ids, target_valid)


# ---------------------------------------------------------------------------
# iBOT and DINOv2: block masks up to a per-crop target (the targets and the
# padded packing of the masked tokens are in `data.mask_budgets`).


def block_mask_up_to(rng: jax.Array, targets: jax.Array, grid_h: int, grid_w: int, *,
                     min_block_tokens: int, max_block_tokens: int | None = None,
                     min_aspect: float = 0.3, give_up_after: int = 10,
                     num_attempts: int = 48) -> jax.Array:
  """Block masks with at most `targets[i]` masked tokens in row i: [N, T] bool.

  The loop of the BEiT-style generators that iBOT (`ImageFolderMask.__getitem__`,
  `loader.py`) and DINOv2 (`MaskingGenerator`, `dinov2/data/masking.py`) run per
  crop: while fewer than `target` tokens are masked, draw a rectangle of area
  U(min, min(target - count, max)) and log-uniform aspect in [min_aspect,
  1/min_aspect] at a uniform position; keep it if h < grid_h, w < grid_w and it
  adds between 1 and target - count new tokens; stop after `give_up_after`
  consecutive rejections (their 10 tries per block). The count never exceeds the
  target and may fall short of it, exactly as there. `num_attempts` bounds the
  loop statically (the official loop is unbounded; at 14x14 or 16x16 with these
  settings 48 attempts leave < 1% of masks unfinished, see the tests).

  Args:
    targets: [N] float (iBOT's `ratio * H * W`) or int (DINOv2's
      `int(N * ratio)`) upper bounds; 0 gives an empty mask.
    min_block_tokens: smallest block area (iBOT: (min(H, W) // 3) ** 2;
      DINOv2: 4).
    max_block_tokens: largest block area (DINOv2: half the tokens); None: none.
  """
  batch = targets.shape[0]
  num_tokens = grid_h * grid_w
  targets = jnp.asarray(targets, jnp.float32)
  cap = jnp.inf if max_block_tokens is None else float(max_block_tokens)
  log_aspect = (math.log(min_aspect), math.log(1.0 / min_aspect))
  u = jax.random.uniform(rng, (num_attempts, 4, batch), jnp.float32)

  def attempt(r, carry):
    covered, count, fails = carry
    remaining = jnp.minimum(targets - count, cap)
    active = (count < targets) & (fails < give_up_after)
    rect, new, fits = _draw_block(u[r], min_block_tokens, remaining, log_aspect, grid_h,
                                  grid_w, covered)
    ok = active & fits & (new > 0) & (new <= remaining)
    fails = jnp.where(ok, 0, fails + active)
    return covered | (rect & ok[:, None]), count + jnp.where(ok, new, 0), fails

  init = (jnp.zeros((batch, num_tokens), bool), jnp.zeros((batch,), jnp.int32),
          jnp.zeros((batch,), jnp.int32))
  covered, _, _ = jax.lax.fori_loop(0, num_attempts, attempt, init)
  return covered
