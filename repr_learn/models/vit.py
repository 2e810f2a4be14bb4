"""Vision Transformer backbones (Dosovitskiy et al. 2021) for SSL.

Attention goes through `jax.nn.dot_product_attention`, which dispatches to cuDNN's
fused kernel on GPUs (`implementation=None` lets JAX choose) and to XLA elsewhere.
"""

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

# name -> (width, depth, heads, mlp_dim)
VIT_SIZES = {
    "vit_test": (32, 2, 2, 64),   # tests only
    "vit_tiny": (192, 12, 3, 768),
    "vit_small": (384, 12, 6, 1536),
    "vit_base": (768, 12, 12, 3072),
    "vit_large": (1024, 24, 16, 4096),
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


class SelfAttention(nn.Module):
  num_heads: int
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x):
    n, length, width = x.shape
    head_dim = width // self.num_heads
    qkv = nn.DenseGeneral((3, self.num_heads, head_dim), dtype=self.dtype, name="qkv")(x)
    q, k, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]
    out = jax.nn.dot_product_attention(q, k, v)
    return nn.DenseGeneral(width, axis=(-2, -1), dtype=self.dtype, name="out")(out)


class EncoderBlock(nn.Module):
  """Pre-LayerNorm transformer block."""
  num_heads: int
  mlp_dim: int
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x):
    x = x + SelfAttention(self.num_heads, self.dtype, name="attention")(
        nn.LayerNorm(dtype=self.dtype, name="norm1")(x))
    y = nn.LayerNorm(dtype=self.dtype, name="norm2")(x)
    y = nn.Dense(self.mlp_dim, dtype=self.dtype, name="mlp_in")(y)
    y = nn.Dense(x.shape[-1], dtype=self.dtype, name="mlp_out")(nn.gelu(y))
    return x + y


class ViT(nn.Module):
  """ViT trunk returning pooled features [N, width].

  Attributes:
    width, depth, num_heads, mlp_dim: the transformer's size.
    patch_size: side of the square patches.
    pooling: 'cls' (class token) or 'mean' (average of patch tokens).
    pos_embedding: 'sincos' (fixed 2-D) or 'learned'.
  """
  width: int
  depth: int
  num_heads: int
  mlp_dim: int
  patch_size: int = 16
  pooling: str = "cls"
  pos_embedding: str = "sincos"
  dtype: Any = jnp.float32

  @property
  def num_features(self) -> int:
    return self.width

  @nn.compact
  def __call__(self, x, train: bool = True):
    del train  # No BatchNorm or dropout: train and eval forward are the same.
    n, h, w, _ = x.shape
    if h % self.patch_size or w % self.patch_size:
      raise ValueError(f"Image size {h}x{w} is not divisible by patch_size={self.patch_size}.")
    x = nn.Conv(self.width, (self.patch_size,) * 2, strides=(self.patch_size,) * 2,
                padding="VALID", dtype=self.dtype, name="patch_embed")(x.astype(self.dtype))
    grid = h // self.patch_size
    x = x.reshape(n, grid * grid, self.width)
    if self.pos_embedding == "sincos":
      pos = jnp.asarray(sincos_2d_positions(grid, self.width))
    elif self.pos_embedding == "learned":
      pos = self.param("pos_embedding", nn.initializers.normal(0.02),
                       (grid * grid, self.width))
    else:
      raise ValueError(f"Unknown pos_embedding {self.pos_embedding!r}; use 'sincos' or 'learned'.")
    x = x + pos.astype(self.dtype)
    if self.pooling == "cls":
      cls = self.param("cls_token", nn.initializers.normal(1e-6), (1, 1, self.width))
      x = jnp.concatenate([jnp.broadcast_to(cls, (n, 1, self.width)).astype(self.dtype), x],
                          axis=1)
    elif self.pooling != "mean":
      raise ValueError(f"Unknown pooling {self.pooling!r}; use 'cls' or 'mean'.")
    for i in range(self.depth):
      x = EncoderBlock(self.num_heads, self.mlp_dim, self.dtype, name=f"block_{i}")(x)
    x = nn.LayerNorm(dtype=self.dtype, name="norm")(x)
    pooled = x[:, 0] if self.pooling == "cls" else jnp.mean(x, axis=1)
    return pooled.astype(jnp.float32)
