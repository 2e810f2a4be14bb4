"""The linear, few-shot and RankMe protocols on frozen backbone features.

All three read the features `EvalContext` caches for the state (one feature
pass shared with kNN) and write DIR/eval/linear.json, fewshot.json and
rankme.json. The linear probe and few-shot need labels; RankMe does not, so it
also runs on unlabeled transfer data.
"""

import time
from typing import Any

from repr_learn.evaluation import features
from repr_learn.evaluation import fewshot
from repr_learn.evaluation import linear_probe
from repr_learn.evaluation import protocol_base
from repr_learn.evaluation import rankme


def _labeled_splits(protocol: protocol_base.Protocol, state):
  train_split, test_split = protocol.context.splits
  train_x, train_y = protocol.context.labeled_features(state, train_split, protocol.name)
  test_x, test_y = protocol.context.labeled_features(state, test_split, protocol.name)
  return train_x, train_y, test_x, test_y


@protocol_base.register
class LinearProtocol(protocol_base.Protocol):
  """Softmax classifier on the train split's features, (lr, wd) picked on a
  held-out part of it; top-1/top-5 on the test split (`linear_probe`)."""
  name = "linear"
  needs_labels = True
  reads_features = True  # the pooled features; eval.dims is refused with linear_features=dinov2
  headline = ("top1", "top5")

  def evaluate(self, state, step: int) -> dict[str, Any]:
    cfg = self.config.eval
    if cfg.linear_features == "dinov2":
      train_x, train_y, test_x, test_y = self._dinov2_splits(state)
    else:
      train_x, train_y, test_x, test_y = _labeled_splits(self, state)
    start = time.perf_counter()
    result = linear_probe.linear_probe(
        train_x, train_y, test_x, test_y,
        num_classes=self.context.num_classes(train_y, test_y), mesh=self.context.mesh,
        variant=cfg.linear_variant, lrs=tuple(cfg.linear_lrs),
        weight_decays=tuple(cfg.linear_weight_decays), epochs=cfg.linear_epochs,
        batch_size=cfg.linear_batch_size, val_fraction=cfg.linear_val_fraction,
        standardize_features=cfg.linear_standardize, seed=self.config.seed)
    result.update(step=int(step), seconds=time.perf_counter() - start,
                  features=cfg.linear_features, feature_dim=int(train_x.shape[1]),
                  **self.context.describe())
    if cfg.linear_features == "dinov2":
      result.update(n_last_blocks=cfg.linear_n_last_blocks, avgpool=cfg.linear_avgpool)
    return result

  def _dinov2_splits(self, state):
    """`eval.linear_features='dinov2'`: class tokens of the last n blocks (and
    the average patch token), DINOv2's `eval_linear` input, for any ViT run."""
    cfg = self.config.eval
    extract = self.context.extractor(features.vit_linear_outputs(
        self.context.objective, cfg.linear_n_last_blocks, cfg.linear_avgpool))
    splits = []
    for split in self.context.splits:
      outputs, labels = extract(state, self.context.source(split))
      self.context.require_labels(labels, split, self.name)
      splits += [outputs["features"], labels]
    return tuple(splits)


@protocol_base.register
class FewshotProtocol(protocol_base.Protocol):
  """big_vision's closed-form few-shot probe: mean/std top-1 over seeds per
  shot count (`fewshot`)."""
  name = "fewshot"
  needs_labels = True
  reads_features = True
  headline = ("1shot_top1", "5shot_top1", "10shot_top1", "25shot_top1")

  def evaluate(self, state, step: int) -> dict[str, Any]:
    train_x, train_y, test_x, test_y = _labeled_splits(self, state)
    cfg = self.config.eval
    result = fewshot.fewshot(train_x, train_y, test_x, test_y,
                             num_classes=self.context.num_classes(train_y, test_y),
                             shots=tuple(cfg.fewshot_shots), num_seeds=cfg.fewshot_seeds,
                             l2_reg=cfg.fewshot_l2_reg)
    result.update(step=int(step), **self.context.describe())
    return result


@protocol_base.register
class RankMeProtocol(protocol_base.Protocol):
  """RankMe and uniformity of the test split's features; no labels needed.

  Wang & Isola's alignment is not reported: it needs positive pairs (two
  views per image), and the cached features have one view per image.
  """
  name = "rankme"
  headline = ("rankme",)
  reads_features = True

  def evaluate(self, state, step: int) -> dict[str, Any]:
    split = self.context.splits[1]
    z, _ = self.context.backbone_features(state, split)
    sample = rankme.subsample(z, self.config.eval.rankme_max_examples, self.config.seed)
    result = {"rankme": rankme.rankme(sample), "uniformity": rankme.uniformity(sample),
              "feature_dim": int(z.shape[1]), "num_examples": int(len(sample)),
              "num_available": int(len(z)), "split": split, "step": int(step),
              **self.context.describe()}
    return result
