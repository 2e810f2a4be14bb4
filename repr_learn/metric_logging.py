"""Metric reporting through clu: TensorBoard, `metrics.jsonl` and a progress line.

Only process 0 writes files; the others log to the console. `metrics.jsonl` is
a contract other tools read: one JSON object per logged step with "step" and
scalar metrics named like "train/loss".
"""

import json
import os
import time
from typing import Any, Mapping

from absl import logging
from clu import metric_writers
import jax
import numpy as np

METRICS_FILE = "metrics.jsonl"


class JsonlWriter(metric_writers.MetricWriter):
  """Appends one line per `write_scalars` call to DIR/metrics.jsonl."""

  def __init__(self, workdir: str):
    self._path = os.path.join(workdir, METRICS_FILE)

  def truncate_after(self, step: int) -> None:
    """Drops lines logged after `step` (a resumed run recomputes them)."""
    if not os.path.exists(self._path):
      if step > 0:
        logging.warning("%s is missing: resuming at step %d, it will hold only the rows "
                        "logged from here on (TensorBoard's event files keep the earlier "
                        "ones).", self._path, step)
      return
    with open(self._path) as f:
      kept = [line for line in f if line.strip() and json.loads(line)["step"] <= step]
    with open(self._path, "w") as f:
      f.writelines(kept)

  def write_scalars(self, step: int, scalars: Mapping[str, Any]) -> None:
    record = {"step": int(step), **{k: float(np.asarray(v)) for k, v in scalars.items()}}
    with open(self._path, "a") as f:
      f.write(json.dumps(record) + "\n")

  # The remaining summary kinds have no place in a scalar JSONL file.
  def write_summaries(self, step, values, metadata=None): pass
  def write_images(self, step, images): pass
  def write_videos(self, step, videos): pass
  def write_audios(self, step, audios, *, sample_rate): pass
  def write_texts(self, step, texts): pass
  def write_histograms(self, step, arrays, num_buckets=None): pass
  def write_hparams(self, hparams): pass
  def flush(self): pass
  def close(self): pass


def create_writer(workdir: str, resumed_step: int) -> metric_writers.MetricWriter:
  """TensorBoard + console + JSONL on process 0; console only elsewhere."""
  if jax.process_index() != 0:
    return metric_writers.create_default_writer(just_logging=True)
  jsonl = JsonlWriter(workdir)
  jsonl.truncate_after(resumed_step)
  default = metric_writers.create_default_writer(workdir, asynchronous=False)
  return metric_writers.MultiWriter([default, jsonl])


class ProgressLine:
  """Logs step, loss, steps/s, images/s and ETA between log steps."""

  def __init__(self, total_steps: int, batch_size: int, start_step: int):
    self.total_steps = total_steps
    self.batch_size = batch_size
    self._last_step = start_step
    self._last_time = time.perf_counter()

  def __call__(self, step: int, loss: float) -> dict[str, float]:
    now = time.perf_counter()
    steps_per_sec = (step - self._last_step) / max(now - self._last_time, 1e-9)
    self._last_step, self._last_time = step, now
    eta = (self.total_steps - step) / max(steps_per_sec, 1e-9)
    logging.info("step %d/%d  loss %.4f  %.2f steps/s  %.1f img/s  ETA %s",
                 step, self.total_steps, loss, steps_per_sec,
                 steps_per_sec * self.batch_size, _format_seconds(eta))
    return {"perf/steps_per_sec": steps_per_sec,
            "perf/images_per_sec": steps_per_sec * self.batch_size}


def _format_seconds(seconds: float) -> str:
  seconds = int(seconds)
  return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m{seconds % 60:02d}s"
