"""The run directory: writability, identity of the run it holds, config.json.

A workdir belongs to one run. Resuming is automatic, so a workdir that holds a
run of another method, dataset, model or batch size is refused instead of
mixing the two; `overwrite=True` moves the old run aside rather than deleting.
"""

import json
import os
import time

import jax
import ml_collections

CONFIG_FILE = "config.json"
# Fields that define which run a workdir holds.
IDENTITY_KEYS = ("objective.name", "data.name", "model.backbone", "model.width",
                 "batch_size")


class WorkdirError(RuntimeError):
  """The workdir cannot be used as asked."""


def _lookup(tree: dict, dotted: str):
  for part in dotted.split("."):
    tree = tree.get(part) if isinstance(tree, dict) else None
  return tree


def ensure_writable(workdir: str) -> None:
  """Creates the workdir and proves a file can be written there."""
  try:
    os.makedirs(workdir, exist_ok=True)
    probe = os.path.join(workdir, f".write_probe_{jax.process_index()}")
    with open(probe, "w") as f:
      f.write("ok")
    os.remove(probe)
  except OSError as e:
    raise WorkdirError(f"Workdir {workdir!r} is not writable ({e.strerror}); "
                       "pass a --workdir you can write to.") from None


def claim(workdir: str, config: ml_collections.ConfigDict, *, overwrite: bool) -> None:
  """Refuses a workdir that holds a different run, unless told to overwrite.

  With `overwrite`, the previous run's files move to `workdir/replaced-<time>/`
  so nothing is lost.
  """
  path = os.path.join(workdir, CONFIG_FILE)
  if not os.path.exists(path):
    return
  with open(path) as f:
    old = json.load(f)
  new = config.to_dict()
  diffs = [f"{k}: {_lookup(old, k)!r} -> {_lookup(new, k)!r}"
           for k in IDENTITY_KEYS if _lookup(old, k) != _lookup(new, k)]
  if not diffs:
    return
  if not overwrite:
    raise WorkdirError(
        f"Workdir {workdir!r} holds a different run ({'; '.join(diffs)}); use a new "
        "--workdir, or pass --overwrite to move the old run aside.")
  if jax.process_index() == 0:
    aside = os.path.join(workdir, time.strftime("replaced-%Y%m%d-%H%M%S"))
    os.makedirs(aside)
    for name in os.listdir(workdir):
      if not name.startswith("replaced-"):
        os.rename(os.path.join(workdir, name), os.path.join(aside, name))


def write_config(workdir: str, config: ml_collections.ConfigDict) -> None:
  if jax.process_index() == 0:
    with open(os.path.join(workdir, CONFIG_FILE), "w") as f:
      json.dump(config.to_dict(), f, indent=2, sort_keys=True)
