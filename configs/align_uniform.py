"""Alignment + uniformity (Wang & Isola 2020, "Understanding Contrastive
Representation Learning through Alignment and Uniformity on the Hypersphere").
Variants: see configs/common.py.

  imagenet/cifar10 SimCLR's augmentations and optimiser with the paper's loss
           weights (alpha 2, t 2, both weights 1). The paper reports that this loss
           matches or beats the contrastive loss on STL-10, NYU-Depth-V2 and
           ImageNet-100; it gives no ImageNet-1k figure.

    | setting          | value                                        | source |
    |------------------|----------------------------------------------|--------|
    | loss             | align (alpha 2) + uniform (t 2), weights 1 and 1 | the paper, sec. 4 (official repository not re-read) |
    | everything else  | configs/simclr.py's imagenet and cifar10 recipes | ours (the paper has no ImageNet-1k recipe) |
"""

import ml_collections

from configs import common
from repr_learn import config_schema


def get_config(variant: str = "digits") -> ml_collections.ConfigDict:
  c = common.set_variant(config_schema.base_config(), variant)
  config_schema.with_objective(c, "align_uniform", align_weight=1.0, unif_weight=1.0,
                               alpha=2.0, t=2.0)
  common.projector(c, hidden=2048, out=128, layers=2, variant=variant)
  if variant in ("cifar10", "imagenet"):
    c.optimizer.update(base_lr=0.3, lr_scaling="linear")
  return c
