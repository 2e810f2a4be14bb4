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


def decay_mask(params):
  """True for weights that get weight decay and LARS adaptation.

  Biases and BatchNorm scales/offsets (every parameter of rank <= 1) are
  excluded, as in SimCLR and BYOL.
  """
  return jax.tree.map(lambda p: jnp.ndim(p) > 1, params)


def make_optimizer(config: ml_collections.ConfigDict,
                   schedule: optax.Schedule) -> optax.GradientTransformation:
  """The optax chain named by `config.name`."""
  if config.name == "lars":
    return optax.lars(
        learning_rate=schedule, weight_decay=config.weight_decay,
        weight_decay_mask=decay_mask, trust_coefficient=config.trust_coefficient,
        eps=0.0, trust_ratio_mask=decay_mask, momentum=config.momentum,
        nesterov=False)
  if config.name == "sgd":
    return optax.chain(
        optax.add_decayed_weights(config.weight_decay, mask=decay_mask),
        optax.sgd(schedule, momentum=config.momentum))
  if config.name == "adamw":
    return optax.adamw(schedule, b1=0.9, b2=config.adam_b2,
                       weight_decay=config.weight_decay, mask=decay_mask)
  raise ValueError(f"Unknown optimizer.name {config.name!r}; choose one of {OPTIMIZERS}.")
