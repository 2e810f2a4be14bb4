"""Starting a run from another run's trained network (`model.init_from`).

SCAN, DEC and fine-tuning train on top of a pretrained encoder. Every top-level
part of the network (backbone, projector, ...) whose parameter shapes match the
finished run's is copied; the backbone must match, the rest (a new clustering or
classification head) may be fresh. Pretraining-only backbone parameters (a
masked-modeling mask token) are left behind, and learned ViT positions are
resampled when the resolution changes.
"""

import dataclasses
import json
import os
from typing import Any

from absl import logging
import jax

from repr_learn import checkpointing
from repr_learn import config_schema
from repr_learn.models import vit

PyTree = Any


@dataclasses.dataclass(frozen=True)
class Pretrained:
  params: PyTree
  batch_stats: PyTree
  source: str
  step: int


def load(workdir: str) -> Pretrained:
  """The latest checkpoint of the run in `workdir`. A run trained before the
  standard numerics became the defaults is named in a warning: the new run
  computes with its own config's numerics."""
  workdir_abs = os.path.abspath(os.path.expanduser(workdir))
  params, batch_stats, step = checkpointing.read_latest_variables(
      os.path.join(workdir_abs, "checkpoints"))
  _warn_if_legacy_numerics(workdir_abs)
  return Pretrained(params=params, batch_stats=batch_stats, source=workdir, step=step)


def _warn_if_legacy_numerics(workdir: str) -> None:
  try:
    with open(os.path.join(workdir, "config.json")) as f:
      missing = config_schema.missing_legacy_fields(json.load(f), changed_only=True)
  except (OSError, ValueError):
    return
  if missing:
    logging.warning("%s was trained with %s; this run uses its own config's values (set "
                    "them to match if the encoder should compute as it was trained).", workdir,
                    ", ".join(f"{k}={v!r}" for k, v in missing.items()))


def _same_shapes(a, b) -> bool:
  try:
    return all(jax.tree.leaves(jax.tree.map(lambda x, y: x.shape == y.shape, a, b)))
  except (ValueError, TypeError):  # Different tree structures.
    return False


# Backbone weights only pretraining uses (a masked-modeling encoder's mask token):
# left behind without a word. Any other weight the new network has no place for
# is refused, naming the option that would keep it.
PRETRAINING_ONLY = ("mask_token",)
_KEEPS = {"pos_embedding": "model.pos_embedding='learned'",
          "gamma1": "model.layer_scale > 0", "gamma2": "model.layer_scale > 0",
          "register_tokens": "model.num_registers", "cls_token": "a pooling with a class token"}


def _without_pretraining_only_leaves(target: PyTree, source: PyTree,
                                     resample: tuple[str, float]) -> PyTree:
  """`source` restricted to the leaves `target` has, with learned position
  embeddings resampled to the target's grid by the target's method."""
  if not isinstance(target, dict) or not isinstance(source, dict):
    return source
  dropped = sorted(set(source) - set(target) - set(PRETRAINING_ONLY))
  if dropped:
    keep = sorted({_KEEPS[k] for k in dropped if k in _KEEPS})
    raise ValueError(f"model.init_from: the new network has no place for the pretrained "
                     f"{', '.join(dropped)}" + (f"; set {' and '.join(keep)}" if keep else "")
                     + " to keep them.")
  out = {}
  for key, value in target.items():
    if key not in source:
      return source  # Structures differ: let the shape check reject it.
    out[key] = _without_pretraining_only_leaves(value, source[key], resample)
    if key == "pos_embedding" and hasattr(value, "shape") and out[key].shape != value.shape:
      out[key] = vit.resample_positions(jax.numpy.asarray(out[key]),
                                        int(round(value.shape[0] ** 0.5)), *resample)
  return out


def merge(params: PyTree, batch_stats: PyTree, pretrained: Pretrained,
          parts: tuple[str, ...] | None = None,
          resample: tuple[str, float] = ("bicubic", 0.0)) -> tuple[PyTree, PyTree]:
  """`params`/`batch_stats` with every part (of `parts`, None: any) whose shapes
  match taken from `pretrained`; raises when the backbones differ. `resample`:
  the new network's (model.pos_resample, model.pos_resample_offset)."""
  params, batch_stats = dict(params), dict(batch_stats)
  copied = []
  for name in params:
    if parts is not None and name not in parts:
      continue
    source = pretrained.params.get(name)
    if source is not None and name == "backbone":
      source = _without_pretraining_only_leaves(params[name], source, resample)
    if source is None or not _same_shapes(params[name], source):
      continue
    stats = pretrained.batch_stats.get(name)
    if name in batch_stats and (stats is None or not _same_shapes(batch_stats[name], stats)):
      continue
    params[name] = jax.tree.map(lambda t, s: s.astype(t.dtype), params[name], source)
    if name in batch_stats:
      batch_stats[name] = jax.tree.map(lambda t, s: s.astype(t.dtype), batch_stats[name], stats)
    copied.append(name)
  if "backbone" not in copied:
    raise ValueError(f"model.init_from={pretrained.source!r} holds a different backbone; "
                     "use the same model.backbone/width/stem/patch_size as that run.")
  logging.info("Initialised %s from %s (step %d).", ", ".join(copied), pretrained.source,
               pretrained.step)
  return params, batch_stats
