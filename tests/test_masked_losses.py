"""Masked-modelling targets and losses against numpy transcriptions of the
official PyTorch code (MAE models_mae.py, SimMIM models/simmim.py, SlowFast
HOGLayerC and masked.py, fairseq data2vec2.py, I-JEPA train.py), plus the
properties they are built for."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from repr_learn.losses import masked

RTOL, ATOL = 1e-5, 1e-5


def _rand(*shape, seed=0):
  return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


def _nchw(images):
  return np.ascontiguousarray(images.transpose(0, 3, 1, 2))


def _mae_patchify(imgs, p):
  """MAE MaskedAutoencoderViT.patchify on [N, 3, H, W]."""
  n, c, h_px, _ = imgs.shape
  h = w = h_px // p
  x = imgs.reshape(n, c, h, p, w, p)
  x = np.einsum("nchpwq->nhwpqc", x)
  return x.reshape(n, h * w, p**2 * c)


def _mae_forward_loss(imgs, pred, mask, p, norm_pix_loss):
  target = _mae_patchify(imgs, p).astype(np.float64)
  if norm_pix_loss:
    mean = target.mean(-1, keepdims=True)
    var = target.var(-1, keepdims=True, ddof=1)  # torch .var is unbiased.
    target = (target - mean) / (var + 1e-6)**.5
  loss = ((pred - target)**2).mean(-1)
  return (loss * mask).sum() / mask.sum()


def test_patchify_is_maes_order_and_round_trips():
  images = _rand(2, 32, 48, 3)
  patches = masked.patchify(images, 16)
  assert patches.shape == (2, 6, 16 * 16 * 3)
  square = images[:, :, :32]
  np.testing.assert_array_equal(masked.patchify(square, 16), _mae_patchify(_nchw(square), 16))
  np.testing.assert_array_equal(masked.unpatchify(patches, 16, (2, 3)), images)
  np.testing.assert_array_equal(masked.unpatchify(masked.patchify(square, 8), 8), square)
  # Token 1 is the top row's second patch; its first value is pixel (0, 16, R).
  assert patches[0, 1, 0] == images[0, 0, 16, 0]
  assert patches[0, 1, 1] == images[0, 0, 16, 1]  # Channels vary fastest.


@pytest.mark.parametrize("norm_pix", [False, True])
def test_mae_loss_matches_forward_loss(norm_pix):
  p, n = 8, 3
  images = _rand(n, 32, 32, 3, seed=1)
  pred = _rand(n, 16, p * p * 3, seed=2)
  mask = (np.random.default_rng(3).uniform(size=(n, 16)) < 0.75).astype(np.float32)
  target = masked.patchify(images, p)
  if norm_pix:
    target = masked.normalized_pixel_targets(target)
  loss = masked.mae_loss(pred, target, mask)
  expected = _mae_forward_loss(_nchw(images), pred, mask, p, norm_pix)
  np.testing.assert_allclose(loss, expected, rtol=RTOL)


def test_norm_pix_targets_use_unbiased_variance():
  patches = _rand(2, 5, 12, seed=4) * 3 + 1
  got = np.asarray(masked.normalized_pixel_targets(patches))
  centred = patches - patches.mean(-1, keepdims=True)
  unbiased = centred / np.sqrt(patches.var(-1, ddof=1, keepdims=True) + 1e-6)
  biased = centred / np.sqrt(patches.var(-1, ddof=0, keepdims=True) + 1e-6)
  np.testing.assert_allclose(got, unbiased, rtol=1e-5, atol=1e-6)
  # With 12 values per patch the two differ by sqrt(12/11), ~4%.
  assert not np.allclose(got, biased, rtol=1e-2)
  np.testing.assert_allclose(got.var(-1, ddof=1), 1.0, rtol=1e-4)


def test_masked_mean_ignores_unmasked_tokens():
  per_token = _rand(4, 10, seed=5)
  weight = np.zeros((4, 10), bool)
  weight[:, ::3] = True
  got = masked.masked_mean(per_token, weight)
  np.testing.assert_allclose(got, per_token[weight].mean(), rtol=RTOL)
  changed = np.where(weight, per_token, 1e6)
  np.testing.assert_allclose(masked.masked_mean(changed, weight), got, rtol=RTOL)
  # Global over the batch: an example with more masked tokens counts more.
  uneven = np.zeros((2, 10), bool)
  uneven[0, :8], uneven[1, :2] = True, True
  np.testing.assert_allclose(masked.masked_mean(per_token[:2], uneven),
                             per_token[:2][uneven].mean(), rtol=RTOL)
  assert np.isfinite(masked.masked_mean(per_token, np.zeros((4, 10))))


def test_simmim_loss_matches_official():
  n, p, c = 2, 4, 3
  images, pred = _rand(n, 16, 16, c, seed=6), _rand(n, 16, 16, c, seed=7)
  token_mask = np.random.default_rng(8).uniform(size=(n, 16)) < 0.6
  # SimMIM: mask [N, h, w] -> repeat_interleave(p) twice -> unsqueeze(1).
  m = token_mask.reshape(n, 4, 4).astype(np.float64)
  m = m.repeat(p, 1).repeat(p, 2)[:, None]
  loss_recon = np.abs(_nchw(images) - _nchw(pred))
  expected = (loss_recon * m).sum() / (m.sum() + 1e-5) / c
  pixel_mask = masked.token_mask_to_pixels(jnp.asarray(token_mask), p)
  assert pixel_mask.shape == (n, 16, 16)
  np.testing.assert_allclose(masked.simmim_loss(pred, images, pixel_mask), expected, rtol=RTOL)


def _conv3x3_groups(x, weight):
  """F.conv2d(x, weight [C, 1, 3, 3], groups=C) on an already padded x."""
  n, c, h, w = x.shape
  out = np.zeros((n, c, h - 2, w - 2), np.float64)
  for i in range(3):
    for j in range(3):
      out += weight[None, :, 0, i, j, None, None] * x[:, :, i:i + h - 2, j:j + w - 2]
  return out


def _unfold(a, dim, size):
  """torch.Tensor.unfold(dim, size, step=size): windows become the last axis."""
  num = a.shape[dim] // size
  a = np.take(a, np.arange(num * size), axis=dim)
  a = a.reshape(a.shape[:dim] + (num, size) + a.shape[dim + 1:])
  return np.moveaxis(a, dim + 1, -1)


def _hog_layer_c(x, nbins=9, pool=8):
  """SlowFast models/operators.py HOGLayerC.forward on [B, 3, H, W]."""
  weight_x = np.array([[1, 0, -1], [2, 0, -2], [1, 0, -1]], np.float64)
  weight_x = np.repeat(weight_x[None, None], 3, axis=0)
  weight_y = weight_x.transpose(0, 1, 3, 2)
  x = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (1, 1), (1, 1)), mode="reflect")
  gx_rgb = _conv3x3_groups(x, weight_x)
  gy_rgb = _conv3x3_groups(x, weight_y)
  norm_rgb = np.linalg.norm(np.stack([gx_rgb, gy_rgb], -1), axis=-1)
  phase = np.arctan2(gx_rgb, gy_rgb) / math.pi * nbins
  b, c, h, w = norm_rgb.shape
  out = np.zeros((b, c, nbins, h, w))
  idx = np.floor(phase).astype(int) % nbins
  bb, cc, hh, ww = np.meshgrid(*map(np.arange, (b, c, h, w)), indexing="ij")
  np.add.at(out, (bb, cc, idx, hh, ww), norm_rgb)  # scatter_add_ along dim 2.
  out = _unfold(out, 3, pool)
  out = _unfold(out, 4, pool)
  out = out.sum(axis=(-1, -2))
  norm = np.sqrt((out**2).sum(axis=2, keepdims=True))
  return out / np.maximum(norm, 1e-12)  # F.normalize(p=2, dim=2).


def _maskfeat_hog_label(x, feat_size, nbins=9, pool=8):
  """SlowFast masked.py _get_hog_label_2d, before selecting masked tokens."""
  tmp_hog = _hog_layer_c(x, nbins, pool)
  b, c, k, h, w = tmp_hog.shape
  tmp_hog = tmp_hog.reshape(b, c * k, h, w)  # flatten(1, 2)
  unfold_size = tmp_hog.shape[-1] // feat_size
  tmp_hog = tmp_hog.transpose(0, 2, 3, 1)
  tmp_hog = _unfold(_unfold(tmp_hog, 1, unfold_size), 2, unfold_size)
  b, gh, gw = tmp_hog.shape[:3]
  tmp_hog = tmp_hog.reshape(b, gh * gw, *tmp_hog.shape[3:])  # flatten(1, 2)
  return tmp_hog.reshape(b, gh * gw, -1)  # flatten(2)


def test_hog_features_match_slowfast_hog_layer():
  images = _rand(2, 32, 24, 3, seed=9)
  got = masked.hog_features(images)
  assert got.shape == (2, 4, 3, 3, 9)
  expected = _hog_layer_c(_nchw(images)).transpose(0, 3, 4, 1, 2)
  np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(np.linalg.norm(got, axis=-1), 1.0, rtol=1e-5)


@pytest.mark.parametrize("patch", [16, 8])
def test_hog_targets_use_maskfeats_token_layout(patch):
  images = _rand(2, 32, 32, 3, seed=10)
  got = masked.hog_targets(images, patch)
  u = patch // 8
  assert got.shape == (2, (32 // patch)**2, 3 * 9 * u * u)
  expected = _maskfeat_hog_label(_nchw(images), feat_size=32 // patch)
  np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
  if patch == 16:  # 108-d: (channel, bin, cell row, cell col), not patchify's order.
    hog = np.asarray(masked.hog_features(images))  # [N, 4, 4, 3, 9]
    channel, hog_bin, cell_row, cell_col = 2, 5, 1, 0  # Token 1 covers cells (0:2, 2:4).
    feature = ((channel * 9 + hog_bin) * 2 + cell_row) * 2 + cell_col
    np.testing.assert_allclose(got[0, 1, feature], hog[0, cell_row, 2 + cell_col, channel, hog_bin],
                               rtol=1e-6)


def test_hog_of_constant_image_is_zero_and_edges_fill_the_expected_bin():
  np.testing.assert_array_equal(masked.hog_features(np.full((1, 16, 16, 3), 0.7, np.float32)), 0.0)
  vertical = np.zeros((1, 16, 16, 3), np.float32)
  vertical[:, :, 8:] = 1.0  # An edge between columns 7 and 8.
  hog = np.asarray(masked.hog_features(vertical))  # [1, 2, 2, 3, 9]
  # gx = left - right < 0, gy = 0: atan2(gx, gy) = -pi/2 -> floor(-4.5) = -5 -> bin 4.
  np.testing.assert_allclose(hog[..., 4], 1.0, rtol=1e-6)
  np.testing.assert_array_equal(np.delete(hog, 4, axis=-1), 0.0)
  horizontal = np.transpose(vertical, (0, 2, 1, 3))
  hog = np.asarray(masked.hog_features(horizontal))
  # gx = 0, gy < 0: atan2(0, gy) = pi -> 9 -> bin 0.
  np.testing.assert_allclose(hog[..., 0], 1.0, rtol=1e-6)
  # An edge inside the left cells only leaves the right cells empty.
  left_only = np.zeros((1, 16, 16, 3), np.float32)
  left_only[:, :, 4:] = 1.0
  hog = np.asarray(masked.hog_features(left_only))
  assert np.all(hog[:, :, 0, :, 4] > 0.99) and np.all(hog[:, :, 1] == 0)


def _fairseq_make_targets(layers, num_layers):
  """fairseq Data2VecMultiModel.make_targets, image config (instance norm of
  each layer, average, layer norm)."""
  out = []
  for tl in layers[-num_layers:]:
    tl = tl.astype(np.float64).transpose(0, 2, 1)  # BTC -> BCT
    mean, var = tl.mean(-1, keepdims=True), tl.var(-1, keepdims=True)
    out.append(((tl - mean) / np.sqrt(var + 1e-5)).transpose(0, 2, 1))  # F.instance_norm
  y = sum(out) / len(out)
  mean, var = y.mean(-1, keepdims=True), y.var(-1, keepdims=True)
  return (y - mean) / np.sqrt(var + 1e-5)  # F.layer_norm


def test_data2vec_targets_match_make_targets():
  layers = [_rand(2, 7, 5, seed=20 + i) * (i + 1) + i for i in range(6)]
  got = masked.data2vec_targets([jnp.asarray(x, jnp.bfloat16) for x in layers], top_k=4)
  assert got.dtype == jnp.float32
  layers_bf16 = [np.asarray(jnp.asarray(x, jnp.bfloat16), np.float32) for x in layers]
  np.testing.assert_allclose(got, _fairseq_make_targets(layers_bf16, 4), rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(masked.data2vec_targets(layers, 1), _fairseq_make_targets(layers, 1),
                             rtol=1e-4, atol=1e-5)
  # Only the last top_k blocks matter.
  changed = [x * 0 + 100 for x in layers[:2]] + layers[2:]
  np.testing.assert_allclose(masked.data2vec_targets(changed, 4),
                             masked.data2vec_targets(layers, 4))
  with pytest.raises(ValueError):
    masked.data2vec_targets(layers, 7)


def test_ijepa_targets_are_torch_layer_norm():
  h = _rand(2, 6, 8, seed=30) * 2 + 3
  mean, var = h.mean(-1, keepdims=True), h.var(-1, keepdims=True)
  np.testing.assert_allclose(masked.ijepa_targets(h), (h - mean) / np.sqrt(var + 1e-5),
                             rtol=1e-5, atol=1e-5)
  # Constant features: eps 1e-5 keeps the output finite (zero).
  np.testing.assert_allclose(masked.ijepa_targets(np.ones((1, 2, 4), np.float32)), 0.0)


def _torch_smooth_l1(x, y, beta):
  d = np.abs(x.astype(np.float64) - y)
  return np.where(d < beta, 0.5 * d**2 / beta, d - 0.5 * beta)


@pytest.mark.parametrize("beta", [1.0, 0.5])
def test_smooth_l1_matches_torch(beta):
  pred, target = _rand(2, 4, 5, 3, seed=40) * 2, _rand(2, 4, 5, 3, seed=41)
  elementwise = _torch_smooth_l1(pred, target, beta)
  np.testing.assert_allclose(masked.smooth_l1(pred, target, beta), elementwise.mean(), rtol=RTOL)
  # Validity over [N, M, K] weights whole tokens: padding is ignored.
  valid = np.ones((2, 4, 5), bool)
  valid[:, :, 3:] = False
  got = masked.smooth_l1(pred, target, beta, weight=valid)
  np.testing.assert_allclose(got, elementwise[valid].mean(), rtol=RTOL)
  garbage = np.where(valid[..., None], pred, 1e3)
  np.testing.assert_allclose(masked.smooth_l1(garbage, target, beta, weight=valid), got, rtol=RTOL)
  np.testing.assert_allclose(masked.smooth_l1(pred, target, 0.0), np.abs(pred - target).mean(),
                             rtol=RTOL)


def test_losses_jit_and_differentiate():
  images = _rand(2, 16, 16, 3, seed=50)
  mask = np.zeros((2, 16), bool)
  mask[:, :6] = True

  @jax.jit
  def loss(pred_pixels, pred_hog):
    pixels = masked.normalized_pixel_targets(masked.patchify(images, 4))
    hog = masked.hog_targets(images, 4, cell=4)  # [2, 16, 27]
    return masked.mae_loss(pred_pixels, pixels, mask) + masked.mae_loss(pred_hog, hog, mask)

  grads = jax.grad(loss, argnums=(0, 1))(jnp.zeros((2, 16, 48)), jnp.zeros((2, 16, 27)))
  for g in grads:
    assert np.all(np.isfinite(g)) and np.any(g[:, :6] != 0)
    np.testing.assert_array_equal(g[:, 6:], 0.0)  # No gradient on unmasked tokens.
