"""The fine-tuning protocol, written to DIR/eval/finetune.json.

Scores the classification head of a `finetune` run (configs/finetune.py): the
network's logits (`outputs['projection']` of `network.project`, eval mode:
BatchNorm running statistics, no drop path) on centre views of the test split,
top-1 and top-5 in percent. The result also names what was fine-tuned:
`init_from` (the pretraining workdir, or null for the random-init baseline).

Built before step 0, it also checks what a fine-tuning run needs and fails
with one line otherwise: the `finetune` objective (other objectives have no
classifier), labeled training data, and a head as wide as the dataset's classes.
"""

import json
import os
from typing import Any

import numpy as np

from repr_learn.data import catalog
from repr_learn.data import sources
from repr_learn.evaluation import protocol_base
from repr_learn.objectives import finetune


def top_k_accuracy(logits: np.ndarray, labels: np.ndarray, k: int) -> float:
  """Percent of rows whose label is among the k largest logits (all of them
  when there are fewer than k classes)."""
  logits, labels = np.asarray(logits), np.asarray(labels)
  k = min(k, logits.shape[1])
  top = np.argpartition(-logits, k - 1, axis=1)[:, :k]
  return float(100.0 * np.mean(np.any(top == labels[:, None], axis=1)))


def pretrained_objective(workdir: str | None) -> str | None:
  """The objective name in `workdir`/config.json, if it can be read."""
  if not workdir:
    return None
  path = os.path.join(os.path.expanduser(workdir), "config.json")
  try:
    with open(path) as f:
      return json.load(f)["objective"]["name"]
  except (OSError, ValueError, KeyError, TypeError):
    return None


@protocol_base.register
class FinetuneProtocol(protocol_base.Protocol):
  name = "finetune"
  needs_labels = True
  headline = ("top1", "top5")

  def __init__(self, context: protocol_base.EvalContext):
    super().__init__(context)
    objective = context.objective
    config = context.config
    if not isinstance(objective, finetune.Finetune):
      raise ValueError(
          f"The finetune protocol scores a classifier, which a {config.objective.name!r} "
          "run does not have: remove 'finetune' from config.eval.protocols (it belongs "
          "only in configs/finetune.py's runs).")
    if context.spec.name != config.data.name:
      raise ValueError(
          f"The finetune protocol scores the classifier trained on {config.data.name!r}, "
          f"not config.eval.dataset={context.spec.name!r}: unset eval.dataset.")
    self._check_training_data(objective.num_classes)

    def outputs(params, batch_stats, extra, x):
      del extra
      out, _ = objective.apply(params, batch_stats, x, train=False,
                               method=objective.network.project)
      return {"logits": out["projection"]}

    self._extract = context.extractor(outputs)

  def _check_training_data(self, num_classes: int) -> None:
    """Labels on the split the trainer trains on, and a head of the right size."""
    config = self.config
    spec = catalog.get_spec(config.data.name)
    if spec.num_classes and spec.num_classes != num_classes:
      raise ValueError(
          f"{spec.name} has {spec.num_classes} classes but the classifier has "
          f"{num_classes}: set --config.model.projector.output_dim={spec.num_classes}.")
    split = spec.eval_train_split  # What the trainer trains a supervised objective on.
    source = sources.open_source(spec, split, config.data)
    if len(source) and int(source[0]["label"]) < 0:
      raise protocol_base.LabelsRequiredError(
          f"Fine-tuning needs labels, but split {split!r} of {spec.name!r} "
          "(the one the trainer trains on) is unlabeled; fine-tune on a labeled dataset "
          "(an image_folder needs one subfolder per class).")

  def evaluate(self, state, step: int) -> dict[str, Any]:
    split = self.context.splits[1]
    outputs, labels = self._extract(state, self.context.source(split))
    self.context.require_labels(labels, split, self.name)
    logits = outputs["logits"]
    if labels.size and labels.max() >= logits.shape[1]:
      raise ValueError(f"Test labels reach {int(labels.max())} but the classifier has "
                       f"{logits.shape[1]} outputs; set model.projector.output_dim.")
    init_from = self.config.model.init_from or None
    return {"top1": top_k_accuracy(logits, labels, 1),
            "top5": top_k_accuracy(logits, labels, 5),
            "step": int(step),
            "init_from": init_from,
            "init_from_objective": pretrained_objective(init_from),
            "num_classes": int(logits.shape[1]),
            "num_test_examples": int(len(labels)),
            "dataset": self.context.spec.name, "split": split}
