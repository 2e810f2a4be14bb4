"""The experiment config's schema: every field, its default and its meaning.

Method configs in `configs/` start from `base_config()` and change values, so a
field that is not here does not exist; `config_checks.validate` holds a finished
config to it. Also here: the allowed values of the fields with choices, the
values a config.json written before a field existed was trained with, and the
fields naming local paths.
"""

import json
import os
from typing import Any

import ml_collections
from ml_collections import config_dict


# Fields every objective's section holds beside its own (`Objective.defaults`).
COMMON_OBJECTIVE_FIELDS = {
    # Matryoshka representation learning (Kusupati et al. 2022): the loss is
    # summed over the heads that read the first m feature dims, for each m
    # here (ascending, the last the backbone's feature width); () = off.
    "matryoshka_dims": (),
    "matryoshka_weights": (),      # one per size; () = 1 each (MRL's relative_importance)
    "matryoshka_efficient": False,  # True: the sizes share the projector's first layer (MRL-E); False: one per size (MRL)
}


def base_config() -> ml_collections.ConfigDict:
  """Defaults shared by every method (SimCLR-like ResNet-18 on CIFAR-10)."""
  c = ml_collections.ConfigDict()
  c.seed = 0                        # initialisation, augmentation and data order
  c.batch_size = 512                # global batch over all hosts and devices
  c.num_epochs = 100.0              # training length in epochs of `data.name`...
  c.num_steps = config_dict.placeholder(int)  # ...or in steps (takes precedence)

  c.data = ml_collections.ConfigDict()
  c.data.name = "cifar10"           # see repr_learn/data/catalog.py
  c.data.data_dir = config_dict.placeholder(str)    # TFDS data_dir, or the image folder
  c.data.manual_dir = config_dict.placeholder(str)  # ImageNet tars (imagenet2012)
  c.data.eval_dir = config_dict.placeholder(str)    # image_folder: labeled test folder
  c.data.bad_images = "error"       # image_folder files that do not decode: error (list them) | skip
  c.data.worker_count = 0           # grain worker processes (0: in the main process)
  c.data.storage = "tfds"           # tfds | resized (a copy at the stored size: prepare --resized)
  c.data.captions = config_dict.placeholder(str)       # data.name='captions': a CSV/TSV/JSONL of image path + caption, or .tar shards (key.jpg + key.txt)
  c.data.eval_captions = config_dict.placeholder(str)  # data.name='captions': the same for the evaluation split
  c.data.tokenizer = "bytes"        # captioned data: bytes (UTF-8, no file) | clip_bpe (CLIP's BPE; pip install --no-deps open_clip_torch)
  c.data.tokenizer_vocab = config_dict.placeholder(str)  # clip_bpe: its vocabulary file (default: the one the open_clip_torch wheel ships)
  c.data.context_length = 32        # captioned data: tokens per caption, padded or truncated (CLIP 77, SigLIP 64)
  c.data.max_captions = 5           # captioned data: captions kept per image (COCO has 5; training draws one per step)

  c.augment = ml_collections.ConfigDict()
  c.augment.recipe = "simclr"       # see repr_learn/data/view_recipes.py
  c.augment.crop_size = 32          # output size of the random resized crops
  c.augment.min_scale = 0.08        # smallest crop area fraction
  c.augment.color_strength = 0.5    # SimCLR's jitter strength s
  c.augment.blur_prob = 0.0         # 0.5 for ImageNet-sized images, 0 on CIFAR
  c.augment.solarize_probs = (0.0, 0.2)  # byol/multicrop_byol recipes: solarisation of view 1, view 2
  c.augment.num_local_crops = 0     # multi-crop recipes: small views after the 2 global
  c.augment.local_crop_size = 96    # their output size
  c.augment.local_min_scale = 0.05  # their crop area fraction range
  c.augment.local_max_scale = 0.14
  c.augment.blur_kernel_size = 0    # Gaussian blur taps; 0: about 10% of the crop side (SimCLR, BYOL); DINOv2: 9
  c.augment.crop_sampler = "torchvision"  # random-resized crop boxes: torchvision's 10 tries + centre fallback | clip (runs made before)

  c.model = ml_collections.ConfigDict()
  c.model.backbone = "resnet18"     # resnet_tiny|resnet18|34|50|101, vit_test|tiny|small|base|large
  c.model.stem = "cifar"            # 'cifar' (3x3 conv, no pool) or 'imagenet'
  c.model.width = 64                # filters of the first stage
  c.model.resnet_padding = "torch"  # ResNet 3x3 convs and max-pool: torch (1 px each side, torchvision's) | same (XLA's; runs made before)
  c.model.gelu = "exact"            # every GELU of the network: exact (timm, torch) | tanh (runs made before)
  c.model.dtype = "float32"         # activations; 'bfloat16' on GPUs/TPUs
  c.model.pixel_mean = (0.485, 0.456, 0.406)  # input normalisation the network expects (ImageNet's; imported weights record theirs)
  c.model.pixel_std = (0.229, 0.224, 0.225)
  c.model.per_view_batchnorm = False  # one forward (and BN batch) per view, as BYOL/SimSiam/Barlow/VICReg/MoCo v3/solo-learn
  c.model.patch_size = 16           # ViT only
  c.model.num_heads = 0             # ViT only: 0 = the size's own (ViT-S 6 as DeiT/DINO; MoCo v3's ViT-S: 12)
  c.model.freeze_patch_embed = False  # ViT only: patch projection kept at init (MoCo v3 --stop-grad-conv1); add 'patch_embed' to optimizer.no_decay_names
  c.model.pooling = "cls"           # ViT only: 'cls' token, 'gap' (cls kept, mean of patches), 'gap_fc_norm' (MAE fine-tune: LayerNorm after the mean) or 'mean' (no cls)
  c.model.pos_embedding = "sincos"  # ViT only: 'sincos' (fixed) or 'learned'
  c.model.pos_resample = "bicubic"  # ViT only: learned positions at other sizes: bicubic (torch, MAE/DINO) | bicubic_antialias (timm; runs made before)
  c.model.pos_resample_offset = 0.0  # ViT only: DINO/DINOv2 resample with scale (grid + 0.1) / old grid
  c.model.num_registers = 0         # ViT only: register tokens after the class token (DINOv2 reg: 4)
  c.model.attention = "xla"         # ViT only: 'xla', or 'cudnn' (its fused kernel where it applies, on GPUs)
  c.model.scan_blocks = False       # transformers (ViT, decoder, text tower): blocks as one lax.scan; the program holds one block, not depth (same weights and computation)
  c.model.remat_blocks = False      # with scan_blocks: recompute each block's activations in the backward pass (jax.checkpoint): less memory, ~1/3 more FLOPs
  c.model.drop_path = 0.0           # ViT only: stochastic depth, linear over blocks to this rate
  c.model.drop_path_uniform = False  # ViT only: the same drop_path in every block (DINOv2)
  c.model.layer_scale = 0.0         # ViT only: > 0 scales residual branches by a learned gamma (SimMIM 0.1)
  c.model.post_norm = False         # ViT only: post-LayerNorm blocks (data2vec 2.0)
  c.model.mask_token = False        # ViT only: a learned token replaces masked patches (SimMIM, MaskFeat)
  c.model.decoder = ml_collections.ConfigDict()  # masked modeling: what predicts the hidden content
  c.model.decoder.kind = "none"     # none | transformer (MAE) | linear (SimMIM, MaskFeat) | conv (data2vec 2.0) | predictor (I-JEPA)
  c.model.decoder.width = 512
  c.model.decoder.depth = 8
  c.model.decoder.num_heads = 16
  c.model.decoder.mlp_dim = 2048
  c.model.decoder.kernel_size = 3   # conv decoder
  c.model.decoder.groups = 16       # conv decoder
  c.model.projector = ml_collections.ConfigDict()
  c.model.projector.hidden_dim = 2048
  c.model.projector.output_dim = 128
  c.model.projector.num_layers = 2
  c.model.projector.use_bn = True
  c.model.projector.last_bn = False
  c.model.projector.activation = "relu"  # relu | gelu (DINO)
  c.model.predictor = ml_collections.ConfigDict()
  c.model.predictor.hidden_dim = 4096
  c.model.predictor.num_layers = 0  # 0: no predictor
  c.model.predictor.last_bn = False  # BatchNorm without scale/bias on its output (MoCo v3's ViT predictor)
  c.model.prototypes = ml_collections.ConfigDict()
  c.model.prototypes.num_prototypes = 0  # 0: none; SwAV/DINO/SeLa/DEC set K
  c.model.prototypes.kind = "cosine"     # cosine (SwAV, DINO, SeLa) | student_t (DEC)
  c.model.prototypes.learned_norm = False  # cosine: learned per-prototype norm (DINO --norm_last_layer false)
  c.model.patch_head = ml_collections.ConfigDict()  # iBOT/DINOv2: DINO heads on the class and patch tokens
  c.model.patch_head.kind = "none"  # none | shared (the class-token head also scores patches) | separate (its own, sized below)
  c.model.patch_head.hidden_dim = 2048
  c.model.patch_head.output_dim = 256
  c.model.patch_head.num_layers = 3
  c.model.patch_head.num_prototypes = 8192
  c.model.text = ml_collections.ConfigDict()  # image-text models (CLIP, SigLIP, LiT): the text tower
  c.model.text.size = "none"        # none | text_test | text_mini | text_base (CLIP) | text_base_768 (SigLIP B/16); see repr_learn/models/text.py
  c.model.text.causal = True        # causal attention (CLIP) | none (SigLIP)
  c.model.text.pooling = "eot"      # eot (CLIP: the end-of-text token) | last (SigLIP: the last position) | mean
  c.model.text.projection_bias = False  # SigLIP's text head has a bias, CLIP's projection none
  c.model.text.norm_epsilon = 1e-5  # LayerNorm epsilon (CLIP 1e-5, SigLIP 1e-6)
  c.model.embed_dim = 512           # image-text: shared embedding width; 0: the image features themselves (no image head; big_vision LiT img_head=False)
  c.model.logit_scale_init = 14.285714285714286  # image-text: temperature at init (CLIP 1/0.07; SigLIP 10); the parameter is its log
  c.model.logit_bias_init = config_dict.placeholder(float)  # SigLIP: bias at init (-10); None: no bias (CLIP)
  c.model.init_from = config_dict.placeholder(str)  # workdir of a pretraining run (SCAN, DEC, LiT)

  c.objective = ml_collections.ConfigDict()
  c.objective.name = "simclr"       # see repr_learn/objectives/__init__.py
  c.objective.temperature = 0.5     # objective-specific fields follow the name
  c.objective.update(COMMON_OBJECTIVE_FIELDS)

  c.optimizer = ml_collections.ConfigDict()
  c.optimizer.name = "lars"         # lars | sgd | adamw | adam (torch Adam: L2 in the gradient, SCAN)
  c.optimizer.base_lr = 1.0         # before batch-size scaling
  c.optimizer.lr_scaling = "linear" # linear (x batch/256) | sqrt (x sqrt(batch)) | sqrt_wrt_1024 (x sqrt(batch/1024): DINOv2) | none
  c.optimizer.warmup_epochs = 10.0
  c.optimizer.warmup_steps = config_dict.placeholder(int)  # ...or in steps (takes precedence; open_clip's --warmup)
  c.optimizer.schedule = "cosine"   # cosine (to min_lr) | steps (x lr_decay_factor at each of lr_decay_epochs: NPID) | constant
  c.optimizer.lr_decay_epochs = ()  # steps schedule: epochs where the lr drops
  c.optimizer.lr_decay_factor = 0.1  # steps schedule: the drop
  c.optimizer.weight_decay = 1e-6
  c.optimizer.weight_decay_end = config_dict.placeholder(float)  # None: constant; else cosine to it
  c.optimizer.clip_each_parameter_norm = 0.0  # > 0: each tensor's gradient norm clipped (DINO: 3.0)
  c.optimizer.clip_each_module_norm = 0.0  # > 0: the gradient norm of each top-level module (backbone, each head) clipped (DINOv2: 3.0)
  c.optimizer.patch_embed_lr_scale = 1.0  # ViT patch projection's lr x this (DINOv2: 0.2)
  c.optimizer.momentum = 0.9
  c.optimizer.trust_coefficient = 0.001  # LARS eta
  c.optimizer.lars_variant = "optax"  # LARS: 'optax' (optax.lars) or 'solo_learn' (optim.solo_learn_lars: the CIFAR recipes')
  c.optimizer.lars_clip_lr = False    # solo_learn LARS: a layer's rate never above the lr
  c.optimizer.adam_b2 = 0.999
  c.optimizer.adam_b1 = 0.9          # AdamW beta1 (MAE, data2vec 2.0 pretraining set adam_b2 = 0.95)
  c.optimizer.adam_eps = 1e-8        # Adam/AdamW epsilon (CLIP's ViTs: 1e-6)
  c.optimizer.warmup_start_lr = 0.0  # absolute lr at step 0 of the linear warm-up (I-JEPA: 2e-4)
  c.optimizer.min_lr = 0.0           # absolute lr the cosine ends at (MAE fine-tune, I-JEPA: 1e-6)
  c.optimizer.clip_global_norm = 0.0  # > 0: global gradient norm clipped first (SimMIM 5, data2vec 2.0 4, MaskFeat 0.02)
  c.optimizer.no_decay_names = ()    # params with one of these names in their path: no wd/LARS (MAE: pos_embedding, cls_token, mask_token)
  c.optimizer.decay_all_parameters = False  # True: wd/LARS on biases and norms too (torch SGD weight_decay: MoCo v2, SimSiam, SupCon, NPID)
  c.optimizer.fixed_lr_names = ()    # params under these names keep the peak lr, no warm-up or decay (SimSiam --fix-pred-lr: predictor)
  c.optimizer.bias_lr_scale = 1.0    # lr x this for biases and norm params, same schedule (Barlow Twins: 0.0048 / 0.2)
  c.optimizer.layer_decay = 1.0      # < 1: lr x decay**(L+1-layer id), ViT blocks / ResNet stages (MAE fine-tune: 0.65); 1: off

  c.eval = ml_collections.ConfigDict()
  c.eval.protocols = "knn,clustering,rankme,linear,fewshot,plots"  # run at the end (repr_learn/evaluation)
  c.eval.every_steps = 0            # 0: evaluate at the end only
  c.eval.periodic_protocols = "knn,rankme"  # run every `every_steps` (cheap ones)
  c.eval.dataset = config_dict.placeholder(str)   # transfer: evaluate on another dataset
  c.eval.data_dir = config_dict.placeholder(str)  # its data_dir (default: data.data_dir)
  c.eval.eval_dir = config_dict.placeholder(str)  # image_folder transfer: labeled test folder
  c.eval.batch_size = 256           # global batch for feature extraction
  c.eval.knn_k = 200                # NPID/DINO weighted kNN
  c.eval.knn_temperature = 0.1
  c.eval.random_init_baseline = True  # also report the untrained encoder
  c.eval.online_probe = True        # linear probe on frozen features during training (train/online_top1)
  c.eval.online_probe_lr = 0.1      # its SGD learning rate (momentum 0.9)
  c.eval.kmeans_restarts = 10       # k-means++ initialisations
  c.eval.linear_variant = "standard"  # linear probe: standard (z-score, SGD, lr x wd grid) | mae (BN + LARS, MAE's main_linprobe)
  c.eval.linear_epochs = 90           # linear probe epochs, for the grid and the refit alike
  c.eval.linear_batch_size = 256      # its global batch; learning rates scale by batch / 256
  c.eval.linear_lrs = ()              # base learning rates to try; () = the variant's default grid
  c.eval.linear_weight_decays = ()    # weight decays to try; () = the variant's default (mae: 0 only)
  c.eval.linear_val_fraction = 0.2    # held-out part of the train split that picks (lr, wd)
  c.eval.linear_standardize = True    # standard variant: z-score features with train-split statistics
  c.eval.linear_features = "pooled"   # pooled (the backbone's features) | dinov2 (ViT: class tokens of the last n blocks [+ mean patch token], DINOv2's eval_linear)
  c.eval.linear_n_last_blocks = 4     # dinov2 features: blocks whose class tokens are concatenated (DINOv2 tries 1 and 4)
  c.eval.linear_avgpool = True        # dinov2 features: append the last block's mean patch token
  c.eval.fewshot_shots = (1, 5, 10, 25)  # examples per class (big_vision's)
  c.eval.fewshot_seeds = 5            # draws of the few-shot training set per shot count
  c.eval.fewshot_l2_reg = 1024.0      # ridge strength: big_vision's fixed 2^10
  c.eval.rankme_max_examples = 25600  # RankMe/uniformity on at most this many test-split embeddings
  c.eval.dims = ()                    # also run knn, linear, fewshot and rankme on these leading feature dims (Matryoshka sizes)
  c.eval.zeroshot_dataset = config_dict.placeholder(str)  # image-text zeroshot protocol: classify this catalogued dataset's test split (default: the evaluation data)
  c.eval.zeroshot_templates = ()      # prompts with '{}' for the class name; () = the dataset's own (CLIP's for CIFAR, digits; see repr_learn/data/class_names.py)

  c.parallel = ml_collections.ConfigDict()
  c.parallel.mode = "jit"           # jit: one program over the global batch (global BatchNorm) | pmap: per-device programs (see repr_learn/parallel.py)
  c.parallel.sync_batchnorm = config_dict.placeholder(bool)  # pmap only: True = SyncBN; None/False = per-device BN (PyTorch DDP)

  c.log_every_steps = 50
  c.checkpoint_every_steps = 1000
  c.keep_checkpoints = 3            # the last N are kept
  return c


