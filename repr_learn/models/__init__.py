"""Model registry: builds the backbone + heads network a config asks for."""

import flax.linen as nn
import jax.numpy as jnp
import ml_collections

from repr_learn.models import heads
from repr_learn.models import resnet
from repr_learn.models import text
from repr_learn.models import two_towers
from repr_learn.models import vit

BACKBONES = tuple(resnet.RESNET_DEPTHS) + tuple(vit.VIT_SIZES)


class SiameseNetwork(nn.Module):
  """Backbone followed by a projector and optional predictor and prototypes.

  `__call__` returns every intermediate an objective may need ('features',
  'projection', 'prediction', 'scores' against the prototypes); `embed` gives
  the backbone features used by evaluation (kNN, linear probe).

  With `matryoshka_dims` (ascending, the last being the feature width), the
  outputs also hold 'nested': for each smaller size m, the heads' outputs
  ('projection', 'prediction', 'scores') computed from the first m feature
  dimensions alone (Kusupati et al. 2022; the projector is MRL's nested head).
  Objectives sum their loss over the sizes (`Objective.nested_loss`); a
  teacher's or evaluation's unused nested outputs are compiled away.
  """
  backbone: nn.Module
  projector: nn.Module
  predictor: nn.Module | None = None
  prototypes: nn.Module | None = None
  matryoshka_dims: tuple[int, ...] = ()

  def __call__(self, x, train: bool = True):
    out = self.project(x, train=train)
    if self.predictor is not None:
      out["prediction"] = self.predictor(out["projection"], train=train)
      for m, nested in zip(self.matryoshka_dims, out.get("nested", ())):
        nested["prediction"] = self.predictor(nested["projection"], train=train, nested_size=m)
    return out

  def project(self, x, train: bool = True):
    """Backbone, projector and prototypes: the branch an EMA target computes."""
    features = self.backbone(x, train=train)
    out = {"features": features, **self._heads(features, train)}
    if self.matryoshka_dims:
      if self.matryoshka_dims[-1] != features.shape[-1]:
        raise ValueError(f"objective.matryoshka_dims must end at the feature width "
                         f"{features.shape[-1]} of model.backbone, got "
                         f"{list(self.matryoshka_dims)}.")
      out["nested"] = tuple(self._heads(features, train, m) for m in self.matryoshka_dims[:-1])
    return out

  def _heads(self, features, train, nested_size=None):
    out = {"projection": self.projector(features, train=train, nested_size=nested_size)}
    if self.prototypes is not None:
      out["scores"] = self.prototypes(out["projection"])
    return out

  def embed(self, x, train: bool = False):
    return self.backbone(x, train=train)


class MaskedImageNetwork(nn.Module):
  """A ViT encoder and the head that predicts hidden content from its tokens.

  Objectives drive it through `encode` (token-level, on kept tokens or with a
  mask token) and `decode` (the decoder/predictor, whose call signature is the
  head's own); `embed` and `project` give the pooled features that evaluation
  uses, as for `SiameseNetwork`. `__call__` exists to create every parameter.
  """
  backbone: nn.Module
  decoder: nn.Module

  def __call__(self, x, train: bool = False):
    out = self.backbone.encode(x, train=train)
    tokens = out["tokens"]
    n, num_patches = x.shape[0], self.backbone.grid(x.shape[1]) ** 2
    ids = jnp.broadcast_to(jnp.arange(num_patches), (n, num_patches))
    if isinstance(self.decoder, heads.TokenPredictor):
      patches = tokens[:, 1:] if self.backbone.has_cls else tokens
      valid = jnp.ones((n, num_patches), bool)
      self.decoder(patches, ids, valid, ids[:, None, :1], valid[:, None, :1], num_patches)
    elif isinstance(self.decoder, heads.LinearTokenHead):
      self.decoder(tokens)
    else:
      self.decoder(tokens, ids, num_patches, self.backbone.has_cls)
    return {"features": self.backbone.pool(tokens)}

  def encode(self, x, **kwargs):
    return self.backbone.encode(x, **kwargs)

  def decode(self, *args, **kwargs):
    return self.decoder(*args, **kwargs)

  def project(self, x, train: bool = False):
    return {"features": self.backbone(x, train=train)}

  def embed(self, x, train: bool = False):
    return self.backbone(x, train=train)


