"""SupCon (Khosla et al. 2020, "Supervised Contrastive Learning"): uses the
dataset's labels. Variants: see configs/common.py.

  imagenet ResNet-50, batch 4096 (the paper used 6144), LARS lr 0.3 x B/256,
           T 0.1, 700 epochs. Paper: 78.7% top-1 with a linear classifier on the
           supervised-contrastive encoder.
  cifar10  batch 1024, lr 0.5, T 0.1, 1000 epochs (paper: 96.0% on CIFAR-10).
"""

import ml_collections

from configs import common
from repr_learn import config_schema


def get_config(variant: str = "digits") -> ml_collections.ConfigDict:
  c = common.set_variant(config_schema.base_config(), variant)
  config_schema.with_objective(c, "supcon", temperature=0.1, base_temperature=0.07)
  common.projector(c, hidden=2048, out=128, layers=2, variant=variant)
  if variant == "cifar10":
    c.batch_size = 1024
    c.optimizer.update(base_lr=0.5, lr_scaling="none", weight_decay=1e-4)
  elif variant == "imagenet":
    c.num_epochs = 700.0
    c.optimizer.update(base_lr=0.3, lr_scaling="linear", weight_decay=1e-6)
  return c
