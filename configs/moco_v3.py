"""MoCo v3 (Chen, Xie & He 2021, "An Empirical Study of Training Self-Supervised
Vision Transformers"). Variants: see configs/common.py.

  imagenet the ViT-S/16 recipe of CONFIG.md (73.2% linear top-1, 300 epochs):

    | setting          | value                                        | source (facebookresearch/moco-v3) |
    |------------------|----------------------------------------------|-----------------------------------|
    | batch / epochs   | 4096 / 300, 40 warm-up epochs, cosine        | CONFIG.md (ViT-S), main_moco.py |
    | optimizer        | AdamW (0.9, 0.999), lr 1.5e-4 x B/256, wd 0.1 on every parameter | CONFIG.md, main_moco.py (torch AdamW on model.parameters()) |
    | momentum         | 0.99 -> 1, cosine (`--moco-m-cos`)           | main_moco.py adjust_moco_momentum |
    | temperature      | 0.2, loss x 2T                               | CONFIG.md, moco/builder.py |
    | ViT-S            | 384 wide, 12 blocks, 12 heads, sin-cos positions, cls token | vits.py vit_small |
    | patch projection | frozen at init (`--stop-grad-conv1`), so never decayed | vits.py, CONFIG.md |
    | projector        | 3 layers 4096 -> 256, BN+ReLU, last BN without affine | moco/builder.py MoCo_ViT |
    | predictor        | 2 layers 4096, last BN without affine        | moco/builder.py MoCo_ViT |
    | views            | BYOL's pair: crop (0.08, 1), jitter (0.4, 0.4, 0.2, 0.1) p 0.8, grey 0.2, blur 1.0 / 0.1, solarise 0 / 0.2 | main_moco.py augmentation1/2 |
    | BatchNorm        | in the heads, synchronised, one pass per view | moco/builder.py MoCo.forward |

    Dense layers before a BatchNorm have no bias, as moco-v3's bias=False
    layers (every layer of the ViT heads is followed by one).
  cifar10  solo-learn's mocov3 CIFAR recipe:

    | setting          | value                                        | source (vturrisi/solo-learn) |
    |------------------|----------------------------------------------|------------------------------|
    | backbone / batch | ResNet-18 (CIFAR stem) / 256, 1000 epochs    | scripts/pretrain/cifar/mocov3.yaml |
    | optimizer        | LARS lr 0.3 x B/256, wd 1e-6, eta 0.02, clip_lr, biases and norms excluded | mocov3.yaml, solo/utils/lars.py |
    | momentum / T     | 0.99 -> 1.0 / 0.2                            | mocov3.yaml |
    | projector        | 2 layers 4096 -> 256 (ResNet), last BN       | solo/methods/mocov3.py |
    | predictor        | 2 layers 4096, no last BN (ResNet)           | solo/methods/mocov3.py |
    | views            | asymmetric: jitter (0.4, 0.4, 0.2, 0.1) p 0.8, grey 0.2, no blur, solarise 0 / 0.2, crop (0.08, 1) | scripts/pretrain/cifar/augmentations/asymmetric.yaml |
"""

import ml_collections

from configs import common
from repr_learn import config_schema


def get_config(variant: str = "digits") -> ml_collections.ConfigDict:
  c = common.set_variant(config_schema.base_config(), variant)
  config_schema.with_objective(c, "moco_v3", temperature=0.2, base_momentum=0.99)
  common.projector(c, hidden=4096, out=256, layers=3, last_bn=True, variant=variant)
  common.predictor(c, hidden=4096, layers=2, variant=variant)
  if variant in ("cifar10", "imagenet"):
    c.augment.recipe = "byol"  # both recipes draw BYOL's asymmetric pair
  if variant == "cifar10":
    c.model.projector.num_layers = 2
    c.optimizer.update(base_lr=0.3, lr_scaling="linear", weight_decay=1e-6)
  elif variant == "imagenet":
    c.model.update(backbone="vit_small", patch_size=16, pooling="cls",
                   pos_embedding="sincos", num_heads=12, freeze_patch_embed=True)
    c.model.predictor.last_bn = True
    c.model.per_view_batchnorm = True
    c.augment.color_strength = 0.5  # byol recipe: (0.4, 0.4, 0.2, 0.1), not strengthened
    c.num_epochs = 300.0
    c.optimizer.update(name="adamw", base_lr=1.5e-4, lr_scaling="linear",
                       weight_decay=0.1, warmup_epochs=40.0, adam_b2=0.999,
                       decay_all_parameters=True, no_decay_names=("patch_embed",))
  common.solo_learn_cifar(c, variant=variant)
  return c
