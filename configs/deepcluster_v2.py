"""DeepCluster-v2 (Caron et al. 2020, the SwAV paper, sec. 4 and appendix).
Variants: configs/common.py.

  imagenet the 800-epoch script (paper: 75.2% linear top-1):

    | setting          | value                                        | source (facebookresearch/swav) |
    |------------------|----------------------------------------------|--------------------------------|
    | batch / epochs   | 64 x 64 GPUs = 4096 / 800                    | scripts/deepclusterv2_800ep_pretrain.sh |
    | optimizer        | SGD momentum 0.9 in LARC (trust 0.001, no clipping, every parameter), wd 1e-6 | main_deepclusterv2.py, apex LARC |
    | lr               | 4.8, 10 warm-up epochs from 0.3, cosine to 0.0048 | the script --base_lr/--start_warmup/--final_lr |
    | heads            | three k-means heads of 3000 (10 iterations), T 0.1; head h clusters view h mod 2's bank | the script, main_deepclusterv2.py cluster_memory |
    | prototypes       | the centroids, never trained (frozen for 300000 iterations, more than the run) | the script --freeze_prototypes_niters |
    | crops            | 2 x 224 (0.14-1) + 6 x 96 (0.05-0.14)        | the script |
    | projector        | 2048 -> 128                                  | the script --feat_dim |

    Differs: the official run fills the bank and clusters before the first
    epoch; here the loss is off for the first epoch while the bank fills.
  cifar10  solo-learn's deepclusterv2 CIFAR recipe:

    | setting          | value                                        | source (vturrisi/solo-learn) |
    |------------------|----------------------------------------------|------------------------------|
    | backbone / batch | ResNet-18 (CIFAR stem) / 256, 1000 epochs    | scripts/pretrain/cifar/deepclusterv2.yaml |
    | optimizer        | LARS lr 0.6 x B/256, wd 1e-6, eta 0.02, clip_lr, biases and norms excluded | deepclusterv2.yaml, solo/utils/lars.py |
    | schedule         | 11 warm-up epochs from 0, cosine to 6e-4     | deepclusterv2.yaml scheduler |
    | heads            | three k-means heads of 3000, T 0.1, 10 k-means iterations | deepclusterv2.yaml, solo/methods/deepclusterv2.py |
    | projector        | 2048 -> 128                                  | deepclusterv2.yaml |
    | views            | two, jitter (0.8, 0.8, 0.8, 0.2) p 0.8, grey 0.2, blur 0.5, crop (0.08, 1) | augmentations/symmetric.yaml |

    Prototypes are the centroids, never trained (solo/methods/deepclusterv2.py
    sets requires_grad False); the first epoch differs as above.
"""

import ml_collections

from configs import common
from repr_learn import config_schema


def get_config(variant: str = "digits") -> ml_collections.ConfigDict:
  c = common.set_variant(config_schema.base_config(), variant)
  config_schema.with_objective(c, "deepcluster_v2")
  common.projector(c, hidden=2048, out=128, layers=2, variant=variant)
  if variant == "smoke":
    # Relabel every 2 steps so that k-means runs and the loss switches on.
    c.objective.update(num_clusters=8, relabel_epochs=0.05, num_heads=2)
    c.num_steps = 6
  elif variant == "digits":
    c.objective.num_clusters = 30
  elif variant == "cifar10":
    c.augment.update(color_strength=1.0, blur_prob=0.5, min_scale=0.08)
    c.optimizer.update(base_lr=0.6, lr_scaling="linear", weight_decay=1e-6,
                       warmup_epochs=11.0, min_lr=6e-4)
  elif variant == "imagenet":
    common.multicrop(c, variant=variant)
    c.num_epochs = 800.0
    common.swav_larc(c)
  common.solo_learn_cifar(c, variant=variant)
  return c
