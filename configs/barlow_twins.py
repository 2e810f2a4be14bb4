"""Barlow Twins (Zbontar et al. 2021). Variants: see configs/common.py.

  imagenet the repository's recipe (paper: 73.2% linear top-1):

    | setting          | value                                       | source (facebookresearch/barlowtwins) |
    |------------------|---------------------------------------------|---------------------------------------|
    | batch / epochs   | 2048 / 1000                                 | main.py defaults |
    | optimizer        | LARS (eta 0.001, momentum 0.9), wd 1e-6; biases and norms: no wd, no adaptation | main.py LARS, exclude_bias_and_norm |
    | lr               | weights 0.2 x B/256, biases and norms 0.0048 x B/256 | main.py --learning-rate-weights/-biases |
    | schedule         | 10 warm-up epochs, cosine to 0.001 x the peak | main.py adjust_learning_rate |
    | loss             | lambda 0.0051, no loss scale                | main.py --lambd |
    | projector        | 8192-8192-8192, BN+ReLU between, linear output | main.py --projector |
    | views            | BYOL's asymmetric pair (blur 1.0/0.1, solarise 0/0.2) | main.py Transform |
    | BatchNorm        | synchronised, one pass per view              | main.py BarlowTwins.forward |

    Differs: the paper's text gives wd 1.5e-6; main.py's default, used here, is 1e-6.
  cifar10  solo-learn's CIFAR recipe:

    | setting          | value                                        | source (vturrisi/solo-learn) |
    |------------------|----------------------------------------------|------------------------------|
    | backbone / batch | ResNet-18 (CIFAR stem) / 256, 1000 epochs    | scripts/pretrain/cifar/barlow.yaml |
    | optimizer        | LARS lr 0.3 x B/256, wd 1e-4, eta 0.02, clip_lr, biases and norms excluded | barlow.yaml, solo/utils/lars.py |
    | loss             | lambda 0.0051, x 0.1 (scale_loss)            | barlow.yaml; solo/methods/barlow_twins.py (lamb default) |
    | projector        | 2048-2048-2048                               | barlow.yaml |
    | views            | asymmetric.yaml (no blur, solarise 0 / 0.2), one pass per view | augmentations/asymmetric.yaml; solo/methods/base.py |
"""

import ml_collections

from configs import common
from repr_learn import config_schema


def get_config(variant: str = "digits") -> ml_collections.ConfigDict:
  c = common.set_variant(config_schema.base_config(), variant)
  config_schema.with_objective(c, "barlow_twins", lambda_offdiag=0.0051, scale_loss=1.0)
  common.projector(c, hidden=8192, out=8192, layers=3, variant=variant)
  c.augment.recipe = "byol"  # the paper uses BYOL's asymmetric augmentations
  if variant in ("smoke", "digits"):
    c.objective.scale_loss = 0.1
  elif variant == "cifar10":
    c.model.projector.update(hidden_dim=2048, output_dim=2048)
    c.objective.scale_loss = 0.1
    c.optimizer.update(base_lr=0.3, lr_scaling="linear", weight_decay=1e-4)
  elif variant == "imagenet":
    c.batch_size = 2048
    c.num_epochs = 1000.0
    c.optimizer.update(base_lr=0.2, lr_scaling="linear", weight_decay=1e-6,
                       bias_lr_scale=0.0048 / 0.2, min_lr=0.001 * 0.2 * 2048 / 256)
    c.model.per_view_batchnorm = True
  common.solo_learn_cifar(c, variant=variant)
  return c