def get(config, dotted: str):
  """The value of a dotted field ('model.decoder.kind') of a config or its dict."""
  for part in dotted.split("."):
    config = config[part]
  return config


# Per-section allowed values, checked before anything is built (`config_checks`).
CHOICES = {
    ("model", "dtype"): ("float32", "bfloat16", "float16"),
    ("data", "tokenizer"): ("bytes", "clip_bpe"),
    ("model.text", "size"): ("none", "text_test", "text_mini", "text_base", "text_base_768"),
    ("model.text", "pooling"): ("eot", "last", "mean"),
    ("model", "stem"): ("cifar", "imagenet"),
    ("model", "pooling"): ("cls", "gap", "mean", "gap_fc_norm"),
    ("model", "resnet_padding"): ("torch", "same"),
    ("model", "gelu"): ("exact", "tanh"),
    ("model", "pos_resample"): ("bicubic", "bicubic_antialias"),
    ("augment", "crop_sampler"): ("torchvision", "clip"),
    ("model", "pos_embedding"): ("sincos", "learned"),
    ("model", "attention"): ("xla", "cudnn"),
    ("eval", "linear_variant"): ("standard", "mae"),
    ("eval", "linear_features"): ("pooled", "dinov2"),
    ("data", "bad_images"): ("error", "skip"),
    ("data", "storage"): ("tfds", "resized"),
    ("parallel", "mode"): ("jit", "pmap"),
    ("optimizer", "lars_variant"): ("optax", "solo_learn"),
    ("optimizer", "schedule"): ("cosine", "steps", "constant"),
    ("model.decoder", "kind"): ("none", "transformer", "linear", "conv", "predictor"),
    ("model.projector", "activation"): ("relu", "gelu"),
    ("model.prototypes", "kind"): ("cosine", "student_t"),
    ("model.patch_head", "kind"): ("none", "shared", "separate"),
    ("optimizer", "lr_scaling"): ("linear", "sqrt", "sqrt_wrt_1024", "none"),
}


