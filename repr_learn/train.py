"""The trainer: one loop for every objective.

`train_and_evaluate(config, workdir)` validates the config, builds the mesh,
data, network and objective, creates or restores the sharded state, runs the
compiled train step, checkpoints, logs and evaluates. It never mentions a
particular method.
"""

import copy
import dataclasses
import functools
import json
import math
import os
from typing import Any

from absl import logging
import jax
import ml_collections
import numpy as np
import optax

from repr_learn import checkpointing
from repr_learn import compile_options
from repr_learn import config_checks
from repr_learn import config_schema
from repr_learn import metric_logging
from repr_learn import models
from repr_learn import objectives
from repr_learn import online_probe
from repr_learn import optim
from repr_learn import parallel
from repr_learn import preemption
from repr_learn import pretrained as pretrained_lib
from repr_learn import steps
from repr_learn import train_state as train_state_lib
from repr_learn import workdir as workdir_lib
from repr_learn.data import augment
from repr_learn.data import captions
from repr_learn.data import catalog
from repr_learn.data import pipeline
from repr_learn.data import sources
from repr_learn.data import view_recipes
from repr_learn.evaluation import features
from repr_learn.evaluation import protocols


class NonFiniteLossError(FloatingPointError):
  """Training diverged; the checkpoint before the divergence is kept."""


@dataclasses.dataclass(frozen=True)
class Durations:
  """Training length and periods, resolved once from the config."""
  steps_per_epoch: int
  total_steps: int
  warmup_steps: int


@dataclasses.dataclass
class RunResult:
  state: train_state_lib.TrainState
  eval: dict[str, Any]
  # Why the run stopped before its last step (checkpoint saved), or None.
  stopped: preemption.StopReason | None = None


def resolve_durations(config: ml_collections.ConfigDict, num_train_examples: int) -> Durations:
  steps_per_epoch = num_train_examples // config.batch_size
  if steps_per_epoch == 0 and config.num_steps is None:
    raise ValueError(f"config.batch_size={config.batch_size} exceeds the "
                     f"{num_train_examples} training examples; lower it.")
  steps_per_epoch = max(steps_per_epoch, 1)
  if config.num_steps is not None:
    total = config.num_steps
  else:
    total = int(math.ceil(config.num_epochs * steps_per_epoch))
  warmup = config.optimizer.warmup_steps
  if warmup is None:
    warmup = int(round(config.optimizer.warmup_epochs * steps_per_epoch))
  return Durations(steps_per_epoch=steps_per_epoch, total_steps=max(total, 1),
                   warmup_steps=warmup)


def training_split(config: ml_collections.ConfigDict, spec: catalog.DatasetSpec) -> str:
  """The split the run trains on: the labeled one for supervised objectives
  (fine-tuning), the pretraining split otherwise."""
  cls = objectives.get_objective_class(config.objective.name)
  return spec.eval_train_split if cls.trains_on_labels else spec.pretrain_split


def build_objective(config: ml_collections.ConfigDict, *, total_steps: int = 1,
                    steps_per_epoch: int = 1, num_examples: int = 0,
                    mesh=None) -> objectives.base.Objective:
  cls = objectives.get_objective_class(config.objective.name)
  # SyncBN of the per-device mode; the jit mode's statistics are global anyway.
  sync_bn = config.parallel.mode == "pmap" and config.parallel.sync_batchnorm

  token_format = _token_format(config)

  def network(bn_axis_name):
    return models.build_network(config.model, image_size=config.augment.crop_size,
                                decoder_output_dim=cls.decoder_output_dim(config),
                                bn_axis_name=bn_axis_name,
                                matryoshka_dims=tuple(config.objective.matryoshka_dims),
                                matryoshka_efficient=config.objective.matryoshka_efficient,
                                token_format=token_format)

  views = view_recipes.build_views(config.augment)
  objective = cls(config=config.objective,
                  network=network(parallel.DATA_AXIS if sync_bn else None),
                  local_bn_network=network(None) if sync_bn else None, views=views,
                  total_steps=total_steps, steps_per_epoch=steps_per_epoch,
                  num_examples=num_examples, mesh=mesh,
                  per_view_batchnorm=config.model.per_view_batchnorm,
                  pixel_mean=tuple(config.model.pixel_mean),
                  pixel_std=tuple(config.model.pixel_std))
  return objective


