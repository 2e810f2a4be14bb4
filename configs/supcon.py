"""SupCon (Khosla et al. 2020, "Supervised Contrastive Learning"): uses the
dataset's labels. Variants: see configs/common.py.

  imagenet ResNet-50, batch 4096 (the paper used 6144), LARS lr 0.3 x B/256,
           T 0.1, 700 epochs: the paper's text; the official repository has no
           ImageNet script. Paper: 78.7% top-1 with a linear classifier.
  cifar10  the README's CIFAR-10 command (96.0% top-1 with main_linear.py):

    | setting          | value                                        | source (HobbitLong/SupContrast) |
    |------------------|----------------------------------------------|---------------------------------|
    | backbone         | ResNet-50, 3x3 stride-1 stem, no max-pool    | networks/resnet_big.py, main_supcon.py --model default |
    | batch / epochs   | 1024 / 1000                                  | README.md, main_supcon.py |
    | optimizer        | SGD momentum 0.9, lr 0.5 (not batch-scaled), wd 1e-4 on every parameter | README.md, util.py set_optimizer |
    | schedule         | warm-up 10 epochs from 0.01 (batch > 256), cosine to 0.5 x 0.1^3 | main_supcon.py, util.py |
    | temperature      | 0.1, base temperature 0.07                   | README.md, losses.py |
    | head             | Linear(2048, 2048) - ReLU - Linear(2048, 128), no BN | networks/resnet_big.py SupConResNet |
    | views            | crop (0.2, 1), flip, jitter (0.4, 0.4, 0.4, 0.1) p 0.8, grey 0.2, no blur | main_supcon.py set_loader |

    Differs: the schedule is per step (the official cosine steps per epoch,
    and its warm-up ends at the cosine's epoch-10 value, 0.4999 not 0.5).
"""

import ml_collections

from configs import common
from repr_learn import config_schema


def get_config(variant: str = "digits") -> ml_collections.ConfigDict:
  c = common.set_variant(config_schema.base_config(), variant)
  config_schema.with_objective(c, "supcon", temperature=0.1, base_temperature=0.07)
  common.projector(c, hidden=2048, out=128, layers=2, variant=variant)
  if variant == "cifar10":
    c.batch_size = 1024
    c.model.backbone = "resnet50"
    c.model.projector.use_bn = False
    c.augment.min_scale = 0.2
    c.optimizer.update(name="sgd", base_lr=0.5, lr_scaling="none", weight_decay=1e-4,
                       momentum=0.9, warmup_epochs=10.0, warmup_start_lr=0.01,
                       min_lr=0.5 * 0.1 ** 3, decay_all_parameters=True)
  elif variant == "imagenet":
    c.num_epochs = 700.0
    c.optimizer.update(base_lr=0.3, lr_scaling="linear", weight_decay=1e-6)
  return c
