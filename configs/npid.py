"""NPID (Wu, Xiong, Yu & Lin 2018, "Unsupervised Feature Learning via
Non-Parametric Instance Discrimination"). Variants: see configs/common.py.

  imagenet ResNet-50, batch 256, SGD lr 0.03, momentum 0.9, wd 5e-4, T 0.07,
           128-d linear embedding, memory momentum 0.5, 200 epochs, one view.
           Paper: 54.0% top-1 (ResNet-50, linear classifier on conv5 features).
  cifar10  the paper's optimiser on ResNet-18, 200 epochs.
"""

import ml_collections

from configs import common
from repr_learn import config_schema


def get_config(variant: str = "digits") -> ml_collections.ConfigDict:
  c = common.set_variant(config_schema.base_config(), variant)
  config_schema.with_objective(c, "npid", temperature=0.07, bank_momentum=0.5)
  c.augment.recipe = "single"
  c.model.projector.num_layers = 1   # a linear 128-d embedding
  c.model.projector.use_bn = False
  if variant not in ("smoke", "digits"):
    c.model.projector.output_dim = 128
  c.optimizer.update(name="sgd", base_lr=0.03, lr_scaling="linear", weight_decay=5e-4)
  if variant == "digits":
    c.optimizer.update(base_lr=0.5)
  elif variant in ("cifar10", "imagenet"):
    c.num_epochs = 200.0
    if variant == "imagenet":
      c.batch_size = 256
  return c
