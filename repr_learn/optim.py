"""Optimizers, learning-rate schedules and weight-decay masks.

Durations arrive already resolved to steps (see `train.resolve_durations`), so
nothing here needs to know the dataset size.
"""

import math

import jax
import jax.numpy as jnp
import ml_collections
import optax

OPTIMIZERS = ("lars", "sgd", "adamw")
LR_SCALINGS = ("linear", "sqrt", "none")


def scaled_learning_rate(config: ml_collections.ConfigDict, batch_size: int) -> float:
  """Peak learning rate from the base rate and the global batch size.

  'linear': base_lr * batch / 256 (Goyal et al.; SimCLR with LARS at large
  batch). 'sqrt': base_lr * sqrt(batch) (SimCLR appendix B.1, better for small
  batches and long schedules). 'none': base_lr as given.
  """
  if config.lr_scaling == "linear":
    return config.base_lr * batch_size / 256
  if config.lr_scaling == "sqrt":
    return config.base_lr * math.sqrt(batch_size)
  if config.lr_scaling == "none":
    return config.base_lr
  raise ValueError(f"Unknown optimizer.lr_scaling {config.lr_scaling!r}; "
                   f"choose one of {LR_SCALINGS}.")


def warmup_cosine(peak: float, warmup_steps: int, total_steps: int) -> optax.Schedule:
  """Linear warm-up from 0 to `peak`, then cosine decay to 0 at `total_steps`."""
  warmup_steps = min(warmup_steps, max(total_steps - 1, 0))
  return optax.warmup_cosine_decay_schedule(
      init_value=0.0, peak_value=peak, warmup_steps=warmup_steps,
      decay_steps=max(total_steps, warmup_steps + 1), end_value=0.0)


def weight_decay(config: ml_collections.ConfigDict,
                 total_steps: int) -> float | optax.Schedule:
  """`weight_decay`, or with `weight_decay_end` set a cosine from one to the
  other over training (DINO's ViT recipe: 0.04 -> 0.4)."""
  start, end = config.weight_decay, config.weight_decay_end
  if end is None:
    return start
  total = max(total_steps, 1)

  def schedule(step):
    progress = jnp.minimum(step, total) / total
    return end + 0.5 * (start - end) * (1.0 + jnp.cos(jnp.pi * progress))

  return schedule


def clip_each_parameter_norm(max_norm: float) -> optax.GradientTransformation:
  """Scales each parameter's gradient to norm <= `max_norm` separately.

  DINO clips per parameter tensor (not the global norm) at 3.0; its 1e-6
  guards all-zero gradients.
  """

  def clip(updates, params=None):
    del params
    return jax.tree.map(
        lambda g: g * jnp.minimum(1.0, max_norm / (jnp.linalg.norm(g) + 1e-6)), updates)

  return optax.stateless(clip)


def decay_mask(params):
  """True for weights that get weight decay and LARS adaptation.

  Biases and BatchNorm scales/offsets (every parameter of rank <= 1) are
  excluded, as in SimCLR and BYOL.
  """
  return jax.tree.map(lambda p: jnp.ndim(p) > 1, params)


def make_optimizer(config: ml_collections.ConfigDict, schedule: optax.Schedule,
                   total_steps: int) -> optax.GradientTransformation:
  """The optax chain named by `config.name`, after per-parameter clipping when
  `config.clip_each_parameter_norm` > 0."""
  tx = _base_optimizer(config, schedule, weight_decay(config, total_steps))
  if config.clip_each_parameter_norm > 0:
    return optax.chain(clip_each_parameter_norm(config.clip_each_parameter_norm), tx)
  return tx


def _base_optimizer(config: ml_collections.ConfigDict, schedule: optax.Schedule,
                    decay: float | optax.Schedule) -> optax.GradientTransformation:
  if config.name == "lars":
    return optax.lars(
        learning_rate=schedule, weight_decay=decay,
        weight_decay_mask=decay_mask, trust_coefficient=config.trust_coefficient,
        eps=0.0, trust_ratio_mask=decay_mask, momentum=config.momentum,
        nesterov=False)
  if config.name == "sgd":
    return optax.chain(
        optax.add_decayed_weights(decay, mask=decay_mask),
        optax.sgd(schedule, momentum=config.momentum))
  if config.name == "adamw":
    return optax.adamw(schedule, b1=0.9, b2=config.adam_b2,
                       weight_decay=decay, mask=decay_mask)
  raise ValueError(f"Unknown optimizer.name {config.name!r}; choose one of {OPTIMIZERS}.")
