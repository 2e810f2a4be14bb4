"""Image-text contrastive losses: CLIP's softmax and SigLIP's sigmoid.

Both take L2-normalised image and text embeddings of the global batch (row i of
each is one pair), so under `jax.jit` over a data-parallel mesh they are the
distributed losses: XLA gathers the embeddings and transposes the gathers for
the gradient, which is what open_clip needs `local_loss` plus
`gather_with_grad` for (open_clip#616). The logits and their reductions run in
float32 whatever the activations' dtype.

The `chunk_rows` form bounds memory for large batches on few devices: the
[N, N] logits are never held at once. Rows are processed `chunk_rows` at a
time under `jax.checkpoint`, so the backward pass recomputes each chunk's
logits instead of keeping them (the problem open_clip PR #1214 describes for
its chunked SigLIP). Its values and gradients equal the plain form's.
"""

import jax
import jax.numpy as jnp


def _scaled_logits(image: jax.Array, text: jax.Array, scale: jax.Array,
                   bias: jax.Array | float = 0.0) -> jax.Array:
  return (scale * (image.astype(jnp.float32) @ text.astype(jnp.float32).T)
          + jnp.asarray(bias, jnp.float32))


def _row_chunks(x: jax.Array, chunk_rows: int) -> jax.Array:
  n = x.shape[0]
  if n % chunk_rows:
    raise ValueError(f"The batch of {n} pairs does not split into chunks of "
                     f"{chunk_rows} rows; set objective.chunk_rows to a divisor of it.")
  return x.reshape((n // chunk_rows, chunk_rows) + x.shape[1:])


def clip_loss(image: jax.Array, text: jax.Array, scale: jax.Array,
              chunk_rows: int = 0) -> jax.Array:
  """CLIP's symmetric cross-entropy (Radford et al. 2021, fig. 3; open_clip
  `ClipLoss`): 1/2 [CE(L, arange) + CE(L^T, arange)] with L = scale * I T^T.

  Args:
    image, text: [N, D] L2-normalised embeddings; row i of each is a pair.
    scale: the logit scale exp(t), already exponentiated (and clamped).
    chunk_rows: > 0 computes the loss `chunk_rows` image rows at a time (see
      the module docstring); 0 holds the whole [N, N] logits.

  Written as mean(lse_rows + lse_cols) / 2 - mean(diag): the same value as the
  two cross-entropies, from one pass over the logits.
  """
  diagonal = scale * jnp.sum(image.astype(jnp.float32) * text.astype(jnp.float32), axis=-1)
  if not chunk_rows:
    logits = _scaled_logits(image, text, scale)
    row_lse = jax.nn.logsumexp(logits, axis=1)
    col_lse = jax.nn.logsumexp(logits, axis=0)
  else:
    @jax.checkpoint
    def chunk_lse(rows):
      logits = _scaled_logits(rows, text, scale)
      return jax.nn.logsumexp(logits, axis=1), jax.nn.logsumexp(logits, axis=0)

    row_lse, col_parts = jax.lax.map(chunk_lse, _row_chunks(image, chunk_rows))
    row_lse = row_lse.reshape(-1)
    col_lse = jax.nn.logsumexp(col_parts, axis=0)
  return jnp.mean(row_lse + col_lse) / 2 - jnp.mean(diagonal)


def siglip_loss(image: jax.Array, text: jax.Array, scale: jax.Array, bias: jax.Array,
                chunk_rows: int = 0) -> jax.Array:
  """SigLIP's pairwise sigmoid loss (Zhai et al. 2023, alg. 1):
  -(1/N) sum_ij log sigmoid(z_ij (scale x_i.y_j + bias)), z = +1 on the
  diagonal and -1 elsewhere.

  Normalised by the number of images, not by the N^2 pairs, as big_vision's
  `siglip.py`, open_clip's `SigLipLoss` and HF's `SiglipModel` do: the loss
  grows with the batch, so compare it only at equal batch sizes.
  """
  n = image.shape[0]
  if not chunk_rows:
    logits = _scaled_logits(image, text, scale, bias)
    signs = 2.0 * jnp.eye(n, dtype=jnp.float32) - 1.0
    return -jnp.sum(jax.nn.log_sigmoid(signs * logits)) / n

  @jax.checkpoint
  def chunk_sum(args):
    rows, first_row = args
    logits = _scaled_logits(rows, text, scale, bias)
    row_ids = first_row + jnp.arange(rows.shape[0])
    signs = jnp.where(row_ids[:, None] == jnp.arange(n)[None, :], 1.0, -1.0)
    return jnp.sum(jax.nn.log_sigmoid(signs * logits))

  chunks = _row_chunks(image, chunk_rows)
  first_rows = jnp.arange(chunks.shape[0]) * chunk_rows
  return -jnp.sum(jax.lax.map(chunk_sum, (chunks, first_rows))) / n


def retrieval_accuracy(image: jax.Array, text: jax.Array) -> dict[str, jax.Array]:
  """In-batch top-1 accuracy of image->text and text->image matching (open_clip
  logs the same from its logits): a training metric, not the evaluation."""
  sims = image.astype(jnp.float32) @ text.astype(jnp.float32).T
  targets = jnp.arange(sims.shape[0])
  return {"image_to_text_acc": jnp.mean(jnp.argmax(sims, axis=1) == targets),
          "text_to_image_acc": jnp.mean(jnp.argmax(sims, axis=0) == targets)}
