"""SwAV (Caron et al. 2020). Variants: configs/common.py.

  imagenet ResNet-50, batch 4096, LARS lr 0.3 x B/256 (4.8), wd 1e-6, 800 epochs,
           3000 prototypes, projector 2048/128, tau 0.1, Sinkhorn eps 0.05 x 3,
           multi-crop 2x224 (scale 0.14-1) + 6x96 (0.05-0.14), prototypes frozen
           for the first epoch, no queue at this batch size. Paper: 75.3% linear.
  cifar10  solo-learn's swav CIFAR recipe: ResNet-18, LARS lr 0.6, 3000
           prototypes, queue 3840 from epoch 50, prototypes frozen 2 epochs.
  cifar10 optimizer: solo-learn's LARS, eta 0.02 with lr clipping, biases and norms
           excluded (scripts/pretrain/cifar/swav.yaml,
           solo/utils/lars.py; `common.solo_learn_lars`).
"""

import ml_collections

from configs import common
from repr_learn import config_schema


def get_config(variant: str = "digits") -> ml_collections.ConfigDict:
  c = common.set_variant(config_schema.base_config(), variant)
  config_schema.with_objective(c, "swav")
  common.projector(c, hidden=2048, out=128, layers=2, variant=variant)
  common.multicrop(c, variant=variant)
  c.model.prototypes.num_prototypes = 3000
  if variant == "smoke":
    c.model.prototypes.num_prototypes = 16
  elif variant == "digits":
    c.model.prototypes.num_prototypes = 30
  elif variant == "cifar10":
    c.augment.num_local_crops = 0
    c.objective.update(queue_size=3840, queue_start_epochs=50.0,
                       freeze_prototypes_epochs=2.0)
    c.optimizer.update(base_lr=0.6, lr_scaling="linear", weight_decay=1e-6)
  elif variant == "imagenet":
    c.num_epochs = 800.0
    c.optimizer.update(base_lr=0.3, lr_scaling="linear", weight_decay=1e-6)
  common.solo_learn_lars(c, variant=variant)
  return c