class SelfDistillationNetwork(nn.Module):
  """A ViT with DINO heads on its class token and its patch tokens (iBOT,
  DINOv2).

  `tokens` runs the backbone (optionally with masked patches replaced by the
  mask token) and returns the normalised class token and patch tokens;
  `head` and `patch_head` map features to {'projection', 'scores'}; the patch
  head is the class head itself when `patch_head` is None (iBOT's and the
  DINOv2 default's shared head). `project` and `embed` give what evaluation
  reads, as for `SiameseNetwork`.
  """
  backbone: nn.Module
  dino_head: nn.Module
  ibot_head: nn.Module | None = None

  def __call__(self, x, train: bool = True):
    out = self.tokens(x, train=train)
    self.patch_scores(out["patches"][:, :1], train=train)
    return self.cls_scores(out["cls"], train=train)

  def tokens(self, x, token_mask=None, train: bool = True):
    """{'cls': [N, D], 'patches': [N, T, D]}, after the final LayerNorm."""
    tokens = self.backbone.encode(x, token_mask=token_mask, train=train)["tokens"]
    return {"cls": tokens[:, 0], "patches": tokens[:, self.backbone.num_prefix_tokens:]}

  def cls_scores(self, features, train: bool = True):
    return self.dino_head(features, train=train)

  def patch_scores(self, features, train: bool = True):
    head = self.ibot_head if self.ibot_head is not None else self.dino_head
    return head(features, train=train)

  def project(self, x, train: bool = False):
    features = self.backbone(x, train=train)
    return {"features": features, **self.dino_head(features, train=train)}

  def embed(self, x, train: bool = False):
    return self.backbone(x, train=train)


def build_backbone(config: ml_collections.ConfigDict, image_size: int = 224,
                   bn_axis_name: str | None = None) -> nn.Module:
  """The trunk named by `config.backbone`; `image_size` is the resolution learned
  ViT positions are created for; `bn_axis_name` makes BatchNorm synchronise
  across that device axis (the per-device mode's SyncBN)."""
  dtype = jnp.dtype(config.dtype)
  if config.backbone in resnet.RESNET_DEPTHS:
    stages, block = resnet.RESNET_DEPTHS[config.backbone]
    return resnet.ResNet(stage_sizes=stages, block=block, width=config.width,
                         stem=config.stem, padding=config.resnet_padding,
                         bn_axis_name=bn_axis_name, dtype=dtype,
                         name="backbone")
  if config.backbone in vit.VIT_SIZES:
    width, depth, heads_, mlp_dim = vit.VIT_SIZES[config.backbone]
    return vit.ViT(width=width, depth=depth, num_heads=config.num_heads or heads_,
                   mlp_dim=mlp_dim, freeze_patch_embed=config.freeze_patch_embed,
                   patch_size=config.patch_size, pooling=config.pooling,
                   pos_embedding=config.pos_embedding, image_size=image_size,
                   drop_path=config.drop_path, layer_scale=config.layer_scale,
                   post_norm=config.post_norm, mask_token=config.mask_token,
                   dtype=dtype, attention=config.attention,
                   approximate_gelu=config.gelu == "tanh", pos_resample=config.pos_resample,
                   pos_resample_offset=config.pos_resample_offset,
                   num_registers=config.num_registers,
                   drop_path_uniform=config.drop_path_uniform,
                   scan_blocks=config.scan_blocks, remat_blocks=config.remat_blocks,
                   name="backbone")
  raise ValueError(f"Unknown backbone {config.backbone!r}; choose one of {BACKBONES}.")


