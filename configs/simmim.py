"""SimMIM (Xie et al. 2022, "SimMIM: a Simple Framework for Masked Image
Modeling"). Variants: configs/common.py (`masked_modeling`).

A learned mask token replaces 60% of the patches, masked in 32-px cells; one
linear layer predicts the pixels; L1 loss on the hidden pixels.

  imagenet  the repository's ViT-B pretraining recipe (800 epochs):

    | setting         | value                                     | source (microsoft/SimMIM) |
    |-----------------|-------------------------------------------|---------------------------|
    | batch           | 2048 (128 per GPU; the ViT-B GPU count is not stated, 16 as the README's Swin-B) | config.py, README.md |
    | lr              | 1e-4 x batch / 512 (= base_lr 5e-5 x batch / 256) | vit_base yaml, main_simmim.py |
    | warm-up         | 10 epochs, linear from 5e-7 x batch / 512 | vit_base yaml, config.py, lr_scheduler.py |
    | schedule        | multistep: x0.1 at epoch 700               | vit_base yaml |
    | optimizer       | AdamW (0.9, 0.999), wd 0.05, clip 5.0      | config.py, optimizer.py |
    | no weight decay | biases, 1-D params, cls_token (pos_embed: none, USE_APE False) | optimizer.py |
    | mask            | 32-px cells, ratio 0.6 (30 of 49 cells)   | vit_base yaml, data/data_simmim.py |
    | LayerScale / drop path | 0.1 / 0.1                          | config.py / vit_base yaml |
    | head / loss     | 1x1 conv + pixel shuffle; L1 / (sum m + 1e-5) / 3 | models/simmim.py |
    | augmentation    | RandomResizedCrop(224, scale (0.67, 1)) + flip | data/data_simmim.py |

  Differences: cosine decay to 0 instead of the multistep drop at epoch 700
  (our schedules are warm-up + cosine); fixed 2-D sin-cos positions instead of
  the shared relative position bias (USE_SHARED_RPB); qkv with a k bias (SimMIM
  has q and v biases only). Published: ViT-B fine-tune 83.8% (README).

    python main.py --config=configs/simmim.py:digits --workdir=runs/simmim_digits
"""

import ml_collections

from configs import common
from repr_learn import config_schema


def get_config(variant: str = "digits") -> ml_collections.ConfigDict:
  c = common.set_variant(config_schema.base_config(), variant)
  config_schema.with_objective(c, "simmim", mask_ratio=0.6, mask_patch_size=32)
  common.masked_modeling(c, variant=variant, decoder="linear")
  # Features = mean of the patch tokens, class token kept in the sequence: the
  # pooling this method fine-tunes with; its loss never trains the class token.
  c.model.pooling = "gap"
  c.model.mask_token = True
  c.model.decoder.depth = 0  # no LayerNorm before the linear head
  c.augment.min_scale = 0.67
  c.eval.protocols += ",reconstructions"
  if variant == "imagenet":
    c.batch_size = 2048
    c.num_epochs = 800.0
    c.model.update(layer_scale=0.1, drop_path=0.1)
    c.optimizer.update(base_lr=5e-5, warmup_epochs=10.0, warmup_start_lr=5e-7 * 2048 / 512,
                       adam_b2=0.999, weight_decay=0.05, clip_global_norm=5.0,
                       no_decay_names=("cls_token",))
  elif variant == "smoke":
    c.objective.mask_patch_size = 8
  elif variant == "digits":
    c.objective.mask_patch_size = 4
  elif variant == "cifar10":
    c.objective.mask_patch_size = 8
  return c
