"""Evaluation protocols behind one interface, and the loop that runs them.

A protocol takes a (finished or in-training) state and returns a JSON-able dict
that lands in `DIR/eval/<name>.json`. Every protocol reads the encoder through
one `EvalContext`, which owns the evaluation dataset (the pretraining one, or
another for transfer: `config.eval.dataset`) and caches the backbone features of
the state last seen, so kNN, the linear probe, few-shot and RankMe share one
feature pass. The trainer and `python -m repr_learn.evaluate` call `run`; neither
knows any protocol by name.
"""

import dataclasses
import json
import os
from typing import Any, Callable

from absl import logging
import jax

# The protocols register themselves on import (`protocol_base.register`).
from repr_learn.evaluation import clustering_protocol  # pylint: disable=unused-import
from repr_learn.evaluation import finetune_protocol  # pylint: disable=unused-import
from repr_learn.evaluation import image_text_protocols  # pylint: disable=unused-import
from repr_learn.evaluation import knn_protocol  # pylint: disable=unused-import
from repr_learn.evaluation import plots_protocol  # pylint: disable=unused-import
from repr_learn.evaluation import probe_protocols  # pylint: disable=unused-import
from repr_learn.evaluation import protocol_base
from repr_learn.evaluation import reconstruction_protocol  # pylint: disable=unused-import

# The base pieces, as the trainer and the tools name them.
EVAL_DIR = protocol_base.EVAL_DIR
EvalContext = protocol_base.EvalContext
LabelsRequiredError = protocol_base.LabelsRequiredError
Protocol = protocol_base.Protocol
eval_data_config = protocol_base.eval_data_config


def available() -> list[str]:
  return sorted(protocol_base.REGISTRY)


def parse_names(names: str) -> list[str]:
  """'knn, linear' -> ['knn', 'linear'], each checked against the registry."""
  parsed = [n.strip() for n in names.split(",") if n.strip()]
  for name in parsed:
    if name not in protocol_base.REGISTRY:
      raise ValueError(f"Unknown evaluation protocol {name!r}; valid: {available()}.")
  return parsed


def build(names: str, context: EvalContext, *, skip_unlabeled: bool = False) -> list[Protocol]:
  """The protocols `names` on `context`'s data. With `skip_unlabeled`, those
  that need labels are left out (with a message) when that data has none, so
  an unlabeled image folder still pretrains; otherwise they fail when run."""
  chosen = [protocol_base.REGISTRY[name](context) for name in parse_names(names)]
  needing = [p.name for p in chosen if p.needs_labels]
  # A supervised objective (fine-tuning) on unlabeled data is an error, which
  # its protocol reports; only pretraining goes ahead without labels.
  if (skip_unlabeled and needing and not context.objective.trains_on_labels
      and context.unlabeled()):
    logging.warning("The evaluation data (%s) is unlabeled: skipping %s. Evaluate on labeled "
                    "data with --config.eval.dataset=... (or data.eval_dir for image folders).",
                    context.spec.name, ", ".join(needing))
    chosen = [p for p in chosen if not p.needs_labels]
  return chosen


def result_path(workdir: str, name: str) -> str:
  return os.path.join(workdir, EVAL_DIR, f"{name}.json")


def write(workdir: str, name: str, result: dict[str, Any]) -> None:
  if jax.process_index() != 0:
    return
  os.makedirs(os.path.join(workdir, EVAL_DIR), exist_ok=True)
  with open(result_path(workdir, name), "w") as f:
    json.dump(result, f, indent=2, sort_keys=True)


@dataclasses.dataclass
class Baseline:
  """The randomly initialised encoder, rebuilt only when a result is not cached."""
  make_state: Callable[[], Any]
  _state: Any = None

  def state(self):
    if self._state is None:
      self._state = self.make_state()
    return self._state


def _random_init_result(protocol: Protocol, baseline: Baseline, workdir: str) -> dict[str, Any]:
  """The protocol on the random-init encoder, cached in
  `eval/<name>_random_init.json` with the settings it ran under (`settings`):
  evaluating again with other settings (e.g. `eval.linear_features`, `knn_k`)
  recomputes it."""
  cache = result_path(workdir, f"{protocol.name}_random_init")
  settings = protocol.settings()
  if os.path.exists(cache):
    with open(cache) as f:
      cached = json.load(f)
    if cached.get("settings") == settings:
      return cached
  result = protocol.evaluate(baseline.state(), 0)
  write(workdir, f"{protocol.name}_random_init", {**result, "settings": settings})
  return result


def run(protocols: list[Protocol], state, step: int, workdir: str | None, *,
        baseline: Baseline | None = None,
        stop: Callable[[], bool] | None = None) -> dict[str, dict[str, Any]]:
  """Runs each protocol, adds `random_init_<key>` beside its headline figures
  when a baseline is given, writes `DIR/eval/<name>.json` when `workdir` is set.
  Before each protocol `stop()` may end the loop early (a pre-emption)."""
  results = {}
  for protocol in protocols:
    if stop is not None and stop():
      break
    # The reference first: a protocol that draws into DIR/plots/ then leaves the
    # trained encoder's picture there.
    reference = (_random_init_result(protocol, baseline, workdir)
                 if baseline is not None and protocol.headline else {})
    result = protocol.evaluate(state, step)
    result.update({f"random_init_{k}": reference[k] for k in protocol.headline
                   if k in reference})
    by_dim = protocol.evaluate_by_dim(state, step)
    if by_dim:
      result["by_dim"] = by_dim
    if workdir is not None:
      write(workdir, protocol.name, result)
    logging.info("%s at step %d: %s", protocol.name, step,
                 ", ".join(f"{k} {result[k]:.2f}" for k in protocol.headline if k in result))
    results[protocol.name] = result
  return results


def scalars(results: dict[str, dict[str, Any]]) -> dict[str, float]:
  """Headline figures (and their random-init references) as `<name>/<key>`
  scalars, and those at each `eval.dims` size as `<name>/<key>_dim<m>`."""
  out = {}
  for name, result in results.items():
    keys = protocol_base.REGISTRY[name].headline
    for key in keys + tuple(f"random_init_{k}" for k in keys):
      value = result.get(key)
      if isinstance(value, (int, float)):
        out[f"{name}/{key}"] = float(value)
    for m, at_m in result.get("by_dim", {}).items():
      out.update({f"{name}/{key}_dim{m}": float(at_m[key]) for key in keys if key in at_m})
  return out
