"""NNCLR (Dwibedi et al. 2021, "With a Little Help from My Friends: Nearest-
Neighbor Contrastive Learning of Visual Representations"). Variants: configs/common.py.

  imagenet the paper's recipe (section 4; no official code was released):
           ResNet-50, batch 4096, LARS lr 0.3 x B/256, wd 1e-6, T 0.1, support
           set 98304, 3-layer projector 2048/256, predictor 4096, BYOL's
           augmentations, 1000 epochs. Paper: 75.4% linear top-1.
  cifar10  solo-learn's nnclr CIFAR recipe:

    | setting          | value                                        | source (vturrisi/solo-learn) |
    |------------------|----------------------------------------------|------------------------------|
    | backbone / batch | ResNet-18 (CIFAR stem) / 256, 1000 epochs    | scripts/pretrain/cifar/nnclr.yaml |
    | optimizer        | LARS lr 0.4 x B/256, wd 1e-5, eta 0.02, clip_lr, biases and norms excluded | nnclr.yaml, solo/utils/lars.py |
    | T / support set  | 0.2 / 65536                                  | nnclr.yaml |
    | projector        | 3 layers 2048 -> 256 with BN on the output   | solo/methods/nnclr.py |
    | predictor        | 256 -> 4096 (BN, ReLU) -> 256                | solo/methods/nnclr.py |
    | views            | asymmetric: jitter (0.4, 0.4, 0.2, 0.1) p 0.8, grey 0.2, no blur, solarise 0 / 0.2 | augmentations/asymmetric.yaml |

    Differs: the output BN has no affine parameters here (solo-learn's has).
"""

import ml_collections

from configs import common
from repr_learn import config_schema


def get_config(variant: str = "digits") -> ml_collections.ConfigDict:
  c = common.set_variant(config_schema.base_config(), variant)
  config_schema.with_objective(c, "nnclr", temperature=0.1, queue_size=98304)
  common.projector(c, hidden=2048, out=256, layers=3, variant=variant)
  common.predictor(c, hidden=4096, layers=2, variant=variant)
  if variant in ("cifar10", "imagenet"):
    c.augment.recipe = "byol"
    c.model.projector.last_bn = True
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
  common.solo_learn_cifar(c, variant=variant)
  return c
