"""SimCLR (Chen et al., "A Simple Framework for Contrastive Learning of Visual
Representations", ICML 2020). Variants: see configs/common.py.

  cifar10  the paper's CIFAR-10 setting (appendix B.9): ResNet-50 CIFAR stem,
           batch 1024, LARS lr 1.0 x B/256, wd 1e-6, temperature 0.5, 1000 epochs,
           no blur. Paper: 94.0% linear eval.
             python -m repr_learn.data.prepare --dataset=cifar10 --data_dir=$DATA
             python main.py --config=configs/simclr.py:cifar10 \
               --config.data.data_dir=$DATA --workdir=runs/simclr_cifar10
  imagenet ResNet-50, batch 4096, LARS lr 0.3 x B/256, wd 1e-6, temperature 0.1,
           colour strength 1.0, blur, 100 epochs (64.5% linear at batch 4096 for
           100 epochs; 69.3% after 1000). Multi-host:
             sbatch launch/slurm.sbatch configs/simclr.py:imagenet \
               --config.data.data_dir=$DATA --workdir=$CKPT/simclr
"""

import ml_collections

from configs import common
from repr_learn import config_schema


def get_config(variant: str = "digits") -> ml_collections.ConfigDict:
  c = common.set_variant(config_schema.base_config(), variant)
  config_schema.with_objective(c, "simclr", temperature=0.5)
  common.projector(c, hidden=2048, out=128, layers=2, variant=variant)
  if variant == "cifar10":
    c.model.backbone = "resnet50"
    c.batch_size = 1024
    c.optimizer.base_lr = 1.0
    c.optimizer.lr_scaling = "linear"
  elif variant == "imagenet":
    c.model.projector.last_bn = True
    c.objective.temperature = 0.1
    c.optimizer.base_lr = 0.3
    c.optimizer.lr_scaling = "linear"
  return c
