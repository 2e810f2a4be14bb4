"""SimSiam (Chen & He 2021, "Exploring Simple Siamese Representation Learning").
Variants: see configs/common.py.

  imagenet ResNet-50, batch 512, SGD lr 0.05 x B/256, wd 1e-4, 3-layer projector
           2048 with BN on the output, predictor bottleneck 512, 100 epochs;
           views: crop scale (0.2, 1), jitter (0.4, 0.4, 0.4, 0.1) p 0.8, grey 0.2,
           blur 0.5 (main_simsiam.py). Paper: 68.1% linear top-1 (100 ep), 71.3%
           (800 ep). Not yet matched: `--fix-pred-lr` (the predictor's lr held
           constant, the 68.1% run).
  cifar10  the paper's CIFAR recipe: ResNet-18, batch 512, SGD lr 0.03 x B/256,
           wd 5e-4, 2-layer projector, 800 epochs (91.8% kNN/linear in the paper).
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
  return c
