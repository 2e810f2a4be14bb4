"""MoCo v2 (Chen, Fan, Girshick & He 2020, "Improved Baselines with Momentum
Contrastive Learning"). Variants: see configs/common.py.

  imagenet the README's MoCo v2 command (67.5% linear top-1 at 200 epochs;
           71.1% at 800):

    | setting          | value                                        | source (facebookresearch/moco) |
    |------------------|----------------------------------------------|--------------------------------|
    | batch / epochs   | 256 / 200, cosine (`--cos`), no warm-up      | README.md, main_moco.py |
    | optimizer        | SGD momentum 0.9, lr 0.03 x B/256, wd 1e-4 on every parameter | main_moco.py (torch SGD on model.parameters()) |
    | queue / T / momentum | 65536 / 0.2 / 0.999 constant             | main_moco.py --moco-k/-t/-m |
    | head (`--mlp`)   | Linear(2048, 2048) - ReLU - Linear(2048, 128) | moco/builder.py |
    | BatchNorm        | shuffled across GPUs for the keys            | moco/builder.py _batch_shuffle_ddp |
    | views (`--aug-plus`) | crop (0.2, 1), jitter (0.4, 0.4, 0.4, 0.1) p 0.8, grey 0.2, blur 0.5 | main_moco.py |

    Differs: the cosine steps per iteration (the official one per epoch).
    Shuffle-BN needs several devices: on one, the keys' BN batch is the whole
    batch, as the queries' (the official run shuffles over 8 GPUs).
  cifar10  solo-learn's MoCo v2+ CIFAR recipe:

    | setting          | value                                        | source (vturrisi/solo-learn) |
    |------------------|----------------------------------------------|------------------------------|
    | backbone / batch | ResNet-18 (CIFAR stem) / 256, 1000 epochs    | scripts/pretrain/cifar/mocov2plus.yaml |
    | optimizer        | SGD lr 0.3 x B/256, wd 1e-4 on every parameter, 10 warm-up epochs, cosine | mocov2plus.yaml; solo/methods/base.py (exclude_bias_n_norm_wd False) |
    | loss             | symmetric: both views query the other's key, one queue per view, averaged | solo/methods/mocov2plus.py |
    | queue / T        | 32768 / 0.2                                  | mocov2plus.yaml |
    | momentum         | 0.99 -> 0.999, cosine                        | mocov2plus.yaml base_tau/final_tau; solo/utils/momentum.py |
    | projector        | Linear(512, 2048) - ReLU - Linear(2048, 256) | solo/methods/mocov2plus.py |
    | views            | jitter (0.4, 0.4, 0.4, 0.1) p 0.8, grey 0.2, blur 0.5, crop (0.08, 1) | augmentations/symmetric_weak.yaml |
    | BatchNorm        | synchronised, no shuffle, one pass per view  | mocov2plus.yaml sync_batchnorm; solo/methods/base.py |

    Differs: solo-learn's warm-up starts at 3e-5, ours at 0.
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
    c.objective.update(queue_size=32768, momentum=0.99, shuffle_bn=False, symmetric=True,
                       momentum_schedule="cosine", final_momentum=0.999)
    c.model.projector.output_dim = 256
    c.augment.blur_prob = 0.5
    c.optimizer.update(base_lr=0.3, lr_scaling="linear", decay_all_parameters=True)
  elif variant == "imagenet":
    c.batch_size = 256
    c.num_epochs = 200.0
    c.model.dtype = "bfloat16"
    # aug_plus: RandomResizedCrop(224, scale=(0.2, 1)), ColorJitter(0.4, 0.4,
    # 0.4, 0.1) p 0.8 ("not strengthened": SimCLR's strength 0.5), grey 0.2,
    # blur p 0.5 (facebookresearch/moco main_moco.py).
    c.augment.update(color_strength=0.5, min_scale=0.2, blur_prob=0.5)
    c.optimizer.update(base_lr=0.03, lr_scaling="linear", warmup_epochs=0.0,
                       decay_all_parameters=True)
  common.solo_learn_cifar(c, variant=variant, lars=False)
  return c
