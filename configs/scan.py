"""SCAN (Van Gansbeke et al. 2020) on a pretrained encoder. Variants:
configs/common.py; every variant needs --config.model.init_from=DIR, the
workdir of a finished pretraining run with the same backbone, e.g.
    python main.py --config=configs/simclr.py:digits --workdir=runs/simclr
    python main.py --config=configs/scan.py:digits --workdir=runs/scan \
      --config.model.init_from=runs/simclr

  cifar10  the repository's CIFAR-10 configs (paper: ACC 88.3%, NMI 79.7%,
           ARI 77.2%; 81.8% ACC before self-labelling); pretrain with
           configs/simclr.py:cifar10 --config.model.backbone=resnet18:

    | setting          | value                                        | source (wvangansbeke/Unsupervised-Classification) |
    |------------------|----------------------------------------------|---------------------------------------------------|
    | SCAN phase       | 50 epochs, batch 128, 20 neighbours, entropy weight 5, whole network | configs/scan/scan_cifar10.yml |
    | self-labelling   | 200 epochs, confidence threshold 0.99        | configs/selflabel/selflabel_cifar10.yml |
    | optimizer        | Adam lr 1e-4, L2 weight decay 1e-4 on every parameter, constant | both ymls, utils/common_config.py (torch Adam) |

  imagenet the paper's 1000-class run from MoCo v2 (configs/moco_v2.py:imagenet;
           paper ACC 39.9%) with the repository's ImageNet-subset settings
           (configs/scan/scan_imagenet_50.yml, selflabel_imagenet_50.yml; no
           1000-class config is in the repository): 50 neighbours, head only,
           batch 512, SGD momentum 0.9 without decay, constant lr 5.0 for 100
           SCAN epochs and 0.03 for 25 self-labelling epochs.

  smoke and digits keep AdamW with a cosine (ours; BENCHMARKS.md figures).

  Not reachable here (one run, one static batch, one view recipe): the
  strong views are SimCLR's, not RandAugment x 4 + Cutout ('ours'); the weak
  (anchor) view is augmented, not the validation transform; self-labelling
  keeps the SCAN batch (128, not 1000, on CIFAR) and, on ImageNet, the head-only
  update (the repository trains the whole network there); neighbours are mined
  from the backbone's features, not the pretext model's normalised head output.
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
    c.optimizer.update(name="adam", schedule="constant", decay_all_parameters=True)
    c.batch_size = 128
    c.num_epochs = 250.0
    c.objective.selflabel_epochs = 200.0
  elif variant == "imagenet":
    c.model.projector.output_dim = 1000
    c.model.dtype = "float32"
    c.batch_size = 512
    c.num_epochs = 125.0
    c.objective.update(num_neighbours=50, selflabel_epochs=25.0, update_head_only=True)
    # The self-labelling phase's rate 0.03 = 5.0 x 0.006 from epoch 100 on.
    c.optimizer.update(name="sgd", momentum=0.9, base_lr=5.0, weight_decay=0.0,
                       schedule="steps", lr_decay_epochs=(100.0,), lr_decay_factor=0.006)
  return c
