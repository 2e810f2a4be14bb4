"""Image augmentations in JAX, run on the accelerator inside the train step.

The host ships uint8 images; the views are computed here from a key derived
from `fold_in(rng, step)`, so augmentation is deterministic, costs no host CPU
and scales with the devices (as in deepmind's BYOL). Every op works on one float
image in [0, 1] of shape [H, W, 3]; `augment_view` vmaps them over the batch
with one key per example. Output shapes are static, so the step compiles once.
"""

import dataclasses
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from repr_learn import parallel

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_LUMA = np.array([0.299, 0.587, 0.114], np.float32)
CROP_SAMPLERS = ("torchvision", "clip")
_CROP_ATTEMPTS = 10  # torchvision's RandomResizedCrop.get_params


@dataclasses.dataclass(frozen=True)
class ViewConfig:
  """How one augmented view is drawn (SimCLR's defaults, colour strength 0.5)."""
  size: int
  min_scale: float = 0.08
  max_scale: float = 1.0
  ratio: tuple[float, float] = (3 / 4, 4 / 3)
  flip_prob: float = 0.5
  jitter_prob: float = 0.8
  brightness: float = 0.4
  contrast: float = 0.4
  saturation: float = 0.4
  hue: float = 0.1
  grayscale_prob: float = 0.2
  blur_prob: float = 0.5
  blur_sigma: tuple[float, float] = (0.1, 2.0)
  blur_kernel: int = 0  # taps; 0: `blur_kernel_size(size)` (DINOv2: 9)
  solarize_prob: float = 0.0
  crop_sampler: str = "torchvision"


def random_resized_crop(rng, image, size: int, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3),
                        hw=None, sampler: str = "torchvision"):
  """Inception-style crop: random area fraction and log-uniform aspect ratio, of
  the whole image, or with `hw` (its height and width) of the image in the
  top-left corner of a padded canvas (`resizing.resize_into_canvas`).

  `sampler='torchvision'` draws the box as `RandomResizedCrop.get_params` does
  (and SimCLR's `distorted_bounding_box_crop`): up to 10 candidate boxes with
  whole-pixel sides, the first that fits the image, else a centre crop at the
  nearest allowed aspect. All 10 are drawn at once, so shapes stay static.
  `'clip'` (runs made before) draws one box and clips its sides to the image,
  which makes crops larger than torchvision's (mean area 0.62 against 0.57 at
  scale (0.25, 1)).
  """
  if hw is None:
    h, w = float(image.shape[0]), float(image.shape[1])
  else:
    h, w = hw[0].astype(jnp.float32), hw[1].astype(jnp.float32)
  if sampler not in CROP_SAMPLERS:
    raise ValueError(f"Unknown crop sampler {sampler!r}; use one of {CROP_SAMPLERS}.")
  box = torchvision_crop_box if sampler == "torchvision" else clipped_crop_box
  return crop_and_resize(image, *box(rng, h, w, scale, ratio), size)


def clipped_crop_box(rng, h, w, scale, ratio):
  """(top, left, height, width) of one box whose sides are clipped to the image
  (the sampler of runs made before `torchvision_crop_box`)."""
  area_rng, ratio_rng, y_rng, x_rng = jax.random.split(rng, 4)
  area = jax.random.uniform(area_rng, (), minval=scale[0], maxval=scale[1]) * h * w
  log_ratio = jax.random.uniform(ratio_rng, (), minval=jnp.log(ratio[0]),
                                 maxval=jnp.log(ratio[1]))
  aspect = jnp.exp(log_ratio)
  crop_w = jnp.clip(jnp.sqrt(area * aspect), 1.0, w)
  crop_h = jnp.clip(jnp.sqrt(area / aspect), 1.0, h)
  y0 = jax.random.uniform(y_rng, ()) * (h - crop_h)
  x0 = jax.random.uniform(x_rng, ()) * (w - crop_w)
  return y0, x0, crop_h, crop_w


