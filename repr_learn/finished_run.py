"""A trained (or still training) workdir, loaded back for evaluation and export.

The tools beside the trainer (`evaluate`, `embed`, `plot`) all start here:
DIR/config.json gives the run's resolved config, the network and objective are
rebuilt from it exactly as `train.py` builds them, and the whole `TrainState`
is restored from the latest checkpoint, so parameters, BatchNorm statistics and
the objective's own state (`extra`: teachers, prototypes, centres) are the
run's. Only `eval.*` and `data.*` may be overridden: they choose what to
evaluate on (another dataset, another data_dir), never what was trained.
"""

import copy
import dataclasses
import difflib
import json
import os
from typing import Any, Callable, Mapping, Sequence

from absl import app
from absl import flags
import jax
import ml_collections

from repr_learn import checkpointing
from repr_learn import config_schema
from repr_learn import objectives
from repr_learn import parallel
from repr_learn import train
from repr_learn import train_state as train_state_lib
from repr_learn import workdir as workdir_lib
from repr_learn.data import catalog
from repr_learn.data import sources
from repr_learn.evaluation import protocols

CHECKPOINT_DIR = "checkpoints"
# Config sections an override may touch: what to evaluate on, not what was trained.
OVERRIDABLE = ("eval", "data")
# Command-line spellings of an override: --config.data.name=x, or --data.name=x.
_OVERRIDE_PREFIXES = ("--config.",) + tuple(f"--{s}." for s in OVERRIDABLE)


class RunError(RuntimeError):
  """The workdir cannot be loaded: missing, not a repr_learn run, or untrained."""


class OverrideError(ValueError):
  """A `--config.x=y` override names an unknown or protected field, or a bad value."""


@dataclasses.dataclass
class FinishedRun:
  """A restored run: its config (with overrides), network, state and mesh.

  Attributes:
    workdir: the run directory (absolute).
    config: the run's config with the overrides applied.
    trained_config: the run's config as it was trained (no overrides).
    objective: the objective, holding the network, as `train.py` builds it.
    state: the `TrainState` of the latest checkpoint, replicated over `mesh`.
    step: that checkpoint's step.
    mesh: the device mesh.
    initial_state: rebuilds the run's exact random initial state (same seed),
      the reference that `config.eval.random_init_baseline` compares against.
  """
  workdir: str
  config: ml_collections.ConfigDict
  trained_config: ml_collections.ConfigDict
  objective: Any
  state: train_state_lib.TrainState
  step: int
  mesh: Any
  initial_state: Callable[[], train_state_lib.TrainState]

  @property
  def image_size(self) -> int:
    return self.config.augment.crop_size

  def eval_context(self) -> protocols.EvalContext:
    """The evaluation data (`config.eval.dataset` or `config.data`) and features."""
    return protocols.EvalContext(self.objective, self.config, self.mesh, self.image_size)


def config_path(workdir: str) -> str:
  return os.path.join(workdir, workdir_lib.CONFIG_FILE)


def checkpoint_steps(workdir: str) -> list[int]:
  """Steps of the finished checkpoints in DIR/checkpoints, read from the listing."""
  directory = os.path.join(workdir, CHECKPOINT_DIR)
  if not os.path.isdir(directory):
    return []
  return sorted(int(name) for name in os.listdir(directory) if name.isdigit())


