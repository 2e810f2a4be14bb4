"""DEC (Xie et al. 2016) on a pretrained encoder. Variants: configs/common.py;
every variant needs --config.model.init_from=DIR, the workdir of a finished
run of configs/simclr.py with the same variant (the backbone and projector are
taken from it), e.g.
    python main.py --config=configs/simclr.py:digits --workdir=runs/simclr
    python main.py --config=configs/dec.py:digits --workdir=runs/dec \
      --config.model.init_from=runs/simclr

DEC's own setting: SGD lr 0.01, momentum 0.9, k-means with 20 restarts, alpha 1,
unaugmented images. Paper: 84.3% ACC on MNIST (stacked-autoencoder encoder);
SCAN's table reports 30.1% ACC / 25.7% NMI / 16.1% ARI on CIFAR-10.

    | setting          | value                                        | source |
    |------------------|----------------------------------------------|--------|
    | optimizer        | SGD lr 0.01, momentum 0.9, no decay, constant (cifar10, imagenet; digits: cosine, ours) | the paper, sec. 4.3 (piiswrong/dec not re-read) |
    | assignment       | Student's t, alpha 1; k-means init (20 restarts) | the paper, eqs. 1-3 |
    | target           | sharpened q^2 / f, KL(P || Q)                | the paper, eq. 3 |
    | cifar10/imagenet | ours: a SimCLR encoder instead of the stacked autoencoder, 200 / 20 epochs, unaugmented images | no official recipe for either |
"""

import ml_collections

from configs import common
from repr_learn import config_schema


def get_config(variant: str = "digits") -> ml_collections.ConfigDict:
  c = common.set_variant(config_schema.base_config(), variant)
  config_schema.with_objective(c, "dec")
  common.projector(c, hidden=2048, out=128, layers=2, variant=variant)
  c.augment.recipe = "plain"
  c.model.prototypes.update(num_prototypes=10, kind="student_t")
  c.optimizer.update(name="sgd", base_lr=0.01, lr_scaling="none", momentum=0.9,
                     weight_decay=0.0, warmup_epochs=0.0)
  if variant == "smoke":
    c.objective.kmeans_restarts = 2
  elif variant == "digits":
    c.num_epochs = 20.0
  if variant in ("cifar10", "imagenet"):
    c.optimizer.schedule = "constant"  # the paper's SGD has no decay schedule
  if variant == "cifar10":
    c.batch_size = 256
    c.num_epochs = 200.0
  elif variant == "imagenet":
    c.model.projector.last_bn = True
    c.model.prototypes.num_prototypes = 1000
    c.model.dtype = "float32"
    c.num_epochs = 20.0
  return c
