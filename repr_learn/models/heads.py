"""Heads that sit on the backbone: projectors, predictors, prototypes, and the
decoders/predictors of masked image modeling.

Every siamese/contrastive method uses the same MLP shape (Linear → BN → ReLU
repeated, then a final Linear, optionally followed by a BN without affine as in
SimCLR v2 / SimSiam); methods differ only in depth, width and the last norm.
Masked-modeling heads work on tokens: MAE's transformer decoder, a per-token
linear head (SimMIM, MaskFeat), data2vec 2.0's convolutional decoder and
I-JEPA's narrow transformer predictor.
"""

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from repr_learn.losses import clustering
from repr_learn.losses import contrastive
from repr_learn.models import block_stack
from repr_learn.models import vit


class MLPHead(nn.Module):
  """`num_layers` dense layers; hidden layers use BN + ReLU.

  Attributes:
    hidden_dim: width of the hidden layers.
    output_dim: width of the output.
    num_layers: total dense layers (>= 1).
    last_bn: apply a BatchNorm without learned scale/bias to the output (SimCLR's
      projector in the TF implementation, SimSiam's projector).
    use_bn: batch-normalise hidden layers (off for e.g. MoCo v2's plain MLP).
    activation: 'relu', or 'gelu' as in DINO's head.
    approximate_gelu: the tanh form of GELU (runs made before the exact form
      became the default).
    nested_input: how the head for a Matryoshka size m (`nested_size`) reads
      its input: 'shared', the first layer's own kernel restricted to its
      first m input rows (MRL-E, `efficient=True` in RAIVNLab/MRL's
      `MRL_Linear_Layer`); 'separate', a first layer of its own per size
      (MRL); 'full', the whole input (a predictor after a nested projector).
  """
  hidden_dim: int
  output_dim: int
  num_layers: int = 2
  last_bn: bool = False
  use_bn: bool = True
  activation: str = "relu"
  approximate_gelu: bool = False
  bn_momentum: float = 0.9
  bn_axis_name: str | None = None  # SyncBN across devices in the per-device mode
  nested_input: str = "shared"
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = True, nested_size: int | None = None):
    """x [..., D] -> [..., output_dim]. With `nested_size` m: the head that
    reads the first m dimensions of x (see `nested_input`); its BatchNorms
    keep statistics (and scale/bias) of their own, so that the full-size head's
    running statistics are its own alone."""
    suffix = "" if nested_size is None else f"_nested{nested_size}"

    def bn(name, **kwargs):
      return nn.BatchNorm(use_running_average=not train, momentum=self.bn_momentum,
                          axis_name=self.bn_axis_name, dtype=self.dtype,
                          name=name + suffix, **kwargs)

    for i in range(self.num_layers):
      last = i == self.num_layers - 1
      width = self.output_dim if last else self.hidden_dim
      use_bias = not (self.last_bn if last else self.use_bn)
      name = f"dense_{i}"
      if i == 0 and nested_size is not None and self.nested_input == "shared":
        # W[:, :m] x[:m] + b, as zeros in the input rows the size leaves out.
        x = x * (jnp.arange(x.shape[-1]) < nested_size).astype(x.dtype)
      elif i == 0 and nested_size is not None and self.nested_input == "separate":
        x, name = x[..., :nested_size], name + suffix
      x = nn.Dense(width, use_bias=use_bias, dtype=self.dtype, name=name)(x)
      if last:
        break
      if self.use_bn:
        x = bn(f"bn_{i}")(x)
      x = (nn.relu(x) if self.activation == "relu"
           else nn.gelu(x, approximate=self.approximate_gelu))
    if self.last_bn:
      x = bn("bn_out", use_scale=False, use_bias=False)(x)
    return x.astype(jnp.float32)


class Prototypes(nn.Module):
  """K learnable prototypes compared with the projection.

  kind='cosine': cosine similarities between the normalised input and the
    normalised prototypes, i.e. SwAV's normalised prototype layer and DINO's
    weight-normalised last layer with its norm fixed to 1 (norm_last_layer).
  kind='student_t': DEC's soft assignment of the input to K centres (Xie et al.
    2016, eq. 1), the centres being the prototypes.
  learned_norm: cosine only: each prototype's norm is a learned gain g (init 1),
    DINO's weight-normalised last layer with `--norm_last_layer false`. It is
    [1, K], 2-D as DINO's `weight_g` [K, 1], so weight decay reaches it as there.
  """
  num_prototypes: int
  kind: str = "cosine"
  learned_norm: bool = False

  @nn.compact
  def __call__(self, x):
    x = x.astype(jnp.float32)
    kernel = self.param("kernel", nn.initializers.normal(1.0),
                        (x.shape[-1], self.num_prototypes), jnp.float32)
    if self.kind == "student_t":
      return clustering.student_t_assignment(x, kernel.T)
    # x̂ · k/|k| as (x̂ · k) / |k|: the column norms scale the [N, K] scores
    # rather than the [D, K] kernel. Same computation; XLA:CPU's library
    # fusion of a small-batch dot with the normalised kernel ran 40x slower
    # (DINO's 65536 prototypes: 5.4 s against 0.13 s; BENCHMARKS.md).
    scores = (contrastive.l2_normalize(x) @ kernel) * contrastive.inverse_norm(kernel, axis=0)
    if self.learned_norm:
      scores = scores * self.param("norm", nn.initializers.ones, (1, self.num_prototypes),
                                   jnp.float32)
    return scores


