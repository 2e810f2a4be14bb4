"""SigLIP (Zhai et al., "Sigmoid Loss for Language Image Pre-Training", ICCV
2023): CLIP's towers trained with a pairwise sigmoid loss and a learned bias.

Variants:
  smoke, shapes  the CPU variants on generated captions (configs/common.py
           `image_text_variant`), with SigLIP's temperature 10 and bias -10:
             python main.py --config=configs/siglip.py:shapes --workdir=runs/siglip_shapes
  webli_b16  SigLIP B/16 as big_vision builds it (76.0% ImageNet zero-shot
           for the released WebLI weights, CLIP_benchmark's
           openclip_results.csv), trained on your shards:
             python main.py --config=configs/siglip.py:webli_b16 \
               --config.data.captions='$DATA/{00000..09999}.tar' --workdir=$CKPT/siglip_b16

    | setting      | value                                                | source |
    |--------------|------------------------------------------------------|--------|
    | loss         | -sum_ij log sigmoid(z_ij (t x_i.y_j + b)) / N over the global batch | big_vision trainers/proj/image_text/siglip.py l.287-306 |
    | t, b at init | 10 (stored as log 10), -10; no clamp                 | big_vision SigLIP_demo.ipynb model_cfg; models/proj/image_text/two_towers.py |
    | text tower   | width 768, 12 layers, 12 heads, MLP 3072, no mask, last-token pooling, LayerNorm eps 1e-6, head to 768 with bias; 64 tokens | models/proj/image_text/text_transformer.py (variant B); demo SEQLEN; open_clip ViT-B-16-SigLIP.json |
    | image tower  | ViT-B/16, 768-wide embedding, no image head (out_dim (None, 768)) | demo model_cfg; open_clip ViT-B-16-SigLIP.json |
    | batch        | 32,768                                               | paper (abstract, sec. 4); no big_vision file |
    | optimizer    | Adam(W) lr 1e-3, beta2 0.95, wd 1e-4 (big_vision's decay is not scaled by the lr: optax adamw's 0.1) | paper only: big_vision has no WebLI SigLIP config (README: "code TODO") |

Where ours differs, and why:
  - Tokenizer: SigLIP's sentencepiece `c4_en` (32,000 pieces) lives on
    gs:// and the HF Hub only; this recipe reads CLIP's BPE, so its text
    tower is not the released one's. Padding: big_vision pads with a "sticky"
    EOS, so the last position is always EOS; ours pads with 0 (or ends in EOT
    when truncated), which the last position reads instead.
  - Image pooling: big_vision's MAP head (attention pooling) is not built
    here; the class token is pooled.
  - Length and warm-up are in no file (big_vision has no WebLI SigLIP
    config): ours are one epoch of your data and 5,000 warm-up steps, then
    cosine to 0; set num_steps / optimizer.warmup_steps for your data.
"""

import ml_collections

from configs import clip
from configs import common
from repr_learn import config_schema

VARIANTS = common.IMAGE_TEXT_VARIANTS
RECIPES = ("webli_b16",)
EXTRA_VARIANTS = RECIPES


def get_config(variant: str = "shapes") -> ml_collections.ConfigDict:
  c = config_schema.base_config()
  if variant in common.IMAGE_TEXT_VARIANTS:
    common.image_text_variant(c, variant)
  elif variant == "webli_b16":
    clip.web_scale(c)
    c.data.context_length = 64
    c.model.update(backbone="vit_base", patch_size=16, pooling="cls",
                   pos_embedding="learned", embed_dim=0,
                   pixel_mean=(0.5, 0.5, 0.5), pixel_std=(0.5, 0.5, 0.5))
    c.model.text.update(size="text_base_768", causal=False, pooling="last",
                        projection_bias=True, norm_epsilon=1e-6)
    c.batch_size = 32_768
    c.num_epochs = 1.0
    c.optimizer.update(base_lr=1e-3, adam_b2=0.95, weight_decay=0.1, warmup_steps=5_000)
  else:
    raise ValueError(f"Unknown variant {variant!r}; choose one of "
                     f"{common.IMAGE_TEXT_VARIANTS + RECIPES}.")
  c.model.logit_scale_init = 10.0
  c.model.logit_bias_init = -10.0
  config_schema.with_objective(c, "siglip", max_logit_scale=0.0)
  return c
