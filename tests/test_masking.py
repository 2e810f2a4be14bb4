"""Static-shape mask samplers: exact counts, randomness across examples and
steps, one compilation per shape, and block statistics against numpy/Python
transcriptions of the official samplers (SlowFast's MaskingGenerator, fairseq's
compute_block_mask_2d, I-JEPA's MaskCollator)."""

import math
import random

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from repr_learn.data import masking

GRID = 14  # 224 px, 16-px patches.
T = GRID * GRID


def _components(grid_mask):
  """Sizes of the 4-connected components of a 2-D bool array."""
  seen = np.zeros_like(grid_mask, bool)
  h, w = grid_mask.shape
  sizes = []
  for i in range(h):
    for j in range(w):
      if grid_mask[i, j] and not seen[i, j]:
        stack, size = [(i, j)], 0
        seen[i, j] = True
        while stack:
          y, x = stack.pop()
          size += 1
          for dy, dx in ((1, 0), (-1, 0), (0, 1), (0, -1)):
            v, u = y + dy, x + dx
            if 0 <= v < h and 0 <= u < w and grid_mask[v, u] and not seen[v, u]:
              seen[v, u] = True
              stack.append((v, u))
        sizes.append(size)
  return sizes


def _neighbours8(grid_mask):
  """For each True cell, how many of its 8 neighbours are True."""
  p = np.pad(grid_mask.astype(int), 1)
  h, w = grid_mask.shape
  total = sum(p[1 + dy:1 + dy + h, 1 + dx:1 + dx + w]
              for dy in (-1, 0, 1) for dx in (-1, 0, 1) if dy or dx)
  return total[grid_mask]


def _check_mask(mask, batch, num_tokens, num_keep):
  ids, masked = np.asarray(mask.ids_keep), np.asarray(mask.masked)
  assert ids.shape == (batch, num_keep) and ids.dtype == np.int32
  assert masked.shape == (batch, num_tokens) and masked.dtype == bool
  assert np.all(masked.sum(1) == num_tokens - num_keep)
  assert np.all(np.diff(ids, axis=1) > 0)  # Sorted and distinct.
  for row_ids, row_masked in zip(ids, masked):
    np.testing.assert_array_equal(np.flatnonzero(~row_masked), row_ids)
  # Different examples, and a different step, give different masks.
  assert len({m.tobytes() for m in masked}) == batch
  return masked


def test_counts_helpers_follow_the_official_formulas():
  assert masking.num_masked(196, 0.75) == 147  # MAE keeps int(196 * 0.25) = 49.
  assert masking.num_masked(196, 0.6) == 196 - int(196 * 0.4)
  assert masking.maskfeat_num_masked(196, 0.4) == 78  # round(78.4).
  assert masking.num_masked(196, 0.4) == 79  # MAE's rule gives one more.
  assert masking.simmim_num_masked_cells(14, 2, 0.6) == 30  # ceil(49 * 0.6).
  assert masking.simmim_num_masked_cells((12, 8), 4, 0.5) == 3
  assert masking.data2vec_num_centres(196) == 5  # int(196 * 0.27 / 9).


def test_top_k_tokens_prefers_structure_and_breaks_ties_at_random():
  priority = np.zeros((64, 10), np.float32)
  priority[:, :3] = 2.0
  ids = np.asarray(masking.top_k_tokens(jax.random.PRNGKey(0), priority, 5))
  assert ids.shape == (64, 5) and ids.dtype == np.int32
  assert np.all(np.diff(ids, axis=1) > 0)
  assert np.all(ids[:, :3] == [0, 1, 2])  # The structured tokens always win.
  # The two remaining slots spread over all 7 tied tokens.
  assert set(ids[:, 3:].ravel()) == set(range(3, 10))
  with pytest.raises(ValueError):
    masking.top_k_tokens(jax.random.PRNGKey(0), priority, 11)


def test_ids_mask_round_trip():
  ids = jnp.array([[0, 3, 5], [1, 2, 7]], jnp.int32)
  m = masking.ids_to_mask(ids, 8)
  np.testing.assert_array_equal(np.asarray(m).sum(1), [3, 3])
  np.testing.assert_array_equal(masking.mask_to_ids(m, 3), ids)


def test_random_mask_is_exact_and_fresh_per_step():
  sample = jax.jit(masking.random_mask, static_argnums=(1, 2, 3))
  masked = _check_mask(sample(jax.random.PRNGKey(0), 8, T, 147), 8, T, 49)
  assert not np.array_equal(masked, np.asarray(sample(jax.random.PRNGKey(1), 8, T, 147).masked))
  # Uniform: over many examples every token is masked about 75% of the time.
  many = np.asarray(sample(jax.random.PRNGKey(2), 512, T, 147).masked)
  assert np.abs(many.mean(0) - 0.75).max() < 0.1


