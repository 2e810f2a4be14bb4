"""Where devices meet: the mesh, shardings and per-host batch assembly.

The train step is written on the global batch; sharding the batch axis over
the 'data' mesh axis makes XLA insert the collectives (all-gathers for the
similarity matrix, all-reduces for BatchNorm statistics and gradients). This is
the only module that decides how arrays are laid out over devices.

Two ways to compile the step (`config.parallel.mode`):
  jit   one program over the global batch; BatchNorm statistics are global.
  pmap  one program per device on its shard of the batch, with named-axis
        collectives (`per_device_step`); BatchNorm is per-device, as PyTorch
        DDP, unless `parallel.sync_batchnorm`.
"""

from typing import Any, Mapping

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

DATA_AXIS = "data"


def make_mesh(devices=None) -> Mesh:
  """A 1-D data-parallel mesh over all devices of all processes."""
  devices = jax.devices() if devices is None else devices
  return Mesh(np.asarray(devices), (DATA_AXIS,))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def batch_sharded(mesh: Mesh) -> NamedSharding:
  """Leading (batch) axis split over the data axis; also the rows of
  dataset-sized state (memory banks)."""
  return NamedSharding(mesh, P(DATA_AXIS))


def check_batch_size(batch_size: int, mesh: Mesh, what: str = "config.batch_size") -> None:
  """Fails early, in one line, when the global batch cannot be split evenly."""
  n = mesh.devices.size
  if batch_size % n:
    lower, upper = (batch_size // n) * n, (batch_size // n + 1) * n
    suggestion = f"{lower} or {upper}" if lower else f"{upper}"
    raise ValueError(f"{what}={batch_size} is not divisible by the {n} devices; "
                     f"use a multiple of {n} (e.g. {suggestion}).")
  if batch_size % jax.process_count():
    raise ValueError(f"{what}={batch_size} is not divisible by the "
                     f"{jax.process_count()} processes.")


def per_process_batch_size(batch_size: int) -> int:
  return batch_size // jax.process_count()


def global_batch(local: Mapping[str, np.ndarray], mesh: Mesh) -> dict[str, jax.Array]:
  """Assembles each process's slice of the batch into global sharded arrays."""
  sharding = batch_sharded(mesh)
  return {k: jax.make_array_from_process_local_data(sharding, np.asarray(v))
          for k, v in local.items()}


def fetch(tree: Any) -> Any:
  """Device → host copy of (possibly multi-process sharded) arrays."""
  if jax.process_count() == 1:
    return jax.device_get(tree)
  from jax.experimental import multihost_utils
  return multihost_utils.process_allgather(tree, tiled=True)


def local_copy(tree: Any) -> Any:
  """Host numpy copies of replicated arrays (this process's first shard), which
  works on every host, unlike fetching a non-fully-addressable array."""
  return jax.tree.map(lambda x: np.asarray(x.addressable_data(0)), tree)


def per_device_step(step, mesh: Mesh):
  """The `pmap` mode's compilation of `step(state, batch)`: each device runs it
  on its own shard of the batch (named axis `DATA_AXIS`), with the state
  replicated in and out.

  Built with `jax.shard_map`, which `jax.pmap` itself is a wrapper of in the
  JAX versions we support (jax/_src/pmap.py): the per-device program and its
  collectives are pmap's, while the state stays one replicated global array, so
  checkpoints, evaluation and resume are shared with the jit mode. The step
  must leave the state identical on every device (it averages gradients and
  BatchNorm statistics), which `out_specs=P()` then takes as given.
  """
  return jax.shard_map(step, mesh=mesh, in_specs=(P(), P(DATA_AXIS)), out_specs=(P(), P()),
                       check_vma=False)


def local_rows(x: jax.Array, axis_name: str) -> jax.Array:
  """Inside the per-device step, this device's rows of an array that spans the
  global batch (drawn whole, identically, on every device): how per-example
  randomness keys on the global example index, as in the jit mode."""
  n = x.shape[0] // jax.lax.axis_size(axis_name)
  return jax.lax.dynamic_slice_in_dim(x, jax.lax.axis_index(axis_name) * n, n)


def gathered_rows(x: jax.Array, axis_name: str) -> jax.Array:
  """Inside the per-device step, the global batch's rows of a per-device
  array, in device order (differentiable: its transpose sums each device's
  cotangents back onto its own rows)."""
  return jax.lax.all_gather(x, axis_name, tiled=True)


def mirrored_rows(x: jax.Array, axis_name: str) -> jax.Array:
  """Inside the per-device step, the rows that mirror this device's rows in the
  global batch (row N - 1 - i for row i, `x[::-1]` of the global array): the
  mirror device's rows reversed, sent across in one permutation."""
  n = jax.lax.axis_size(axis_name)
  return jax.lax.ppermute(x[::-1], axis_name, perm=[(d, n - 1 - d) for d in range(n)])


def per_device(fn, mesh: Mesh, num_replicated: int):
  """Runs `fn(*replicated_args, batch)` on each device's shard of `batch`.

  For the few pieces whose semantics are per-device by design, like MoCo's
  shuffle-BN key encoder: BatchNorm inside `fn` sees only the local examples.
  On a one-device mesh this is just `fn`.
  """
  if mesh.devices.size == 1:
    return fn
  in_specs = (P(),) * num_replicated + (P(DATA_AXIS),)
  return jax.shard_map(fn, mesh=mesh, in_specs=in_specs, out_specs=P(DATA_AXIS))
