"""DINO (Caron et al. 2021). Variants: configs/common.py, plus
`imagenet_resnet50`.

  imagenet          the README's ViT-S/16 300-epoch command (76.0% linear,
                    73.3% kNN; the paper's 800 epochs: 77.0%, 74.5%):

    | setting          | value                                        | source (facebookresearch/dino) |
    |------------------|----------------------------------------------|--------------------------------|
    | batch / epochs   | 16 GPUs x 64 = 1024 / 300, 10 warm-up epochs, cosine to 1e-6 | README.md full command, main_dino.py defaults |
    | optimizer        | AdamW lr 5e-4 x B/256, wd 0.04 -> 0.4 (cosine) on all but biases and 1-D params | main_dino.py, utils.get_params_groups |
    | clipping         | each parameter's gradient to norm 3          | main_dino.py --clip_grad, utils.clip_gradients |
    | ViT-S/16         | drop path 0.1, learned positions resampled to 96-px crops (bicubic at scale (grid + 0.1) / 14) | main_dino.py --drop_path_rate, vision_transformer.py interpolate_pos_encoding |
    | head             | 3-layer GELU MLP 2048 -> 256, no BN, 65536 prototypes, weight-normalised last layer with learned norm (`--norm_last_layer false`), frozen for epoch 1 | README.md, vision_transformer.py DINOHead |
    | teacher          | momentum 0.996 -> 1, centre momentum 0.9, temperature 0.04 -> 0.07 over 30 epochs; student 0.1 | README.md, main_dino.py |
    | crops            | 2 x 224 (0.4-1), BYOL's pair; 8 x 96 (0.05-0.4), blur 0.5 | main_dino.py DataAugmentationDINO, --local_crops_number 8 |

    Differs: fp16 autocast there, bfloat16 activations here.
  imagenet_resnet50 the README's ResNet-50 command, main_dino.py defaults
                    otherwise: 8 GPUs x 64 = 512, 100 epochs, SGD momentum 0.9 lr
                    0.03 x B/256, wd 1e-4 constant, each gradient clipped to 3,
                    crops 2 x 224 (0.14-1) + 8 x 96 (0.05-0.14), teacher
                    temperature 0.04 throughout, head without BN, normalised
                    last layer. The released checkpoint (75.3% linear, 67.5%
                    kNN, README table) came from settings in its args.txt,
                    which is not in the repository; this command's own result
                    is not stated.
  cifar10           solo-learn's dino CIFAR recipe:

    | setting          | value                                        | source (vturrisi/solo-learn @ 9187ea3) |
    |------------------|----------------------------------------------|----------------------------------------|
    | backbone / batch | ResNet-18 (CIFAR stem) / 256, 1000 epochs    | scripts/pretrain/cifar/dino.yaml |
    | optimizer        | LARS lr 0.3 x B/256, wd 1e-6, eta 0.02, clip_lr, biases and norms excluded | dino.yaml, solo/utils/lars.py |
    | head             | 2048 -> 256, no BN (use_bn_in_head False), 4096 normalised prototypes, frozen for epoch 1 | dino.yaml; solo/methods/dino.py defaults |
    | teacher          | momentum 0.9995 -> 1; temperature 0.07 from the start (warm-up epochs 0), student 0.1 | dino.yaml; solo/methods/dino.py defaults |
    | views            | asymmetric.yaml: two views, no blur, solarise 0 / 0.2, crop (0.08, 1), one pass per view | augmentations/asymmetric.yaml |
"""

import ml_collections

from configs import common
from repr_learn import config_schema

EXTRA_VARIANTS = ("imagenet_resnet50",)

def get_config(variant: str = "digits") -> ml_collections.ConfigDict:
  resnet50 = variant == "imagenet_resnet50"
  c = common.set_variant(config_schema.base_config(), "imagenet" if resnet50 else variant)
  config_schema.with_objective(c, "dino")
  c.augment.recipe = "multicrop_byol"
  # The byol pair's jitter (0.4, 0.4, 0.2, 0.1), not set_variant's ImageNet
  # strength 1.0 (which doubles it): main_dino.py DataAugmentationDINO.
  c.augment.color_strength = 0.5
  common.projector(c, hidden=2048, out=256, layers=3, use_bn=False, variant=variant)
  c.model.projector.activation = "gelu"
  common.multicrop(c, variant=variant)
  c.model.prototypes.num_prototypes = 65536
  if variant in ("smoke", "digits"):
    # BN in the head's hidden layers (solo-learn's use_bn_in_head option):
    # without it the digits projections collapsed to a point within 20 steps.
    c.model.projector.use_bn = True
  if variant == "smoke":
    c.model.prototypes.num_prototypes = 32
  elif variant == "digits":
    c.model.prototypes.num_prototypes = 1024
    c.objective.update(base_momentum=0.99, warmup_teacher_temperature_epochs=10.0)
  elif variant == "cifar10":
    c.augment.update(num_local_crops=0, min_scale=0.08)
    c.model.prototypes.num_prototypes = 4096
    c.objective.update(base_momentum=0.9995, warmup_teacher_temperature_epochs=0.0)
    c.optimizer.update(base_lr=0.3, lr_scaling="linear", weight_decay=1e-6)
  elif variant == "imagenet":
    c.model.update(backbone="vit_small", patch_size=16, pooling="cls",
                   pos_embedding="learned", pos_resample_offset=0.1, dtype="bfloat16",
                   drop_path=0.1)
    c.batch_size = 1024
    c.num_epochs = 300.0
    c.augment.update(min_scale=0.4, num_local_crops=8, local_max_scale=0.4)
    c.model.prototypes.learned_norm = True  # --norm_last_layer false
    c.optimizer.update(name="adamw", base_lr=5e-4, lr_scaling="linear", weight_decay=0.04,
                       weight_decay_end=0.4, warmup_epochs=10.0, clip_each_parameter_norm=3.0,
                       min_lr=1e-6)
  elif resnet50:
    c.batch_size = 512
    c.num_epochs = 100.0
    c.augment.update(min_scale=0.14, num_local_crops=8)
    c.objective.update(teacher_temperature=0.04, warmup_teacher_temperature_epochs=0.0)
    c.optimizer.update(name="sgd", base_lr=0.03, lr_scaling="linear", weight_decay=1e-4,
                       warmup_epochs=10.0, clip_each_parameter_norm=3.0, min_lr=1e-6)
  common.solo_learn_cifar(c, variant=variant)
  return c
