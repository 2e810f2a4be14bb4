"""On-device augmentations: each op against its formula, determinism,
probabilities, one compilation, and sharded == unsharded."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import NamedSharding, PartitionSpec as P

from repr_learn import parallel
from repr_learn.data import augment

MEAN, STD = (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)
# One compile per view config: eagerly, each of the ~150 ops of a view compiles
# on its own, which cost this file most of its time.
augment_view = jax.jit(augment.augment_view, static_argnums=(2, 3, 4))


def _images(n=8, size=32, seed=0):
  return jnp.asarray(np.random.default_rng(seed).integers(0, 256, (n, size, size, 3)),
                     jnp.uint8)


def _float_image(seed=0, size=16):
  return jnp.asarray(np.random.default_rng(seed).uniform(size=(size, size, 3)), jnp.float32)


@pytest.mark.parametrize("size", [16, 24])
def test_view_shape_dtype_and_determinism(size):
  cfg = augment.ViewConfig(size=size)
  images = _images()
  a = augment_view(jax.random.PRNGKey(0), images, cfg, augment.IMAGENET_MEAN,
                           augment.IMAGENET_STD)
  b = augment_view(jax.random.PRNGKey(0), images, cfg, augment.IMAGENET_MEAN,
                           augment.IMAGENET_STD)
  c = augment_view(jax.random.PRNGKey(1), images, cfg, augment.IMAGENET_MEAN,
                           augment.IMAGENET_STD)
  assert a.shape == (8, size, size, 3) and a.dtype == jnp.float32
  np.testing.assert_array_equal(a, b)
  assert not np.allclose(a, c)


def test_grayscale_is_the_luma_formula():
  x = _float_image()
  expected = 0.299 * x[..., 0] + 0.587 * x[..., 1] + 0.114 * x[..., 2]
  g = augment.to_grayscale(x)
  for ch in range(3):
    np.testing.assert_allclose(g[..., ch], expected, rtol=1e-6)


def test_hsv_round_trip_and_hue_identities():
  x = _float_image()
  np.testing.assert_allclose(augment.hsv_to_rgb(augment.rgb_to_hsv(x)), x, atol=1e-5)
  np.testing.assert_allclose(augment.adjust_hue(x, 0.0), x, atol=1e-5)
  np.testing.assert_allclose(augment.adjust_hue(x, 1.0), x, atol=1e-5)
  # Pure red rotated by a third of the circle is pure green.
  red = jnp.zeros((1, 1, 3)).at[..., 0].set(1.0)
  np.testing.assert_allclose(augment.adjust_hue(red, 1 / 3)[0, 0], [0, 1, 0], atol=1e-5)


def test_brightness_contrast_saturation_formulas():
  x = _float_image()
  np.testing.assert_allclose(augment.adjust_brightness(x, 1.0), x, atol=1e-7)
  np.testing.assert_allclose(augment.adjust_brightness(x, 0.5), x * 0.5, atol=1e-7)
  np.testing.assert_allclose(augment.adjust_contrast(x, 1.0), x, atol=1e-6)
  mean = float(jnp.mean(augment.to_grayscale(x)[..., 0]))
  np.testing.assert_allclose(augment.adjust_contrast(x, 0.0), jnp.full_like(x, mean), atol=1e-6)
  np.testing.assert_allclose(augment.adjust_saturation(x, 0.0), augment.to_grayscale(x),
                             atol=1e-6)


def test_full_crop_is_identity_and_flip_mirrors():
  x = _float_image(size=16)
  crop = augment.random_resized_crop(jax.random.PRNGKey(0), x, 16, scale=(1.0, 1.0),
                                     ratio=(1.0, 1.0))
  np.testing.assert_allclose(crop, x, atol=1e-5)
  images = _images(n=2, size=16)
  cfg = augment.ViewConfig(size=16, min_scale=1.0, ratio=(1.0, 1.0), flip_prob=1.0,
                           jitter_prob=0.0, grayscale_prob=0.0, blur_prob=0.0)
  out = augment_view(jax.random.PRNGKey(0), images, cfg, MEAN, STD)
  np.testing.assert_allclose(out, images[:, :, ::-1].astype(jnp.float32) / 255.0, atol=1e-5)


def test_blur_keeps_constants_and_solarize_formula():
  const = jnp.full((16, 16, 3), 0.3)
  np.testing.assert_allclose(augment.gaussian_blur(const, 1.5, 5), const, atol=1e-6)
  x = _float_image()
  blurred = augment.gaussian_blur(x, 2.0, 5)
  assert float(jnp.std(blurred)) < float(jnp.std(x))
  np.testing.assert_allclose(augment.solarize(x), jnp.where(x >= 0.5, 1 - x, x))


def test_blur_equals_reflect_padded_convolution_by_hand():
  """torchvision's GaussianBlur: normalised taps exp(-o^2 / 2 sigma^2) over
  |o| <= k // 2, reflect padding, one axis then the other (numpy)."""
  x = np.asarray(_float_image(), np.float64)[:9, :7]
  for sigma, taps in ((0.7, 5), (2.0, 9), (1.3, 13), (1.0, 15)):
    radius = taps // 2
    w = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    w /= w.sum()
    if radius >= min(x.shape[:2]):
      with pytest.raises(ValueError, match="tap blur"):
        augment.gaussian_blur(jnp.asarray(x, jnp.float32), sigma, taps)
      continue
    expected = x
    for axis in (0, 1):
      pad = [(0, 0)] * 3
      pad[axis] = (radius, radius)
      padded = np.pad(expected, pad, mode="reflect")
      n = expected.shape[axis]
      expected = sum(w[i] * np.take(padded, np.arange(i, i + n), axis=axis)
                     for i in range(taps))
    got = augment.gaussian_blur(jnp.asarray(x, jnp.float32), sigma, taps)
    np.testing.assert_allclose(got, expected, atol=1e-5, err_msg=f"{sigma}, {taps}")


