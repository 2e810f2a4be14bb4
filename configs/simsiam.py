"""SimSiam (Chen & He 2021, "Exploring Simple Siamese Representation Learning").
Variants: see configs/common.py.

  imagenet the README's 100-epoch run (68.1% linear top-1; 71.3% at 800 epochs):

    | setting          | value                                        | source (facebookresearch/simsiam) |
    |------------------|----------------------------------------------|-----------------------------------|
    | batch / epochs   | 512 / 100                                    | main_simsiam.py defaults, README |
    | optimizer        | SGD momentum 0.9, lr 0.05 x B/256, wd 1e-4 on every parameter | main_simsiam.py (torch SGD weight_decay) |
    | schedule         | cosine, no warm-up                           | main_simsiam.py adjust_learning_rate |
    | predictor lr     | held at the peak (`--fix-pred-lr`)           | main_simsiam.py, README command |
    | projector        | 3 layers 2048, BN on every layer incl. the output | simsiam/builder.py |
    | predictor        | 2048 -> 512 (BN, ReLU) -> 2048               | simsiam/builder.py |
    | views            | crop (0.2, 1), jitter (0.4, 0.4, 0.4, 0.1) p 0.8, grey 0.2, blur 0.5 | main_simsiam.py |
    | BatchNorm        | synchronised, one pass per view              | simsiam/builder.py forward |

    Differs: the cosine steps per iteration (the official one per epoch).
  cifar10  the paper's CIFAR recipe (section 4.2; no official CIFAR code):
           ResNet-18, batch 512, SGD lr 0.03 x B/256, wd 5e-4, 2-layer projector,
           800 epochs (91.8% kNN/linear in the paper). Biases and norms are not
           decayed and the predictor lr decays: the paper does not say otherwise.
"""

import ml_collections

from configs import common
from repr_learn import config_schema


def get_config(variant: str = "digits") -> ml_collections.ConfigDict:
  c = common.set_variant(config_schema.base_config(), variant)
  config_schema.with_objective(c, "simsiam")
  common.projector(c, hidden=2048, out=2048, layers=3, last_bn=True, variant=variant)
  common.predictor(c, hidden=512, layers=2, variant=variant)
  c.optimizer.update(name="sgd", base_lr=0.05, lr_scaling="linear", weight_decay=1e-4,
                     warmup_epochs=0.0)
  if variant == "digits":
    c.optimizer.update(base_lr=0.1, weight_decay=5e-4)
  elif variant == "cifar10":
    c.batch_size = 512
    c.num_epochs = 800.0
    c.model.projector.num_layers = 2
    c.optimizer.update(base_lr=0.03, weight_decay=5e-4)
  elif variant == "imagenet":
    c.batch_size = 512
    # RandomResizedCrop(224, scale=(0.2, 1)), ColorJitter(0.4, 0.4, 0.4, 0.1)
    # p 0.8, grey 0.2, blur p 0.5 (facebookresearch/simsiam main_simsiam.py).
    c.augment.update(color_strength=0.5, min_scale=0.2, blur_prob=0.5)
    c.optimizer.update(decay_all_parameters=True, fixed_lr_names=("predictor",))
    c.model.per_view_batchnorm = True
  return c