def test_cell_mask_masks_whole_cells():
  sample = jax.jit(masking.cell_mask, static_argnums=(1, 2, 3, 4))
  m = sample(jax.random.PRNGKey(0), 8, GRID, 2, 30)
  masked = _check_mask(m, 8, T, T - 120).reshape(8, 7, 2, 7, 2)
  cells = masked[:, :, 0, :, 0]
  # Every 2x2 cell is all masked or all visible, and 30 of 49 are masked.
  assert np.all(masked == cells[:, :, None, :, None])
  assert np.all(cells.sum((1, 2)) == 30)
  m2 = sample(jax.random.PRNGKey(1), 8, GRID, 2, 30)
  assert not np.array_equal(np.asarray(m.masked), np.asarray(m2.masked))


class _SlowFastMaskingGenerator:
  """SlowFast datasets/transform.py MaskingGenerator, transcribed."""

  def __init__(self, size, num, min_num, max_num=None, min_aspect=0.3):
    self.height = self.width = size
    self.num, self.min_num = num, min_num
    self.max_num = num if max_num is None else max_num
    self.log_aspect = (math.log(min_aspect), math.log(1 / min_aspect))

  def _mask(self, mask, max_patches):
    delta = 0
    for _ in range(10):
      area = random.uniform(self.min_num, max_patches)
      aspect = math.exp(random.uniform(*self.log_aspect))
      h = int(round(math.sqrt(area * aspect)))
      w = int(round(math.sqrt(area / aspect)))
      if w < self.width and h < self.height:
        top = random.randint(0, self.height - h)
        left = random.randint(0, self.width - w)
        already = mask[top:top + h, left:left + w].sum()
        if 0 < h * w - already <= max_patches:
          delta += h * w - already
          mask[top:top + h, left:left + w] = 1
        if delta > 0:
          break
    return delta

  def __call__(self):
    mask = np.zeros((self.height, self.width), int)
    count = 0
    while count < self.num:
      delta = self._mask(mask, min(self.num - count, self.max_num))
      if delta == 0:
        break
      count += delta
    return mask.astype(bool)


