"""Vision Transformer backbones (Dosovitskiy et al. 2021) for SSL.

Besides the pooled features every objective uses, `ViT.encode` works at the token
level for masked image modeling: it runs on a fixed number of kept tokens
(MAE, data2vec 2.0, I-JEPA), or with masked patches replaced by a learned token
(SimMIM, MaskFeat), and can return each block's FFN output (data2vec 2.0's
targets). Options cover the recipes: drop path, LayerScale, post-LN blocks, no
class token (`pooling='mean'`), register tokens (DINOv2 "reg"), MAE's pooling
with a LayerNorm after the average (`pooling='gap_fc_norm'`), and learned
positions resampled to other resolutions (DINO's 96-px local crops, fine-tuning
at another size).

The numerics are timm's by default, so released weights compute here what they
compute there: exact GELU (`approximate_gelu=False`; jax's own default is the
tanh form, up to 5e-4 apart per activation) and PyTorch's bicubic position
resampling (`pos_resample`). Runs trained before these defaults keep theirs
through their config.json (`config_schema.LEGACY_VALUES`).

Attention goes through `jax.nn.dot_product_attention`, whose default is XLA's
implementation on every backend (jax 0.10-0.11 pick no fused kernel
themselves). `model.attention='cudnn'` asks for cuDNN's fused kernel where it
accepts the call (`attention_implementation`); its speed on our ViTs is not
measured yet (BENCHMARKS.md), so XLA's stays the default.
"""

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from repr_learn.models import block_stack

POOLINGS = ("cls", "gap", "mean", "gap_fc_norm")
POS_RESAMPLES = ("bicubic", "bicubic_antialias")
ATTENTIONS = ("xla", "cudnn")
# name -> (width, depth, heads, mlp_dim)
VIT_SIZES = {
    "vit_test": (32, 2, 2, 64),   # tests only
    "vit_mini": (96, 6, 3, 384),  # CPU-sized (the digits variants of masked modeling)
    "vit_tiny": (192, 12, 3, 768),
    "vit_small": (384, 12, 6, 1536),
    "vit_base": (768, 12, 12, 3072),
    "vit_large": (1024, 24, 16, 4096),
    "vit_huge": (1280, 32, 16, 5120),
}


