"""The single pytree that holds everything a run needs to continue."""

import dataclasses
from typing import Any, Callable

import flax
import jax
import jax.numpy as jnp
import optax
from jax.sharding import Mesh

from repr_learn import parallel

PyTree = Any


@flax.struct.dataclass
class TrainState:
  """All mutable training state; the train step maps it to a new one.

  Attributes:
    step: optimizer steps taken.
    params: network parameters.
    batch_stats: BatchNorm running statistics.
    opt_state: optimizer state.
    extra: the objective's own state (EMA teacher, queue, centre, ...).
    rng: base key; the step's key is `fold_in(rng, step)`.
    first_nonfinite_step: -1, or the first step whose loss or gradients were
      not finite. That step's update is skipped, so the parameters stay at the
      last good values for the host to report and keep.
    probe: the online linear probe's parameters and optimizer state ({} when
      it is off); see `repr_learn.online_probe`.
  """
  step: jax.Array
  params: PyTree
  batch_stats: PyTree
  opt_state: PyTree
  extra: PyTree
  rng: jax.Array
  first_nonfinite_step: jax.Array
  probe: PyTree = dataclasses.field(default_factory=dict)


def initializer(init_fn: Callable[[jax.Array], tuple[PyTree, PyTree, PyTree]],
                tx: optax.GradientTransformation, mesh: Mesh,
                probe: Callable[[], PyTree] | None = None,
                extra_shardings: Callable[[PyTree, Mesh], PyTree] | None = None
                ) -> Callable[[jax.Array], TrainState]:
  """rng -> the state, built directly with its final sharding: replicated,
  except `extra` where `extra_shardings` (the objective's) splits it.

  Following big_vision, the shapes come from `eval_shape` and the state is
  created by a jitted initialiser with `out_shardings`, so no full copy ever
  lives on one device first. The returned function is compiled once and can
  be called again (the random-init baseline rebuilds the same state).

  Args:
    init_fn: rng -> (params, batch_stats, extra).
    tx: the optimizer.
    mesh: the device mesh.
    probe: builds the online probe's initial state (None: no probe).
    extra_shardings: (abstract extra, mesh) -> its shardings (None: replicated).
  """

  def init(rng):
    init_rng, state_rng = jax.random.split(rng)
    params, batch_stats, extra = init_fn(init_rng)
    return TrainState(step=jnp.zeros((), jnp.int32), params=params,
                      batch_stats=batch_stats, opt_state=tx.init(params),
                      extra=extra, rng=state_rng,
                      first_nonfinite_step=jnp.full((), -1, jnp.int32),
                      probe=probe() if probe is not None else {})

  abstract = jax.eval_shape(init, jax.random.PRNGKey(0))
  return jax.jit(init, out_shardings=shardings(abstract, mesh, extra_shardings))


def shardings(state: TrainState, mesh: Mesh,
              extra_shardings: Callable[[PyTree, Mesh], PyTree] | None = None) -> TrainState:
  """Where each leaf of `state` (arrays or shapes) lives on `mesh`: replicated,
  except `extra` where `extra_shardings` (the objective's) splits it."""
  out = jax.tree.map(lambda _: parallel.replicated(mesh), state)
  if extra_shardings is not None:
    out = out.replace(extra=extra_shardings(state.extra, mesh))
  return out


def create(init_fn: Callable[[jax.Array], tuple[PyTree, PyTree, PyTree]],
           tx: optax.GradientTransformation, rng: jax.Array, mesh: Mesh,
           probe: Callable[[], PyTree] | None = None,
           extra_shardings: Callable[[PyTree, Mesh], PyTree] | None = None) -> TrainState:
  """The state of seed `rng` (see `initializer`)."""
  return initializer(init_fn, tx, mesh, probe, extra_shardings)(rng)


def abstract_like(state: TrainState) -> TrainState:
  """Shape/dtype/sharding skeleton used as the restore target."""
  return jax.tree.map(
      lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), state)
