"""VICReg (Bardes, Ponce & LeCun 2022). Variants: see configs/common.py.

  imagenet ResNet-50, batch 2048, LARS lr 0.2 x B/256, wd 1e-6, weights 25/25/1,
           3-layer projector 8192, 1000 epochs. Paper: 73.2% linear top-1.
  cifar10  solo-learn's CIFAR recipe: projector 2048, LARS lr 0.3, wd 1e-4.
  cifar10 optimizer: solo-learn's LARS, eta 0.02 with lr clipping, biases and norms
           excluded (scripts/pretrain/cifar/vicreg.yaml,
           solo/utils/lars.py; `common.solo_learn_lars`).
"""

import ml_collections

from configs import common
from repr_learn import config_schema


def get_config(variant: str = "digits") -> ml_collections.ConfigDict:
  c = common.set_variant(config_schema.base_config(), variant)
  config_schema.with_objective(c, "vicreg", sim_weight=25.0, var_weight=25.0,
                               cov_weight=1.0)
  common.projector(c, hidden=8192, out=8192, layers=3, variant=variant)
  c.augment.recipe = "byol"
  if variant == "digits":
    c.optimizer.base_lr = 0.03
  elif variant == "cifar10":
    c.model.projector.update(hidden_dim=2048, output_dim=2048)
    c.optimizer.update(base_lr=0.3, lr_scaling="linear", weight_decay=1e-4)
  elif variant == "imagenet":
    c.batch_size = 2048
    c.num_epochs = 1000.0
    c.optimizer.update(base_lr=0.2, lr_scaling="linear", weight_decay=1e-6)
  common.solo_learn_lars(c, variant=variant)
  return c
