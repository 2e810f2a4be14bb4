"""The evaluation protocols' shared pieces: the `Protocol` base class, the
`EvalContext` every protocol reads the encoder through (one cached feature
pass), and the registry entry point `register`. The protocol modules import
this; `protocols` (the registry, and the loop that runs them) imports those.
"""

import contextlib
import json
from typing import Any, Callable, ClassVar

import ml_collections
import numpy as np

from repr_learn import compile_options
from repr_learn.data import catalog
from repr_learn.data import sources
from repr_learn.evaluation import features

EVAL_DIR = "eval"


class LabelsRequiredError(ValueError):
  """A protocol that needs labels met unlabeled evaluation data."""


def eval_data_config(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """`config.data` with `config.eval.dataset`/`data_dir`/`eval_dir` applied
  (transfer: read from TFDS, as `data.storage`'s resized copy is the training
  dataset's)."""
  data = ml_collections.ConfigDict(config.data.to_dict())
  if config.eval.dataset:
    data.name = config.eval.dataset
    data.storage = "tfds"
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
    self._compiler_options = compile_options.for_network(config.model, mesh)
    self._extract = features.FeatureExtractor(
        features.backbone_outputs(objective), mesh, image_size, config.eval.batch_size,
        objective.pixel_mean, objective.pixel_std, compiler_options=self._compiler_options)
    self._cache_key, self._cache = None, {}
    self._leading_dims = None
    self._kept = {}

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

  def kept(self, key, make: Callable[[], Any]):
    """`make()`, built once per context under `key`: compiled forwards that a
    protocol reuses at every periodic evaluation."""
    if key not in self._kept:
      self._kept[key] = make()
    return self._kept[key]

  def extractor(self, outputs: Callable, passthrough: tuple[str, ...] = ()
                ) -> features.FeatureExtractor:
    """A compiled forward for protocols that need more than backbone features."""
    return features.FeatureExtractor(outputs, self.mesh, self.image_size,
                                     self.config.eval.batch_size, self.objective.pixel_mean,
                                     self.objective.pixel_std, passthrough,
                                     compiler_options=self._compiler_options)

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
    needs_labels: whether it scores against the evaluation data's labels (kNN,
      probes, clustering); a property where the settings decide (zero-shot
      on another dataset needs none).
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


REGISTRY: dict[str, type[Protocol]] = {}


def register(cls: type[Protocol]) -> type[Protocol]:
  REGISTRY[cls.name] = cls
  return cls
