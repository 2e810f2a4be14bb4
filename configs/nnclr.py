"""NNCLR (Dwibedi et al. 2021, "With a Little Help from My Friends: Nearest-
Neighbor Contrastive Learning of Visual Representations"). Variants: configs/common.py.

  imagenet ResNet-50, batch 4096, LARS lr 0.3 x B/256 (the paper's base rate),
           wd 1e-6, T 0.1, support set 98304, 3-layer projector 2048/256,
           predictor 4096. Paper: 75.4% linear top-1 (1000 epochs).
  cifar10  solo-learn's nnclr CIFAR recipe: LARS lr 0.4, T 0.2, support 65536.
  cifar10 optimizer: solo-learn's LARS, eta 0.02 with lr clipping, biases and norms
           excluded (scripts/pretrain/cifar/nnclr.yaml,
           solo/utils/lars.py; `common.solo_learn_lars`).
"""

import ml_collections

from configs import common
from repr_learn import config_schema


def get_config(variant: str = "digits") -> ml_collections.ConfigDict:
  c = common.set_variant(config_schema.base_config(), variant)
  config_schema.with_objective(c, "nnclr", temperature=0.1, queue_size=98304)
  common.projector(c, hidden=2048, out=256, layers=3, variant=variant)
  common.predictor(c, hidden=4096, layers=2, variant=variant)
  if variant == "smoke":
    c.objective.queue_size = 128
  elif variant == "digits":
    c.objective.update(queue_size=1024, temperature=0.2)
  elif variant == "cifar10":
    c.objective.update(queue_size=65536, temperature=0.2)
    c.optimizer.update(base_lr=0.4, lr_scaling="linear", weight_decay=1e-5)
  elif variant == "imagenet":
    c.num_epochs = 1000.0
    c.optimizer.update(base_lr=0.3, lr_scaling="linear", weight_decay=1e-6)
  common.solo_learn_lars(c, variant=variant)
  return c