class DINOHead(nn.Module):
  """DINO's head as one module: an MLP to a bottleneck, then cosine prototypes
  (`DINOHead` in facebookresearch/dino and dinov2: Linear-GELU-Linear-GELU-
  Linear, L2 normalisation, weight-normalised last layer). One module so that
  iBOT and DINOv2 can clip its gradient as one part and share it between the
  class and patch tokens; its `prototypes` are the "last layer" frozen early.
  """
  hidden_dim: int
  output_dim: int
  num_layers: int
  num_prototypes: int
  use_bn: bool = False
  learned_norm: bool = True
  approximate_gelu: bool = False
  bn_axis_name: str | None = None
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, train: bool = True):
    """x [..., D] -> {'projection': [..., output_dim], 'scores': [..., K]}."""
    lead = x.shape[:-1]
    x = x.reshape(-1, x.shape[-1])
    projection = MLPHead(hidden_dim=self.hidden_dim, output_dim=self.output_dim,
                         num_layers=self.num_layers, use_bn=self.use_bn, activation="gelu",
                         approximate_gelu=self.approximate_gelu,
                         bn_axis_name=self.bn_axis_name, dtype=self.dtype,
                         name="mlp")(x, train=train)
    scores = Prototypes(num_prototypes=self.num_prototypes, learned_norm=self.learned_norm,
                        name="prototypes")(projection)
    return {"projection": projection.reshape(lead + projection.shape[-1:]),
            "scores": scores.reshape(lead + scores.shape[-1:])}


class _TransformerHead(nn.Module):
  """Fields and the block stack shared by MAE's decoder and I-JEPA's predictor:
  `depth` pre-LN blocks of `width`, a LayerNorm and a linear map to `output_dim`."""
  width: int
  depth: int
  num_heads: int
  mlp_dim: int
  output_dim: int
  dtype: Any = jnp.float32
  attention: str = "xla"
  approximate_gelu: bool = False
  scan_blocks: bool = False  # see `block_stack`
  remat_blocks: bool = False  # see `block_stack`

  def predict(self, x, key_mask=None):
    blocks = [vit.EncoderBlock(self.num_heads, self.mlp_dim, self.dtype,
                               attention=self.attention, approximate_gelu=self.approximate_gelu,
                               name=f"block_{i}")
              for i in range(self.depth)]
    x, _, _ = block_stack.run_blocks(self, blocks, x, key_mask=key_mask, scan=self.scan_blocks,
                                     remat=self.remat_blocks)
    x = nn.LayerNorm(dtype=self.dtype, name="norm")(x)
    return nn.Dense(self.output_dim, dtype=self.dtype, name="predict")(x)


class TokenDecoder(_TransformerHead):
  """MAE's decoder: a narrow transformer over visible tokens and mask tokens.

  The encoder's tokens (class token first, then the K visible patches) are
  projected to `width`; a learned mask token fills the T - K hidden positions;
  fixed 2-D sin-cos positions are added (the class token gets none); `depth`
  pre-LN blocks, a LayerNorm and a linear layer predict `output_dim` values per
  patch (He et al. 2022, section 3; `models_mae.py`).
  """
  @nn.compact
  def __call__(self, tokens, ids_keep, num_patches: int, has_cls: bool = True,
               train: bool = False):
    """tokens [N, (1 +) K, D], ids_keep [N, K] -> predictions [N, T, output_dim]."""
    x = nn.Dense(self.width, dtype=self.dtype, name="embed")(tokens)
    n = x.shape[0]
    cls, visible = (x[:, :1], x[:, 1:]) if has_cls else (None, x)
    mask_token = self.param("mask_token", nn.initializers.normal(0.02), (1, 1, self.width))
    full = jnp.broadcast_to(mask_token.astype(x.dtype), (n, num_patches, self.width))
    full = full.at[jnp.arange(n)[:, None], ids_keep].set(visible)
    grid = int(round(num_patches ** 0.5))
    full = full + jnp.asarray(vit.sincos_2d_positions(grid, self.width)).astype(x.dtype)
    if cls is not None:
      full = jnp.concatenate([cls, full], axis=1)
    out = self.predict(full)
    return (out[:, 1:] if cls is not None else out).astype(jnp.float32)


