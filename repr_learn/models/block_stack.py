"""Runs a stack of transformer blocks, unrolled or as one `lax.scan`.

Unrolled, the program holds every block of every stack once per input shape: a
DINO step (student on two crop sizes, teacher on one, forward and backward)
holds 60 copies of a ViT-S block. Scanned (`model.scan_blocks`, MaxText's
`scan_layers`), it holds one per stack and shape. That cuts tracing by a third
or more; XLA:CPU already compiled identical kernels once, so the compile time
moved between -20% and +23% by recipe (BENCHMARKS.md). The parameters keep
their layout (`block_0` .. `block_{L-1}`, what the interop name maps, layer-wise
lr decay and saved checkpoints address): the scan stacks them inside the step,
so only the program changes, not the state. Both forms compute the same thing,
drop path included (block i's key is `fold_in(drop_key, i)` either way): equal
in float32 up to rounding; in bfloat16 XLA fuses and rounds the loop body
otherwise, so values differ by a rounding step here and there.

`model.remat_blocks` puts the scanned block under `jax.checkpoint`: the
backward pass recomputes each block's activations from its input, so a stack
keeps its blocks' inputs instead of all their activations, for about a third
more FLOPs. It needs the scan: unrolled, XLA:CPU scheduled the recomputation
early and kept every activation live anyway (same memory, 42% more FLOPs on a
6-block ViT; BENCHMARKS.md).
"""

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np


def _drop(drop_key, i, keep_prob):
  """Block i's drop-path argument: its own key, its keep probability."""
  return None if drop_key is None else (jax.random.fold_in(drop_key, i), keep_prob)


def run_blocks(owner: nn.Module, blocks: Sequence[nn.Module], x, *, key_mask=None,
               drop_key=None, keep_probs=None, scan: bool = False, remat: bool = False,
               collect: bool = False):
  """Applies `blocks` (children of `owner`, one configuration, each returning
  (tokens, FFN output)) in order.

  Args:
    drop_key: a key for drop path, or None for none (evaluation, EMA teachers).
    keep_probs: [depth] float32 probabilities of keeping each block's branches.
    scan: one `lax.scan` over the blocks (initialisation always runs them
      unrolled: it creates the per-block parameters the scan reads).
    remat: with `scan`, the scanned block under `jax.checkpoint`.
    collect: also return each block's FFN output and output tokens.

  Returns:
    (tokens, [FFN outputs], [block outputs]); the lists are empty unless `collect`.
  """
  depth = len(blocks)
  keep_probs = (np.ones(depth, np.float32) if keep_probs is None
                else np.asarray(keep_probs, np.float32))
  if remat and not scan:
    raise ValueError("Rematerialised blocks run inside the scan: set model.scan_blocks=True "
                     "with model.remat_blocks.")
  if scan and blocks and not owner.is_initializing():
    return _scan(owner, blocks, x, key_mask, drop_key, keep_probs, remat, collect)
  ffns, hidden = [], []
  for i, block in enumerate(blocks):
    x, ffn = block(x, key_mask=key_mask, drop=_drop(drop_key, i, keep_probs[i]))
    if collect:
      ffns.append(ffn)
      hidden.append(x)
  return x, ffns, hidden


def _scan(owner, blocks, x, key_mask, drop_key, keep_probs, remat, collect):
  """The blocks as one `lax.scan`, their parameters stacked inside the step."""
  params = owner.variables["params"]
  stacked = jax.tree.map(lambda *leaves: jnp.stack(leaves),
                         *[params[block.name] for block in blocks])
  template = blocks[0].clone(parent=None)

  def body(tokens, per_block):
    block_params, i, keep = per_block
    tokens, ffn = template.apply({"params": block_params}, tokens, key_mask=key_mask,
                                 drop=_drop(drop_key, i, keep))
    return tokens, ((ffn, tokens) if collect else None)

  if remat:
    body = jax.checkpoint(body, prevent_cse=False)  # the scan already keeps it apart
  x, outputs = jax.lax.scan(body, x, (stacked, jnp.arange(len(blocks)),
                                      jnp.asarray(keep_probs)))
  if not collect:
    return x, [], []
  ffns, hidden = outputs
  return x, list(ffns), list(hidden)
