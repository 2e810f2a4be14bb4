"""I-JEPA (Assran et al. 2023, "Self-Supervised Learning from Images with a
Joint-Embedding Predictive Architecture"). Variants: configs/common.py
(`masked_modeling`), plus `imagenet_vith14` (the paper's ViT-H/14).

The context encoder sees one large block minus 4 target blocks; a narrow
transformer predictor predicts the EMA target encoder's layer-normalised
representations of each target block; smooth-L1.

  imagenet_vith14  the repository's ViT-H/14 recipe (configs/in1k_vith14_ep300.yaml):

    | setting         | value                                     | source (facebookresearch/ijepa) |
    |-----------------|-------------------------------------------|---------------------------------|
    | batch           | 2048 (128 x 16 A100)                      | configs/in1k_vith14_ep300.yaml, README.md |
    | epochs / warm-up| 300 / 40                                  | same |
    | lr              | 2e-4 -> 1e-3 (warm-up) -> cosine to 1e-6, not batch-scaled | same; src/utils/schedulers.py |
    | weight decay    | 0.04 -> 0.4 cosine; biases and 1-D params exempt | same; src/helper.py |
    | optimizer       | AdamW (0.9, 0.999), no clipping           | src/helper.py, src/train.py |
    | masks           | 4 targets, scale 0.15-0.2, aspect 0.75-1.5; context 0.85-1.0 minus targets | same; src/masks/multiblock.py |
    | predictor       | 12 blocks x 384, heads = encoder's (16)   | same; src/helper.py |
    | target          | EMA encoder -> layer norm (no affine), 4 blocks gathered | src/train.py |
    | EMA             | 0.996 -> 1.0 linear over the run (ipe_scale 1.0) | same; src/train.py |
    | loss            | smooth-L1 (beta 1), mean                  | src/train.py |
    | augmentation    | RandomResizedCrop(224, scale (0.3, 1)), no flip, no colour | same; src/transforms.py |
    | precision       | bfloat16                                  | same |

  imagenet  a ViT-B/16 variant of the same recipe (the repository has no ViT-B
            config): predictor 12 x 384 with 12 heads, everything else as above.

  Differences: the context is a fixed number of tokens drawn from the context
  block (64 at 14x14 tokens, 80 at 16x16, near the 5th percentile of its size),
  padding flagged invalid, instead of truncating every context to the batch
  minimum in raster order; block positions reach the last row and column
  (ijepa PR #40). Published: ViT-H/14 linear probe 79.3% (paper, table 1, m).

    python main.py --config=configs/ijepa.py:digits --workdir=runs/ijepa_digits
"""

import ml_collections

from configs import common
from repr_learn import config_schema

EXTRA_VARIANTS = ("imagenet_vith14",)

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
    c.model.decoder.update(width=64, depth=2, num_heads=2, mlp_dim=256)
  elif variant == "cifar10":
    c.objective.update(context_tokens=32)
    c.model.decoder.update(width=192, depth=6, num_heads=6, mlp_dim=768)
  elif variant == "imagenet" or vith:
    c.objective.update(context_tokens=64)
    c.model.decoder.update(width=384, depth=12, num_heads=12, mlp_dim=1536)
    c.batch_size = 2048
    c.num_epochs = 300.0
    c.optimizer.update(base_lr=1e-3, lr_scaling="none", warmup_epochs=40.0,
                       warmup_start_lr=2e-4, min_lr=1e-6, adam_b2=0.999, weight_decay=0.04,
                       weight_decay_end=0.4)
  if vith:
    c.model.update(backbone="vit_huge", patch_size=14)
    c.model.decoder.num_heads = 16
    c.objective.context_tokens = 80
  return c
