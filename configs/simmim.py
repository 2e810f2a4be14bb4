"""SimMIM (Xie et al. 2022, "SimMIM: a Simple Framework for Masked Image
Modeling"). Variants: configs/common.py (`masked_modeling`).

A learned mask token replaces 60% of the patches, masked in 32-px cells; one
linear layer predicts the pixels; L1 loss on the hidden pixels.
RECIPE TABLE FOLLOWS (imagenet).

    python main.py --config=configs/simmim.py:digits --workdir=runs/simmim_digits
"""

import ml_collections

from configs import common
from repr_learn import config_schema


def get_config(variant: str = "digits") -> ml_collections.ConfigDict:
  c = common.set_variant(config_schema.base_config(), variant)
  config_schema.with_objective(c, "simmim", mask_ratio=0.6, mask_patch_size=32)
  common.masked_modeling(c, variant=variant, decoder="linear")
  c.model.mask_token = True
  c.model.decoder.depth = 0  # no LayerNorm before the linear head
  c.augment.min_scale = 0.67
  c.eval.protocols += ",reconstructions"
  if variant == "smoke":
    c.objective.mask_patch_size = 8
  elif variant == "digits":
    c.objective.mask_patch_size = 4
  elif variant == "cifar10":
    c.objective.mask_patch_size = 8
  return c