class LinearTokenHead(nn.Module):
  """One linear prediction per token: SimMIM's 1x1 conv (+ pixel shuffle) and
  MaskFeat's LayerNorm + linear head (`norm=True`)."""
  output_dim: int
  norm: bool = False
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, tokens, train: bool = False):
    del train
    if self.norm:
      tokens = nn.LayerNorm(dtype=self.dtype, name="norm")(tokens)
    return nn.Dense(self.output_dim, dtype=self.dtype, name="predict")(tokens).astype(jnp.float32)


class ConvDecoder(nn.Module):
  """data2vec 2.0's lightweight decoder (Baevski et al. 2023, `Decoder2d`).

  Visible student tokens go back to their grid positions; hidden positions get
  N(0, 0.01^2) noise rather than a learned token. `depth` blocks of grouped
  k x k convolution, LayerNorm without affine and GELU, each with a residual,
  then a linear projection to `output_dim` at every position.
  """
  width: int
  depth: int
  output_dim: int
  kernel_size: int = 3
  groups: int = 16
  dtype: Any = jnp.float32
  approximate_gelu: bool = False

  @nn.compact
  def __call__(self, tokens, ids_keep, num_patches: int, has_cls: bool = True,
               train: bool = False, noise: jax.Array | None = None):
    """tokens [N, (1 +) K, D] -> predictions [N, T, output_dim]. `noise`: the
    standard normal draws [N, T, D] for training (the caller's, so that they
    can key on the global example index); from the 'dropout' rng if None."""
    visible = tokens[:, 1:] if has_cls else tokens
    n, _, d = visible.shape
    if not train:
      noise = jnp.zeros((n, num_patches, d), self.dtype)
    elif noise is None:
      noise = jax.random.normal(self.make_rng("dropout"), (n, num_patches, d), self.dtype)
    noise = noise.astype(self.dtype)
    full = (0.01 * noise).at[jnp.arange(n)[:, None], ids_keep].set(visible.astype(self.dtype))
    grid = int(round(num_patches ** 0.5))
    x = full.reshape(n, grid, grid, d)
    x = nn.Dense(self.width, dtype=self.dtype, name="embed")(x) if d != self.width else x
    for i in range(self.depth):
      y = nn.Conv(self.width, (self.kernel_size,) * 2, padding="SAME",
                  feature_group_count=self.groups, dtype=self.dtype, name=f"conv_{i}")(x)
      y = nn.LayerNorm(use_scale=False, use_bias=False, dtype=self.dtype, name=f"norm_{i}")(y)
      x = x + nn.gelu(y, approximate=self.approximate_gelu)
    out = nn.Dense(self.output_dim, dtype=self.dtype, name="predict")(x)
    return out.reshape(n, num_patches, self.output_dim).astype(jnp.float32)


class TokenPredictor(_TransformerHead):
  """I-JEPA's predictor (Assran et al. 2023, `VisionTransformerPredictor`).

  Context tokens are projected to `width` and given their positions; for each
  target block, mask tokens carrying the block's positions are appended; the
  context is repeated per block so blocks do not see each other. `depth` pre-LN
  blocks, a LayerNorm and a projection back to the encoder width predict the
  target tokens. Padding (context or target) is masked out as attention keys.
  """
  @nn.compact
  def __call__(self, context, context_ids, context_valid, target_ids, target_valid,
               num_patches: int, train: bool = False):
    """context [N, Kc, D], target_ids [N, B, Lt] -> predictions [N, B, Lt, output_dim]."""
    n, kc, _ = context.shape
    _, b, lt = target_ids.shape
    pos = jnp.asarray(vit.sincos_2d_positions(int(round(num_patches ** 0.5)), self.width))
    x = nn.Dense(self.width, dtype=self.dtype, name="embed")(context) + pos[context_ids]
    mask_token = self.param("mask_token", nn.initializers.normal(0.02), (1, 1, 1, self.width))
    queries = mask_token.astype(self.dtype) + pos[target_ids]           # [N, B, Lt, W]
    x = jnp.broadcast_to(x[:, None], (n, b, kc, self.width))
    x = jnp.concatenate([x, queries], axis=2).reshape(n * b, kc + lt, self.width)
    key_mask = jnp.concatenate(
        [jnp.broadcast_to(context_valid[:, None], (n, b, kc)), target_valid], axis=2
    ).reshape(n * b, kc + lt)
    out = self.predict(x, key_mask)[:, kc:]
    return out.reshape(n, b, lt, self.output_dim).astype(jnp.float32)
