"""SimCLR (Chen et al., "A Simple Framework for Contrastive Learning of Visual
Representations", ICML 2020). Variants: see configs/common.py.

  imagenet the paper's 100-epoch batch-4096 setting (64.5% linear; 69.3% after
           1000 epochs). Multi-host:
             sbatch launch/slurm.sbatch configs/simclr.py:imagenet \
               --config.data.data_dir=$DATA --workdir=$CKPT/simclr

    | setting          | value                                        | source |
    |------------------|----------------------------------------------|--------|
    | batch / epochs   | 4096 / 100, 10 warm-up epochs, cosine        | paper sec. 3, B.1; google-research/simclr run.py --warmup_epochs |
    | optimizer        | LARS (eta 0.001, momentum 0.9), lr 0.3 x B/256 = 4.8, wd 1e-6; biases and BN excluded | paper B.1; lars_optimizer.py (exclude_from_weight_decay/layer_adaptation) |
    | temperature      | 0.1                                          | paper B.1; run.py |
    | projector        | 2 layers 2048 -> 128, BN on every layer (global BN) | paper sec. 2; model_util.py |
    | views            | crop (0.08, 1), jitter strength 1.0, blur 0.5 | paper appendix A; run.py --color_jitter_strength, --use_blur |

    Differs from the repository's current README command (SimCLRv2 code): that
    one uses lr 0.075 x sqrt(B) (the same 4.8 at 4096), wd 1e-4 and a
    3-layer head.
  cifar10  the paper's CIFAR-10 setting (appendix B.9; 94.0% linear):
             python -m repr_learn.data.prepare --dataset=cifar10 --data_dir=$DATA
             python main.py --config=configs/simclr.py:cifar10 \
               --config.data.data_dir=$DATA --workdir=runs/simclr_cifar10

    | setting          | value                                        | source |
    |------------------|----------------------------------------------|--------|
    | backbone         | ResNet-50, CIFAR stem (3x3 conv, no max-pool) | paper B.9 |
    | batch / epochs   | 1024 / 1000                                  | paper B.9 |
    | optimizer        | LARS lr 1.0 x B/256, wd 1e-6                 | paper B.9 |
    | temperature      | 0.5                                          | paper B.9 |
    | views            | jitter strength 0.5, no blur                 | paper B.9; README.md CIFAR command |

    The repository's README CIFAR command is a smaller one (ResNet-18, batch
    512, wd 1e-4); solo-learn's simclr.yaml another (90.74% with ResNet-18).
  digits_matryoshka  `digits` with Matryoshka representations (Kusupati et al.
           2022): the loss summed over the projector heads reading the first
           4, 8, ..., 128 feature dimensions (MRL's doubling sizes, equal
           weights, one first layer per size), evaluated at each size
           (BENCHMARKS.md "Matryoshka SimCLR on digits").
"""

import ml_collections

from configs import common
from repr_learn import config_schema

EXTRA_VARIANTS = ("digits_matryoshka",)
# Every size below the digits ResNet-18's 128 feature dims that the protocols report.
DIGITS_EVAL_DIMS = (4, 8, 16, 32, 64)


def get_config(variant: str = "digits") -> ml_collections.ConfigDict:
  matryoshka = variant == "digits_matryoshka"
  variant = "digits" if matryoshka else variant
  c = common.set_variant(config_schema.base_config(), variant)
  config_schema.with_objective(c, "simclr", temperature=0.5)
  common.projector(c, hidden=2048, out=128, layers=2, variant=variant)
  if matryoshka:
    c.objective.matryoshka_dims = DIGITS_EVAL_DIMS + (128,)
    c.eval.dims = DIGITS_EVAL_DIMS
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