# Fields added since the first releases: a config.json written before they
# existed was trained with the value here, and keeps computing with it when
# evaluated or resumed. The first four (the standard numerics, torchvision/timm
# parity) changed default; the rest are what the code did before they were
# options (Matryoshka sizes, off; no text tower).
LEGACY_VALUES = {
    "model.resnet_padding": "same",
    "model.gelu": "tanh",
    "model.pos_resample": "bicubic_antialias",
    "augment.crop_sampler": "clip",
    "model.pos_resample_offset": 0.0,
    "model.num_registers": 0,
    "model.pixel_mean": [0.485, 0.456, 0.406],
    "model.pixel_std": [0.229, 0.224, 0.225],
    "objective.matryoshka_dims": [],
    "objective.matryoshka_weights": [],
    "objective.matryoshka_efficient": False,
    "eval.dims": [],
    "model.text.size": "none",
    "model.text.causal": True,
    "model.text.pooling": "eot",
    "model.text.projection_bias": False,
    "model.text.norm_epsilon": 1e-5,
    "model.embed_dim": 512,
    "model.logit_scale_init": 14.285714285714286,
    "model.logit_bias_init": None,
}


def missing_legacy_fields(saved: dict, changed_only: bool = False) -> dict[str, Any]:
  """{dotted field: value it was trained with} for the `LEGACY_VALUES` fields a
  stored config (config.json as a dict) predates; with `changed_only`, only
  those whose old value is not today's default (the others change nothing)."""
  defaults = base_config() if changed_only else None
  missing = {}
  for dotted, value in LEGACY_VALUES.items():
    section, _, leaf = dotted.rpartition(".")
    node = saved
    for part in section.split("."):
      node = node.get(part, {}) if isinstance(node, dict) else {}
    if isinstance(node, dict) and leaf not in node:
      if defaults is None or value != json.loads(json.dumps(get(defaults, dotted), default=str)):
        missing[dotted] = value
  return missing


