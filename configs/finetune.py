"""End-to-end supervised fine-tuning of a pretrained encoder (MAE's protocol,
He et al. 2022, FINETUNE.md), and the same recipe from random initialisation
as its baseline.

`--config.model.init_from=DIR` names the workdir of a finished pretraining run
(any method); every part of the network whose shapes match its latest
checkpoint is copied (the backbone must, so the backbone fields
`model.backbone/width/stem/patch_size/pooling/pos_embedding` must be that
run's: override them here when it used others). The classifier (the projector
as one linear layer onto the classes) starts fresh. Without `init_from` the
run is the random-init baseline with the same recipe: a separate run, so
`eval.random_init_baseline` is off. `DIR/eval/finetune.json` holds the test
top-1/top-5 of the classifier and `init_from`; `knn.json` the fine-tuned
backbone's kNN. Train on the digits (the comparison in BENCHMARKS.md):

    python main.py --config=configs/simclr.py:digits --workdir=runs/simclr_digits
    python main.py --config=configs/finetune.py:digits --workdir=runs/finetune_simclr_digits \
      --config.model.init_from=runs/simclr_digits
    python main.py --config=configs/finetune.py:digits --workdir=runs/finetune_scratch_digits

Variants (backbones and data as configs/common.py):
  smoke     tiny ResNet, 4 steps (tests).
  digits    ResNet-18 width 16 (the configs/*.py:digits pretraining runs), a
            fixed 120 steps (24 epochs at batch 256) of the ImageNet recipe
            below (AdamW 5e-4 x B/256, wd 0.05, layer decay 0.65 over the
            ResNet stages, 5% warm-up, cosine to 1e-6, mixup 0.8 / cutmix 1.0 /
            label smoothing 0.1) with random crops (area [0.25, 1]) and no
            flips (a mirrored digit is another digit or none). Measured: 155 s
            wall per run on 2 CPU cores shared with other jobs (load ~5.5;
            ~45 s compiling, then 1.2 steps/s); test top-1 96.1% from
            configs/simclr.py:digits (kNN 94.2% before fine-tuning) vs 57.2%
            from random init. For a masked-modeling digits run (ViT-Mini, 2-px
            patches, class token, sin-cos positions: configs/common.py
            `masked_modeling`) add --config.model.backbone=vit_mini
            --config.model.patch_size=2 (drop path 0.1 is already set).
  cifar10   solo-learn's fine-tuning recipe (scripts/finetune/imagenet-100/mae.yaml,
            its only one: MAE ViT-B; solo-learn has no CIFAR or ResNet
            fine-tuning) on CIFAR-10 with the cifar10 pretraining backbone
            (ResNet-18, CIFAR stem, 32 px): AdamW lr 5e-4 x B/256 (its
            main_linear.py scales by batch/256), batch 512 (64 x 8 GPUs), wd 0.05,
            layer decay 0.75, 10 warm-up epochs from lr 0, cosine to 0, 100
            epochs, mixup 0.8 / cutmix 1.0 / label smoothing 0.1 (timm Mixup,
            prob 1, switch 0.5, batch mode), drop path 0.1 (ViT only), random
            resized crop (0.08, 1) + flip. To fine-tune configs/simclr.py:cifar10
            (ResNet-50) or a masked-modeling cifar10 run (ViT-Small, 4-px
            patches) pass its backbone fields. solo-learn applies layer decay to ViTs
            only; here it also scales the ResNet stages (stem 0.75^5, stage s
            0.75^(4-s), head 1): --config.optimizer.layer_decay=1.0 turns it off.
  imagenet  MAE's ViT-B/16 recipe (FINETUNE.md), value for value where the
            trainer has it; pretrain with configs/mae.py:imagenet.

| setting (imagenet) | value | source |
|---|---|---|
| backbone | ViT-B/16, 224 px | FINETUNE.md (`--model vit_base_patch16`) |
| epochs / warm-up | 100 / 5 (linear from 0) | FINETUNE.md `--epochs 100`; main_finetune.py `--warmup_epochs 5`, util/lr_sched.py |
| batch | 1024 (32 x 32 GPUs) | FINETUNE.md |
| optimizer | AdamW (0.9, 0.999) | main_finetune.py `torch.optim.AdamW` defaults |
| learning rate | 5e-4 x B/256 = 2e-3, half-cosine to min_lr 1e-6 | FINETUNE.md `--blr 5e-4`; main_finetune.py `--min_lr 1e-6`; util/lr_sched.py |
| weight decay | 0.05; none on 1-D params, pos_embedding, cls_token | FINETUNE.md; util/lr_decay.py, models_vit.py `no_weight_decay` |
| layer decay | 0.65 (embeddings 0.65^13, block i 0.65^(12-i), head 1) | FINETUNE.md `--layer_decay 0.65`; util/lr_decay.py |
| drop path | 0.1 | FINETUNE.md `--drop_path 0.1` |
| mixup / cutmix | alpha 0.8 / 1.0, prob 1.0, switch 0.5, mode batch | FINETUNE.md; main_finetune.py `--mixup_prob`, `--mixup_switch_prob`, `--mixup_mode`; timm/data/mixup.py |
| label smoothing | 0.1 (in the mixed targets; soft-target cross-entropy) | main_finetune.py `--smoothing 0.1`, `SoftTargetCrossEntropy` |
| gradient clipping | none | main_finetune.py `--clip_grad None` |
| train view | random resized crop (0.08, 1), ratio (3/4, 4/3), flip | timm `create_transform` via util/datasets.py |
| RandAugment rand-m9-mstd0.5-inc1 | NOT AVAILABLE (no on-device RandAugment yet) | main_finetune.py `--aa` |
| random erasing 0.25 (pixel) | NOT AVAILABLE | FINETUNE.md `--reprob 0.25` |
| pooling | global average of the patch tokens, then a LayerNorm (`fc_norm`; `model.pooling='gap_fc_norm'`) | main_finetune.py `--global_pool` (default True), models_vit.py |
| head init | flax default (LeCun normal); MAE: trunc-normal std 2e-5 | main_finetune.py `trunc_normal_(model.head.weight, std=2e-5)` |
| position embedding | the pretraining run's (fixed sin-cos); MAE makes it learnable when fine-tuning | models_vit.py |
| precision | bfloat16 activations; MAE: float16 autocast | engine_finetune.py `torch.cuda.amp.autocast` |
| evaluation view | whole stored 256-px centre square resized to 224 (every protocol here); MAE: resize 256, centre crop 224 | util/datasets.py `build_transform` |
| result | 83.6 top-1 (4 seeds, mean 83.57) | FINETUNE.md |

Where it differs, and why: RandAugment and random erasing have no on-device
implementation in repr_learn/data yet (without them, and the other gaps above,
expect a lower top-1 than 83.6); the `fc_norm` LayerNorm starts from the
pretrained encoder's final norm (its parameters take that name here), where
MAE creates a fresh one; the head initialiser is not a config field.
"""

