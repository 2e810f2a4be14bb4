"""Shrinking the real configs in tests: dotted-key overrides."""

import ml_collections


def override(config: ml_collections.ConfigDict, **dotted) -> ml_collections.ConfigDict:
  """`override(c, **{"optimizer.base_lr": 0.1})` sets c.optimizer.base_lr."""
  for key, value in dotted.items():
    node = config
    *parents, leaf = key.split(".")
    for p in parents:
      node = node[p]
    node[leaf] = value
  return config
