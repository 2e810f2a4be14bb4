"""VICReg (Bardes, Ponce & LeCun 2022). Variants: see configs/common.py.

  imagenet the README's 1000-epoch command (paper: 73.2% linear top-1):

    | setting          | value                                        | source (facebookresearch/vicreg) |
    |------------------|----------------------------------------------|----------------------------------|
    | batch / epochs   | 2048 / 1000                                  | README.md (run_with_submitit.py command) |
    | optimizer        | LARS (eta 0.001, momentum 0.9), lr 0.2 x B/256, wd 1e-6; biases and norms: no wd, no adaptation | main_vicreg.py LARS, exclude_bias_and_norm |
    | schedule         | 10 warm-up epochs, cosine to 0.001 x the peak | main_vicreg.py adjust_learning_rate |
    | loss             | invariance 25, variance 25, covariance 1     | main_vicreg.py --sim/std/cov-coeff |
    | projector        | 8192-8192-8192, BN+ReLU between, linear output | main_vicreg.py --mlp |
    | views            | BYOL's asymmetric pair (blur 1.0/0.1, solarise 0/0.2) | augmentations.py TrainTransform |
    | BatchNorm        | synchronised, one pass per view              | main_vicreg.py VICReg.forward |
  cifar10  solo-learn's CIFAR recipe:

    | setting          | value                                        | source (vturrisi/solo-learn) |
    |------------------|----------------------------------------------|------------------------------|
    | backbone / batch | ResNet-18 (CIFAR stem) / 256, 1000 epochs    | scripts/pretrain/cifar/vicreg.yaml |
    | optimizer        | LARS lr 0.3 x B/256, wd 1e-4, eta 0.02, clip_lr, biases and norms excluded | vicreg.yaml, solo/utils/lars.py |
    | loss / projector | 25 / 25 / 1; 2048-2048-2048                  | vicreg.yaml |
    | views            | crop (0.2, 1), jitter (0.4, 0.4, 0.2, 0.1) p 0.8, grey 0.2, no blur, solarise 0.1 on both | vicreg.yaml augmentations |
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
    c.augment.update(min_scale=0.2, solarize_probs=(0.1, 0.1))
    c.optimizer.update(base_lr=0.3, lr_scaling="linear", weight_decay=1e-4)
  elif variant == "imagenet":
    c.batch_size = 2048
    c.num_epochs = 1000.0
    c.optimizer.update(base_lr=0.2, lr_scaling="linear", weight_decay=1e-6,
                       min_lr=0.001 * 0.2 * 2048 / 256)
    c.model.per_view_batchnorm = True
  common.solo_learn_cifar(c, variant=variant)
  return c
