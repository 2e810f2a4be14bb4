"""LiT (Zhai et al., "LiT: Zero-Shot Transfer with Locked-image text Tuning",
CVPR 2022): a pretrained image tower, locked, and a text tower trained to
match it. The image tower comes from `model.init_from`: a finished run of
this codebase (any self-supervised method with the same backbone) or an
imported checkpoint (`python -m repr_learn.import_weights`). It runs in eval
mode (BatchNorm running statistics) and takes no update; there is no image
head (big_vision's `img_head=False`), so the text tower projects to the image
features' width.

Variants:
  smoke, shapes  on the generated captions (configs/common.py
           `image_text_variant`); `shapes` locks the ResNet-18 (width 16) of a
           SimCLR run on the same images:
             python main.py --config=configs/simclr.py:digits --config.data.name=shapes \
               --workdir=runs/simclr_shapes
             python main.py --config=configs/lit.py:shapes \
               --config.model.init_from=runs/simclr_shapes --workdir=runs/lit_shapes
  coco_b16  big_vision's `lit_coco.py` (@430df79; `siglip_lit_coco.py` at HEAD
           is the same with batch 512 and the sigmoid loss): the AugReg
           ImageNet-21k ViT-B/16, locked, and a text tower trained on COCO
           (published coco_B16B: 20.7% ImageNet zero-shot, COCO I->T R@1
           47.2, T->I 32.1, README_lit.md):
             python -m repr_learn.import_weights --format=timm \
               --checkpoint=vit_base_patch16_224.augreg_in21k.safetensors \
               --workdir=$CKPT/augreg_b16
             python -m repr_learn.data.prepare --dataset=coco_captions --data_dir=$DATA
             python main.py --config=configs/lit.py:coco_b16 --config.data.data_dir=$DATA \
               --config.model.init_from=$CKPT/augreg_b16 --workdir=$CKPT/lit_coco

    | setting      | value                                                | source |
    |--------------|------------------------------------------------------|--------|
    | data         | coco_captions train (a random caption per example)    | lit_coco.py config.input; pp bert_tokenize sample_if_multi |
    | batch/steps  | 4096 / 5,000                                         | lit_coco.py |
    | optimizer    | Adam (b1 0.9, b2 0.999, eps 1e-8), lr 1e-3, wd 0.01 on kernels only, not scaled by the lr (optax adamw's 0.01 / 1e-3 = 10), global clip 1.0 | lit_coco.py; big_vision/optax.py make() |
    | schedule     | image tower frozen; the rest: 150 warm-up steps (max(3% of 5,000, 100)), cosine to 0 | lit_coco.py config.schedule |
    | temperature  | 10 at init (log stored), softmax loss, no clamp      | lit_coco.py model.temperature_init; trainers/proj/image_text/contrastive.py |
    | image tower  | ViT-B/16 AugReg i21k, head dropped, no image head     | lit_coco.py config.model_init, img_head=False |
    | view         | resize to 224, flip, RandAugment(2, 10)               | lit_coco.py pp_train |

Where ours differs, and why:
  - Text tower and tokenizer: big_vision fine-tunes BERT-base from its
    checkpoint with BERT's WordPiece (16 tokens, [CLS] pooled); BERT's
    checkpoint and vocabulary are not read here, so this recipe trains a
    768-wide, 12-layer transformer from scratch on CLIP's BPE (causal, EOT
    pooled), 16 tokens.
  - View: RandomResizedCrop(224, scale (0.9, 1)), no flip or RandAugment
    (RandAugment is not built here; captions name sides).
  - Weight decay: optax's adamw decays every matrix (the embeddings too),
    big_vision only `.*/kernel`.
  - Evaluation: COCO test retrieval and ImageNet zero-shot (CLIP's names and
    80 templates); big_vision also classifies CIFAR-100 and Pets zero-shot,
    with its `clip_paper` templates, and retrieves on COCO's val split.
"""

import ml_collections

from configs import clip
from configs import common
from repr_learn import config_schema

VARIANTS = common.IMAGE_TEXT_VARIANTS
RECIPES = ("coco_b16",)
EXTRA_VARIANTS = RECIPES


def get_config(variant: str = "shapes") -> ml_collections.ConfigDict:
  c = config_schema.base_config()
  if variant in common.IMAGE_TEXT_VARIANTS:
    common.image_text_variant(c, variant)
    c.model.pixel_mean, c.model.pixel_std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
  elif variant == "coco_b16":
    clip.web_scale(c)
    c.data.update(name="coco_captions", context_length=16, max_captions=5)
    c.model.update(backbone="vit_base", patch_size=16, pooling="cls", pos_embedding="learned",
                   pixel_mean=(0.5, 0.5, 0.5), pixel_std=(0.5, 0.5, 0.5))
    c.model.text.size = "text_base_768"
    c.batch_size = 4096
    c.num_steps = 5000
    c.optimizer.update(name="adamw", base_lr=1e-3, adam_b2=0.999, weight_decay=10.0,
                       clip_global_norm=1.0, warmup_steps=150)
    c.eval.protocols = "retrieval,zeroshot"
    c.eval.periodic_protocols = "retrieval"
    c.eval.every_steps = 500
  else:
    raise ValueError(f"Unknown variant {variant!r}; choose one of "
                     f"{common.IMAGE_TEXT_VARIANTS + RECIPES}.")
  # No image head: the text tower maps to the locked features' width.
  c.model.embed_dim = 0
  c.model.logit_scale_init = 10.0
  config_schema.with_objective(c, "clip", lock_image=True, max_logit_scale=0.0)
  return c
