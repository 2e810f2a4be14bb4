"""The dataset/backbone/schedule part of every method's variants.

Method configs call `set_variant` and then change only what their paper does
differently, so `smoke`, `digits`, `cifar10` and `imagenet` mean the same thing
everywhere:
  smoke    tiny ResNet, 4 steps on digits: seconds on CPU (tests, CI).
  digits   ResNet-18 (width 16) on scikit-learn's digits, minutes on 2 CPU cores.
  cifar10  ResNet-18 CIFAR stem, batch 256, 1000 epochs (solo-learn's CIFAR recipes).
  imagenet ResNet-50, batch 4096, bfloat16 activations, 100 epochs.
"""

import ml_collections

VARIANTS = ("smoke", "digits", "cifar10", "imagenet")


def variants(module) -> tuple[str, ...]:
  """Every variant a config file accepts: the common four (or, for methods
  that need other data, its own `VARIANTS`: image-text training reads
  captions) and the further paper recipes it lists in `EXTRA_VARIANTS` (e.g.
  DINO's ResNet-50)."""
  return tuple(getattr(module, "VARIANTS", VARIANTS)) + tuple(getattr(module, "EXTRA_VARIANTS", ()))


def recipe_variants(module) -> tuple[str, ...]:
  """The variants that train at a paper's scale (traced at their real shapes
  by tests/test_recipes.py): ImageNet and CIFAR-10 ones, and those a config
  lists in `RECIPES` (image-text training on the users' captions)."""
  return tuple(v for v in variants(module)
               if v.startswith(("imagenet", "cifar10")) or v in getattr(module, "RECIPES", ()))


def set_variant(c: ml_collections.ConfigDict, variant: str) -> ml_collections.ConfigDict:
  if variant == "smoke":
    c.data.name = "digits"
    c.model.backbone = "resnet_tiny"
    c.model.width = 8
    c.model.projector.hidden_dim = 32
    c.model.projector.output_dim = 16
    c.model.predictor.hidden_dim = 32
    c.augment.crop_size = 16
    c.batch_size = 32
    c.num_steps = 4
    c.optimizer.warmup_epochs = 0.0
    c.log_every_steps = 2
    c.checkpoint_every_steps = 2
    c.eval.batch_size = 128
    c.eval.knn_k = 10
    c.eval.protocols = "knn,clustering"
    c.eval.online_probe = False  # tested on its own; keeps the smoke step small
  elif variant == "digits":
    # Small enough for 2 CPU cores in a few minutes; sqrt LR scaling as SimCLR
    # recommends for small batches.
    c.data.name = "digits"
    c.model.backbone = "resnet18"
    c.model.width = 16
    c.model.projector.hidden_dim = 256
    c.model.projector.output_dim = 64
    c.model.predictor.hidden_dim = 256
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
    c.model.backbone = "resnet18"
    c.model.stem = "cifar"
    c.augment.crop_size = 32
    c.augment.blur_prob = 0.0
    c.batch_size = 256
    c.num_epochs = 1000.0
    c.optimizer.warmup_epochs = 10.0
    c.eval.every_steps = 20000
    c.eval.batch_size = 512
  elif variant == "imagenet":
    c.data.name = "imagenet2012"
    c.model.backbone = "resnet50"
    c.model.stem = "imagenet"
    c.model.dtype = "bfloat16"
    c.augment.crop_size = 224
    c.augment.color_strength = 1.0
    c.augment.blur_prob = 0.5
    c.batch_size = 4096
    c.num_epochs = 100.0
    c.optimizer.warmup_epochs = 10.0
    c.eval.batch_size = 1024
    c.eval.every_steps = 10000
    c.log_every_steps = 100
    c.checkpoint_every_steps = 2500
  else:
    raise ValueError(f"Unknown variant {variant!r}; choose one of {VARIANTS}.")
  return c