def read_config(workdir: str) -> ml_collections.ConfigDict:
  """DIR/config.json as a locked ConfigDict.

  The run's values go over the current schema, so placeholders keep their types
  (an override like `eval.dataset=digits` type-checks) and fields added to the
  schema after the run was trained get their defaults, except the numerics
  whose default changed (`config_schema.LEGACY_VALUES`): those take the value
  the run was trained with.
  """
  workdir = os.path.abspath(os.path.expanduser(workdir))
  if not os.path.isdir(workdir):
    raise RunError(f"Workdir {workdir} does not exist; pass the --workdir of a "
                   "training run (python main.py ... --workdir=DIR).")
  path = config_path(workdir)
  if not os.path.isfile(path):
    raise RunError(f"{workdir} is not a repr_learn workdir (no {workdir_lib.CONFIG_FILE}); "
                   "pass the --workdir given to main.py.")
  try:
    with open(path) as f:
      saved = config_schema.with_legacy_values(json.load(f))
  except (OSError, ValueError) as e:
    raise RunError(f"{path} is unreadable ({e}); is {workdir} a repr_learn workdir?") from None
  config = config_schema.base_config()
  try:
    config.update({k: v for k, v in saved.items() if k != "objective"})
    objective = saved.get("objective", {})
    # Fields an objective gained after the run was trained take their defaults.
    name = objective.get("name")
    defaults = objectives.get_objective_class(name).defaults if name else {}
    config.objective = ml_collections.ConfigDict(
        {**config_schema.COMMON_OBJECTIVE_FIELDS, **defaults, **objective})
  except (AttributeError, TypeError, ValueError) as e:
    raise RunError(f"{path} does not fit this version's config schema ({e}); evaluate "
                   "it with the repr_learn version that trained it.") from None
  config.lock()
  return config


def _coerce(value: Any, kind: type | None) -> Any:
  """A command-line string as the field's type ('true' -> True, '3' -> 3)."""
  if not isinstance(value, str):
    return value
  if value in ("None", "none", "null"):
    return None
  if kind is bool:
    if value.lower() not in ("true", "1", "yes", "false", "0", "no"):
      raise ValueError(f"{value!r} is not a boolean (true/false)")
    return value.lower() in ("true", "1", "yes")
  if kind in (int, float):
    return kind(value)
  return value


def _parent(config: ml_collections.ConfigDict, dotted: str):
  """(the section holding `dotted`'s field, the field's name), checked."""
  parts = dotted.split(".")
  if len(parts) < 2 or parts[0] not in OVERRIDABLE:
    raise OverrideError(
        f"Cannot override {dotted!r}: only {', '.join(s + '.*' for s in OVERRIDABLE)} "
        "fields choose what a finished run is evaluated on; retrain to change the rest.")
  node = config
  for i, part in enumerate(parts):
    if not isinstance(node, ml_collections.ConfigDict) or part not in node:
      options = list(node.keys()) if isinstance(node, ml_collections.ConfigDict) else []
      close = difflib.get_close_matches(part, options, n=1, cutoff=0.5)
      hint = f"; did you mean {'.'.join(parts[:i] + [close[0]])!r}?" if close else ""
      raise OverrideError(f"Unknown config key {dotted!r}{hint}")
    if i < len(parts) - 1:
      node = node[part]
  return node, parts[-1]


def apply_overrides(config: ml_collections.ConfigDict,
                    overrides: Mapping[str, Any] | None) -> ml_collections.ConfigDict:
  """A copy of `config` with `{"eval.dataset": "digits", ...}` applied.

  Values may be strings from the command line; they are converted to the type
  of the field they replace.
  """
  config = copy.deepcopy(config)  # Placeholders keep their types (to_dict drops them).
  for dotted, value in (overrides or {}).items():
    node, leaf = _parent(config, dotted)
    try:
      node[leaf] = _coerce(value, node.get_type(leaf))
    except (TypeError, ValueError) as e:
      raise OverrideError(f"Bad value for {dotted}: {e}.") from None
  return config


def split_overrides(argv: Sequence[str]) -> tuple[list[str], dict[str, str]]:
  """Separates `--config.eval.dataset=digits` (or `--eval.dataset=digits`) from
  the other command-line arguments: (the rest, {"eval.dataset": "digits"})."""
  rest, overrides = [], {}
  for arg in argv:
    prefix = next((p for p in _OVERRIDE_PREFIXES if arg.startswith(p)), None)
    if prefix is None:
      rest.append(arg)
      continue
    start = len("--config.") if prefix == "--config." else len("--")
    key, sep, value = arg[start:].partition("=")
    if not sep:
      raise OverrideError(f"Override {arg!r} has no value; write {arg}=VALUE.")
    overrides[key] = value
  return rest, overrides


_HELP = ("--help", "-h", "--helpshort", "--helpfull")


