"""SCAN (Van Gansbeke et al. 2020) on a pretrained encoder. Variants:
configs/common.py; every variant needs --config.model.init_from=DIR, the
workdir of a finished pretraining run with the same backbone, e.g.
    python main.py --config=configs/simclr.py:digits --workdir=runs/simclr
    python main.py --config=configs/scan.py:digits --workdir=runs/scan \
      --config.model.init_from=runs/simclr

  cifar10  the paper's CIFAR-10 setting: ResNet-18 (pretrain with
           configs/simclr.py:cifar10 --config.model.backbone=resnet18), 20
           neighbours, entropy weight 5, Adam lr 1e-4 wd 1e-4, batch 128, 50
           SCAN epochs then 200 self-labelling epochs (threshold 0.99).
           Paper: ACC 88.3%, NMI 79.7%, ARI 77.2% (81.8% ACC before self-labelling).
  imagenet ResNet-50 from MoCo v2 (configs/moco_v2.py:imagenet), 50 neighbours,
           head only, batch 512, 100 + 25 epochs. Paper (1000 classes): ACC 39.9%.
"""

import ml_collections

from configs import common
from repr_learn import config_schema


def get_config(variant: str = "digits") -> ml_collections.ConfigDict:
  c = common.set_variant(config_schema.base_config(), variant)
  config_schema.with_objective(c, "scan")
  # The projector is the clustering head: one linear layer onto the classes.
  c.model.projector.update(num_layers=1, output_dim=10, use_bn=False)
  c.optimizer.update(name="adamw", base_lr=1e-4, lr_scaling="none", weight_decay=1e-4,
                     warmup_epochs=0.0)
  if variant == "smoke":
    # Two SCAN steps, then two self-labelling steps.
    c.objective.update(num_neighbours=5, selflabel_epochs=0.05)
    c.optimizer.base_lr = 1e-3
  elif variant == "digits":
    c.objective.update(num_neighbours=10, selflabel_epochs=10.0)
    c.optimizer.base_lr = 1e-3
  elif variant == "cifar10":
    c.batch_size = 128
    c.num_epochs = 250.0
    c.objective.selflabel_epochs = 200.0
  elif variant == "imagenet":
    c.model.projector.output_dim = 1000
    c.model.dtype = "float32"
    c.batch_size = 512
    c.num_epochs = 125.0
    c.objective.update(num_neighbours=50, selflabel_epochs=25.0, update_head_only=True)
  return c