def solo_learn_cifar(c: ml_collections.ConfigDict, *, variant: str, lars: bool = True) -> None:
  """On `cifar10`, what every solo-learn CIFAR recipe shares: one forward pass
  (and BatchNorm batch) per view (solo/methods/base.py `training_step` calls
  the network once per crop), and with `lars` its LARS (scripts/pretrain/cifar/
  <method>.yaml: `eta: 0.02`, `clip_lr: True`, `exclude_bias_n_norm: True`; the
  update of solo/utils/lars.py, which `optim.solo_learn_lars` reproduces).
  optax's LARS with eta 0.001 and no clipping took 20-70x smaller steps."""
  if variant != "cifar10":
    return
  c.model.per_view_batchnorm = True
  if lars:
    c.optimizer.update(name="lars", lars_variant="solo_learn", trust_coefficient=0.02,
                       lars_clip_lr=True)


def swav_larc(c: ml_collections.ConfigDict) -> None:
  """The optimizer of facebookresearch/swav's ImageNet scripts (main_swav.py,
  main_deepclusterv2.py): SGD momentum 0.9 wrapped in apex's LARC with trust
  0.001 and clip=False, which adapts and decays every parameter with the
  |g| + wd|w| denominator (`optim.solo_learn_lars` without clipping); base lr
  4.8 at batch 4096 (0.3 x B/256), warm-up from 0.3, cosine to 0.0048."""
  c.optimizer.update(name="lars", lars_variant="solo_learn", trust_coefficient=0.001,
                     lars_clip_lr=False, momentum=0.9, decay_all_parameters=True,
                     base_lr=0.3, lr_scaling="linear", weight_decay=1e-6,
                     warmup_epochs=10.0, warmup_start_lr=0.3, min_lr=0.0048)


def projector(c: ml_collections.ConfigDict, *, hidden: int, out: int, layers: int,
              last_bn: bool = False, use_bn: bool = True, variant: str) -> None:
  """Sets the paper's projector, except in the CPU variants which keep theirs small."""
  c.model.projector.num_layers = layers
  c.model.projector.last_bn = last_bn
  c.model.projector.use_bn = use_bn
  if variant not in ("smoke", "digits"):
    c.model.projector.hidden_dim = hidden
    c.model.projector.output_dim = out


def predictor(c: ml_collections.ConfigDict, *, hidden: int, layers: int = 2,
              last_bn: bool = False, variant: str) -> None:
  c.model.predictor.num_layers = layers
  c.model.predictor.last_bn = last_bn
  if variant not in ("smoke", "digits"):
    c.model.predictor.hidden_dim = hidden


def multicrop(c: ml_collections.ConfigDict, *, variant: str) -> None:
  """SwAV's 2 global + 6 local crops, scaled down on the CPU variants."""
  if c.augment.recipe not in ("multicrop", "multicrop_byol", "multicrop_dinov2"):
    c.augment.recipe = "multicrop"
  c.augment.min_scale = 0.14
  c.augment.local_min_scale = 0.05
  c.augment.local_max_scale = 0.14
  if variant == "smoke":  # one local crop: both resolutions, least compile time
    c.augment.update(num_local_crops=1, local_crop_size=8, min_scale=0.25,
                     local_min_scale=0.1, local_max_scale=0.5)
  elif variant == "digits":
    # 8x8 local crops of 16x16 digit images cover up to half of the image.
    c.augment.update(num_local_crops=4, local_crop_size=8, min_scale=0.25,
                     local_min_scale=0.1, local_max_scale=0.5)
  elif variant == "cifar10":
    c.augment.update(num_local_crops=6, local_crop_size=16)
  else:
    c.augment.update(num_local_crops=6, local_crop_size=96)


