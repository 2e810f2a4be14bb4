"""The pure step factory: `state, batch -> state, metrics`.

The functions returned here are plain Python; `train.py` compiles them with
`jax.jit` over the mesh. Augmentation runs inside the step, on the accelerator,
from `fold_in(state.rng, state.step)`, so a batch of uint8 images and the step
number fully determine the update.
"""

from typing import Callable, Mapping

import jax
import jax.numpy as jnp
import optax

from repr_learn import online_probe
from repr_learn import train_state as train_state_lib
from repr_learn.data import augment
from repr_learn.objectives import base

Batch = Mapping[str, jax.Array]
TrainStep = Callable[[train_state_lib.TrainState, Batch],
                     tuple[train_state_lib.TrainState, dict[str, jax.Array]]]


def make_train_step(objective: base.Objective, tx: optax.GradientTransformation,
                    schedule: optax.Schedule, mean, std,
                    probe: online_probe.OnlineProbe | None = None,
                    device_axis: str | None = None) -> TrainStep:
  """One optimizer step of `objective`; skips (and records) non-finite steps.

  With `probe`, the online linear probe also takes a step on the first view's
  frozen (eval-mode, stop-gradient) backbone features and the batch's labels.

  With `device_axis`, this is the per-device program of the `pmap` mode
  (`parallel.per_device_step`): `batch` is this device's shard. Each example
  gets its global augmentation key, the network's outputs are gathered over the
  axis before the loss (`Objective.device_axis`), as are the batch's labels and
  indices, so every device computes the global loss; the gradients, which then
  carry only the local examples' paths, are averaged over the axis (that mean
  is the global gradient), and so are the BatchNorm statistics, which are
  per-device (PyTorch DDP) unless the network synchronises them (SyncBN).
  """
  if device_axis is not None:
    objective = objective.per_device(device_axis)

  def train_step(state: train_state_lib.TrainState, batch: Batch):
    step_rng = jax.random.fold_in(state.rng, state.step)
    aug_rng, loss_rng = jax.random.split(step_rng)
    views = augment.make_views(aug_rng, batch["image"], objective.views, mean, std,
                               device_axis, batch.get("image_hw"))
    batch = _with_global_labels(batch, device_axis)

    frozen = objective.frozen_parts(state.step)

    def loss_fn(params):
      return objective.loss(base.frozen_while(params, frozen), state.batch_stats,
                            state.extra, views, batch, loss_rng, state.step)

    (loss, out), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    if device_axis is not None:
      grads = jax.lax.pmean(grads, device_axis)
      out = out._replace(batch_stats=jax.lax.pmean(out.batch_stats, device_axis))
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    updates = base.without_frozen_updates(updates, frozen)
    params = objective.constrain_params(optax.apply_updates(state.params, updates))
    extra = objective.update_extra(state.extra, params, out.aux, state.step)

    probe_state, probe_metrics = state.probe, {}
    if probe is not None:
      features, _ = objective.apply(state.params, state.batch_stats, views[0], train=False,
                                    method=objective.network.embed)
      probe_state, probe_metrics = probe.update(state.probe, features, batch["label"])

    grad_norm = optax.global_norm(grads)
    finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm)
    candidate = state.replace(params=params, batch_stats=out.batch_stats,
                              opt_state=opt_state, extra=extra, probe=probe_state)
    # Keep the last good values when this step blew up; the host stops the run
    # at its next check and names the step.
    new_state = jax.tree.map(lambda new, old: jnp.where(finite, new, old),
                             candidate, state)
    first_bad = jnp.where((state.first_nonfinite_step < 0) & ~finite,
                          state.step, state.first_nonfinite_step)
    new_state = new_state.replace(step=state.step + 1, first_nonfinite_step=first_bad)

    metrics = {
        "loss": loss,
        "grad_norm": grad_norm,
        "param_norm": optax.global_norm(state.params),
        "update_norm": optax.global_norm(updates),
        "learning_rate": schedule(state.step),
        **out.metrics,
        **probe_metrics,
    }
    return new_state, metrics

  return train_step



# Batch entries that reach the loss only through the network (whose outputs
# the per-device step gathers instead): images, their sizes in the canvas, and
# the captions' tokens.
_NETWORK_INPUTS = ("image", "image_hw", "tokens", "num_captions")


def _with_global_labels(batch: Batch, device_axis: str | None) -> Batch:
  """In the per-device step, every entry but the network's inputs (labels,
  example indices) gathered over the devices."""
  if device_axis is None:
    return batch
  return {k: v if k.endswith(_NETWORK_INPUTS)
          else jax.lax.all_gather(v, device_axis, tiled=True)
          for k, v in batch.items()}