def build_decoder(config: ml_collections.ConfigDict, output_dim: int) -> nn.Module:
  """The masked-modeling head named by `config.decoder.kind`."""
  dtype = jnp.dtype(config.dtype)
  dec = config.decoder
  approximate_gelu = config.gelu == "tanh"
  if dec.kind == "transformer":
    return heads.TokenDecoder(width=dec.width, depth=dec.depth, num_heads=dec.num_heads,
                              mlp_dim=dec.mlp_dim, output_dim=output_dim, dtype=dtype,
                              attention=config.attention, approximate_gelu=approximate_gelu,
                              scan_blocks=config.scan_blocks, remat_blocks=config.remat_blocks,
                              name="decoder")
  if dec.kind == "linear":
    return heads.LinearTokenHead(output_dim=output_dim, norm=dec.depth > 0, dtype=dtype,
                                 name="decoder")
  if dec.kind == "conv":
    return heads.ConvDecoder(width=dec.width, depth=dec.depth, output_dim=output_dim,
                             kernel_size=dec.kernel_size, groups=dec.groups, dtype=dtype,
                             approximate_gelu=approximate_gelu, name="decoder")
  if dec.kind == "predictor":
    return heads.TokenPredictor(width=dec.width, depth=dec.depth, num_heads=dec.num_heads,
                                mlp_dim=dec.mlp_dim, output_dim=output_dim, dtype=dtype,
                                attention=config.attention, approximate_gelu=approximate_gelu,
                                scan_blocks=config.scan_blocks, remat_blocks=config.remat_blocks,
                                name="decoder")
  raise ValueError(f"Unknown model.decoder.kind {dec.kind!r}.")


def build_network(config: ml_collections.ConfigDict, *, image_size: int = 224,
                  decoder_output_dim: int | None = None,
                  bn_axis_name: str | None = None,
                  matryoshka_dims: tuple[int, ...] = (),
                  matryoshka_efficient: bool = False,
                  token_format: text.TokenFormat | None = None) -> nn.Module:
  """Backbone + projector (+ predictor when `predictor.num_layers > 0`, +
  prototypes when `prototypes.num_prototypes > 0`); or, with a
  `decoder.kind`, a ViT and its masked-modeling head predicting
  `decoder_output_dim` values per token. Every BatchNorm averages over the
  device axis `bn_axis_name` when given (SyncBN in the per-device mode).
  `matryoshka_dims` nests the backbone features (`SiameseNetwork`), with one
  projector first layer shared by the sizes when `matryoshka_efficient`.
  With a text tower (`model.text.size`), the image-text network reading
  tokens in `token_format`."""
  dtype = jnp.dtype(config.dtype)
  if config.text.size != "none":
    return _two_tower_network(config, image_size, bn_axis_name, token_format)
  if matryoshka_dims and (config.decoder.kind != "none" or config.patch_head.kind != "none"):
    raise ValueError("Matryoshka sizes nest a backbone + projector network; this one has "
                     "token heads (model.decoder.kind or model.patch_head.kind).")
  if config.decoder.kind != "none":
    if config.backbone not in vit.VIT_SIZES:
      raise ValueError(f"model.decoder.kind={config.decoder.kind!r} needs a ViT backbone, "
                       f"got {config.backbone!r}.")
    return MaskedImageNetwork(backbone=build_backbone(config, image_size),
                              decoder=build_decoder(config, decoder_output_dim))
  if config.patch_head.kind != "none":
    return _self_distillation_network(config, image_size, bn_axis_name)
  proj = config.projector
  projector = heads.MLPHead(hidden_dim=proj.hidden_dim, output_dim=proj.output_dim,
                            num_layers=proj.num_layers, last_bn=proj.last_bn,
                            use_bn=proj.use_bn, activation=proj.activation,
                            approximate_gelu=config.gelu == "tanh",
                            nested_input="shared" if matryoshka_efficient else "separate",
                            bn_axis_name=bn_axis_name, dtype=dtype, name="projector")
  predictor = None
  if config.predictor.num_layers > 0:
    pred = config.predictor
    predictor = heads.MLPHead(hidden_dim=pred.hidden_dim, output_dim=proj.output_dim,
                              num_layers=pred.num_layers, last_bn=pred.last_bn,
                              nested_input="full", bn_axis_name=bn_axis_name, dtype=dtype,
                              name="predictor")
  prototypes = None
  if config.prototypes.num_prototypes > 0:
    prototypes = heads.Prototypes(num_prototypes=config.prototypes.num_prototypes,
                                  kind=config.prototypes.kind,
                                  learned_norm=config.prototypes.learned_norm,
                                  name="prototypes")
  return SiameseNetwork(backbone=build_backbone(config, image_size, bn_axis_name),
                        projector=projector, predictor=predictor, prototypes=prototypes,
                        matryoshka_dims=tuple(matryoshka_dims))


