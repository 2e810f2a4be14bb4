"""Objective registry: `config.objective.name` -> Objective subclass."""

import difflib

from repr_learn.objectives import base
from repr_learn.objectives import simclr

REGISTRY: dict[str, type[base.Objective]] = {
    cls.name: cls for cls in (simclr.SimCLR,)
}


def get_objective_class(name: str) -> type[base.Objective]:
  if name not in REGISTRY:
    close = difflib.get_close_matches(name, REGISTRY, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    raise ValueError(f"Unknown objective {name!r}; {hint}valid: {sorted(REGISTRY)}.")
  return REGISTRY[name]