def test_block_mask_matches_maskfeat_block_statistics():
  num_mask = masking.maskfeat_num_masked(T, 0.4)  # 78 tokens, min block 78 // 5 = 15.
  m = jax.jit(lambda r: masking.block_mask(r, 256, GRID, GRID, num_mask))(jax.random.PRNGKey(0))
  masked = _check_mask(m, 256, T, T - num_mask).reshape(-1, GRID, GRID)
  ours = [_components(x) for x in masked]
  random.seed(0)
  official_gen = _SlowFastMaskingGenerator(GRID, num_mask, num_mask // 5)
  official = [_components(official_gen()) for _ in range(256)]
  n_ours = np.mean([len(c) for c in ours])
  n_official = np.mean([len(c) for c in official])
  # The official masks are ~1.4 connected blocks of ~55 tokens; a uniform mask
  # of 78 tokens has ~20 components.
  assert 1.0 <= n_ours <= 2.2 and abs(n_ours - n_official) < 0.3, (n_ours, n_official)
  mean_size = np.mean([s for c in ours for s in c])
  assert 35 <= mean_size <= 78
  # Blocky: masked tokens mostly have masked neighbours.
  assert np.mean(np.concatenate([_neighbours8(x) for x in masked])) > 5.0


def test_block_mask_small_grid_is_exact():
  sample = jax.jit(lambda r: masking.block_mask(r, 16, 4, 6, 10, min_block_tokens=2))
  m = sample(jax.random.PRNGKey(3))
  _check_mask(m, 16, 24, 14)


def _fairseq_inverse_block_mask(rng, batch, d, mask_prob=0.8, adjust=0.07, length=3):
  """fairseq compute_block_mask_2d(inverse_mask=True), transcribed: kept = 1."""
  length_sq, num_tokens = length**2, d * d
  mask_prob = 1 - mask_prob
  mask = np.zeros((batch, d, d))
  num_centres = int(num_tokens * ((mask_prob + adjust) / length_sq))
  centres = rng.integers(0, num_tokens, (batch, num_centres))
  offset = length // 2
  for b in range(batch):
    for c in centres[b]:
      for i in range(length):
        for j in range(length):
          y = min(max(c // d + i - offset, 0), d - 1)
          x = min(max(c % d + j - offset, 0), d - 1)
          mask[b, y, x] = 1
  mask = mask.reshape(batch, -1)
  target = int(num_tokens * mask_prob)
  for m in mask:
    n = int(m.sum())
    if n > target:
      m[rng.choice(np.flatnonzero(m), n - target, replace=False)] = 0
    elif n < target:
      m[rng.choice(np.flatnonzero(m == 0), target - n, replace=False)] = 1
  return mask.astype(bool)  # Before the final `1 - mask`: True = kept.


def test_inverse_block_mask_keeps_blocks_like_data2vec():
  m = jax.jit(lambda r: masking.inverse_block_mask(r, 128, GRID))(jax.random.PRNGKey(0))
  masked = _check_mask(m, 128, T, 39)
  kept = ~masked.reshape(-1, GRID, GRID)
  official = _fairseq_inverse_block_mask(np.random.default_rng(0), 128, GRID)
  official = official.reshape(-1, GRID, GRID)
  assert np.all(official.sum((1, 2)) == 39)
  # Kept tokens sit in 3x3 blocks: ~5 blobs with many kept neighbours each,
  # where 39 uniform tokens would form ~30 components with ~1.5 neighbours.
  for stat in (lambda k: len(_components(k)), lambda k: _neighbours8(k).mean()):
    ours, ref = np.mean([stat(k) for k in kept]), np.mean([stat(k) for k in official])
    assert abs(ours - ref) < 0.12 * ref, (ours, ref)
  assert np.mean([len(_components(k)) for k in kept]) < 7
  assert np.mean([_neighbours8(k).mean() for k in kept]) > 3.5
  _check_mask(masking.inverse_block_mask(jax.random.PRNGKey(1), 4, (8, 12), 20), 4, 96, 20)


def _ijepa_block_size(u, height, width, scale, aspect):
  """I-JEPA MaskCollator._sample_block_size for one draw, transcribed."""
  max_keep = int(height * width * (scale[0] + u * (scale[1] - scale[0])))
  ratio = aspect[0] + u * (aspect[1] - aspect[0])
  h = int(round(math.sqrt(max_keep * ratio)))
  w = int(round(math.sqrt(max_keep / ratio)))
  while h >= height:
    h -= 1
  while w >= width:
    w -= 1
  return h, w


def test_multi_block_shapes_enumerate_the_official_sizes():
  shapes = masking.multi_block_shapes(GRID, (0.15, 0.2), (0.75, 1.5))
  assert shapes == ((5, 6), (6, 5), (6, 6), (7, 5), (8, 5))
  ref = {_ijepa_block_size(u, GRID, GRID, (0.15, 0.2), (0.75, 1.5))
         for u in np.linspace(0, 1, 5001)}
  assert set(shapes) == ref
  assert masking.multi_block_shapes(GRID, (0.85, 1.0), (1.0, 1.0)) == ((13, 13),)


def _block_shape(ids):
  rows, cols = ids // GRID, ids % GRID
  h, w = rows.max() - rows.min() + 1, cols.max() - cols.min() + 1
  assert h * w == len(ids)  # A full rectangle.
  return int(h), int(w)


def _ijepa_context_sizes(rng, batch):
  """Context sizes of I-JEPA's collator at 224/16 before its truncation."""
  sizes = []
  h, w = _ijepa_block_size(rng.uniform(), GRID, GRID, (0.15, 0.2), (0.75, 1.5))
  for _ in range(batch):
    allowed = np.zeros((GRID, GRID), bool)
    allowed[:13, :13] = True  # The context: always 13x13 at the top-left.
    for _ in range(4):
      top, left = rng.integers(0, GRID - h), rng.integers(0, GRID - w)
      allowed[top:top + h, left:left + w] = False
    sizes.append(allowed.sum())
  return sizes


@pytest.mark.parametrize("official_positions", [False, True])
def test_multi_block_mask_matches_ijepa(official_positions):
  batch, steps, k_ctx = 16, 32, 196

  def sample(r):
    return masking.multi_block_mask(r, batch, GRID, num_context_tokens=k_ctx,
                                    official_positions=official_positions)

  out = jax.device_get(jax.jit(jax.vmap(sample))(jax.random.split(jax.random.PRNGKey(0), steps)))
  assert out.target_ids.shape == (steps, batch, 4, 40)
  assert out.target_valid.shape == (steps, batch, 4, 40)
  assert out.context_ids.shape == out.context_valid.shape == (steps, batch, k_ctx)
  shapes, ctx_sizes, last_row = set(), [], False
  for s in range(steps):
    step_shapes = set()
    for n in range(batch):
      targets = np.zeros(T, bool)
      for j in range(4):
        valid = out.target_valid[s, n, j]
        assert np.all(valid[:valid.sum()]) and np.all(out.target_ids[s, n, j][~valid] == 0)
        ids = out.target_ids[s, n, j][valid]
        step_shapes.add(_block_shape(ids))
        targets[ids] = True
        last_row |= bool(np.any(ids // GRID == GRID - 1) or np.any(ids % GRID == GRID - 1))
      ctx = out.context_ids[s, n][out.context_valid[s, n]]
      assert len(set(ctx)) == len(ctx) and not np.any(targets[ctx])
      if official_positions:
        assert np.all(ctx // GRID < 13) and np.all(ctx % GRID < 13)
      ctx_sizes.append(len(ctx))
    assert len(step_shapes) == 1  # One target shape per batch.
    shapes |= step_shapes
  assert shapes <= {(5, 6), (6, 5), (6, 6), (7, 5), (8, 5)} and len(shapes) >= 3
  # Official positions never reach the last row or column; ours do.
  assert last_row != official_positions
  # The notes' simulation: mean 82, p5 60, p95 105 tokens.
  ref_rng = np.random.default_rng(0)
  ref = [s for _ in range(steps) for s in _ijepa_context_sizes(ref_rng, batch)]
  assert 74 <= np.mean(ctx_sizes) <= 90 and abs(np.mean(ctx_sizes) - np.mean(ref)) < 5
  # Locations differ per example.
  assert len({t.tobytes() for t in out.target_ids[0]}) == batch


def test_multi_block_mask_pads_a_short_context():
  rng = jax.random.PRNGKey(0)
  sample = jax.jit(masking.multi_block_mask, static_argnums=(1, 2),
                   static_argnames=("num_context_tokens",))
  full = sample(rng, 32, GRID, num_context_tokens=T)
  short = sample(rng, 32, GRID, num_context_tokens=100)
  sizes = np.asarray(full.context_valid).sum(1)
  valid = np.asarray(short.context_valid)
  assert valid.shape == (32, 100)
  assert np.any(sizes < 100) and np.any(sizes > 64)
  # Every context token is taken when it fits; the rest are flagged invalid.
  np.testing.assert_array_equal(valid.sum(1), np.minimum(sizes, 100))
  np.testing.assert_array_equal(short.target_ids, full.target_ids)


@pytest.mark.parametrize("sampler", [
    lambda r: masking.random_mask(r, 4, T, 147),
    lambda r: masking.cell_mask(r, 4, GRID, 2, 30),
    lambda r: masking.block_mask(r, 4, GRID, GRID, 78),
    lambda r: masking.inverse_block_mask(r, 4, GRID),
    lambda r: masking.multi_block_mask(r, 4, GRID, num_context_tokens=64),
], ids=["random", "cell", "block", "inverse_block", "multi_block"])
def test_each_sampler_compiles_once(sampler):
  traces = []

  @jax.jit
  def step(rng, step_index):
    traces.append(1)
    return sampler(jax.random.fold_in(rng, step_index))

  rng = jax.random.PRNGKey(0)
  first = jax.device_get(step(rng, 0))
  second = jax.device_get(step(rng, 1))
  assert len(traces) == 1
  assert any(not np.array_equal(a, b) for a, b in zip(first, second))


def test_gather_and_scatter_reproduce_mae_unshuffle():
  rng = np.random.default_rng(0)
  n, t, d, k = 3, 10, 4, 4
  x = rng.normal(size=(n, t, d)).astype(np.float32)
  mask = masking.random_mask(jax.random.PRNGKey(0), n, t, t - k)
  ids_keep = np.asarray(mask.ids_keep)
  x_vis = np.asarray(masking.gather_tokens(x, ids_keep))
  np.testing.assert_array_equal(x_vis, np.take_along_axis(x, ids_keep[..., None], 1))
  # MAE: x_ = cat([x_vis, mask_tokens]); gather(x_, ids_restore).
  mask_token = rng.normal(size=(d,)).astype(np.float32)
  ids_masked = np.stack([np.flatnonzero(m) for m in np.asarray(mask.masked)])
  ids_restore = np.argsort(np.concatenate([ids_keep, ids_masked], 1), axis=1)
  x_ = np.concatenate([x_vis, np.broadcast_to(mask_token, (n, t - k, d))], 1)
  expected = np.take_along_axis(x_, ids_restore[..., None], 1)
  full = masking.scatter_tokens(jnp.broadcast_to(mask_token, (n, t, d)), mask.ids_keep, x_vis)
  np.testing.assert_array_equal(full, expected)
  # Extra index axes (I-JEPA's [N, M, K] targets) gather per example.
  ids = np.array([[[0, 1], [2, 3]], [[4, 5], [6, 7]], [[8, 9], [0, 0]]], np.int32)
  got = masking.gather_tokens(x, ids)
  assert got.shape == (n, 2, 2, d)
  np.testing.assert_array_equal(got[2, 0, 1], x[2, 9])
