"""SeLa (Asano et al. 2020), in the SeLa-v2 form of the SwAV paper (normalised
prototype head, multi-crop on ImageNet). Variants: configs/common.py.

  imagenet ResNet-50, batch 4096, LARS lr 0.3 x B/256, 400 epochs, 3000
           clusters relabelled every 5 epochs (SeLa: 80 label updates in 400
           epochs, lambda 25 -> eps 0.04), multi-crop 2x224 + 6x96.
           Paper: SeLa 61.5% (single crop, 3k x 10 heads); SeLa-v2 71.8%.
  cifar10  ResNet-18, batch 256, LARS lr 0.6, 128 clusters relabelled every
           5 epochs, two views.
  cifar10 optimizer: solo-learn's LARS as in its deepclusterv2/swav CIFAR recipes
           (SeLa has none there): eta 0.02 with lr clipping (`common.solo_learn_cifar`).

    | setting          | value                                        | source |
    |------------------|----------------------------------------------|--------|
    | imagenet         | SeLa-v2 as the SwAV paper describes it (normalised prototypes, multi-crop, 400 epochs) | SwAV paper, appendix; no SeLa-v2 script in facebookresearch/swav |
    | label updates    | every 5 epochs (80 in 400), Sinkhorn eps 0.04 (lambda 25) | SeLa paper (official repository not re-read) |
    | cifar10          | ours: solo-learn's deepclusterv2/swav CIFAR optimizer, 128 clusters | no official CIFAR recipe |
"""

import ml_collections

from configs import common
from repr_learn import config_schema


def get_config(variant: str = "digits") -> ml_collections.ConfigDict:
  c = common.set_variant(config_schema.base_config(), variant)
  config_schema.with_objective(c, "sela", epsilon=0.04, sinkhorn_iters=20,
                               relabel_epochs=5.0)
  common.projector(c, hidden=2048, out=128, layers=2, variant=variant)
  c.model.prototypes.num_prototypes = 3000
  if variant == "smoke":
    c.model.prototypes.num_prototypes = 8
    # Relabel every 2 steps so that the labels are recomputed and the loss switches on.
    c.objective.relabel_epochs = 0.05
    c.num_steps = 6
  elif variant == "digits":
    c.model.prototypes.num_prototypes = 30
    c.objective.relabel_epochs = 1.0
  elif variant == "cifar10":
    c.model.prototypes.num_prototypes = 128
    c.optimizer.update(base_lr=0.6, lr_scaling="linear", weight_decay=1e-6)
  elif variant == "imagenet":
    common.multicrop(c, variant=variant)
    c.num_epochs = 400.0
    c.optimizer.update(base_lr=0.3, lr_scaling="linear", weight_decay=1e-6)
  common.solo_learn_cifar(c, variant=variant)
  return c