def _token_format(config: ml_collections.ConfigDict) -> models.text.TokenFormat | None:
  """What a text tower reads from the captioned data (None without one, or
  without captions: the network then says what is missing)."""
  spec = catalog.CATALOG.get(config.data.name)
  if config.model.text.size == "none" or spec is None or not spec.captioned:
    return None
  tokenizer = captions.from_config(config.data)
  return models.text.TokenFormat(vocab_size=tokenizer.vocab_size,
                                 context_length=config.data.context_length,
                                 eot_id=tokenizer.eot_id)


@dataclasses.dataclass(frozen=True)
class Setup:
  """A run's objective, optimizer and initial state, built from its config.

  The trainer and `repr_learn.finished_run` both build runs here, so the state
  tree a checkpoint is restored into always matches the one that was saved.
  Its compiled programs (initialiser, train step) are built once per Setup.
  """
  config: ml_collections.ConfigDict
  durations: Durations
  objective: objectives.base.Objective
  schedule: optax.Schedule
  tx: optax.GradientTransformation
  probe: online_probe.OnlineProbe | None
  mesh: Any
  _compiled: dict = dataclasses.field(default_factory=dict, compare=False, repr=False)

  def compiled_train_step(self, state: train_state_lib.TrainState) -> steps.TrainStep:
    """The jitted step over the mesh: state kept in its sharding and donated,
    the batch split over the data axis."""
    state_sharding = jax.tree.map(lambda x: x.sharding, state)
    key = ("train_step", jax.tree.structure(state_sharding), tuple(jax.tree.leaves(state_sharding)))
    if key not in self._compiled:
      per_device = self.config.parallel.mode == "pmap"
      step = steps.make_train_step(self.objective, self.tx, self.schedule,
                                   self.objective.pixel_mean, self.objective.pixel_std,
                                   probe=self.probe,
                                   device_axis=parallel.DATA_AXIS if per_device else None)
      self._compiled[key] = jax.jit(
          parallel.per_device_step(step, self.mesh) if per_device else step,
          in_shardings=(state_sharding, parallel.batch_sharded(self.mesh)),
          out_shardings=(state_sharding, parallel.replicated(self.mesh)),
          donate_argnums=(0,),
          compiler_options=compile_options.for_network(self.config.model, self.mesh))
    return self._compiled[key]

  def _extra_shardings(self):
    """The per-device (pmap) step takes the state replicated; the jit step
    keeps dataset-sized state split over the devices."""
    return self.objective.extra_shardings if self.config.parallel.mode == "jit" else None

  def abstract_batch(self, spec: catalog.DatasetSpec) -> dict[str, jax.ShapeDtypeStruct]:
    """Shapes and dtypes of a global training batch of `spec` (compile-only tools)."""
    shapes = spec.example_shapes(self.objective.pairs_with_neighbours,
                                 (self.config.data.max_captions, self.config.data.context_length))
    return {k: jax.ShapeDtypeStruct((self.config.batch_size,) + shape, dtype)
            for k, (shape, dtype) in shapes.items()}

  def abstract_state(self) -> train_state_lib.TrainState:
    """Shapes, dtypes and shardings of `initial_state()`, without creating it
    (compile-only tools: memory of a recipe too large for this host)."""
    abstract = jax.eval_shape(self.initial_state)
    placed = train_state_lib.shardings(abstract, self.mesh, self._extra_shardings())
    return jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s),
                        abstract, placed)

  def initial_state(self, pretrained: pretrained_lib.Pretrained | None = None
                    ) -> train_state_lib.TrainState:
    """The seed's initial state (random weights, or `pretrained`'s where they fit)."""
    probe_init = self.probe.init if self.probe is not None else None
    rng = jax.random.PRNGKey(self.config.seed)
    image_size = self.config.augment.crop_size
    extra_shardings = self._extra_shardings()
    if pretrained is not None:
      init_fn = _init_fn(self.objective, self.config, image_size, pretrained)
      return train_state_lib.create(init_fn, self.tx, rng, self.mesh, probe_init,
                                    extra_shardings)
    if "init" not in self._compiled:
      self._compiled["init"] = train_state_lib.initializer(
          _init_fn(self.objective, self.config, image_size), self.tx, self.mesh, probe_init,
          extra_shardings)
    return self._compiled["init"](rng)


