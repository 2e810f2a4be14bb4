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


RECIPES = {"simclr": simclr}


def build_views(config: ml_collections.ConfigDict) -> tuple[augment.ViewConfig, ...]:
  if config.recipe not in RECIPES:
    raise ValueError(f"Unknown augment.recipe {config.recipe!r}; choose one of "
                     f"{sorted(RECIPES)}.")
  return RECIPES[config.recipe](config)