def _two_tower_network(config: ml_collections.ConfigDict, image_size: int,
                       bn_axis_name: str | None,
                       token_format: text.TokenFormat | None) -> two_towers.TwoTowerNetwork:
  """CLIP/SigLIP/LiT: the backbone (+ a linear image head to `model.embed_dim`)
  and the text tower projecting to the same width."""
  if token_format is None:
    raise ValueError("A text tower (model.text.size) needs captioned data: set data.name to "
                     "'shapes', 'coco_captions' or 'captions'.")
  if config.decoder.kind != "none" or config.patch_head.kind != "none":
    raise ValueError("model.text.size builds an image-text network; it takes no "
                     "model.decoder or model.patch_head.")
  dtype = jnp.dtype(config.dtype)
  backbone = build_backbone(config, image_size, bn_axis_name)
  image_head = None
  if config.embed_dim:
    image_head = nn.Dense(config.embed_dim, use_bias=False, dtype=dtype, name="image_head")
  width, depth, num_heads, mlp_dim = text.TEXT_SIZES[config.text.size]
  tower = text.TextTransformer(
      vocab_size=token_format.vocab_size, context_length=token_format.context_length,
      width=width, depth=depth, num_heads=num_heads, mlp_dim=mlp_dim,
      output_dim=config.embed_dim or backbone.num_features, causal=config.text.causal,
      pooling=config.text.pooling, eot_id=token_format.eot_id,
      projection_bias=config.text.projection_bias, norm_epsilon=config.text.norm_epsilon,
      approximate_gelu=config.gelu == "tanh", attention=config.attention, dtype=dtype,
      scan_blocks=config.scan_blocks, remat_blocks=config.remat_blocks,
      name="text")
  return two_towers.TwoTowerNetwork(backbone=backbone, image_head=image_head, text=tower,
                                    context_length=token_format.context_length,
                                    logit_scale_init=config.logit_scale_init,
                                    logit_bias_init=config.logit_bias_init)


def _self_distillation_network(config: ml_collections.ConfigDict, image_size: int,
                               bn_axis_name: str | None) -> SelfDistillationNetwork:
  """iBOT/DINOv2: `model.projector` + `model.prototypes` size the class-token
  head; `model.patch_head` (kind 'separate') its own patch-token head."""
  if config.backbone not in vit.VIT_SIZES or config.pooling != "cls":
    raise ValueError("model.patch_head needs a ViT backbone with pooling='cls' (its heads "
                     f"read the class token and the patch tokens), got {config.backbone!r} "
                     f"with pooling={config.pooling!r}.")
  dtype = jnp.dtype(config.dtype)
  approximate_gelu = config.gelu == "tanh"
  proj, protos = config.projector, config.prototypes
  dino_head = heads.DINOHead(hidden_dim=proj.hidden_dim, output_dim=proj.output_dim,
                             num_layers=proj.num_layers, num_prototypes=protos.num_prototypes,
                             use_bn=proj.use_bn, learned_norm=protos.learned_norm,
                             approximate_gelu=approximate_gelu, bn_axis_name=bn_axis_name,
                             dtype=dtype, name="dino_head")
  ibot_head = None
  patch = config.patch_head
  if patch.kind == "separate":
    ibot_head = heads.DINOHead(hidden_dim=patch.hidden_dim, output_dim=patch.output_dim,
                               num_layers=patch.num_layers, num_prototypes=patch.num_prototypes,
                               use_bn=proj.use_bn, learned_norm=protos.learned_norm,
                               approximate_gelu=approximate_gelu, bn_axis_name=bn_axis_name,
                               dtype=dtype, name="ibot_head")
  return SelfDistillationNetwork(backbone=build_backbone(config, image_size),
                                 dino_head=dino_head,
                                 ibot_head=ibot_head)