def torchvision_crop_box(rng, h, w, scale, ratio):
  """(top, left, height, width) of one `RandomResizedCrop.get_params` draw on an
  h x w image, as float scalars holding whole pixels."""
  area_rng, ratio_rng, y_rng, x_rng = jax.random.split(rng, 4)
  area = jax.random.uniform(area_rng, (_CROP_ATTEMPTS,), minval=scale[0],
                            maxval=scale[1]) * h * w
  aspect = jnp.exp(jax.random.uniform(ratio_rng, (_CROP_ATTEMPTS,),
                                      minval=np.log(ratio[0]), maxval=np.log(ratio[1])))
  cand_w = jnp.round(jnp.sqrt(area * aspect))
  cand_h = jnp.round(jnp.sqrt(area / aspect))
  fits = (cand_w > 0) & (cand_w <= w) & (cand_h > 0) & (cand_h <= h)
  first = jnp.argmax(fits)
  # The fallback: the whole image, or its centre at the nearest allowed aspect.
  in_ratio = w / h
  fallback_w = jnp.where(in_ratio > ratio[1], jnp.round(h * ratio[1]), w)
  fallback_h = jnp.where(in_ratio < ratio[0], jnp.round(w / ratio[0]), h)
  found = fits[first]
  crop_h = jnp.where(found, cand_h[first], fallback_h)
  crop_w = jnp.where(found, cand_w[first], fallback_w)
  # torch.randint(0, h - crop_h + 1): a uniform whole offset.
  top = jnp.floor(jax.random.uniform(y_rng, ()) * (h - crop_h + 1))
  left = jnp.floor(jax.random.uniform(x_rng, ()) * (w - crop_w + 1))
  top = jnp.where(found, top, jnp.floor((h - crop_h) / 2))
  left = jnp.where(found, left, jnp.floor((w - crop_w) / 2))
  return top, left, crop_h, crop_w


def crop_and_resize(image, y0, x0, crop_h, crop_w, size: int):
  """Bilinear resize of the box (y0, x0, crop_h, crop_w) to [size, size]."""
  scale = jnp.stack([size / crop_h, size / crop_w])
  translation = -jnp.stack([y0, x0]) * scale
  return jax.image.scale_and_translate(
      image, (size, size, image.shape[2]), spatial_dims=(0, 1), scale=scale,
      translation=translation, method="linear", antialias=True)


def to_grayscale(image):
  """ITU-R 601 luma replicated to three channels."""
  gray = image @ _LUMA
  return jnp.broadcast_to(gray[..., None], image.shape)


def adjust_brightness(image, factor):
  return jnp.clip(image * factor, 0.0, 1.0)


def adjust_contrast(image, factor):
  mean = jnp.mean(image @ _LUMA)
  return jnp.clip((image - mean) * factor + mean, 0.0, 1.0)


def adjust_saturation(image, factor):
  gray = to_grayscale(image)
  return jnp.clip((image - gray) * factor + gray, 0.0, 1.0)


def rgb_to_hsv(image):
  r, g, b = image[..., 0], image[..., 1], image[..., 2]
  maxc = jnp.max(image, axis=-1)
  minc = jnp.min(image, axis=-1)
  delta = maxc - minc
  safe_delta = jnp.where(delta > 0, delta, 1.0)
  s = jnp.where(maxc > 0, delta / jnp.where(maxc > 0, maxc, 1.0), 0.0)
  rc, gc, bc = (maxc - r) / safe_delta, (maxc - g) / safe_delta, (maxc - b) / safe_delta
  h = jnp.where(r == maxc, bc - gc, jnp.where(g == maxc, 2.0 + rc - bc, 4.0 + gc - rc))
  h = jnp.where(delta > 0, (h / 6.0) % 1.0, 0.0)
  return jnp.stack([h, s, maxc], axis=-1)


def hsv_to_rgb(hsv):
  h, s, v = hsv[..., 0], hsv[..., 1], hsv[..., 2]
  i = jnp.floor(h * 6.0)
  f = h * 6.0 - i
  p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
  i = i.astype(jnp.int32) % 6
  choices = [jnp.stack(c, -1) for c in
             ((v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q))]
  out = choices[0]
  for k in range(1, 6):
    out = jnp.where((i == k)[..., None], choices[k], out)
  return out


def adjust_hue(image, delta):
  """Rotates hue by `delta` turns of the colour circle."""
  hsv = rgb_to_hsv(image)
  hsv = hsv.at[..., 0].set((hsv[..., 0] + delta) % 1.0)
  return jnp.clip(hsv_to_rgb(hsv), 0.0, 1.0)