def masked_modeling(c: ml_collections.ConfigDict, *, variant: str, decoder: str,
                    recipe: str = "crop_flip") -> None:
  """The ViT, decoder and AdamW defaults of the masked-modeling methods.

  smoke    ViT (32 wide, 2 blocks), 4-px patches of 16-px crops: 16 tokens.
  digits   ViT-Mini (96 wide, 6 blocks), 2-px patches of 16-px crops: 64 tokens,
           minutes on 2 CPU cores.
  cifar10  ViT-Small, 4-px patches of 32-px crops: 64 tokens (ours; none of the
           five papers has a CIFAR recipe).
  imagenet ViT-B/16 at 224 px, bfloat16 activations; each method sets its own
           paper's decoder, optimizer and schedule on top.
  Evaluation: kNN is only a weak monitor for masked modeling; the linear probe
  and fine-tuning (configs/finetune.py) are the protocols the papers report.
  """
  c.augment.recipe = recipe
  c.model.decoder.kind = decoder
  c.model.pooling = "cls"
  c.model.pos_embedding = "sincos"
  c.optimizer.update(name="adamw", lr_scaling="linear", weight_decay=0.05, adam_b1=0.9,
                     adam_b2=0.95)
  if variant != "smoke":  # smoke keeps set_variant's quick protocols
    c.eval.protocols = "knn,linear,fewshot,rankme,plots"
  # The online probe needs an extra unmasked forward: +60% of MAE's step FLOPs.
  c.eval.online_probe = False
  if variant == "smoke":
    c.model.update(backbone="vit_test", patch_size=4)
    c.model.decoder.update(width=32, depth=1, num_heads=2, mlp_dim=64, groups=1)
  elif variant == "digits":
    c.model.update(backbone="vit_mini", patch_size=2)
    c.model.decoder.update(width=64, depth=2, num_heads=2, mlp_dim=256, groups=1)
    c.optimizer.update(base_lr=1e-3, warmup_epochs=3.0)
    # Every token passes through the encoder (or a teacher) of all but MAE.
    c.num_epochs = 30.0
  elif variant == "cifar10":
    c.model.update(backbone="vit_small", patch_size=4)
    c.model.decoder.update(width=256, depth=4, num_heads=8, mlp_dim=1024, groups=16)
    c.optimizer.update(base_lr=1.5e-4, warmup_epochs=40.0)
    c.num_epochs = 800.0
  elif variant == "imagenet":
    c.model.update(backbone="vit_base", patch_size=16)


IMAGE_TEXT_VARIANTS = ("smoke", "shapes")
# open_clip's OPENAI_DATASET_MEAN/STD (src/open_clip/constants.py): CLIP's input normalisation.
OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)


def image_text_variant(c: ml_collections.ConfigDict, variant: str) -> ml_collections.ConfigDict:
  """The CPU variants of image-text training, on the generated `shapes`
  captions (repr_learn/data/shapes.py) with the byte tokenizer:
    smoke   a tiny ResNet and a one-block text tower, 4 steps: seconds on CPU.
    shapes  a ResNet-18 (width 16) and a 2-block text tower, minutes on 2
            CPU cores; zero-shot on 24 colour-shape classes, 4 of them never
            seen in training, and Recall@k over 5 captions per image.
  The view is open_clip's training crop (RandomResizedCrop scale (0.9, 1), no
  flip: captions say 'left' and 'right')."""
  c.data.name = "shapes"
  c.data.tokenizer = "bytes"
  c.data.context_length = 64  # the longest shapes caption is 55 bytes
  c.data.max_captions = 5
  c.augment.recipe = "crop"
  c.augment.min_scale = 0.9
  c.model.stem = "cifar"
  c.model.pixel_mean, c.model.pixel_std = OPENAI_MEAN, OPENAI_STD
  c.optimizer.update(name="adamw", base_lr=1e-3, lr_scaling="none", weight_decay=0.1,
                     adam_b2=0.98, schedule="cosine")
  c.eval.protocols = "zeroshot,retrieval,knn"
  c.eval.periodic_protocols = "zeroshot"
  c.eval.online_probe = False
  if variant == "smoke":
    c.model.update(backbone="resnet_tiny", width=8, embed_dim=32)
    c.model.text.size = "text_test"
    c.augment.crop_size = 16
    c.batch_size = 32
    c.num_steps = 4
    c.optimizer.warmup_epochs = 0.0
    c.log_every_steps = 2
    c.checkpoint_every_steps = 2
    c.eval.batch_size = 128
    c.eval.knn_k = 10
    c.eval.random_init_baseline = False
  elif variant == "shapes":
    c.model.update(backbone="resnet18", width=16, embed_dim=128)
    c.model.text.size = "text_mini"
    c.augment.crop_size = 32
    c.batch_size = 128
    c.num_epochs = 12.0
    c.optimizer.warmup_epochs = 1.0
    c.log_every_steps = 10
    c.checkpoint_every_steps = 100
    c.eval.batch_size = 480
    c.eval.knn_k = 20
  else:
    raise ValueError(f"Unknown variant {variant!r}; choose one of {IMAGE_TEXT_VARIANTS}.")
  return c
