"""Deterministic random state dicts, the same in numpy and in PyTorch.

The golden files (`tests/golden/make_interop_golden.py`) store a model's key
list, a seed and its outputs, not its weights: the weights are a function of
(seed, key index, key name, shape) computed here with numpy, so the PyTorch side
and the tests build the same tensors. Every tensor is randomised, BatchNorm
statistics and norm scales included, because default initialisations (zeros,
ones) hide mapping errors.
"""

import numpy as np


def random_tensor(name: str, shape, seed: int, index: int) -> np.ndarray:
  """The value of state-dict entry number `index` called `name`."""
  rng = np.random.default_rng([seed, index])
  shape = tuple(int(s) for s in shape)
  leaf = name.rsplit(".", 1)[-1]
  if leaf == "num_batches_tracked":
    return np.zeros(shape, np.int64)
  if leaf == "running_var":
    return rng.uniform(0.5, 2.0, shape).astype(np.float32)
  if leaf == "running_mean":
    return rng.normal(0.0, 0.1, shape).astype(np.float32)
  if leaf in ("weight", "gamma") and len(shape) == 1:  # norm scales, LayerScale
    return rng.uniform(0.5, 1.5, shape).astype(np.float32)
  if leaf == "weight":
    fan_in = int(np.prod(shape[1:]))
    return rng.normal(0.0, 1.0 / np.sqrt(fan_in), shape).astype(np.float32)
  return rng.normal(0.0, 0.2, shape).astype(np.float32)


def random_state_dict(keys_and_shapes, seed: int) -> dict[str, np.ndarray]:
  """{name: array} for an ordered [(name, shape), ...]."""
  return {name: random_tensor(name, shape, seed, i)
          for i, (name, shape) in enumerate(keys_and_shapes)}
