"""BYOL (Grill et al. 2020, "Bootstrap Your Own Latent"). Variants: configs/common.py.

  imagenet ResNet-50, batch 4096, 300 epochs with the official 300-epoch presets:
           LARS lr 0.3 x B/256, wd 1e-6, EMA 0.99 -> 1 (cosine)
           (deepmind-research byol/configs/byol.py: _LR_PRESETS, _WD_PRESETS,
           _EMA_PRESETS; the 1000-epoch run uses 0.2, 1.5e-6, 0.996),
           projector/predictor 4096/256, asymmetric blur/solarisation, one
           forward pass (and BatchNorm batch) per view as byol_experiment.py
           (paper: 72.5% after 300 epochs; 74.3% after 1000).
  cifar10  solo-learn's byol CIFAR recipe:

    | setting          | value                                        | source (vturrisi/solo-learn) |
    |------------------|----------------------------------------------|------------------------------|
    | backbone / batch | ResNet-18 (CIFAR stem) / 256, 1000 epochs    | scripts/pretrain/cifar/byol.yaml |
    | optimizer        | LARS lr 1.0 x B/256, wd 1e-5, eta 0.02, clip_lr, biases and norms excluded | byol.yaml, solo/utils/lars.py |
    | EMA              | 0.99 -> 1.0, cosine                          | byol.yaml base_tau/final_tau |
    | heads            | projector 4096 -> 256 (BN, ReLU), predictor 4096 -> 256 | byol.yaml, solo/methods/byol.py |
    | views            | asymmetric.yaml (no blur, solarise 0 / 0.2), one pass per view | augmentations/asymmetric.yaml; solo/methods/base.py |
"""

import ml_collections

from configs import common
from repr_learn import config_schema


def get_config(variant: str = "digits") -> ml_collections.ConfigDict:
  c = common.set_variant(config_schema.base_config(), variant)
  config_schema.with_objective(c, "byol", base_momentum=0.996)
  c.augment.recipe = "byol"
  common.projector(c, hidden=4096, out=256, layers=2, variant=variant)
  common.predictor(c, hidden=4096, layers=2, variant=variant)
  if variant == "digits":
    c.objective.base_momentum = 0.99
  elif variant == "cifar10":
    c.objective.base_momentum = 0.99
    c.optimizer.update(base_lr=1.0, lr_scaling="linear", weight_decay=1e-5)
  elif variant == "imagenet":
    c.num_epochs = 300.0
    c.objective.base_momentum = 0.99
    c.optimizer.update(base_lr=0.3, lr_scaling="linear", weight_decay=1e-6)
    c.model.per_view_batchnorm = True  # byol_experiment.py: one forward per view
    c.augment.color_strength = 0.5  # byol recipe: jitter (0.4, 0.4, 0.2, 0.1), table 6
  common.solo_learn_cifar(c, variant=variant)
  return c
