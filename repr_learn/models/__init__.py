"""Model registry: builds the backbone + heads network a config asks for."""

import flax.linen as nn
import jax.numpy as jnp
import ml_collections

from repr_learn.models import heads
from repr_learn.models import resnet
from repr_learn.models import vit

BACKBONES = tuple(resnet.RESNET_DEPTHS) + tuple(vit.VIT_SIZES)


class SiameseNetwork(nn.Module):
  """Backbone followed by a projector and optional predictor and prototypes.

  `__call__` returns every intermediate an objective may need ('features',
  'projection', 'prediction', 'scores' against the prototypes); `embed` gives
  the backbone features used by evaluation (kNN, linear probe).
  """
  backbone: nn.Module
  projector: nn.Module
  predictor: nn.Module | None = None
  prototypes: nn.Module | None = None

  def __call__(self, x, train: bool = True):
    out = self.project(x, train=train)
    if self.predictor is not None:
      out["prediction"] = self.predictor(out["projection"], train=train)
    return out

  def project(self, x, train: bool = True):
    """Backbone, projector and prototypes: the branch an EMA target computes."""
    features = self.backbone(x, train=train)
    out = {"features": features, "projection": self.projector(features, train=train)}
    if self.prototypes is not None:
      out["scores"] = self.prototypes(out["projection"])
    return out

  def embed(self, x, train: bool = False):
    return self.backbone(x, train=train)


def build_backbone(config: ml_collections.ConfigDict) -> nn.Module:
  """The trunk named by `config.backbone`."""
  dtype = jnp.dtype(config.dtype)
  if config.backbone in resnet.RESNET_DEPTHS:
    stages, block = resnet.RESNET_DEPTHS[config.backbone]
    return resnet.ResNet(stage_sizes=stages, block=block, width=config.width,
                         stem=config.stem, dtype=dtype, name="backbone")
  if config.backbone in vit.VIT_SIZES:
    width, depth, heads_, mlp_dim = vit.VIT_SIZES[config.backbone]
    return vit.ViT(width=width, depth=depth, num_heads=heads_, mlp_dim=mlp_dim,
                   patch_size=config.patch_size, pooling=config.pooling,
                   pos_embedding=config.pos_embedding, dtype=dtype, name="backbone")
  raise ValueError(f"Unknown backbone {config.backbone!r}; choose one of {BACKBONES}.")


def build_network(config: ml_collections.ConfigDict) -> SiameseNetwork:
  """Backbone + projector (+ predictor when `predictor.num_layers > 0`, +
  prototypes when `prototypes.num_prototypes > 0`)."""
  dtype = jnp.dtype(config.dtype)
  proj = config.projector
  projector = heads.MLPHead(hidden_dim=proj.hidden_dim, output_dim=proj.output_dim,
                            num_layers=proj.num_layers, last_bn=proj.last_bn,
                            use_bn=proj.use_bn, activation=proj.activation, dtype=dtype,
                            name="projector")
  predictor = None
  if config.predictor.num_layers > 0:
    pred = config.predictor
    predictor = heads.MLPHead(hidden_dim=pred.hidden_dim, output_dim=proj.output_dim,
                              num_layers=pred.num_layers, dtype=dtype, name="predictor")
  prototypes = None
  if config.prototypes.num_prototypes > 0:
    prototypes = heads.Prototypes(num_prototypes=config.prototypes.num_prototypes,
                                  kind=config.prototypes.kind, name="prototypes")
  return SiameseNetwork(backbone=build_backbone(config), projector=projector,
                        predictor=predictor, prototypes=prototypes)