def build_setup(config: ml_collections.ConfigDict, spec: catalog.DatasetSpec,
                num_examples: int, mesh) -> Setup:
  """Durations, objective, schedule, optimizer and online probe of `config`
  trained on `num_examples` examples of `spec`.

  Memoised per process on the config's content, the example count and the
  mesh: a run that is stopped and resumed in one process (tests, notebooks,
  the random-init baseline) reuses the compiled programs instead of tracing,
  lowering and loading them again (about 6 s per run of a smoke config on CPU).
  """
  return _build_setup(_ConfigKey(config), spec, num_examples, mesh)


class _ConfigKey:
  """A private copy of a config, hashed and compared by its content."""

  def __init__(self, config: ml_collections.ConfigDict):
    self.config = copy.deepcopy(config)
    self._key = json.dumps(config.to_dict(), sort_keys=True, default=str)

  def __hash__(self) -> int:
    return hash(self._key)

  def __eq__(self, other) -> bool:
    return isinstance(other, _ConfigKey) and self._key == other._key


@functools.lru_cache(maxsize=8)
def _build_setup(key: _ConfigKey, spec: catalog.DatasetSpec, num_examples: int,
                 mesh) -> Setup:
  config = key.config
  durations = resolve_durations(config, num_examples)
  objective = build_objective(config, total_steps=durations.total_steps,
                              steps_per_epoch=durations.steps_per_epoch,
                              num_examples=num_examples, mesh=mesh)
  peak_lr = optim.scaled_learning_rate(config.optimizer, config.batch_size)
  schedule = optim.schedule_from_config(config.optimizer, peak_lr, durations.warmup_steps,
                                        durations.total_steps, durations.steps_per_epoch)
  tx = optim.make_optimizer(config.optimizer, schedule, durations.total_steps, peak_lr)
  return Setup(config=config, durations=durations, objective=objective, schedule=schedule,
               tx=tx, probe=_online_probe(config, spec, objective), mesh=mesh)


def _init_fn(objective, config, image_size, pretrained=None):
  """rng -> (params, batch_stats, extra), traced inside the sharded init."""

  def init(rng):
    model_rng, extra_rng = jax.random.split(rng)
    dummy = jax.numpy.zeros((2, image_size, image_size, 3), jax.numpy.float32)
    variables = objective.network.init(model_rng, dummy, train=False)
    params = variables["params"]
    batch_stats = variables.get("batch_stats", {})
    if pretrained is not None:
      params, batch_stats = pretrained_lib.merge(
          params, batch_stats, pretrained, objective.pretrained_parts,
          (config.model.pos_resample, config.model.pos_resample_offset))
    extra = objective.init_extra(extra_rng, {"params": params, "batch_stats": batch_stats})
    return params, batch_stats, extra

  return init


def _setup_from_dataset(objective, state, source, config, mesh, image_size):
  """Gives the objective its pass over the training split before step 0
  (SCAN's neighbour mining, DEC's k-means initialisation)."""
  name = objective.dataset_outputs

  def outputs(params, batch_stats, extra, x):
    del extra
    out, _ = objective.apply(params, batch_stats, x, train=False,
                             method=objective.network.project)
    return {name: out[name]}

  extract = features.FeatureExtractor(outputs, mesh, image_size, config.eval.batch_size,
                                      objective.pixel_mean, objective.pixel_std,
                                      compiler_options=compile_options.for_network(
                                          config.model, mesh))
  values, _ = extract(state, source)
  logging.info("Setting up %s from the %s of %d training examples.", objective.name,
               name, len(values[name]))
  params, extra = objective.setup_from_dataset(
      parallel.local_copy(state.params), parallel.local_copy(state.extra), values[name])
  return state.replace(params=jax.device_put(params, parallel.replicated(mesh)),
                       extra=jax.device_put(extra, parallel.replicated(mesh)))


def _online_probe(config: ml_collections.ConfigDict, spec: catalog.DatasetSpec,
                  objective) -> online_probe.OnlineProbe | None:
  """The online linear probe, when asked for and the classes are known."""
  if not config.eval.online_probe or not spec.num_classes:
    return None
  return online_probe.OnlineProbe(num_classes=spec.num_classes,
                                  feature_dim=objective.network.backbone.num_features,
                                  learning_rate=config.eval.online_probe_lr)


