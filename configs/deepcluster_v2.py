"""DeepCluster-v2 (Caron et al. 2020, the SwAV paper, sec. 4 and appendix).
Variants: configs/common.py.

  imagenet ResNet-50, batch 4096, LARS lr 0.3 x B/256, wd 1e-6, 800 epochs,
           k-means with 3000 centroids each epoch (the paper runs 3 such heads;
           one here), tau 0.1, multi-crop 2x224 + 6x96. Paper: 75.2% linear.
  cifar10  solo-learn's deepclusterv2 CIFAR recipe: ResNet-18, LARS lr 0.6,
           3000 centroids, two views.
  cifar10 optimizer: solo-learn's LARS, eta 0.02 with lr clipping, biases and norms
           excluded (scripts/pretrain/cifar/deepclusterv2.yaml,
           solo/utils/lars.py; `common.solo_learn_lars`).
"""

import ml_collections

from configs import common
from repr_learn import config_schema


def get_config(variant: str = "digits") -> ml_collections.ConfigDict:
  c = common.set_variant(config_schema.base_config(), variant)
  config_schema.with_objective(c, "deepcluster_v2")
  common.projector(c, hidden=2048, out=128, layers=2, variant=variant)
  if variant == "smoke":
    # Relabel every 2 steps so that k-means runs and the loss switches on.
    c.objective.update(num_clusters=8, relabel_epochs=0.05)
    c.num_steps = 6
  elif variant == "digits":
    c.objective.num_clusters = 30
  elif variant == "cifar10":
    c.optimizer.update(base_lr=0.6, lr_scaling="linear", weight_decay=1e-6)
  elif variant == "imagenet":
    common.multicrop(c, variant=variant)
    c.num_epochs = 800.0
    c.optimizer.update(base_lr=0.3, lr_scaling="linear", weight_decay=1e-6)
  common.solo_learn_lars(c, variant=variant)
  return c
