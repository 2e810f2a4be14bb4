"""MoCo v2 (Chen, Fan, Girshick & He 2020, "Improved Baselines with Momentum
Contrastive Learning"). Variants: see configs/common.py.

  imagenet ResNet-50, batch 256, SGD lr 0.03 x B/256, wd 1e-4, T 0.2, queue 65536,
           momentum 0.999, MLP head, 200 epochs; views: crop scale (0.2, 1),
           jitter (0.4, 0.4, 0.4, 0.1) p 0.8, grey 0.2, blur 0.5 (main_moco.py
           --aug-plus). Paper: 67.5% linear top-1
           (200 ep), 71.1% (800 ep).
  cifar10  solo-learn's mocov2plus CIFAR recipe: ResNet-18, batch 256, SGD lr 0.3,
           wd 1e-4, T 0.2, queue 32768, momentum 0.99, 1000 epochs.
"""

import ml_collections

from configs import common
from repr_learn import config_schema


def get_config(variant: str = "digits") -> ml_collections.ConfigDict:
  c = common.set_variant(config_schema.base_config(), variant)
  config_schema.with_objective(c, "moco_v2", temperature=0.2, queue_size=65536,
                               momentum=0.999, shuffle_bn=True)
  common.projector(c, hidden=2048, out=128, layers=2, use_bn=False, variant=variant)
  c.optimizer.name = "sgd"
  c.optimizer.weight_decay = 1e-4
  if variant == "smoke":
    c.objective.queue_size = 128
  elif variant == "digits":
    c.objective.update(queue_size=2048, momentum=0.99)
    c.optimizer.update(base_lr=0.06, lr_scaling="linear", weight_decay=5e-4)
  elif variant == "cifar10":
    c.objective.update(queue_size=32768, momentum=0.99)
    c.optimizer.update(base_lr=0.3, lr_scaling="linear")
  elif variant == "imagenet":
    c.batch_size = 256
    c.num_epochs = 200.0
    c.model.dtype = "bfloat16"
    # aug_plus: RandomResizedCrop(224, scale=(0.2, 1)), ColorJitter(0.4, 0.4,
    # 0.4, 0.1) p 0.8 ("not strengthened": SimCLR's strength 0.5), grey 0.2,
    # blur p 0.5 (facebookresearch/moco main_moco.py).
    c.augment.update(color_strength=0.5, min_scale=0.2, blur_prob=0.5)
    c.optimizer.update(base_lr=0.03, lr_scaling="linear", warmup_epochs=0.0)
  return c
