"""CLIP (Radford et al., "Learning Transferable Visual Models From Natural
Language Supervision", ICML 2021), as open_clip trains it.

Variants:
  smoke, shapes  the CPU variants on generated captions (configs/common.py
           `image_text_variant`); `shapes` is the quickstart's image-text run:
             python main.py --config=configs/clip.py:shapes --workdir=runs/clip_shapes
  cc3m_rn50  open_clip's README example: RN50 on CC3M (its curve ends near
           20% ImageNet zero-shot after 30 epochs on 8 GPUs). Your CC3M as a
           tab-separated table (img2dataset's layout, columns filepath/title):
             python main.py --config=configs/clip.py:cc3m_rn50 \
               --config.data.captions=$CC3M/train.tsv \
               --config.data.eval_captions=$CC3M/val.tsv --workdir=$CKPT/clip_rn50

    | setting      | value                                                | source |
    |--------------|------------------------------------------------------|--------|
    | batch/epochs | 128 x 8 GPUs = 1024 / 30                             | open_clip v3.3.0 README.md l.182-198 (CC3M command) |
    | optimizer    | AdamW lr 1e-3, betas (0.9, 0.999), eps 1e-8, wd 0.1; no decay on ndim < 2, biases, norms, logit_scale | README command; open_clip_train/params.py get_default_params (ResNet); main.py l.335 |
    | schedule     | 10,000 linear warm-up steps, cosine to 0             | README --warmup 10000; scheduler.py cosine_lr |
    | temperature  | 1/0.07 at init, clamped to [1, 100] after each step  | model.py l.274; open_clip_train/train.py l.187-189 |
    | text tower   | 77 tokens, CLIP BPE (49,408), width 512, 12 layers, 8 heads, MLP 2048, causal, EOT pooling, LN eps 1e-5, projection without bias | model_configs/RN50.json; transformer.py TextTransformer |
    | image tower  | ResNet-50, embedding 1024                            | model_configs/RN50.json |
    | view         | RandomResizedCrop(224, scale (0.9, 1)), no flip, OpenAI mean/std | transform.py image_transform (train) |

  laion400m_b32  open_clip's ViT-B/32 on LAION-400M (`laion400m_e32`: 62.96%
           ImageNet zero-shot, docs/PRETRAINED.md), from webdataset shards:
             python main.py --config=configs/clip.py:laion400m_b32 \
               --config.data.captions='$LAION/{00000..41455}.tar' --workdir=$CKPT/clip_b32

    | setting      | value                                                | source |
    |--------------|------------------------------------------------------|--------|
    | batch/epochs | 256 x 128 A100 = 32,768 / 32                         | README.md l.283-315 (SLURM example); docs/PRETRAINED.md l.31 |
    | optimizer    | AdamW lr 5e-4, betas (0.9, 0.98), eps 1e-6, wd 0.2   | params.py defaults and get_default_params (ViT) |
    | schedule     | 2,000 warm-up steps, cosine to 0                     | README --warmup 2000 |
    | loss         | global-batch softmax (their --local-loss --gather-with-grad equals it) | README; loss.py ClipLoss |
    | text tower   | as cc3m_rn50, embedding 512                          | model_configs/ViT-B-32.json |
    | image tower  | ViT-B/32, class token, learned positions, projection 768 -> 512 without bias | model_configs/ViT-B-32.json |

Where ours differs, and why:
  - Image towers: our ResNet-50 is torchvision's (global average pool), not
    CLIP's ModifiedResNet (3-convolution stem, anti-aliased strides, attention
    pool); our ViT has no ln_pre after the embeddings. Both train as the
    recipes say; released CLIP weights do not load into them.
  - Activations: exact GELU, as open_clip 3.3.0's configs; the released
    laion400m_e32 and the CC3M curve's code used QuickGELU (pretrained.py
    l.185-189; the initial commit's model.py).
  - Precision: bfloat16 activations, not fp16 autocast with a loss scaler.
  - Stored images: the caption files' and COCO's images are kept as their
    central 224-px square, so the (0.9, 1) crops see that square; open_clip's
    crop reads the whole image (aspect 3/4 to 4/3).
  - Text tower initialisation: open_clip's embedding stds (0.02, 0.01); the
    blocks keep flax's defaults (models/text.py).
  - Evaluation: zero-shot on ImageNet's validation split with CLIP's 1,000
    class names and 80 templates, read from the open_clip_torch wheel, as
    open_clip evaluates (ImageNet prepared in data.data_dir; set
    --config.eval.zeroshot_dataset=cifar10 for CLIP's 18 CIFAR prompts
    instead); retrieval on data.eval_captions, where open_clip logs 1:1
    in-batch recall on its validation CSV instead.
"""

import ml_collections

from configs import common
from repr_learn import config_schema

VARIANTS = common.IMAGE_TEXT_VARIANTS
RECIPES = ("cc3m_rn50", "laion400m_b32")
EXTRA_VARIANTS = RECIPES


def web_scale(c: ml_collections.ConfigDict) -> None:
  """What both open_clip recipes share: the users' caption files, CLIP's
  tokenizer and text tower, its crop and normalisation, bfloat16, AdamW."""
  c.data.name = "captions"
  c.data.tokenizer = "clip_bpe"
  c.data.context_length = 77
  c.data.max_captions = 1
  c.data.worker_count = 8
  c.augment.recipe = "crop"
  c.augment.min_scale = 0.9
  c.augment.crop_size = 224
  c.model.update(stem="imagenet", dtype="bfloat16", pixel_mean=common.OPENAI_MEAN,
                 pixel_std=common.OPENAI_STD)
  c.model.text.update(size="text_base", causal=True, pooling="eot", projection_bias=False,
                      norm_epsilon=1e-5)
  c.optimizer.update(name="adamw", lr_scaling="none", schedule="cosine", min_lr=0.0)
  c.eval.protocols = "zeroshot,retrieval,knn"
  c.eval.periodic_protocols = "zeroshot"
  c.eval.zeroshot_dataset = "imagenet2012"
  c.eval.online_probe = False
  c.eval.batch_size = 1024
  c.eval.every_steps = 5000
  c.log_every_steps = 100
  c.checkpoint_every_steps = 2500


def get_config(variant: str = "shapes") -> ml_collections.ConfigDict:
  c = config_schema.base_config()
  if variant in common.IMAGE_TEXT_VARIANTS:
    common.image_text_variant(c, variant)
  elif variant == "cc3m_rn50":
    web_scale(c)
    c.model.update(backbone="resnet50", embed_dim=1024)
    c.batch_size = 1024
    c.num_epochs = 30.0
    c.optimizer.update(base_lr=1e-3, adam_b1=0.9, adam_b2=0.999, adam_eps=1e-8,
                       weight_decay=0.1, warmup_steps=10_000)
  elif variant == "laion400m_b32":
    web_scale(c)
    c.model.update(backbone="vit_base", patch_size=32, pooling="cls",
                   pos_embedding="learned", embed_dim=512)
    c.batch_size = 32_768
    c.num_epochs = 32.0
    c.optimizer.update(base_lr=5e-4, adam_b1=0.9, adam_b2=0.98, adam_eps=1e-6,
                       weight_decay=0.2, warmup_steps=2_000)
  else:
    raise ValueError(f"Unknown variant {variant!r}; choose one of "
                     f"{common.IMAGE_TEXT_VARIANTS + RECIPES}.")
  config_schema.with_objective(c, "clip", max_logit_scale=100.0)
  return c