def _check_finite(state: train_state_lib.TrainState, last_checkpoint: int | None) -> None:
  bad = int(state.first_nonfinite_step)
  if bad >= 0:
    kept = (f"the checkpoint at step {last_checkpoint} is kept"
            if last_checkpoint is not None else "no checkpoint was written")
    raise NonFiniteLossError(
        f"Loss or gradients became non-finite at step {bad}; {kept}. Lower "
        "optimizer.base_lr, raise warmup, or check the data, then rerun to resume.")


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str, *,
                       overwrite: bool = False,
                       interrupt_after_steps: int | None = None,
                       notice: preemption.Notice | None = None) -> RunResult:
  """Trains `config` in `workdir`, resuming from its latest checkpoint.

  Args:
    config: the experiment (see `repr_learn.config_schema`).
    workdir: where checkpoints, metrics.jsonl, config.json and eval/ live.
    overwrite: move a different run found in `workdir` aside instead of failing.
    interrupt_after_steps: stop (after saving) once this invocation has taken
      this many steps; for schedulers with time limits and for resume tests.
    notice: the pre-emption notice to honour (`main.py` enters one before JAX
      starts); by default one entered for the duration of this call.

  Returns:
    The final state and the evaluation results; `stopped` says why a run that
    was interrupted or pre-empted (SIGTERM at any phase) ended early, with its
    last checkpoint saved.
  """
  config_checks.validate(config)
  config = config_schema.with_absolute_paths(config)  # config.json works from anywhere
  workdir = os.path.abspath(workdir)
  with notice or preemption.Notice() as notice, workdir_lib.held(workdir):
    config = workdir_lib.keep_trained_numerics(workdir, config)
    workdir_lib.claim(workdir, config, overwrite=overwrite)
    return _train_and_evaluate(config, workdir, interrupt_after_steps, notice)