def with_legacy_values(saved: dict) -> dict:
  """A copy of a stored config with the fields it predates set to the values
  it was trained with."""
  saved = json.loads(json.dumps(saved))
  for dotted, value in missing_legacy_fields(saved).items():
    *sections, leaf = dotted.split(".")
    node = saved
    for part in sections:
      node = node.setdefault(part, {})
    node[leaf] = value
  return saved


# Fields naming local directories: stored resolved, so that config.json
# still finds them from another working directory (`evaluate`, `embed`).
PATH_FIELDS = ("data.data_dir", "data.eval_dir", "data.manual_dir", "data.captions",
               "data.eval_captions", "data.tokenizer_vocab", "eval.data_dir",
               "eval.eval_dir", "model.init_from")


def with_absolute_paths(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """A copy of `config` with each relative (or ~) local path of `PATH_FIELDS`
  made absolute; remote paths (gs://...) are kept as given."""
  resolved = config.copy_and_resolve_references()
  for dotted in PATH_FIELDS:
    section, leaf = dotted.split(".")
    value = resolved[section][leaf]
    if value and "://" not in value:
      resolved[section][leaf] = os.path.abspath(os.path.expanduser(value))
  return resolved


def with_objective(config: ml_collections.ConfigDict, name: str,
                   **overrides: Any) -> ml_collections.ConfigDict:
  """Replaces `config.objective` by `name`'s defaults updated with `overrides`."""
  from repr_learn import objectives
  cls = objectives.get_objective_class(name)
  fields = {**COMMON_OBJECTIVE_FIELDS, **cls.defaults}
  unknown = set(overrides) - set(fields)
  if unknown:
    raise KeyError(f"Objective {name!r} has no fields {sorted(unknown)}; valid: {sorted(fields)}.")
  config.objective = ml_collections.ConfigDict({"name": name, **fields, **overrides})
  return config
