"""The pictures of a run, drawn for the `plots` and `reconstructions`
protocols and for `python -m repr_learn.plot`: training curves from
metrics.jsonl, a t-SNE of embeddings, accuracy against Matryoshka feature
size, and masked-image-modeling reconstructions. Figures are drawn on
matplotlib's Agg canvas directly, without pyplot, so nothing here needs a
display or touches global plotting state.
"""

import json
import math
import os
from typing import Any, Mapping, Sequence

from matplotlib.backends import backend_agg
from matplotlib import figure as figure_lib
import numpy as np
from sklearn import manifold
import threadpoolctl

from repr_learn import metric_logging
from repr_learn.evaluation import protocol_base

PLOTS_DIR = "plots"
MAX_TSNE_POINTS = 2000
# (panel title, metrics.jsonl keys drawn in it); panels without data are skipped.
PANELS = (
    ("loss", ("train/loss",)),
    ("learning rate", ("train/learning_rate",)),
    ("accuracy (%)", ("train/online_top1", "knn/top1")),
    ("alignment / uniformity", ("train/alignment", "train/uniformity")),
    ("RankMe", ("rankme/rankme",)),
)
UNLABELED_COLOUR = "tab:gray"
# Top-1 protocols drawn against the feature sizes of `eval.dims`.
NESTED_PROTOCOLS = ("knn", "linear")

def _new_figure(width: float, height: float) -> figure_lib.Figure:
  fig = figure_lib.Figure(figsize=(width, height), layout="constrained")
  backend_agg.FigureCanvasAgg(fig)
  return fig


def _save(fig: figure_lib.Figure, path: str) -> str:
  os.makedirs(os.path.dirname(path), exist_ok=True)
  fig.savefig(path, dpi=120)
  return path


