"""MoCo v3 (Chen, Xie & He 2021, "An Empirical Study of Training Self-Supervised
Vision Transformers"). Variants: see configs/common.py.

  imagenet the paper's ViT-S/16 recipe: batch 4096, AdamW lr 1.5e-4 x B/256, wd 0.1,
           T 0.2, momentum 0.99 -> 1 (cosine), 3-layer projector 4096/256 and
           2-layer predictor 4096 with BN, 40 warm-up epochs, 300 epochs, fixed
           sin-cos positions. Paper: 73.2% linear top-1 (ViT-S), 74.6% (R50, 800 ep).
  cifar10  solo-learn's mocov3 CIFAR recipe: ResNet-18, LARS lr 0.3, T 0.2.
  cifar10 optimizer: solo-learn's LARS, eta 0.02 with lr clipping, biases and norms
           excluded (scripts/pretrain/cifar/mocov3.yaml,
           solo/utils/lars.py; `common.solo_learn_lars`).
"""

import ml_collections

from configs import common
from repr_learn import config_schema


def get_config(variant: str = "digits") -> ml_collections.ConfigDict:
  c = common.set_variant(config_schema.base_config(), variant)
  config_schema.with_objective(c, "moco_v3", temperature=0.2, base_momentum=0.99)
  common.projector(c, hidden=4096, out=256, layers=3, last_bn=True, variant=variant)
  common.predictor(c, hidden=4096, layers=2, variant=variant)
  if variant == "cifar10":
    c.optimizer.update(base_lr=0.3, lr_scaling="linear", weight_decay=1e-6)
  elif variant == "imagenet":
    c.model.update(backbone="vit_small", patch_size=16, pooling="cls",
                   pos_embedding="sincos")
    c.num_epochs = 300.0
    c.optimizer.update(name="adamw", base_lr=1.5e-4, lr_scaling="linear",
                       weight_decay=0.1, warmup_epochs=40.0, adam_b2=0.999)
  common.solo_learn_lars(c, variant=variant)
  return c
