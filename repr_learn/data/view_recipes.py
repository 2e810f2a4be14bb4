"""Named view recipes: which augmented views an objective trains on.

A recipe turns the `config.augment` section into a tuple of `ViewConfig`s; the
views themselves are computed on device by `augment.make_views`.
"""

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
  solarisation 0 / 0.2, weaker saturation and hue jitter."""
  s = config.color_strength / 0.5  # 1.0 at the default strength: BYOL's values
  common = dict(size=config.crop_size, min_scale=config.min_scale,
                brightness=0.4 * s, contrast=0.4 * s, saturation=0.2 * s, hue=0.1 * s,
                jitter_prob=0.8, grayscale_prob=0.2)
  first = augment.ViewConfig(**common, blur_prob=1.0 if config.blur_prob > 0 else 0.0,
                             solarize_prob=0.0)
  second = augment.ViewConfig(**common, blur_prob=0.1 if config.blur_prob > 0 else 0.0,
                              solarize_prob=0.2)
  return (first, second)


RECIPES = {"simclr": simclr, "single": single, "byol": byol}


def build_views(config: ml_collections.ConfigDict) -> tuple[augment.ViewConfig, ...]:
  if config.recipe not in RECIPES:
    raise ValueError(f"Unknown augment.recipe {config.recipe!r}; choose one of "
                     f"{sorted(RECIPES)}.")
  return RECIPES[config.recipe](config)