def sincos_2d_positions(grid: int, width: int) -> np.ndarray:
  """Fixed 2-D sine-cosine position embeddings [grid*grid, width] (MoCo v3, MAE)."""
  if width % 4:
    raise ValueError(f"sin-cos positions need a width divisible by 4, got {width}.")
  y, x = np.meshgrid(np.arange(grid, dtype=np.float32), np.arange(grid, dtype=np.float32),
                     indexing="ij")
  omega = 1.0 / 10000 ** (np.arange(width // 4, dtype=np.float32) / (width // 4))
  out_y = y.reshape(-1, 1) * omega[None]
  out_x = x.reshape(-1, 1) * omega[None]
  return np.concatenate([np.sin(out_x), np.cos(out_x), np.sin(out_y), np.cos(out_y)], axis=1)


def _cubic(x: np.ndarray, a: float) -> np.ndarray:
  """Keys' cubic convolution kernel with parameter `a` (PyTorch: -0.75 plain,
  -0.5 antialiased, as PIL)."""
  x = np.abs(x)
  near = ((a + 2) * x - (a + 3)) * x * x + 1
  far = ((a * x - 5 * a) * x + 8 * a) * x - 4 * a
  return np.where(x <= 1, near, np.where(x < 2, far, 0.0))


def torch_bicubic_matrix(in_size: int, out_size: int, *, antialias: bool = False,
                         scale_factor: float | None = None) -> np.ndarray:
  """[out_size, in_size] weights of `torch.nn.functional.interpolate(mode='bicubic',
  align_corners=False)` along one axis.

  Without antialias: a=-0.75, four taps with clamped indices (aten's
  `upsample_bicubic2d`). With antialias: a=-0.5 stretched by the downscale
  factor and renormalised (aten's `_upsample_bicubic2d_aa`, PIL's filter), which
  is also what `jax.image.resize(method='cubic')` computes. `scale_factor`
  (DINO's and DINOv2's `(new + 0.1) / old`) sets the sampling step instead of
  in/out, as torch does when given one.
  """
  ratio = 1.0 / scale_factor if scale_factor else in_size / out_size
  centers = (np.arange(out_size) + 0.5) * ratio
  weights = np.zeros((out_size, in_size), np.float64)
  if not antialias:
    src = centers - 0.5
    base = np.floor(src)
    t = src - base
    for tap in range(-1, 3):
      index = np.clip(base + tap, 0, in_size - 1).astype(int)
      np.add.at(weights, (np.arange(out_size), index), _cubic(t - tap, -0.75))
    return weights.astype(np.float32)
  stretch = max(ratio, 1.0)
  taps = _cubic((np.arange(in_size)[None, :] + 0.5 - centers[:, None]) / stretch, -0.5)
  return (taps / taps.sum(axis=1, keepdims=True)).astype(np.float32)


def resample_positions(pos: jax.Array, grid: int, method: str = "bicubic",
                       offset: float = 0.0) -> jax.Array:
  """Learned positions [g*g, D] resized to [grid*grid, D], as PyTorch's bicubic
  `interpolate` resizes them (MAE's `interpolate_pos_embed`, DINO and DINOv2's
  `interpolate_pos_encoding`; `bicubic_antialias`: timm's
  `resample_abs_pos_embed`), so a ViT runs at other resolutions. `offset`:
  DINO/DINOv2 sample with scale (grid + 0.1) / g instead of grid / g."""
  if method not in POS_RESAMPLES:
    raise ValueError(f"Unknown position resampling {method!r}; use one of {POS_RESAMPLES}.")
  old = int(round(pos.shape[0] ** 0.5))
  if old == grid:
    return pos
  scale = (grid + offset) / old if offset else None
  matrix = jnp.asarray(torch_bicubic_matrix(old, grid, antialias=method == "bicubic_antialias",
                                            scale_factor=scale))
  square = pos.reshape(old, old, pos.shape[-1]).astype(jnp.float32)
  out = jnp.einsum("ya,xb,abd->yxd", matrix, matrix, square,
                   precision=jax.lax.Precision.HIGHEST)
  return out.reshape(grid * grid, pos.shape[-1]).astype(pos.dtype)


def attention_implementation(choice: str, dtype, head_dim: int, length: int,
                             masked: bool) -> str:
  """`jax.nn.dot_product_attention`'s implementation for one call under
  `model.attention`: 'xla' always; 'cudnn' takes cuDNN's fused kernel where it
  accepts the call (a GPU, bf16/fp16, head size a multiple of 8 up to 128, an
  even sequence length: jax 0.11 refuses odd ones in training, i.e. a ViT/16's
  197 tokens with the class token; no key mask) and XLA's for the rest."""
  if choice not in ATTENTIONS:
    raise ValueError(f"Unknown attention {choice!r}; use one of {ATTENTIONS}.")
  fused = (choice == "cudnn" and jax.default_backend() == "gpu"
           and jnp.dtype(dtype) in (jnp.bfloat16, jnp.float16)
           and head_dim % 8 == 0 and head_dim <= 128 and length % 2 == 0 and not masked)
  return "cudnn" if fused else "xla"


class SelfAttention(nn.Module):
  """Multi-head self-attention; `causal`: each token attends to itself and
  the tokens before it (CLIP's text tower)."""
  num_heads: int
  dtype: Any = jnp.float32
  attention: str = "xla"
  causal: bool = False

  @nn.compact
  def __call__(self, x, key_mask=None):
    n, length, width = x.shape
    if width % self.num_heads:
      raise ValueError(f"A transformer of width {width} cannot split into num_heads="
                       f"{self.num_heads} heads; pick a divisor of {width}.")
    head_dim = width // self.num_heads
    qkv = nn.DenseGeneral((3, self.num_heads, head_dim), dtype=self.dtype, name="qkv")(x)
    q, k, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]
    mask = None if key_mask is None else key_mask[:, None, None, :]
    implementation = attention_implementation(self.attention, q.dtype, head_dim, length,
                                              mask is not None)
    out = jax.nn.dot_product_attention(q, k, v, mask=mask, is_causal=self.causal,
                                       implementation=implementation)
    return nn.DenseGeneral(width, axis=(-2, -1), dtype=self.dtype, name="out")(out)


class EncoderBlock(nn.Module):
  """Transformer block: pre-LN (ViT, MAE) or post-LN (data2vec 2.0).

  Drop path comes per call (`drop=(key, keep_prob)`, whole residual branches
  dropped per example): the stack's owner draws the keys, so an unrolled and a
  scanned stack (`block_stack.run_blocks`) drop the same branches.

  Attributes:
    layer_scale: > 0 multiplies each branch by a learned per-channel gamma
      initialised to this value (CaiT; SimMIM uses 0.1).
    post_norm: LayerNorm after each residual addition instead of before the branch.
    attention: see `attention_implementation`.
    approximate_gelu: the tanh form of GELU (runs trained before exact GELU
      became the default); timm, MAE, DINO and DINOv2 use the exact one.
    causal: causal self-attention (CLIP's text tower).
    norm_epsilon: the LayerNorms' epsilon (flax's 1e-6 as timm's ViTs; CLIP's
      text tower, a torch nn.LayerNorm, 1e-5).
    freeze_patch_embed: the patch projection passes no gradient and keeps its
      random initialisation (MoCo v3's `--stop-grad-conv1`, for stability);
      exclude 'patch_embed' from weight decay too, or AdamW still shrinks it.
  """
  num_heads: int
  mlp_dim: int
  dtype: Any = jnp.float32
  layer_scale: float = 0.0
  post_norm: bool = False
  attention: str = "xla"
  approximate_gelu: bool = False
  causal: bool = False
  norm_epsilon: float = 1e-6

  def _branch_out(self, y, name, drop):
    if self.layer_scale > 0:
      gamma = self.param(name, nn.initializers.constant(self.layer_scale), (y.shape[-1],))
      y = y * gamma.astype(y.dtype)
    if drop is None:
      return y
    key, keep_prob = drop
    keep = jax.random.bernoulli(key, keep_prob, (y.shape[0],) + (1,) * (y.ndim - 1))
    # A rate of 1 keeps nothing; dividing by 1 then keeps the gradient finite.
    scale = jnp.asarray(jnp.where(keep_prob > 0, keep_prob, 1.0), y.dtype)
    return jnp.where(keep, y / scale, jnp.zeros((), y.dtype))

  @nn.compact
  def __call__(self, x, key_mask=None, drop=None):
    """Returns (x, the FFN's output before the residual addition)."""
    drops = (None, None) if drop is None else tuple(
        (key, drop[1]) for key in jax.random.split(drop[0]))
    attention = SelfAttention(self.num_heads, self.dtype, self.attention, self.causal,
                              name="attention")
    norm1 = nn.LayerNorm(epsilon=self.norm_epsilon, dtype=self.dtype, name="norm1")
    norm2 = nn.LayerNorm(epsilon=self.norm_epsilon, dtype=self.dtype, name="norm2")

    def mlp(y):
      y = nn.Dense(self.mlp_dim, dtype=self.dtype, name="mlp_in")(y)
      return nn.Dense(x.shape[-1], dtype=self.dtype, name="mlp_out")(
          nn.gelu(y, approximate=self.approximate_gelu))

    if self.post_norm:
      x = norm1(x + self._branch_out(attention(x, key_mask), "gamma1", drops[0]))
      ffn = mlp(x)
      return norm2(x + self._branch_out(ffn, "gamma2", drops[1])), ffn
    x = x + self._branch_out(attention(norm1(x), key_mask), "gamma1", drops[0])
    ffn = mlp(norm2(x))
    return x + self._branch_out(ffn, "gamma2", drops[1]), ffn


class ViT(nn.Module):
  """ViT trunk: `__call__` returns pooled features [N, width]; `encode` tokens.

  Attributes:
    width, depth, num_heads, mlp_dim: the transformer's size.
    patch_size: side of the square patches.
    pooling: 'cls' (class token), 'gap' (class token kept in the sequence,
      features = average of the normalised patch tokens, the pooling SimMIM,
      MaskFeat and data2vec 2.0 fine-tune with), 'gap_fc_norm' (the same with
      the LayerNorm after the average: MAE's `global_pool` fine-tuning, timm's
      `fc_norm`; `encode` then returns un-normalised tokens) or 'mean'
      (average of normalised patch tokens, no class token, as I-JEPA).
    pos_embedding: 'sincos' (fixed 2-D) or 'learned' (created for
      `image_size`, resampled for other input sizes).
    pos_resample, pos_resample_offset: how learned positions are resampled
      (see `resample_positions`).
    image_size: the resolution learned positions are created for.
    num_registers: learned register tokens after the class token, with no
      position (Darcet et al. 2024; DINOv2 "reg"); ignored by every pooling.
    drop_path: stochastic depth, rising linearly over blocks to this rate, or
      at this rate in every block with `drop_path_uniform` (DINOv2).
    layer_scale, post_norm: see `EncoderBlock`.
    mask_token: create a learned token that `encode(token_mask=...)` puts in
      place of masked patch embeddings (SimMIM, MaskFeat).
    attention: see `attention_implementation`.
    approximate_gelu: see `EncoderBlock`.
    scan_blocks: run the blocks as one `lax.scan` (see `block_stack`): one
      block in the program instead of `depth`, the same parameters and computation.
    remat_blocks: recompute each block's activations in the backward pass
      (see `block_stack`).
  """
  width: int
  depth: int
  num_heads: int
  mlp_dim: int
  patch_size: int = 16
  pooling: str = "cls"
  pos_embedding: str = "sincos"
  image_size: int = 224
  drop_path: float = 0.0
  layer_scale: float = 0.0
  post_norm: bool = False
  mask_token: bool = False
  dtype: Any = jnp.float32
  attention: str = "xla"
  freeze_patch_embed: bool = False
  approximate_gelu: bool = False
  pos_resample: str = "bicubic"
  pos_resample_offset: float = 0.0
  num_registers: int = 0
  drop_path_uniform: bool = False
  scan_blocks: bool = False
  remat_blocks: bool = False

  @property
  def num_features(self) -> int:
    return self.width

  @property
  def has_cls(self) -> bool:
    return self.pooling in ("cls", "gap", "gap_fc_norm")

  @property
  def num_prefix_tokens(self) -> int:
    """Tokens before the patches in `encode`'s output: class token, registers."""
    return int(self.has_cls) + self.num_registers

  def setup(self):
    if self.pooling not in POOLINGS:
      raise ValueError(f"Unknown pooling {self.pooling!r}; use one of {POOLINGS}.")
    if self.pos_embedding not in ("sincos", "learned"):
      raise ValueError(f"Unknown pos_embedding {self.pos_embedding!r}; use 'sincos' or 'learned'.")
    self.patch_embed = nn.Conv(self.width, (self.patch_size,) * 2,
                               strides=(self.patch_size,) * 2, padding="VALID",
                               dtype=self.dtype)
    if self.pos_embedding == "learned":
      grid = self.image_size // self.patch_size
      self.pos_table = self.param("pos_embedding", nn.initializers.normal(0.02),
                                  (grid * grid, self.width))
    if self.has_cls:
      self.cls_token = self.param("cls_token", nn.initializers.normal(1e-6),
                                  (1, 1, self.width))
    if self.num_registers:
      self.register_tokens = self.param("register_tokens", nn.initializers.normal(1e-6),
                                        (1, self.num_registers, self.width))
    if self.mask_token:
      self.mask_embedding = self.param("mask_token", nn.initializers.normal(0.02),
                                       (1, 1, self.width))
    self.blocks = [EncoderBlock(self.num_heads, self.mlp_dim, self.dtype,
                                layer_scale=self.layer_scale,
                                post_norm=self.post_norm, attention=self.attention,
                                approximate_gelu=self.approximate_gelu, name=f"block_{i}")
                   for i in range(self.depth)]
    # Pre-LN stacks end in a LayerNorm; post-LN stacks normalise their input.
    self.norm = nn.LayerNorm(dtype=self.dtype)

  def keep_probs(self) -> np.ndarray:
    """Each block's probability of keeping its branches under drop path."""
    if self.drop_path_uniform or self.depth == 1:
      rates = np.full(self.depth, self.drop_path, np.float32)
    else:
      rates = np.linspace(0.0, self.drop_path, self.depth, dtype=np.float32)
    return np.float32(1.0) - rates

  def grid(self, image_size: int) -> int:
    if image_size % self.patch_size:
      raise ValueError(f"Image size {image_size} is not divisible by "
                       f"patch_size={self.patch_size}.")
    return image_size // self.patch_size

  def positions(self, grid: int) -> jax.Array:
    """Position embeddings [grid*grid, width] for a `grid` x `grid` token map."""
    if self.pos_embedding == "sincos":
      return jnp.asarray(sincos_2d_positions(grid, self.width))
    return resample_positions(self.pos_table, grid, self.pos_resample,
                              self.pos_resample_offset)

  def patch_tokens(self, x, token_mask=None) -> jax.Array:
    """Patch embeddings plus positions [N, T, width]; with `token_mask` [N, T]
    (True = masked) the masked embeddings become the mask token first."""
    n, h, w, _ = x.shape
    if h != w:
      raise ValueError(f"ViT expects square images, got {h}x{w}.")
    grid = self.grid(h)
    tokens = self.patch_embed(x.astype(self.dtype)).reshape(n, grid * grid, self.width)
    if self.freeze_patch_embed:
      tokens = jax.lax.stop_gradient(tokens)
    if token_mask is not None:
      if not self.mask_token:
        raise ValueError("encode(token_mask=...) needs a mask token; set model.mask_token=True.")
      tokens = jnp.where(token_mask[..., None], self.mask_embedding.astype(self.dtype), tokens)
    return tokens + self.positions(grid).astype(self.dtype)

  def encode(self, x, *, ids_keep=None, token_mask=None, key_mask=None,
             train: bool = False, return_blocks: bool = False, return_hidden: bool = False):
    """Token-level encoding.

    Args:
      x: images [N, H, W, 3].
      ids_keep: [N, K] indices of the patch tokens to keep (the encoder then
        runs on K tokens only, a static count).
      token_mask: [N, T] True where the patch is replaced by the mask token.
      key_mask: [N, K] False for padding tokens no token may attend to.
      train: enables drop path.
      return_blocks: also return each block's FFN output (before its residual).
      return_hidden: also return each block's output tokens (the residual
        stream, before the final norm).

    Returns:
      {'tokens': [N, P + K, width] after the final norm (none with
      'gap_fc_norm'), the P = `num_prefix_tokens` class and register tokens
      first; 'blocks', 'hidden': lists of [N, P + K, width] if asked}.
    """
    tokens = self.patch_tokens(x, token_mask)
    if ids_keep is not None:
      tokens = jnp.take_along_axis(tokens, ids_keep[..., None], axis=1)
    n = tokens.shape[0]
    prefix = []
    if self.has_cls:
      prefix.append(jnp.broadcast_to(self.cls_token, (n, 1, self.width)))
    if self.num_registers:
      prefix.append(jnp.broadcast_to(self.register_tokens, (n, self.num_registers, self.width)))
    if prefix:
      tokens = jnp.concatenate([p.astype(self.dtype) for p in prefix] + [tokens], axis=1)
      if key_mask is not None:
        key_mask = jnp.concatenate(
            [jnp.ones((n, self.num_prefix_tokens), bool), key_mask], axis=1)
    if self.post_norm:
      tokens = self.norm(tokens)
    # Drop path acts where the caller passes a 'dropout' key: the trained
    # network's forward. EMA teachers run in training mode (batch statistics)
    # without a key and so without drop path, as DINO's teacher is built.
    drop = train and self.drop_path > 0 and self.has_rng("dropout")
    tokens, ffn_outputs, hidden = block_stack.run_blocks(
        self, self.blocks, tokens, key_mask=key_mask,
        drop_key=self.make_rng("dropout") if drop else None, keep_probs=self.keep_probs(),
        scan=self.scan_blocks, remat=self.remat_blocks, collect=return_blocks or return_hidden)
    if not self.post_norm and self.pooling != "gap_fc_norm":
      tokens = self.norm(tokens)
    out = {"tokens": tokens}
    if return_blocks:
      out["blocks"] = ffn_outputs
    if return_hidden:
      out["hidden"] = hidden
    return out

  def linear_features(self, x, n_last_blocks: int, avgpool: bool) -> jax.Array:
    """DINOv2's linear-evaluation input (dinov2/eval/linear.py
    `create_linear_input` on `get_intermediate_layers(n, return_class_token=True,
    norm=True)`): the class tokens of the last `n_last_blocks` blocks, each
    through the final LayerNorm, concatenated, and with `avgpool` the mean of
    the last block's normalised patch tokens (registers excluded) appended."""
    if not self.has_cls or self.post_norm:
      raise ValueError("DINOv2's linear features read class tokens through the final "
                       "LayerNorm: they need a pre-LN ViT with a class token "
                       "(model.pooling 'cls' or 'gap').")
    if not 1 <= n_last_blocks <= self.depth:
      raise ValueError(f"eval.linear_n_last_blocks={n_last_blocks} must be in "
                       f"[1, {self.depth}] for this {self.depth}-block ViT.")
    hidden = self.encode(x, return_hidden=True)["hidden"][-n_last_blocks:]
    normed = [self.norm(h) for h in hidden]
    parts = [h[:, 0] for h in normed]
    if avgpool:
      parts.append(jnp.mean(normed[-1][:, self.num_prefix_tokens:], axis=1))
    return jnp.concatenate(parts, axis=-1).astype(jnp.float32)

  def pool(self, tokens) -> jax.Array:
    if self.pooling == "cls":
      pooled = tokens[:, 0]
    else:
      pooled = jnp.mean(tokens[:, self.num_prefix_tokens:], axis=1)
      if self.pooling == "gap_fc_norm":
        pooled = self.norm(pooled)
    return pooled.astype(jnp.float32)

  def __call__(self, x, train: bool = False):
    return self.pool(self.encode(x, train=train)["tokens"])