def read_metrics(workdir: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
  """{key: (steps, values)} from DIR/metrics.jsonl (non-finite values dropped)."""
  path = os.path.join(workdir, metric_logging.METRICS_FILE)
  if not os.path.isfile(path):
    raise FileNotFoundError(f"{workdir} has no {metric_logging.METRICS_FILE}; "
                            "train first (python main.py ... --workdir=DIR).")
  series: dict[str, list[tuple[int, float]]] = {}
  with open(path) as f:
    for line in f:
      if not line.strip():
        continue
      record = json.loads(line)
      for key, value in record.items():
        if key != "step" and isinstance(value, (int, float)) and math.isfinite(value):
          series.setdefault(key, []).append((record["step"], value))
  return {k: (np.asarray([s for s, _ in v]), np.asarray([x for _, x in v]))
          for k, v in series.items()}


def run_title(workdir: str, config: Mapping[str, Any]) -> str:
  """'simclr_digits: simclr, resnet18 on digits': the figures' title, from the
  run's directory and config (a ConfigDict or config.json's dict); the
  directory's name alone when the config lacks those fields."""
  try:
    return (f"{run_label(workdir)}: {config['objective']['name']}, "
            f"{config['model']['backbone']} on {config['data']['name']}")
  except (KeyError, TypeError, AttributeError):
    return run_label(workdir)


def run_label(workdir: str) -> str:
  return os.path.basename(os.path.abspath(workdir))


def by_dim_path(workdir: str) -> str:
  return os.path.join(os.path.abspath(workdir), PLOTS_DIR, "accuracy_by_dim.png")


def has_metrics(workdir: str) -> bool:
  """Whether the run logged training metrics (an imported workdir trained nothing)."""
  return os.path.isfile(os.path.join(workdir, metric_logging.METRICS_FILE))


def plot_curves(workdir: str, title: str) -> str:
  """DIR/plots/curves.png: one panel per kind of curve that metrics.jsonl has."""
  workdir = os.path.abspath(workdir)
  series = read_metrics(workdir)
  panels = [(title, [k for k in keys if k in series]) for title, keys in PANELS]
  panels = [(title, keys) for title, keys in panels if keys]
  if not panels:
    raise ValueError(f"{workdir}/{metric_logging.METRICS_FILE} has no "
                     "training curves yet; train for log_every_steps first.")
  cols = min(3, len(panels))
  rows = math.ceil(len(panels) / cols)
  fig = _new_figure(4.2 * cols, 3.0 * rows)
  fig.suptitle(title)
  for i, (title, keys) in enumerate(panels):
    ax = fig.add_subplot(rows, cols, i + 1)
    for key in keys:
      steps, values = series[key]
      ax.plot(steps, values, marker="." if len(steps) < 30 else None, label=key)
    ax.set_title(title)
    ax.set_xlabel("step")
    ax.grid(alpha=0.3)
    if len(keys) > 1:
      ax.legend(fontsize="small")
  return _save(fig, os.path.join(workdir, PLOTS_DIR, "curves.png"))


def accuracy_by_dim(workdir: str, protocols: Sequence[str] = NESTED_PROTOCOLS
                    ) -> dict[str, dict[int, float]]:
  """{protocol: {feature dims: top-1}} from DIR/eval/<protocol>.json: its
  `by_dim` entries (`eval.dims`) and the full width; protocols without
  `by_dim` are left out."""
  out = {}
  for name in protocols:
    path = os.path.join(workdir, protocol_base.EVAL_DIR, f"{name}.json")
    if not os.path.isfile(path):
      continue
    with open(path) as f:
      result = json.load(f)
    if not result.get("by_dim"):
      continue
    points = {int(m): r["top1"] for m, r in result["by_dim"].items() if "top1" in r}
    if "feature_dim" in result and "top1" in result:
      points[int(result["feature_dim"])] = result["top1"]
    if points:
      out[name] = dict(sorted(points.items()))
  return out


def plot_accuracy_by_dim(path: str, runs: dict[str, str]) -> str:
  """Top-1 against the number of leading feature dimensions kept (Matryoshka
  sizes), one panel per protocol, one line per run ({label: workdir})."""
  curves = {label: accuracy_by_dim(workdir) for label, workdir in runs.items()}
  names = [n for n in NESTED_PROTOCOLS if any(n in c for c in curves.values())]
  if not names:
    raise ValueError(f"None of {sorted(runs.values())} has eval results at several sizes; "
                     "evaluate with --config.eval.dims=(8,16,...).")
  fig = _new_figure(4.2 * len(names), 3.4)
  for i, name in enumerate(names):
    ax = fig.add_subplot(1, len(names), i + 1)
    sizes = set()
    for label, curve in curves.items():
      if name in curve:
        dims, top1 = zip(*curve[name].items())
        ax.plot(dims, top1, marker="o", label=label)
        sizes.update(dims)
    ax.set_xscale("log", base=2)
    ax.set_xticks(sorted(sizes), [str(m) for m in sorted(sizes)])
    ax.minorticks_off()
    ax.set_title(f"{name} top-1 (%)")
    ax.set_xlabel("leading feature dimensions")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
  return _save(fig, os.path.abspath(os.path.expanduser(path)))


def tsne(features: np.ndarray, seed: int = 0) -> np.ndarray:
  """2-D t-SNE of L2-normalised features (the cosine geometry kNN uses)."""
  x = np.asarray(features, np.float64)
  x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
  perplexity = max(1.0, min(30.0, (len(x) - 1) / 3))
  # One thread: plots are often made beside a training job, where OpenMP's
  # spinning threads slow t-SNE ten-fold; at <= 2000 points one takes seconds.
  with threadpoolctl.threadpool_limits(1):
    return manifold.TSNE(n_components=2, perplexity=perplexity, init="pca",
                         random_state=seed).fit_transform(x)


def plot_embedding(workdir: str, title: str, features: np.ndarray, labels: np.ndarray, *,
                   seed: int = 0) -> str:
  """DIR/plots/embedding.png: t-SNE of at most 2000 of `features`, coloured by
  `labels` (all unlabeled, label -1: one colour)."""
  features, labels = np.asarray(features), np.asarray(labels)
  if len(features) < 3:
    raise ValueError(f"t-SNE needs at least 3 embeddings, got {len(features)}.")
  if len(features) > MAX_TSNE_POINTS:
    keep = np.sort(np.random.default_rng(seed).choice(len(features), MAX_TSNE_POINTS,
                                                      replace=False))
    features, labels = features[keep], labels[keep]
  points = tsne(features, seed)
  fig = _new_figure(6.5, 5.5)
  ax = fig.add_subplot()
  classes = np.unique(labels[labels >= 0])
  if len(classes):
    colours = "tab10" if len(classes) <= 10 else "tab20" if len(classes) <= 20 else "turbo"
    scatter = ax.scatter(points[labels >= 0, 0], points[labels >= 0, 1], s=6,
                         c=labels[labels >= 0], cmap=colours)
    if len(classes) <= 20:
      ax.legend(*scatter.legend_elements(num=None), title="class", fontsize="small",
                loc="center left", bbox_to_anchor=(1.0, 0.5))
  if np.any(labels < 0):
    ax.scatter(points[labels < 0, 0], points[labels < 0, 1], s=6, c=UNLABELED_COLOUR,
               label="unlabeled")
  ax.set_title(f"{title}\nt-SNE of {len(points)} embeddings", fontsize="medium")
  ax.set_xticks([])
  ax.set_yticks([])
  return _save(fig, os.path.join(os.path.abspath(workdir), PLOTS_DIR, "embedding.png"))


def _displayable(images: np.ndarray) -> np.ndarray:
  """[N, H, W(, C)] uint8 or floats in [0, 1] -> floats in [0, 1], RGB or grey."""
  images = np.asarray(images)
  images = images / 255.0 if images.dtype == np.uint8 else images.astype(np.float32)
  if images.ndim == 4 and images.shape[-1] == 1:
    images = images[..., 0]
  return np.clip(images, 0.0, 1.0)


def plot_reconstructions(path: str, originals: np.ndarray, masked: np.ndarray,
                         reconstructions: np.ndarray) -> str:
  """Three rows (original, masked, reconstruction), one column per image.

  Images are [N, H, W, C] or [N, H, W], uint8 or floats in [0, 1]: undo the
  input normalisation before calling.
  """
  rows = [("original", _displayable(originals)), ("masked", _displayable(masked)),
          ("reconstruction", _displayable(reconstructions))]
  count = len(rows[0][1])
  if any(len(images) != count for _, images in rows) or not count:
    raise ValueError("originals, masked and reconstructions need the same, non-zero "
                     f"number of images; got {[len(images) for _, images in rows]}.")
  fig = _new_figure(1.3 * count + 1.0, 4.2)
  for r, (name, images) in enumerate(rows):
    for c in range(count):
      ax = fig.add_subplot(3, count, r * count + c + 1)
      ax.imshow(images[c], cmap="gray" if images[c].ndim == 2 else None, vmin=0.0, vmax=1.0)
      ax.set_xticks([])
      ax.set_yticks([])
      if c == 0:
        ax.set_ylabel(name)
  return _save(fig, os.path.abspath(os.path.expanduser(path)))


