"""SimCLR (Chen et al., "A Simple Framework for Contrastive Learning of Visual
Representations", ICML 2020).

Variants (`--config=configs/simclr.py:<variant>`):
  smoke    seconds on CPU: tiny ResNet, a few steps on digits (tests, CI).
  digits   the quickstart: ResNet-18 (CIFAR stem) on scikit-learn's handwritten
           digits, a few minutes on 2 CPU cores.
  cifar10  the paper's CIFAR-10 setting (appendix B.9): ResNet-50 CIFAR stem,
           batch 1024, LARS lr 1.0 x B/256, wd 1e-6, temperature 0.5, 1000 epochs,
           no blur. Paper: 94.0% linear eval. One GPU:
             python -m repr_learn.data.prepare --dataset=cifar10 --data_dir=$DATA
             python main.py --config=configs/simclr.py:cifar10 \
               --config.data.data_dir=$DATA --workdir=runs/simclr_cifar10
  imagenet the paper's ImageNet setting: ResNet-50, batch 4096, LARS lr 0.3 x B/256,
           wd 1e-6, temperature 0.1, 100 epochs (the paper's 1000-epoch run
           reaches 69.3% linear top-1; 100 epochs: 64.5% at batch 4096). Multi-host:
             sbatch launch/slurm.sbatch configs/simclr.py:imagenet \
               --config.data.data_dir=$DATA --config.data.manual_dir=$TARS
"""

import ml_collections

from repr_learn import config_schema


def get_config(variant: str = "digits") -> ml_collections.ConfigDict:
  c = config_schema.base_config()
  config_schema.with_objective(c, "simclr", temperature=0.5)
  c.model.projector.hidden_dim = 2048
  c.model.projector.output_dim = 128
  c.model.projector.num_layers = 2

  if variant == "smoke":
    c.data.name = "digits"
    c.model.backbone = "resnet_tiny"
    c.model.width = 8
    c.model.projector.hidden_dim = 32
    c.model.projector.output_dim = 16
    c.augment.crop_size = 16
    c.batch_size = 32
    c.num_steps = 4
    c.optimizer.warmup_epochs = 0.0
    c.log_every_steps = 2
    c.checkpoint_every_steps = 2
    c.eval.batch_size = 128
    c.eval.knn_k = 10
  elif variant == "digits":
    # Tuned for 2 CPU cores in minutes: small ResNet-18, sqrt LR scaling as the
    # paper recommends for small batches, 20 epochs of 1437 images.
    c.data.name = "digits"
    c.model.backbone = "resnet18"
    c.model.width = 16
    c.model.projector.hidden_dim = 256
    c.model.projector.output_dim = 64
    c.augment.crop_size = 16
    c.augment.min_scale = 0.25
    c.batch_size = 256
    c.num_epochs = 30.0
    c.optimizer.base_lr = 0.075
    c.optimizer.lr_scaling = "sqrt"
    c.optimizer.warmup_epochs = 2.0
    c.log_every_steps = 10
    c.checkpoint_every_steps = 50
    c.eval.batch_size = 360
    c.eval.knn_k = 20
  elif variant == "cifar10":
    c.data.name = "cifar10"
    c.model.backbone = "resnet50"
    c.model.stem = "cifar"
    c.augment.crop_size = 32
    c.augment.blur_prob = 0.0
    c.batch_size = 1024
    c.num_epochs = 1000.0
    c.optimizer.base_lr = 1.0
    c.optimizer.lr_scaling = "linear"
    c.optimizer.weight_decay = 1e-6
    c.optimizer.warmup_epochs = 10.0
    c.eval.every_steps = 5000
  elif variant == "imagenet":
    c.data.name = "imagenet2012"
    c.model.backbone = "resnet50"
    c.model.stem = "imagenet"
    c.model.dtype = "bfloat16"
    c.model.projector.last_bn = True
    c.augment.crop_size = 224
    c.augment.color_strength = 1.0
    c.augment.blur_prob = 0.5
    c.objective.temperature = 0.1
    c.batch_size = 4096
    c.num_epochs = 100.0
    c.optimizer.base_lr = 0.3
    c.optimizer.lr_scaling = "linear"
    c.optimizer.weight_decay = 1e-6
    c.optimizer.warmup_epochs = 10.0
    c.eval.batch_size = 1024
    c.eval.every_steps = 10000
    c.log_every_steps = 100
    c.checkpoint_every_steps = 2500
  else:
    raise ValueError(f"Unknown variant {variant!r}; choose smoke, digits, cifar10 or imagenet.")
  return c