def test_probabilities_zero_and_one():
  images = _images(n=16, size=16)
  off = augment.ViewConfig(size=16, min_scale=1.0, ratio=(1.0, 1.0), flip_prob=0.0,
                           jitter_prob=0.0, grayscale_prob=0.0, blur_prob=0.0)
  out = augment_view(jax.random.PRNGKey(3), images, off, MEAN, STD)
  np.testing.assert_allclose(out, images.astype(jnp.float32) / 255.0, atol=1e-5)
  gray = augment_view(jax.random.PRNGKey(3), images,
                              augment.ViewConfig(size=16, grayscale_prob=1.0, jitter_prob=0.0,
                                                 blur_prob=0.0), MEAN, STD)
  np.testing.assert_allclose(gray[..., 0], gray[..., 1], atol=1e-6)


def test_grayscale_frequency_is_near_its_probability():
  images = _images(n=512, size=8, seed=1)
  cfg = augment.ViewConfig(size=8, jitter_prob=0.0, blur_prob=0.0, grayscale_prob=0.2)
  out = augment_view(jax.random.PRNGKey(0), images, cfg, MEAN, STD)
  is_gray = np.all(np.abs(out[..., 0] - out[..., 1]) < 1e-6, axis=(1, 2))
  assert 0.14 < is_gray.mean() < 0.26


def test_one_compilation_and_sharded_equals_unsharded():
  cfgs = (augment.ViewConfig(size=16), augment.ViewConfig(size=16, solarize_prob=0.2))

  @jax.jit
  @chex.assert_max_traces(n=1)
  def make(rng, images):
    return augment.make_views(rng, images, cfgs, augment.IMAGENET_MEAN, augment.IMAGENET_STD)

  images = _images(n=16)
  plain = make(jax.random.PRNGKey(0), images)
  make(jax.random.PRNGKey(1), _images(n=16, seed=2))  # same shapes: no retrace
  mesh = parallel.make_mesh()
  sharded = jax.device_put(images, NamedSharding(mesh, P(parallel.DATA_AXIS)))
  out = jax.jit(lambda r, x: augment.make_views(r, x, cfgs, augment.IMAGENET_MEAN,
                                                augment.IMAGENET_STD))(
                                                    jax.random.PRNGKey(0), sharded)
  for a, b in zip(plain, out):
    np.testing.assert_allclose(a, b, atol=1e-5)
  assert not np.allclose(plain[0], plain[1])


def test_runs_of_equal_views_drawn_together_equal_views_drawn_one_by_one():
  """DINO-style list (two different globals, then equal locals): the vmapped
  runs give view i exactly as `augment_view` at `fold_in(rng, i)` does."""
  big, local = augment.ViewConfig(size=12), augment.ViewConfig(size=8, min_scale=0.05)
  cfgs = (big, augment.ViewConfig(size=12, solarize_prob=0.2), local, local, local)
  images, rng = _images(n=4), jax.random.PRNGKey(5)
  views = jax.jit(lambda r, x: augment.make_views(r, x, cfgs, MEAN, STD))(rng, images)
  assert [v.shape for v in views] == [(4, 12, 12, 3)] * 2 + [(4, 8, 8, 3)] * 3
  for i in (0, 2, 4):  # a lone view, and the first and last of a run
    alone = augment_view(jax.random.fold_in(rng, i), images, cfgs[i], MEAN, STD)
    np.testing.assert_allclose(views[i], alone, atol=1e-5, err_msg=f"view {i}")
  assert not np.allclose(views[2], views[3])
  assert [count for _, _, count in augment._runs_of_equal(cfgs)] == [1, 1, 3]


def test_crops_stay_inside_the_image_in_its_canvas():
  """A 20x28 image (ones) in the top-left of a 32x32 canvas whose padding
  (zeros here; edge pixels as stored) is never read: every random-resized crop
  samples the image, its border at most half a pixel beyond, and the
  evaluation view is the central 7/8 square of the shorter side
  (Resize(256) + CenterCrop(224))."""
  canvas = np.zeros((8, 32, 32, 3), np.uint8)
  canvas[:, :20, :28] = 255
  hw = jnp.asarray(np.tile([[20, 28]], (8, 1)), jnp.int32)
  for seed in range(4):
    cfg = augment.ViewConfig(size=16, min_scale=0.08, jitter_prob=0.0, grayscale_prob=0.0,
                             blur_prob=0.0)
    view = augment_view(jax.random.PRNGKey(seed), jnp.asarray(canvas), cfg, MEAN, STD,
                                image_hw=hw)
    assert float(jnp.median(view)) == 1.0 and float(view[:, 1:-1, 1:-1].min()) > 0.99, seed
  ramp = np.zeros((1, 32, 32, 3), np.uint8)
  ramp[0, :16, :24] = np.arange(24, dtype=np.uint8)[None, :, None] * 10
  center = augment.center_view(jnp.asarray(ramp), 14, MEAN, STD,
                               jnp.asarray([[16, 24]], jnp.int32))
  # side = 7/8 * 16 = 14 at offset (1, 5): an exact copy of that box.
  np.testing.assert_allclose(center[0], ramp[0, 1:15, 5:19] / 255.0, atol=1e-5)