def color_jitter(rng, image, brightness, contrast, saturation, hue):
  """The four jitters with random strengths, in a random order per example."""
  keys = jax.random.split(rng, 5)
  b = jax.random.uniform(keys[0], (), minval=1 - brightness, maxval=1 + brightness)
  c = jax.random.uniform(keys[1], (), minval=1 - contrast, maxval=1 + contrast)
  s = jax.random.uniform(keys[2], (), minval=1 - saturation, maxval=1 + saturation)
  hd = jax.random.uniform(keys[3], (), minval=-hue, maxval=hue)
  ops = [lambda x: adjust_brightness(x, b), lambda x: adjust_contrast(x, c),
         lambda x: adjust_saturation(x, s), lambda x: adjust_hue(x, hd)]
  order = jax.random.permutation(keys[4], 4)
  for slot in range(4):
    image = jax.lax.switch(order[slot], ops, image)
  return image


def gaussian_blur(image, sigma, kernel_size: int):
  """Separable Gaussian blur with reflect padding (static kernel size), as
  torchvision's GaussianBlur: each axis one product with the [n, n] banded
  blur matrix, the reflected border folded into the matrix. Two matrix
  products replace 2 x `kernel_size` shifted slices of a padded copy: as fast
  on the CPU at 224 and 96 px, a program whose size does not grow with the
  taps, and matrix units on accelerators (`benchmarks/blur.py`; a depthwise
  convolution was 6-14x slower on the CPU). Full float32 precision, so views
  do not depend on a GPU's TF32 default."""
  highest = jax.lax.Precision.HIGHEST
  image = jnp.einsum("yh,hwc->ywc", blur_matrix(image.shape[0], sigma, kernel_size), image,
                     precision=highest)
  return jnp.einsum("xw,ywc->yxc", blur_matrix(image.shape[1], sigma, kernel_size), image,
                    precision=highest)


def blur_matrix(n: int, sigma, kernel_size: int):
  """[n, n] matrix M with (M @ x) the 1-D blur of x: row y holds the taps at
  y + o (|o| <= kernel_size // 2), a tap beyond an edge moved to its reflection
  (numpy's 'reflect': -1 -> 1, n -> n - 2)."""
  radius = kernel_size // 2
  if radius >= n:
    raise ValueError(f"A {kernel_size}-tap blur needs images wider than {radius} px, got {n}.")
  out = jnp.arange(n, dtype=jnp.float32)[:, None]
  src = jnp.arange(n, dtype=jnp.float32)[None, :]

  def tap(offset):
    return jnp.where(jnp.abs(offset) <= radius, jnp.exp(-0.5 * (offset / sigma) ** 2), 0.0)

  weights = (tap(src - out)
             + jnp.where(src >= 1, tap(-src - out), 0.0)                # reflected at 0
             + jnp.where(src <= n - 2, tap(2 * (n - 1) - src - out), 0.0))  # at n - 1
  return weights / jnp.sum(tap(jnp.arange(-radius, radius + 1, dtype=jnp.float32)))


