"""Named view recipes: which augmented views an objective trains on.

A recipe turns the `config.augment` section into a tuple of `ViewConfig`s; the
views themselves are computed on device by `augment.make_views`.
"""

import dataclasses

import ml_collections

from repr_learn.data import augment


def simclr(config: ml_collections.ConfigDict) -> tuple[augment.ViewConfig, ...]:
  """Two identically distributed views (Chen et al. 2020, appendix A)."""
  s = config.color_strength
  view = augment.ViewConfig(
      size=config.crop_size, min_scale=config.min_scale,
      brightness=0.8 * s, contrast=0.8 * s, saturation=0.8 * s, hue=0.2 * s,
      jitter_prob=0.8, grayscale_prob=0.2, blur_prob=config.blur_prob,
      solarize_prob=0.0)
  return (view, view)


def single(config: ml_collections.ConfigDict) -> tuple[augment.ViewConfig, ...]:
  """One SimCLR-style view, for methods that compare against a memory (NPID)."""
  return simclr(config)[:1]


def byol(config: ml_collections.ConfigDict) -> tuple[augment.ViewConfig, ...]:
  """BYOL's asymmetric pair (Grill et al. 2020, table 6): blur 1.0 / 0.1,
  solarisation `solarize_probs` (BYOL's 0 / 0.2), weaker saturation and hue jitter."""
  s = config.color_strength / 0.5  # 1.0 at the default strength: BYOL's values
  common = dict(size=config.crop_size, min_scale=config.min_scale,
                brightness=0.4 * s, contrast=0.4 * s, saturation=0.2 * s, hue=0.1 * s,
                jitter_prob=0.8, grayscale_prob=0.2)
  solarize = tuple(config.solarize_probs)
  if len(solarize) != 2:
    raise ValueError(f"augment.solarize_probs={solarize} needs one probability per view.")
  first = augment.ViewConfig(**common, blur_prob=1.0 if config.blur_prob > 0 else 0.0,
                             solarize_prob=solarize[0])
  second = augment.ViewConfig(**common, blur_prob=0.1 if config.blur_prob > 0 else 0.0,
                              solarize_prob=solarize[1])
  return (first, second)


def _local_crops(config: ml_collections.ConfigDict, like: augment.ViewConfig
                 ) -> tuple[augment.ViewConfig, ...]:
  """`num_local_crops` small views with `like`'s colour ops (Caron et al. 2020)."""
  local = dataclasses.replace(like, size=config.local_crop_size,
                              min_scale=config.local_min_scale,
                              max_scale=config.local_max_scale)
  return (local,) * config.num_local_crops


def multicrop(config: ml_collections.ConfigDict) -> tuple[augment.ViewConfig, ...]:
  """SwAV's multi-crop: two SimCLR global views of `crop_size` (scale
  [min_scale, 1]) then `num_local_crops` views of `local_crop_size` (scale
  [local_min_scale, local_max_scale]). Sizes are static: the step compiles once."""
  global_views = simclr(config)
  return global_views + _local_crops(config, global_views[0])


def multicrop_byol(config: ml_collections.ConfigDict) -> tuple[augment.ViewConfig, ...]:
  """DINO's multi-crop: BYOL's asymmetric global pair, local views with blur
  probability 0.5 and no solarisation (Caron et al. 2021, appendix)."""
  global_views = byol(config)
  local_like = dataclasses.replace(global_views[0], blur_prob=0.5 if config.blur_prob > 0 else 0.0,
                                   solarize_prob=0.0)
  return global_views + _local_crops(config, local_like)


def multicrop_dinov2(config: ml_collections.ConfigDict) -> tuple[augment.ViewConfig, ...]:
  """DINOv2's multi-crop (dinov2/data/augmentations.py `DataAugmentationDINO`):
  DINO's, with `blur_kernel_size` taps (9 there) and the blur probabilities the
  released models trained with. Its `GaussianBlur(p)` hands 1 - p to
  `RandomApply`, so the nominal 1.0 / 0.1 / 0.5 (global 1, global 2, local) act
  as 0 / 0.9 / 0.5 (dinov2 PR #411); we reproduce what ran."""
  views = multicrop_byol(config)
  blur = config.blur_prob > 0
  kernel = config.blur_kernel_size
  global_views = (dataclasses.replace(views[0], blur_prob=0.0, blur_kernel=kernel),
                  dataclasses.replace(views[1], blur_prob=0.9 if blur else 0.0,
                                      blur_kernel=kernel))
  return global_views + tuple(dataclasses.replace(v, blur_kernel=kernel) for v in views[2:])


def npid(config: ml_collections.ConfigDict) -> tuple[augment.ViewConfig, ...]:
  """NPID's one view (lemniscate main.py): crop, grey 0.2, colour jitter
  (0.4, 0.4, 0.4, 0.4) always applied, horizontal flip; no blur."""
  return (augment.ViewConfig(size=config.crop_size, min_scale=config.min_scale,
                             brightness=0.4, contrast=0.4, saturation=0.4, hue=0.4,
                             jitter_prob=1.0, grayscale_prob=0.2, blur_prob=0.0,
                             solarize_prob=0.0),)


def npid_cifar(config: ml_collections.ConfigDict) -> tuple[augment.ViewConfig, ...]:
  """NPID's CIFAR view (lemniscate cifar.py): as `npid`, without the flip
  (commented out there)."""
  return (dataclasses.replace(npid(config)[0], flip_prob=0.0),)


def plain(config: ml_collections.ConfigDict) -> tuple[augment.ViewConfig, ...]:
  """The whole image, unaugmented, as DEC trains on it."""
  return (augment.ViewConfig(size=config.crop_size, min_scale=1.0, ratio=(1.0, 1.0),
                             flip_prob=0.0, jitter_prob=0.0, grayscale_prob=0.0,
                             blur_prob=0.0, solarize_prob=0.0),)


def crop_flip(config: ml_collections.ConfigDict) -> tuple[augment.ViewConfig, ...]:
  """One random-resized crop (scale [min_scale, 1]) and a horizontal flip, no
  colour operations: the masked-modeling view (MAE, SimMIM, MaskFeat, data2vec 2.0)."""
  return (augment.ViewConfig(size=config.crop_size, min_scale=config.min_scale,
                             jitter_prob=0.0, grayscale_prob=0.0, blur_prob=0.0,
                             solarize_prob=0.0),)


def crop(config: ml_collections.ConfigDict) -> tuple[augment.ViewConfig, ...]:
  """One random-resized crop without flip or colour (I-JEPA's `make_transforms`
  with horizontal_flip=False, color_distortion=False)."""
  return (dataclasses.replace(crop_flip(config)[0], flip_prob=0.0),)


RECIPES = {"simclr": simclr, "single": single, "byol": byol, "multicrop": multicrop,
           "multicrop_byol": multicrop_byol, "multicrop_dinov2": multicrop_dinov2, "plain": plain, "crop_flip": crop_flip,
           "crop": crop, "npid": npid, "npid_cifar": npid_cifar}


def build_views(config: ml_collections.ConfigDict) -> tuple[augment.ViewConfig, ...]:
  if config.recipe not in RECIPES:
    raise ValueError(f"Unknown augment.recipe {config.recipe!r}; choose one of "
                     f"{sorted(RECIPES)}.")
  if config.crop_sampler not in augment.CROP_SAMPLERS:
    raise ValueError(f"Unknown augment.crop_sampler {config.crop_sampler!r}; choose one of "
                     f"{augment.CROP_SAMPLERS}.")
  return tuple(dataclasses.replace(view, crop_sampler=config.crop_sampler)
               for view in RECIPES[config.recipe](config))
