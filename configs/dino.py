"""DINO (Caron et al. 2021). Variants: configs/common.py, plus
`imagenet_resnet50`.

  imagenet          the paper's ViT-S/16 recipe: batch 1024, AdamW lr 5e-4 x B/256,
                    wd 0.04 -> 0.4 (cosine), each parameter's gradient clipped to
                    norm 3, 10 warm-up epochs, 300 epochs; head 3-layer GELU MLP
                    2048/256 without BN, 65536 weight-normalised prototypes, last
                    layer frozen for 1 epoch; teacher momentum 0.996 -> 1, centre
                    momentum 0.9, student tau 0.1, teacher tau 0.04 -> 0.07 over 30
                    epochs; 2x224 (scale 0.4-1) + 10x96 (0.05-0.4) crops (the
                    learned 224-px positions resampled bicubically to 96 px, as
                    DINO's interpolate_pos_encoding); drop path 0.1
                    (main_dino.py --drop_path_rate).
                    DINO repository, 300 epochs: 76.0% linear, 73.3% kNN;
                    paper, 800 epochs: 77.0% linear, 74.5% kNN.
  imagenet_resnet50 the paper's ResNet-50 recipe: SGD lr 0.03 x B/256, wd 1e-4,
                    gradient clipping as above, crops 0.14-1 / 0.05-0.14. Paper: 75.3% linear, 67.5% kNN.
  cifar10           solo-learn's dino CIFAR recipe (scripts/pretrain/cifar/dino.yaml
                    with augmentations/asymmetric.yaml; defaults of
                    solo/methods/dino.py): ResNet-18, LARS lr 0.3, 4096
                    prototypes, no BN in the head (use_bn_in_head False), teacher
                    tau 0.04 -> 0.07 over 50 epochs, momentum 0.9995 -> 1 (base_tau),
                    BYOL's asymmetric pair without blur at crop scale 0.08-1, two
                    views.
  cifar10 optimizer: solo-learn's LARS, eta 0.02 with lr clipping, biases and norms
           excluded (scripts/pretrain/cifar/dino.yaml,
           solo/utils/lars.py; `common.solo_learn_lars`).
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
    c.objective.update(base_momentum=0.9995, warmup_teacher_temperature_epochs=50.0)
    c.optimizer.update(base_lr=0.3, lr_scaling="linear", weight_decay=1e-6)
  elif variant == "imagenet":
    c.model.update(backbone="vit_small", patch_size=16, pooling="cls",
                   pos_embedding="learned", dtype="bfloat16", drop_path=0.1)
    c.batch_size = 1024
    c.num_epochs = 300.0
    c.augment.update(min_scale=0.4, num_local_crops=10, local_max_scale=0.4)
    c.optimizer.update(name="adamw", base_lr=5e-4, lr_scaling="linear", weight_decay=0.04,
                       weight_decay_end=0.4, warmup_epochs=10.0, clip_each_parameter_norm=3.0)
  elif resnet50:
    c.batch_size = 1024
    c.num_epochs = 300.0
    c.augment.update(min_scale=0.14, num_local_crops=6)
    c.optimizer.update(name="sgd", base_lr=0.03, lr_scaling="linear", weight_decay=1e-4,
                       warmup_epochs=10.0, clip_each_parameter_norm=3.0)
  common.solo_learn_lars(c, variant=variant)
  return c
