"""I-JEPA (Assran et al. 2023, "Self-Supervised Learning from Images with a
Joint-Embedding Predictive Architecture"). Variants: configs/common.py
(`masked_modeling`), plus `imagenet_vith14` (the paper's ViT-H/14).

The context encoder sees one large block minus 4 target blocks; a narrow
transformer predictor predicts the EMA target encoder's layer-normalised
representations of each target block; smooth-L1.
RECIPE TABLE FOLLOWS (imagenet).

    python main.py --config=configs/ijepa.py:digits --workdir=runs/ijepa_digits
"""

import ml_collections

from configs import common
from repr_learn import config_schema


def get_config(variant: str = "digits") -> ml_collections.ConfigDict:
  vith = variant == "imagenet_vith14"
  c = common.set_variant(config_schema.base_config(), "imagenet" if vith else variant)
  config_schema.with_objective(c, "ijepa")
  common.masked_modeling(c, variant="imagenet" if vith else variant, decoder="predictor",
                         recipe="crop")
  c.model.pooling = "mean"  # no class token; probes average the tokens
  c.augment.min_scale = 0.3
  if variant == "smoke":
    c.objective.update(context_tokens=8)
  elif variant == "digits":
    c.objective.update(context_tokens=32)
    c.model.decoder.update(width=64, depth=2, num_heads=3, mlp_dim=256)
  elif variant == "cifar10":
    c.objective.update(context_tokens=32)
    c.model.decoder.update(width=192, depth=6, num_heads=6, mlp_dim=768)
  elif variant == "imagenet" or vith:
    c.objective.update(context_tokens=64)
    c.model.decoder.update(width=384, depth=12, num_heads=12, mlp_dim=1536)
  if vith:
    c.model.update(backbone="vit_huge", patch_size=14)
    c.model.decoder.num_heads = 16
  return c