def parse_flags(flag_values: flags.FlagValues, argv: Sequence[str]) -> list[str]:
  """Parses `argv` into the tool's own flags; returns the positional arguments.

  Each tool keeps its flags in its own `FlagValues`, so tools can be imported
  (and tested) together, and parsing again starts from the defaults.
  """
  if any(a in _HELP for a in argv[1:]):
    print(flag_values.get_help(include_special_flags=False))
    raise SystemExit(0)
  if flag_values.is_parsed():
    flag_values.unparse_flags()
  flag_values.set_gnu_getopt(True)  # Flags may follow positional arguments.
  try:
    return flag_values(list(argv))[1:]
  except flags.Error as e:
    raise SystemExit(f"error: bad command line: {e}") from None


def parse_tool_args(flag_values: flags.FlagValues, argv: Sequence[str]) -> dict[str, str]:
  """A tool's flags parsed from `argv`, positional arguments refused; returns
  the `--config.*` overrides."""
  args, overrides = split_overrides(argv)
  extra = parse_flags(flag_values, args)
  if extra:
    raise ValueError(f"Unexpected arguments {extra}; see --help.")
  return overrides


def run_tool(main: Callable[[list[str]], None]) -> None:
  """`app.run` for a tool: absl's own flags (--verbosity, ...) are parsed into
  absl's FLAGS, everything else reaches `main`, which parses its own flags."""

  def parse(argv):
    kept = [a for a in argv[1:] if a in _HELP]
    return flags.FLAGS([a for a in argv if a not in _HELP], known_only=True) + kept

  app.run(main, flags_parser=parse)


def _training_data_config(trained: ml_collections.ConfigDict,
                          config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """Where the pretraining split is found: the overridden `data` section when it
  still names the trained dataset (a moved data_dir), else the trained one."""
  return config.data if config.data.name == trained.data.name else trained.data


def load(workdir: str, overrides: Mapping[str, Any] | None = None) -> FinishedRun:
  """Restores the run in `workdir` from its latest checkpoint.

  Args:
    workdir: a directory written by `python main.py --workdir=DIR`.
    overrides: dotted `eval.*`/`data.*` keys to change, e.g.
      `{"eval.dataset": "cifar10", "data.data_dir": "/data/tfds"}`.

  Raises:
    RunError: the workdir is missing, not a run, or has no checkpoint yet.
    OverrideError: an override is unknown, protected or badly typed.
  """
  workdir = os.path.abspath(os.path.expanduser(workdir))
  trained = read_config(workdir)
  config = apply_overrides(trained, overrides)
  if not checkpoint_steps(workdir):
    raise RunError(f"{workdir} has no checkpoint yet; train first (python main.py "
                   f"--config=... --workdir={workdir}).")

  mesh = parallel.make_mesh()
  parallel.check_batch_size(config.eval.batch_size, mesh, "config.eval.batch_size")
  spec = catalog.get_spec(trained.data.name)
  train_source = sources.open_source(spec, train.training_split(trained, spec),
                                     _training_data_config(trained, config))
  setup = train.build_setup(trained, spec, len(train_source), mesh)
  objective, initial_state = setup.objective, setup.initial_state
  # The restore target only needs shapes and (replicated) shardings: tracing the
  # initialiser abstractly skips compiling and running it.
  target = jax.tree.map(
      lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=parallel.replicated(mesh)),
      jax.eval_shape(initial_state))
  # Read-only: a run still training (and saving) there is left undisturbed,
  # and the newest complete checkpoint is read whatever it is doing.
  try:
    state, _ = checkpointing.read_newest(os.path.join(workdir, CHECKPOINT_DIR), target)
  except FileNotFoundError:
    raise RunError(f"{workdir} has no checkpoint yet; train first.") from None
  return FinishedRun(workdir=workdir, config=config, trained_config=trained,
                     objective=objective, state=state, step=int(state.step), mesh=mesh,
                     initial_state=initial_state)


# What the tools turn into a one-line `error: ...` exit.
ERRORS = (RunError, OverrideError, checkpointing.CheckpointError, protocols.LabelsRequiredError,
          catalog.UnknownDatasetError, FileNotFoundError, KeyError, ValueError)


def error_message(error: BaseException) -> str:
  """The one-line message of one of `ERRORS` (KeyError's str() adds quotes)."""
  message = error.args[0] if isinstance(error, KeyError) and error.args else str(error)
  return f"error: {str(message).splitlines()[0] if message else type(error).__name__}"
