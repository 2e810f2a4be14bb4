"""Compares runs in one markdown table: `python -m repr_learn.report runs/*`.

One row per workdir: the method, backbone, dataset and steps trained, then
every evaluation figure found in DIR/eval/*.json, each with the same protocol
on the randomly initialised encoder in parentheses when it was measured, and
"–" where a protocol has not been run. Paths that are not workdirs are skipped
with a warning. Only JSON files are read (no JAX, no TensorFlow), so this is
instant and safe to run beside training jobs.
"""

import json
import os
import sys
from typing import Any, Callable, Sequence

# The workdir contract (README, "Outputs of a run").
CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.jsonl"
EVAL_DIR = "eval"
CHECKPOINT_DIR = "checkpoints"
MISSING = "–"
RANDOM_INIT = "random_init_"


def _flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
  flat = {}
  for key, value in tree.items():
    if isinstance(value, dict):
      flat.update(_flatten(value, f"{prefix}{key}."))
    else:
      flat[f"{prefix}{key}"] = value
  return flat


def _keys(*candidates: str) -> Callable[[dict[str, Any]], str | None]:
  """The first of `candidates` (dotted for nested results) that a result has."""

  def find(flat: dict[str, Any]) -> str | None:
    return next((k for k in candidates if k in flat), None)

  return find


# (column header, protocol file in DIR/eval, how to find the figure in it).
FIGURES = (
    ("kNN top-1", "knn", _keys("top1")),
    ("linear top-1", "linear", _keys("top1")),
    ("10-shot top-1", "fewshot", _keys("10shot_top1")),
    ("RankMe", "rankme", _keys("rankme")),
    ("k-means ACC", "clustering", _keys("kmeans_acc", "kmeans.acc")),
    ("fine-tune top-1", "finetune", _keys("top1")),
    ("zero-shot top-1", "zeroshot", _keys("top1")),
    ("I->T R@1", "retrieval", _keys("image_to_text_r@1")),
)
HEADER = ("run", "method", "backbone", "dataset", "steps") + tuple(
    f"{title} (random init)" for title, _, _ in FIGURES)


class NotAWorkdirError(ValueError):
  """The path holds no repr_learn run."""


def _read_json(path: str) -> Any:
  with open(path) as f:
    return json.load(f)


def _steps(workdir: str) -> str:
  """The newest checkpoint's step, else the last logged step."""
  directory = os.path.join(workdir, CHECKPOINT_DIR)
  if os.path.isdir(directory):
    steps = [int(n) for n in os.listdir(directory) if n.isdigit()]
    if steps:
      return str(max(steps))
  path = os.path.join(workdir, METRICS_FILE)
  if os.path.isfile(path):
    with open(path) as f:
      lines = [line for line in f if line.strip()]
    if lines:
      return str(json.loads(lines[-1])["step"])
  return MISSING


def _backbone(model: dict[str, Any]) -> str:
  name = str(model.get("backbone", MISSING))
  if name.startswith("resnet") and "width" in model:
    return f"{name} (width {model['width']})"
  if name.startswith("vit") and "patch_size" in model:
    return f"{name}/{model['patch_size']}"
  return name


def _figure(workdir: str, protocol: str, find: Callable) -> str:
  path = os.path.join(workdir, EVAL_DIR, f"{protocol}.json")
  try:
    flat = _flatten(_read_json(path))
  except (OSError, ValueError, AttributeError):
    return MISSING
  key = find(flat)
  if key is None or not isinstance(flat[key], (int, float)):
    return MISSING
  cell = f"{flat[key]:.1f}"
  reference = flat.get(RANDOM_INIT + key.replace(".", "_"))
  if isinstance(reference, (int, float)):
    cell += f" ({reference:.1f})"
  return cell


def row(workdir: str) -> list[str]:
  """The table row of the run in `workdir`; raises NotAWorkdirError."""
  path = os.path.join(workdir, CONFIG_FILE)
  if not os.path.isfile(path):
    raise NotAWorkdirError(f"{workdir} is not a repr_learn workdir (no {CONFIG_FILE})")
  try:
    config = _read_json(path)
  except (OSError, ValueError) as e:
    raise NotAWorkdirError(f"{path} is unreadable ({e})") from None
  return [workdir.rstrip("/"), str(config.get("objective", {}).get("name", MISSING)),
          _backbone(config.get("model", {})), str(config.get("data", {}).get("name", MISSING)),
          _steps(workdir)] + [_figure(workdir, p, find) for _, p, find in FIGURES]


def table(rows: Sequence[Sequence[str]]) -> str:
  """Rows as a markdown table under `HEADER`."""
  lines = [HEADER, ("---",) * len(HEADER), *rows]
  return "\n".join("| " + " | ".join(cells) + " |" for cells in lines)


def report(workdirs: Sequence[str], warn=lambda message: print(message, file=sys.stderr)
           ) -> str:
  """The markdown table of the runs among `workdirs` (others: `warn`ed)."""
  rows = []
  for workdir in workdirs:
    try:
      rows.append(row(workdir))
    except NotAWorkdirError as e:
      warn(f"warning: {e}; skipped.")
  if not rows:
    raise NotAWorkdirError(f"None of the {len(workdirs)} paths is a repr_learn workdir; "
                           "pass run directories (python -m repr_learn.report runs/*).")
  return table(rows)


def main(argv: Sequence[str]) -> None:
  usage = "usage: python -m repr_learn.report DIR [DIR ...]  (e.g. runs/*)"
  if len(argv) > 1 and argv[1] in ("-h", "--help"):
    print(usage)
    return
  if len(argv) < 2:
    raise SystemExit(usage)
  try:
    print(report(argv[1:]))
  except NotAWorkdirError as e:
    raise SystemExit(f"error: {e}") from None


if __name__ == "__main__":
  main(sys.argv)
