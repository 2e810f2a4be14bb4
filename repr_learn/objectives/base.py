"""The objective interface that the trainer drives.

The trainer knows nothing about any method. An objective says which augmented
views it needs, computes its loss from the network's outputs, and owns any state
that evolves outside gradient descent (EMA teacher, queue, centre, prototypes,
memory bank) in the pytree `extra`, which is checkpointed with the rest.
"""

import dataclasses
from typing import Any, Callable, ClassVar, Mapping, NamedTuple, Sequence

import flax.linen as nn
import jax
import ml_collections

from repr_learn.data import augment

PyTree = Any


class LossOutput(NamedTuple):
  """What `Objective.loss` returns beside the scalar loss.

  batch_stats: updated BatchNorm statistics from the training forward pass.
  metrics: scalars to log (already reduced over the global batch).
  aux: arrays `update_extra` needs (e.g. this step's keys to enqueue).
  """
  batch_stats: PyTree
  metrics: Mapping[str, jax.Array]
  aux: PyTree = None


@dataclasses.dataclass(frozen=True)
class Objective:
  """Base class: subclasses set `name`, `defaults` and implement `loss`.

  Attributes:
    config: the objective's own section of the experiment config.
    network: the flax module (see `repr_learn.models.build_network`).
    views: one `ViewConfig` per augmented view the loss consumes.
  """
  config: ml_collections.ConfigDict
  network: nn.Module
  views: Sequence[augment.ViewConfig]

  # Subclasses override these two class attributes.
  name: ClassVar[str] = "base"
  defaults: ClassVar[Mapping[str, Any]] = {}

  def init_extra(self, rng: jax.Array, variables: PyTree) -> PyTree:
    """State beside the parameters; empty for purely gradient-based methods."""
    del rng, variables
    return {}

  def loss(self, params: PyTree, batch_stats: PyTree, extra: PyTree,
           views: Sequence[jax.Array], batch: Mapping[str, jax.Array],
           rng: jax.Array) -> tuple[jax.Array, LossOutput]:
    raise NotImplementedError

  def update_extra(self, extra: PyTree, params: PyTree, aux: PyTree,
                   step: jax.Array) -> PyTree:
    """Evolves `extra` after the optimizer step (EMA, enqueue, ...)."""
    del params, aux, step
    return extra

  def apply(self, params, batch_stats, x, *, train: bool = True,
            method: Callable | None = None):
    """Runs the network, returning (outputs, new batch_stats) when training."""
    variables = {"params": params, "batch_stats": batch_stats}
    if train:
      out, updates = self.network.apply(variables, x, train=True,
                                        mutable=["batch_stats"], method=method)
      return out, updates["batch_stats"]
    return self.network.apply(variables, x, train=False, method=method), batch_stats