import ml_collections

from configs import common
from repr_learn import config_schema

# MAE's models_vit.py `no_weight_decay()` (pos_embed, cls_token), our names.
NO_DECAY_NAMES = ("pos_embedding", "cls_token")


def get_config(variant: str = "digits") -> ml_collections.ConfigDict:
  c = common.set_variant(config_schema.base_config(), variant)
  # Defaults: MAE's recipe (mixup 0.8, cutmix 1.0, prob 1, switch 0.5, LS 0.1).
  config_schema.with_objective(c, "finetune")
  # The classifier: the projector as one linear layer onto the classes.
  c.model.projector.update(num_layers=1, use_bn=False, last_bn=False, output_dim=10)
  c.model.predictor.num_layers = 0
  c.augment.recipe = "crop_flip"
  c.optimizer.update(name="adamw", adam_b1=0.9, adam_b2=0.999, base_lr=5e-4,
                     lr_scaling="linear", weight_decay=0.05, weight_decay_end=None,
                     layer_decay=0.65, min_lr=1e-6, warmup_start_lr=0.0,
                     clip_global_norm=0.0, clip_each_parameter_norm=0.0,
                     no_decay_names=NO_DECAY_NAMES, warmup_epochs=5.0)
  c.model.drop_path = 0.1  # ViT backbones only; ResNets have none.
  c.num_epochs = 100.0
  # A separate run without model.init_from is the baseline (same recipe).
  c.eval.random_init_baseline = False
  c.eval.protocols = "finetune,knn"
  c.eval.online_probe = False    # the classifier itself is trained on the labels
  c.eval.periodic_protocols = "finetune"
  if variant == "smoke":
    c.augment.recipe = "crop"
    c.augment.min_scale = 0.25
    c.optimizer.update(base_lr=1e-3, lr_scaling="none", warmup_epochs=0.0)
    # The shared smoke test also checks clustering.json.
    c.eval.protocols = "finetune,knn,clustering"
  elif variant == "digits":
    c.augment.recipe = "crop"      # no flips: a mirrored digit is not that digit
    c.num_steps = 120              # 24 epochs at batch 256, the same for both runs
    c.optimizer.warmup_epochs = 1.2  # 5% of training, as MAE's 5 of 100 epochs
    c.checkpoint_every_steps = 60
  elif variant == "cifar10":
    # solo-learn scripts/finetune/imagenet-100/mae.yaml on CIFAR-10.
    c.batch_size = 512
    c.augment.min_scale = 0.08
    c.optimizer.update(layer_decay=0.75, min_lr=0.0, warmup_epochs=10.0)
    c.eval.every_steps = 2000
  elif variant == "imagenet":
    # MAE FINETUNE.md, ViT-B/16.
    c.model.update(backbone="vit_base", patch_size=16, pooling="gap_fc_norm",
                   pos_embedding="sincos", dtype="bfloat16")
    c.model.projector.output_dim = 1000
    c.augment.update(crop_size=224, min_scale=0.08)
    c.batch_size = 1024
    c.eval.every_steps = 1251      # once per epoch, as main_finetune.py
  return c