def blur_kernel_size(size: int) -> int:
  """About 10% of the image side, odd, at least 3 (SimCLR)."""
  return max(3, (size // 10) | 1)


def solarize(image, threshold: float = 0.5):
  return jnp.where(image >= threshold, 1.0 - image, image)


def _maybe(rng, prob: float, fn, image):
  """Applies `fn` with probability `prob`; free when `prob` is 0 or 1."""
  if prob <= 0.0:
    return image
  if prob >= 1.0:
    return fn(image)
  return jnp.where(jax.random.uniform(rng, ()) < prob, fn(image), image)


def _augment_one(rng, image, cfg: ViewConfig, hw=None):
  keys = jax.random.split(rng, 9)
  image = random_resized_crop(keys[0], image, cfg.size, (cfg.min_scale, cfg.max_scale),
                              cfg.ratio, hw, cfg.crop_sampler)
  image = _maybe(keys[1], cfg.flip_prob, lambda x: x[:, ::-1], image)
  image = _maybe(keys[2], cfg.jitter_prob, lambda x: color_jitter(
      keys[3], x, cfg.brightness, cfg.contrast, cfg.saturation, cfg.hue), image)
  image = _maybe(keys[4], cfg.grayscale_prob, to_grayscale, image)
  sigma = jax.random.uniform(keys[5], (), minval=cfg.blur_sigma[0], maxval=cfg.blur_sigma[1])
  image = _maybe(keys[6], cfg.blur_prob,
                 lambda x: gaussian_blur(x, sigma, cfg.blur_kernel or blur_kernel_size(cfg.size)),
                 image)
  image = _maybe(keys[7], cfg.solarize_prob, solarize, image)
  return jnp.clip(image, 0.0, 1.0)


def normalize(images, mean, std):
  return (images - jnp.asarray(mean, jnp.float32)) / jnp.asarray(std, jnp.float32)


def example_keys(rng, n: int, device_axis: str | None = None):
  """One key per example of the global batch. Inside the per-device (`pmap`
  mode) step, where `n` is this device's shard, its slice of the global keys:
  every example gets the same key, and so the same view, in both modes."""
  if device_axis is None:
    return jax.random.split(rng, n)
  return parallel.local_rows(jax.random.split(rng, n * jax.lax.axis_size(device_axis)),
                             device_axis)


def augment_view(rng, images_uint8, cfg: ViewConfig, mean, std,
                 device_axis: str | None = None, image_hw=None):
  """One augmented, normalised view [N, size, size, 3] of a uint8 batch;
  `image_hw` [N, 2]: each image's size in its padded canvas (None: the whole
  array is the image)."""
  images = images_uint8.astype(jnp.float32) / 255.0
  keys = example_keys(rng, images.shape[0], device_axis)
  if image_hw is None:
    views = jax.vmap(lambda k, x: _augment_one(k, x, cfg))(keys, images)
  else:
    views = jax.vmap(lambda k, x, hw: _augment_one(k, x, cfg, hw))(keys, images, image_hw)
  return normalize(views, mean, std)


def make_views(rng, images_uint8, view_cfgs: Sequence[ViewConfig], mean, std,
               device_axis: str | None = None, image_hw=None):
  """One array per view; view i draws from `fold_in(rng, i)`.

  A run of equal configs (SimCLR's two views, DINO's eight local crops) is
  drawn by one augmentation vmapped over the run's view indices: the same
  views, but the compiled step holds one copy of the augmentation per run
  instead of one per view (DINO's ImageNet step: 3 instead of 10, compiling
  about 15% faster on XLA:CPU, BENCHMARKS.md), and its kernels are batched."""
  def draw(index, cfg):
    return augment_view(jax.random.fold_in(rng, index), images_uint8, cfg, mean, std,
                        device_axis, image_hw)
  views = []
  for start, cfg, count in _runs_of_equal(view_cfgs):
    if count == 1:
      views.append(draw(start, cfg))
    else:
      stacked = jax.vmap(lambda i, cfg=cfg: draw(i, cfg))(jnp.arange(start, start + count))
      views.extend(stacked[j] for j in range(count))
  return tuple(views)


def _runs_of_equal(view_cfgs: Sequence[ViewConfig]) -> list[tuple[int, ViewConfig, int]]:
  """(first index, config, length) of each run of consecutive equal configs."""
  runs = []
  for i, cfg in enumerate(view_cfgs):
    if runs and runs[-1][1] == cfg:
      runs[-1] = (runs[-1][0], cfg, runs[-1][2] + 1)
    else:
      runs.append((i, cfg, 1))
  return runs


# Evaluation's centre crop as a fraction of the stored shorter side: the
# standard Resize(256) + CenterCrop(224) (DINO eval_linear.py, MoCo main_lincls.py).
CENTER_CROP_FRACTION = 224 / 256


def center_view(images_uint8, size: int, mean, std, image_hw=None):
  """Evaluation view. Square-stored images: the whole image resized
  (antialiased) to `size`. Canvas-stored ones (`image_hw` given): the central
  square of `CENTER_CROP_FRACTION` of the shorter side, resized to `size`
  (exactly Resize(256) + CenterCrop(224) for images stored at 256)."""
  images = images_uint8.astype(jnp.float32) / 255.0
  if image_hw is not None:
    def crop(image, hw):
      h, w = hw[0].astype(jnp.float32), hw[1].astype(jnp.float32)
      side = CENTER_CROP_FRACTION * jnp.minimum(h, w)
      return crop_and_resize(image, (h - side) / 2, (w - side) / 2, side, side, size)
    return normalize(jax.vmap(crop)(images, image_hw), mean, std)
  if images.shape[1:3] != (size, size):
    images = jax.image.resize(images, (images.shape[0], size, size, images.shape[3]),
                              method="linear", antialias=True)
  return normalize(images, mean, std)
