"""The text tower of image-text models (CLIP, SigLIP, LiT).

A transformer over a static-length token sequence: token and learned position
embeddings, pre-LN blocks (`vit.EncoderBlock`), a final LayerNorm, one pooled
token, and a linear projection to the shared embedding. The two references
differ in two switches:

  CLIP (open_clip `TextTransformer`): causal attention, pooled at the
    end-of-text token, LayerNorm epsilon 1e-5, projection without bias.
  SigLIP (big_vision `text_transformer.py`): no mask, the last position
    pooled, LayerNorm epsilon 1e-6, projection with bias.

Initialisation follows open_clip for the embeddings (token std 0.02, position
std 0.01); the blocks keep flax's defaults (open_clip scales attention and MLP
weights by width^-1/2 and depth; its released weights load either way).
"""

import dataclasses
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from repr_learn.models import block_stack
from repr_learn.models import vit

POOLINGS = ("eot", "last", "mean")
# name -> (width, depth, heads, mlp_dim)
TEXT_SIZES = {
    "text_test": (32, 1, 2, 64),      # tests only
    "text_mini": (96, 2, 3, 384),     # CPU-sized (the quickstart's captions)
    "text_base": (512, 12, 8, 2048),        # CLIP ViT-B/32 and RN50 (open_clip model_configs)
    "text_base_768": (768, 12, 12, 3072),   # SigLIP B/16 (open_clip ViT-B-16-SigLIP.json)
}


@dataclasses.dataclass(frozen=True)
class TokenFormat:
  """What the text tower reads: the tokenizer's ids and the sequence length."""
  vocab_size: int
  context_length: int
  eot_id: int


class TextTransformer(nn.Module):
  """tokens [N, L] int32 -> embeddings [N, output_dim] (not normalised).

  Attributes:
    vocab_size: the tokenizer's vocabulary.
    context_length: L, the static sequence length.
    width, depth, num_heads, mlp_dim: the transformer's size.
    output_dim: the shared image-text embedding width (0: no projection, the
      pooled token itself).
    causal: causal attention (CLIP) or none (SigLIP).
    pooling: 'eot' (the first end-of-text token, CLIP's `text.argmax(-1)` for
      its vocabulary whose EOT id is the largest), 'last' (the last position,
      big_vision's `pool_type='last'`) or 'mean' (of the tokens up to the EOT).
    eot_id: the tokenizer's end-of-text id.
    projection_bias: a bias on the projection (SigLIP; CLIP has none).
    scan_blocks, remat_blocks: see `block_stack`.
  """
  vocab_size: int
  context_length: int
  width: int
  depth: int
  num_heads: int
  mlp_dim: int
  output_dim: int
  causal: bool = True
  pooling: str = "eot"
  eot_id: int = 2
  projection_bias: bool = False
  norm_epsilon: float = 1e-5
  approximate_gelu: bool = False
  attention: str = "xla"
  dtype: Any = jnp.float32
  scan_blocks: bool = False
  remat_blocks: bool = False

  @nn.compact
  def __call__(self, tokens, train: bool = False):
    del train  # No dropout or BatchNorm in the text tower.
    if self.pooling not in POOLINGS:
      raise ValueError(f"Unknown model.text.pooling {self.pooling!r}; use one of {POOLINGS}.")
    if tokens.shape[-1] != self.context_length:
      raise ValueError(f"Token sequences of length {tokens.shape[-1]} for a text tower built "
                       f"for {self.context_length}; tokenize to data.context_length.")
    x = nn.Embed(self.vocab_size, self.width, embedding_init=nn.initializers.normal(0.02),
                 dtype=self.dtype, name="token_embedding")(tokens)
    positions = self.param("pos_embedding", nn.initializers.normal(0.01),
                           (self.context_length, self.width))
    x = x + positions.astype(x.dtype)
    blocks = [vit.EncoderBlock(self.num_heads, self.mlp_dim, self.dtype,
                               attention=self.attention, approximate_gelu=self.approximate_gelu,
                               causal=self.causal, norm_epsilon=self.norm_epsilon,
                               name=f"block_{i}")
              for i in range(self.depth)]
    x, _, _ = block_stack.run_blocks(self, blocks, x, scan=self.scan_blocks,
                                     remat=self.remat_blocks)
    x = nn.LayerNorm(epsilon=self.norm_epsilon, dtype=self.dtype, name="final_norm")(x)
    pooled = self._pool(x, tokens)
    if not self.output_dim:
      return pooled
    return nn.Dense(self.output_dim, use_bias=self.projection_bias, dtype=self.dtype,
                    name="projection")(pooled)

  def _pool(self, x, tokens):
    if self.pooling == "last":
      return x[:, -1]
    # The first EOT; a sequence without one (never made by our tokenizers,
    # which force EOT into the last slot) ends at its last position.
    is_eot = tokens == self.eot_id
    end = jnp.where(jnp.any(is_eot, axis=1), jnp.argmax(is_eot, axis=1), tokens.shape[1] - 1)
    if self.pooling == "mean":
      # Positions up to the EOT: the pad id can be a real token (CLIP's 0 is '!').
      keep = (jnp.arange(tokens.shape[1])[None, :] <= end[:, None]).astype(x.dtype)[..., None]
      return jnp.sum(x * keep, axis=1) / jnp.sum(keep, axis=1)
    return jnp.take_along_axis(x, end[:, None, None], axis=1)[:, 0]
