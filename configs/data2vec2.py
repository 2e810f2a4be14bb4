"""data2vec 2.0 (Baevski et al. 2023, "Efficient Self-supervised Learning with
Contextualized Target Representations for Vision, Speech and Language").
Variants: configs/common.py (`masked_modeling`).

An EMA teacher on the full image gives targets (average of the top-K blocks'
FFN outputs, instance- then layer-normalised); the student encodes M clones of
each image under inverse block masks; a convolutional decoder regresses the
targets at the hidden patches.
RECIPE TABLE FOLLOWS (imagenet).

    python main.py --config=configs/data2vec2.py:digits --workdir=runs/data2vec2_digits
"""

import ml_collections

from configs import common
from repr_learn import config_schema


def get_config(variant: str = "digits") -> ml_collections.ConfigDict:
  c = common.set_variant(config_schema.base_config(), variant)
  config_schema.with_objective(c, "data2vec2")
  common.masked_modeling(c, variant=variant, decoder="conv")
  c.model.post_norm = True
  c.augment.min_scale = 0.2
  if variant == "smoke":
    c.objective.update(num_clones=2, top_k_blocks=2, block_size=2, ema_ramp_steps=4)
    c.model.decoder.update(depth=2)
  elif variant == "digits":
    c.objective.update(num_clones=4, top_k_blocks=4, mask_ratio=0.6, block_size=2,
                       ema_start=0.996, ema_end=0.9999, ema_ramp_steps=300)
    c.model.decoder.update(width=96, depth=3, groups=3)
  elif variant == "cifar10":
    c.objective.update(num_clones=8, top_k_blocks=8, block_size=2)
    c.model.decoder.update(width=384, depth=4, groups=16)
  elif variant == "imagenet":
    c.model.decoder.update(width=768, depth=6, kernel_size=3, groups=16)
  return c