def _train_and_evaluate(config: ml_collections.ConfigDict, workdir: str,
                        interrupt_after_steps: int | None,
                        notice: preemption.Notice) -> RunResult:
  """The run itself, in a workdir this process holds."""
  mesh = parallel.make_mesh()
  parallel.check_batch_size(config.batch_size, mesh)
  parallel.check_batch_size(config.eval.batch_size, mesh, "config.eval.batch_size")

  spec = catalog.get_spec(config.data.name)
  train_source = sources.open_source(spec, training_split(config, spec), config.data)
  setup = build_setup(config, spec, len(train_source), mesh)
  durations = setup.durations

  objective = setup.objective
  image_size = config.augment.crop_size
  if objective.needs_init_from() and not config.model.init_from:
    raise ValueError(f"{config.objective.name} trains on a pretrained encoder: set "
                     "--config.model.init_from=DIR, the workdir of a finished "
                     "pretraining run with the same backbone.")
  state = setup.initial_state()

  checkpointing.check_room(workdir, state, config.keep_checkpoints)
  checkpointer = checkpointing.Checkpointer(
      os.path.join(workdir, "checkpoints"), keep=config.keep_checkpoints,
      every_steps=config.checkpoint_every_steps)
  restored = checkpointer.restore_latest(state)
  if restored is not None:
    state, data_state = restored
    logging.info("Resumed from step %d in %s.", int(state.step), workdir)
  else:
    # A fresh start; a resumed run has all of this in its checkpoint.
    if config.model.init_from:
      state = setup.initial_state(pretrained_lib.load(config.model.init_from))
    if objective.dataset_outputs:
      state = _setup_from_dataset(objective, state, train_source, config, mesh, image_size)

  neighbours = None
  if objective.pairs_with_neighbours:
    neighbours = np.asarray(parallel.local_copy(state.extra["neighbours"]))
  data_iter = pipeline.make_train_iterator(
      train_source, global_batch_size=config.batch_size,
      process_index=jax.process_index(), process_count=jax.process_count(),
      seed=config.seed, worker_count=config.data.worker_count, neighbours=neighbours)
  if restored is not None:
    data_iter.set_state(data_state)
  start_step = int(state.step)
  last_checkpoint = start_step if restored is not None else None

  writer = metric_logging.create_writer(workdir, start_step)
  if start_step == 0:
    writer.write_hparams(_flatten(config.to_dict()))

  train_step = setup.compiled_train_step(state)
  eval_context = protocols.EvalContext(objective, config, mesh, image_size, workdir)
  final_protocols = protocols.build(config.eval.protocols, eval_context, skip_unlabeled=True)
  periodic_protocols = (protocols.build(config.eval.periodic_protocols, eval_context,
                                        skip_unlabeled=True)
                        if config.eval.every_steps else [])
  # Written once the run has started, so a failed start-up leaves no trace.
  workdir_lib.write_config(workdir, config)
  progress = metric_logging.ProgressLine(durations.total_steps, config.batch_size, start_step)
  pending_metrics = []
  step = start_step
  stop = preemption.StopConditions(start_step, notice, after_steps=interrupt_after_steps)
  stopped = stop.at_safe_point()  # a notice during start-up: nothing to save yet
  try:
    # Logged once the run is under way (the launch tests wait for this line).
    logging.info("Training %s on %s for %d steps (%d per epoch), global batch %d "
                 "on %d devices.", config.objective.name, config.data.name,
                 durations.total_steps, durations.steps_per_epoch, config.batch_size,
                 mesh.devices.size)
    while step < durations.total_steps and stopped is None:
      batch = parallel.global_batch(next(data_iter), mesh)
      state, metrics = train_step(state, batch)
      step += 1
      pending_metrics.append(metrics)
      if step % config.log_every_steps == 0 or step == durations.total_steps:
        _check_finite(state, last_checkpoint)
        summary = _mean_metrics(pending_metrics)
        pending_metrics = []
        summary.update(progress(step, summary["train/loss"]))
        writer.write_scalars(step, summary)
      stopped = stop.reason(step)
      if (step % config.checkpoint_every_steps == 0 or step == durations.total_steps
          or stopped is not None):
        _check_finite(state, last_checkpoint)
        if checkpointer.save(state, pipeline.iterator_state(data_iter), force=True):
          last_checkpoint = step
      if (config.eval.every_steps and step % config.eval.every_steps == 0
          and step < durations.total_steps and stopped is None):
        periodic = protocols.run(periodic_protocols, state, step, workdir=None)
        writer.write_scalars(step, protocols.scalars(periodic))
  finally:
    # Pending asynchronous saves finish even when the run stops on an error.
    checkpointer.close()
  if stopped is not None:
    logging.warning("Stopped at step %d (%s) %s; rerun the same command to resume.", step,
                    stopped.value, "with its checkpoint saved" if step > start_step
                    else "before taking a step")
    writer.flush()
    return RunResult(state=state, eval={}, stopped=stopped)

  # The same seed rebuilds the exact random initial weights (the originals were
  # donated; `model.init_from` weights are not random).
  baseline = (protocols.Baseline(setup.initial_state)
              if config.eval.random_init_baseline else None)
  logging.info("Evaluating step %d: %s.", step, config.eval.protocols)
  results = protocols.run(final_protocols, state, step, workdir, baseline=baseline,
                          stop=lambda: stop.at_safe_point() is not None)
  if stop.at_safe_point() is not None and len(results) < len(final_protocols):
    logging.warning("Stopped during the final evaluation (preempted) after %s; rerun the "
                    "same command to evaluate step %d again.",
                    ", ".join(results) or "no protocol", step)
    return RunResult(state=state, eval=results, stopped=preemption.StopReason.PREEMPTED)
  writer.write_scalars(step, protocols.scalars(results))
  writer.flush()
  return RunResult(state=state, eval=results)


def _mean_metrics(metrics: list[dict[str, jax.Array]]) -> dict[str, float]:
  stacked = jax.device_get(metrics)
  summary = {f"train/{k}": float(np.mean([m[k] for m in stacked])) for k in stacked[0]}
  if summary.pop("train/online_labeled", None) == 0.0:
    # Unlabeled data: the online probe had nothing to learn from.
    summary = {k: v for k, v in summary.items() if not k.startswith("train/online_")}
  return summary


def _flatten(tree: dict, prefix: str = "") -> dict[str, Any]:
  flat = {}
  for k, v in tree.items():
    if isinstance(v, dict):
      flat.update(_flatten(v, f"{prefix}{k}."))
    else:
      flat[f"{prefix}{k}"] = v if isinstance(v, (int, float, str, bool)) else str(v)
  return flat
