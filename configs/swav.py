"""SwAV (Caron et al. 2020). Variants: configs/common.py.

  imagenet the 800-epoch script (paper: 75.3% linear top-1):

    | setting          | value                                        | source (facebookresearch/swav) |
    |------------------|----------------------------------------------|--------------------------------|
    | batch / epochs   | 64 x 64 GPUs = 4096 / 800, no queue          | scripts/swav_800ep_pretrain.sh |
    | optimizer        | SGD momentum 0.9 in LARC (trust 0.001, no clipping, every parameter), wd 1e-6 | main_swav.py, apex LARC |
    | lr               | 4.8, 10 warm-up epochs from 0.3, cosine to 0.0048 | the script --base_lr/--start_warmup/--final_lr |
    | prototypes       | 3000, frozen for 313 iterations (one epoch), T 0.1 | the script |
    | Sinkhorn         | eps 0.05, 3 iterations                       | the script |
    | crops            | 2 x 224 (0.14-1) + 6 x 96 (0.05-0.14)        | the script |
    | projector        | 2048 -> 128                                  | the script --feat_dim |

    Differs: the prototypes are normalised inside the forward pass (the
    gradient sees the normalisation); main_swav.py renormalises the weights
    in place after each step.
  cifar10  solo-learn's swav CIFAR recipe:

    | setting          | value                                        | source (vturrisi/solo-learn) |
    |------------------|----------------------------------------------|------------------------------|
    | backbone / batch | ResNet-18 (CIFAR stem) / 256, 1000 epochs    | scripts/pretrain/cifar/swav.yaml |
    | optimizer        | LARS lr 0.6 x B/256, wd 1e-6, eta 0.02, clip_lr, biases and norms excluded; 10 warm-up epochs, cosine | swav.yaml, solo/utils/lars.py, solo/methods/base.py |
    | prototypes       | 3000, frozen for 2 epochs, T 0.1             | swav.yaml |
    | queue            | 3840, from epoch 50                          | swav.yaml |
    | Sinkhorn         | eps 0.05, 3 iterations                       | solo/methods/swav.py defaults |
    | projector        | 2048 -> 128                                  | swav.yaml |
    | views            | two (no multi-crop), jitter (0.8, 0.8, 0.8, 0.2) p 0.8, grey 0.2, blur 0.5, crop (0.08, 1) | augmentations/symmetric.yaml |

    Differs: solo-learn's warm-up starts at 3e-5, ours at 0.
"""

import ml_collections

from configs import common
from repr_learn import config_schema


def get_config(variant: str = "digits") -> ml_collections.ConfigDict:
  c = common.set_variant(config_schema.base_config(), variant)
  config_schema.with_objective(c, "swav")
  common.projector(c, hidden=2048, out=128, layers=2, variant=variant)
  common.multicrop(c, variant=variant)
  c.model.prototypes.num_prototypes = 3000
  if variant == "smoke":
    c.model.prototypes.num_prototypes = 16
  elif variant == "digits":
    c.model.prototypes.num_prototypes = 30
  elif variant == "cifar10":
    c.augment.update(num_local_crops=0, color_strength=1.0, blur_prob=0.5, min_scale=0.08)
    c.objective.update(queue_size=3840, queue_start_epochs=50.0,
                       freeze_prototypes_epochs=2.0)
    c.optimizer.update(base_lr=0.6, lr_scaling="linear", weight_decay=1e-6)
  elif variant == "imagenet":
    c.num_epochs = 800.0
    common.swav_larc(c)
  common.solo_learn_cifar(c, variant=variant)
  return c
