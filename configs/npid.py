"""NPID (Wu, Xiong, Yu & Lin 2018, "Unsupervised Feature Learning via
Non-Parametric Instance Discrimination"). Variants: see configs/common.py.

  imagenet the README's ImageNet command with ResNet-50 (paper: 54.0% top-1,
           linear classifier on conv5 features):

    | setting          | value                                        | source (zhirongw/lemniscate.pytorch) |
    |------------------|----------------------------------------------|--------------------------------------|
    | batch / epochs   | 256 / 200                                    | main.py defaults |
    | optimizer        | SGD momentum 0.9, lr 0.03, wd 1e-4 on every parameter | main.py (torch SGD on model.parameters()) |
    | schedule         | x 0.1 at epoch 120, x 0.01 at 160, no warm-up | main.py adjust_learning_rate |
    | embedding / T    | linear 128-d, L2-normalised / 0.07           | main.py --low-dim, --nce-t |
    | memory bank      | momentum 0.5                                 | main.py --nce-m |
    | view             | crop (0.2, 1), grey 0.2, jitter (0.4, 0.4, 0.4, 0.4) always, flip | main.py transforms |

    Differs: the full softmax over the bank (the README's `--nce-k 0` form)
    where the ImageNet command samples 4096 NCE negatives; the grey step
    comes after the jitter here (before it there).
  cifar10  the README's CIFAR command, `python cifar.py --nce-k 0 --nce-t 0.1 --lr 0.03`:
           ResNet-18, batch 128, full softmax, T 0.1, SGD lr 0.03 momentum 0.9,
           wd 5e-4 on every parameter, 200 epochs, x 0.1 at epoch 120 and
           x 0.01 at 160 (cifar.py: lr x 0.1^((epoch - 80) // 40) from epoch 80);
           the same view without the flip (cifar.py).
"""

import ml_collections

from configs import common
from repr_learn import config_schema


def get_config(variant: str = "digits") -> ml_collections.ConfigDict:
  c = common.set_variant(config_schema.base_config(), variant)
  config_schema.with_objective(c, "npid", temperature=0.07, bank_momentum=0.5)
  c.augment.recipe = "single"
  c.model.projector.num_layers = 1   # a linear 128-d embedding
  c.model.projector.use_bn = False
  if variant not in ("smoke", "digits"):
    c.model.projector.output_dim = 128
  c.optimizer.update(name="sgd", base_lr=0.03, lr_scaling="linear", weight_decay=5e-4)
  if variant == "digits":
    c.optimizer.update(base_lr=0.5)
  elif variant in ("cifar10", "imagenet"):
    c.num_epochs = 200.0
    c.augment.min_scale = 0.2
    c.optimizer.update(base_lr=0.03, lr_scaling="none", warmup_epochs=0.0, schedule="steps",
                       lr_decay_epochs=(120.0, 160.0), decay_all_parameters=True)
  if variant == "imagenet":
    c.batch_size = 256
    c.augment.recipe = "npid"
    c.optimizer.weight_decay = 1e-4
  elif variant == "cifar10":
    c.batch_size = 128
    c.augment.recipe = "npid_cifar"
    c.objective.temperature = 0.1
    c.optimizer.lr_decay_epochs = (120.0, 160.0)
  return c
