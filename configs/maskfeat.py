"""MaskFeat (Wei et al. 2022, "Masked Feature Prediction for Self-Supervised
Visual Pre-Training"). Variants: configs/common.py (`masked_modeling`).

A learned mask token replaces 40% of the patches, masked block-wise; LayerNorm
+ linear predict each hidden patch's HOG descriptor (9 unsigned bins, 8x8-px
cells, per colour channel, L2 per cell), computed on device; MSE.
RECIPE TABLE FOLLOWS (imagenet).

    python main.py --config=configs/maskfeat.py:digits --workdir=runs/maskfeat_digits
"""

import ml_collections

from configs import common
from repr_learn import config_schema


def get_config(variant: str = "digits") -> ml_collections.ConfigDict:
  c = common.set_variant(config_schema.base_config(), variant)
  config_schema.with_objective(c, "maskfeat", mask_ratio=0.4, hog_cell=8, hog_bins=9)
  common.masked_modeling(c, variant=variant, decoder="linear")
  c.model.mask_token = True
  c.model.decoder.depth = 1  # LayerNorm before the linear head
  c.augment.min_scale = 0.5
  if variant == "smoke":
    c.objective.hog_cell = 2
  elif variant == "digits":
    c.objective.hog_cell = 1
  elif variant == "cifar10":
    c.objective.hog_cell = 2
  return c
