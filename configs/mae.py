"""MAE (He et al. 2022, "Masked Autoencoders Are Scalable Vision Learners").
Variants: configs/common.py (`masked_modeling` gives the ViT sizes).

The encoder sees only the visible 25% of the patches; an 8-block, 512-wide
decoder with mask tokens predicts the hidden patches' normalised pixels.

  imagenet  the repository's ViT-B/16 pretraining recipe (PRETRAIN.md, 800 ep):

    | setting                | value                          | source (facebookresearch/mae) |
    |------------------------|--------------------------------|-------------------------------|
    | batch                  | 4096 (64 x 8 GPUs x 8 accum)   | PRETRAIN.md                   |
    | epochs / warm-up       | 800 / 40                       | PRETRAIN.md, main_pretrain.py |
    | lr                     | blr 1.5e-4 x batch / 256       | PRETRAIN.md, main_pretrain.py |
    | schedule               | linear warm-up from 0, cosine to min_lr 0 | util/lr_sched.py   |
    | optimizer              | AdamW betas (0.9, 0.95), wd 0.05 | main_pretrain.py            |
    | no weight decay        | biases and 1-D params only (cls and mask tokens are decayed) | main_pretrain.py (timm add_weight_decay, empty skip list) |
    | mask ratio             | 0.75, random per example       | main_pretrain.py, models_mae.py |
    | target                 | norm_pix_loss (per-patch mean/var, unbiased) | PRETRAIN.md, models_mae.py |
    | decoder                | 512 wide, 8 blocks, 16 heads, MLP 2048 | models_mae.py (mae_vit_base_patch16_dec512d8b) |
    | positions              | fixed 2-D sin-cos (encoder and decoder) | models_mae.py, util/pos_embed.py |
    | augmentation           | RandomResizedCrop(224, scale (0.2, 1), bicubic) + flip | main_pretrain.py |

  Differences: bilinear rather than bicubic crop resizing; flax's default
  initialisers (lecun-normal) rather than xavier-uniform; the class token gets
  no position (MAE's is a zero vector: the same).
  Published: ViT-B fine-tune 83.6% (paper, table 3), linear probe 68.0%.

    python main.py --config=configs/mae.py:digits --workdir=runs/mae_digits
"""

import ml_collections

from configs import common
from repr_learn import config_schema


def get_config(variant: str = "digits") -> ml_collections.ConfigDict:
  c = common.set_variant(config_schema.base_config(), variant)
  config_schema.with_objective(c, "mae", mask_ratio=0.75, norm_pix_loss=True)
  common.masked_modeling(c, variant=variant, decoder="transformer")
  c.augment.min_scale = 0.2
  c.eval.protocols += ",reconstructions"
  if variant == "digits":
    c.num_epochs = 60.0  # the encoder sees a quarter of the tokens: cheap steps
  elif variant == "imagenet":
    c.model.decoder.update(width=512, depth=8, num_heads=16, mlp_dim=2048)
    c.batch_size = 4096
    c.num_epochs = 800.0
    c.optimizer.update(base_lr=1.5e-4, warmup_epochs=40.0, weight_decay=0.05)
  return c
