"""Evaluation protocols behind one interface, and the loop that runs them.

A protocol takes a (finished or in-training) state and returns a JSON-able dict
that lands in `DIR/eval/<name>.json`. Every protocol reads the encoder through
one `EvalContext`, which owns the evaluation dataset (the pretraining one, or
another for transfer: `config.eval.dataset`) and caches the backbone features of
the state last seen, so kNN, the linear probe, few-shot and RankMe share one
feature pass. The trainer and `python -m repr_learn.evaluate` call `run`; neither
knows any protocol by name.
"""

import contextlib
import dataclasses
import json
import os
from typing import Any, Callable, ClassVar

from absl import logging
import jax
import ml_collections
import numpy as np

from repr_learn.data import catalog
from repr_learn.data import sources
from repr_learn.evaluation import features

EVAL_DIR = "eval"


class LabelsRequiredError(ValueError):
  """A protocol that needs labels met unlabeled evaluation data."""


def eval_data_config(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """`config.data` with `config.eval.dataset`/`data_dir`/`eval_dir` applied (transfer)."""
  data = ml_collections.ConfigDict(config.data.to_dict())
  if config.eval.dataset:
    data.name = config.eval.dataset
    data.eval_dir = config.eval.eval_dir
    data.data_dir = config.eval.data_dir or (None if data.name == "image_folder"
                                             else config.data.data_dir)
  return data


class EvalContext:
  """The evaluation dataset and the shared, cached feature extraction."""

  def __init__(self, objective, config: ml_collections.ConfigDict, mesh, image_size: int,
               workdir: str | None = None):
    self.objective = objective
    self.workdir = workdir  # where protocols that draw pictures put DIR/plots/
    self.config = config
    self.mesh = mesh
    self.image_size = image_size
    self.data_config = eval_data_config(config)
    self.spec = catalog.get_spec(self.data_config.name)
    self._sources = {}
    self._extract = features.FeatureExtractor(
        features.backbone_outputs(objective), mesh, image_size, config.eval.batch_size,
        objective.pixel_mean, objective.pixel_std)
    self._cache_key, self._cache = None, {}
    self._leading_dims = None

  @contextlib.contextmanager
  def leading_dims(self, m: int | None):
    """Within it, `backbone_features` are the first `m` dimensions of the
    features (a Matryoshka size, `eval.dims`; None: all), so protocols run
    unchanged on them."""
    self._leading_dims = m
    try:
      yield
    finally:
      self._leading_dims = None

  @property
  def splits(self) -> tuple[str, str]:
    return self.spec.eval_train_split, self.spec.eval_test_split

  def source(self, split: str):
    if split not in self._sources:
      self._sources[split] = sources.open_source(self.spec, split, self.data_config)
    return self._sources[split]

  def extractor(self, outputs: Callable) -> features.FeatureExtractor:
    """A compiled forward for protocols that need more than backbone features."""
    return features.FeatureExtractor(outputs, self.mesh, self.image_size,
                                     self.config.eval.batch_size, self.objective.pixel_mean,
                                     self.objective.pixel_std)

  def backbone_features(self, state, split: str) -> tuple[np.ndarray, np.ndarray]:
    """(features [N, D], labels [N]) of `split`, computed once per state."""
    if self._cache_key is not state:
      self._cache_key, self._cache = state, {}
    if split not in self._cache:
      outputs, labels = self._extract(state, self.source(split))
      self._cache[split] = (outputs["features"], labels)
    x, y = self._cache[split]
    if self._leading_dims is None:
      return x, y
    if self._leading_dims > x.shape[1]:
      raise ValueError(f"config.eval.dims asks for {self._leading_dims} dimensions of features "
                       f"that have {x.shape[1]}; list sizes up to {x.shape[1]}.")
    return x[:, :self._leading_dims], y

  def require_labels(self, labels: np.ndarray, split: str, protocol: str) -> None:
    if np.any(labels < 0):
      raise LabelsRequiredError(
          f"The {protocol} protocol needs labels, but split {split!r} of "
          f"{self.spec.name!r} is unlabeled; drop it from config.eval.protocols or "
          "evaluate on a labeled dataset (--config.eval.dataset=...).")

  def unlabeled(self) -> bool:
    """Whether the evaluation data has no labels at all (a flat image folder;
    catalogued datasets are labeled)."""
    if self.spec.num_classes:
      return False
    labels = self.source(self.spec.eval_test_split).labels
    return bool(len(labels)) and bool(np.all(labels < 0))

  def labeled_features(self, state, split: str, protocol: str):
    x, y = self.backbone_features(state, split)
    self.require_labels(y, split, protocol)
    return x, y

  def num_classes(self, *labels: np.ndarray) -> int:
    return self.spec.num_classes or int(max(y.max() for y in labels)) + 1

  def describe(self) -> dict[str, Any]:
    return {"dataset": self.spec.name, "train_split": self.spec.eval_train_split,
            "test_split": self.spec.eval_test_split}


class Protocol:
  """Base class: subclasses set `name` and implement `evaluate`.

  Attributes (class level):
    name: the protocol's name in `config.eval.protocols` and its file name.
    headline: result keys logged as scalars (`<name>/<key>`) and compared with
      the random-init encoder when `config.eval.random_init_baseline` is set.
    needs_labels: whether it scores against labels (kNN, probes, clustering).
    reads_features: whether it reads only `EvalContext.backbone_features`, so
      that `eval.dims` can run it again on their leading dimensions.
  """
  name: ClassVar[str] = "base"
  headline: ClassVar[tuple[str, ...]] = ("top1",)
  needs_labels: ClassVar[bool] = False
  reads_features: ClassVar[bool] = False

  def __init__(self, context: EvalContext):
    self.context = context
    self.config = context.config

  def evaluate(self, state, step: int) -> dict[str, Any]:
    raise NotImplementedError

  def evaluate_by_dim(self, state, step: int) -> dict[str, dict[str, Any]]:
    """{str(m): the scalar results on the first m feature dimensions} for each
    m in `eval.dims` (Matryoshka sizes); {} when it lists none or the
    protocol reads more than the backbone features."""
    if not (self.reads_features and self.config.eval.dims):
      return {}
    by_dim = {}
    for m in self.config.eval.dims:
      with self.context.leading_dims(m):
        result = self.evaluate(state, step)
      by_dim[str(m)] = {k: v for k, v in result.items()
                        if isinstance(v, (int, float)) and not isinstance(v, bool)}
    return by_dim

  def settings(self) -> dict[str, Any]:
    """What the result depends on besides the weights: the evaluation section
    (less what only schedules protocols) and the evaluation data. A cached
    random-init result is reused only under the same settings."""
    scheduling = ("protocols", "periodic_protocols", "every_steps", "random_init_baseline",
                  "online_probe", "online_probe_lr")
    eval_config = {k: v for k, v in self.config.eval.to_dict().items() if k not in scheduling}
    return json.loads(json.dumps({"eval": eval_config, "data": self.context.data_config.to_dict(),
                                  "seed": self.config.seed}, default=str))


_REGISTRY: dict[str, type[Protocol]] = {}


def register(cls: type[Protocol]) -> type[Protocol]:
  _REGISTRY[cls.name] = cls
  return cls


def available() -> list[str]:
  _load_builtin()
  return sorted(_REGISTRY)


def _load_builtin() -> None:
  # Protocol modules register themselves; imported here to avoid import cycles.
  from repr_learn.evaluation import clustering_protocol  # pylint: disable=g-import-not-at-top,unused-import
  from repr_learn.evaluation import knn_protocol  # pylint: disable=g-import-not-at-top,unused-import
  from repr_learn.evaluation import probe_protocols  # pylint: disable=g-import-not-at-top,unused-import
  from repr_learn.evaluation import finetune_protocol  # pylint: disable=g-import-not-at-top,unused-import
  from repr_learn.evaluation import reconstruction_protocol  # pylint: disable=g-import-not-at-top,unused-import
  from repr_learn.evaluation import plots_protocol  # pylint: disable=g-import-not-at-top,unused-import


def parse_names(names: str) -> list[str]:
  """'knn, linear' -> ['knn', 'linear'], each checked against the registry."""
  _load_builtin()
  parsed = [n.strip() for n in names.split(",") if n.strip()]
  for name in parsed:
    if name not in _REGISTRY:
      raise ValueError(f"Unknown evaluation protocol {name!r}; valid: {available()}.")
  return parsed


def build(names: str, context: EvalContext, *, skip_unlabeled: bool = False) -> list[Protocol]:
  """The protocols `names` on `context`'s data. With `skip_unlabeled`, those
  that need labels are left out (with a message) when that data has none, so
  an unlabeled image folder still pretrains; otherwise they fail when run."""
  chosen = [_REGISTRY[name] for name in parse_names(names)]
  needing = [cls.name for cls in chosen if cls.needs_labels]
  # A supervised objective (fine-tuning) on unlabeled data is an error, which
  # its protocol reports; only pretraining goes ahead without labels.
  if (skip_unlabeled and needing and not context.objective.trains_on_labels
      and context.unlabeled()):
    logging.warning("The evaluation data (%s) is unlabeled: skipping %s. Evaluate on labeled "
                    "data with --config.eval.dataset=... (or data.eval_dir for image folders).",
                    context.spec.name, ", ".join(needing))
    chosen = [cls for cls in chosen if not cls.needs_labels]
  return [cls(context) for cls in chosen]


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
    keys = _REGISTRY[name].headline
    for key in keys + tuple(f"random_init_{k}" for k in keys):
      value = result.get(key)
      if isinstance(value, (int, float)):
        out[f"{name}/{key}"] = float(value)
    for m, at_m in result.get("by_dim", {}).items():
      out.update({f"{name}/{key}_dim{m}": float(at_m[key]) for key in keys if key in at_m})
  return out
