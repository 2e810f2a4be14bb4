"""Frozen-network outputs over a whole split, in dataset order.

One compiled eval-mode forward serves every protocol (kNN, clustering) and the
objectives that start from a dataset pass (SCAN's neighbour mining, DEC's
k-means initialisation). Centre views, BatchNorm running statistics.
"""

from typing import Callable

import jax
import numpy as np

from repr_learn import parallel
from repr_learn.data import augment
from repr_learn.data import pipeline


class FeatureExtractor:
  """Runs `outputs(params, batch_stats, extra, x) -> {name: [N, ...]}` over a split.

  `passthrough` names example fields returned beside the outputs, in the same
  order (a captioned split's 'tokens' and 'num_captions', for retrieval).
  `compiler_options`: the network's (`repr_learn.compile_options`).
  """

  def __init__(self, outputs: Callable, mesh, image_size: int, batch_size: int,
               mean=augment.IMAGENET_MEAN, std=augment.IMAGENET_STD,
               passthrough: tuple[str, ...] = (), compiler_options: dict | None = None):
    self._mesh = mesh
    self._batch_size = batch_size
    self._passthrough = passthrough

    def forward(params, batch_stats, extra, images, image_hw):
      x = augment.center_view(images, image_size, mean, std, image_hw)
      return outputs(params, batch_stats, extra, x)

    # Inputs keep the shardings they arrive with: the state as the trainer
    # holds it (replicated, but dataset-sized `extra` split over the devices),
    # the batch split by `parallel.global_batch`.
    self._forward = jax.jit(forward, out_shardings=parallel.batch_sharded(mesh),
                            compiler_options=compiler_options)

  def __call__(self, state, source) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """({name: [N, ...]}, labels [N]), row i being example i of `source`."""
    outputs, labels, indices = {}, [], []
    for local in pipeline.iterate_eval_batches(
        source, batch_size=parallel.per_process_batch_size(self._batch_size),
        process_index=jax.process_index(), process_count=jax.process_count()):
      batch = parallel.global_batch(local, self._mesh)
      out = self._forward(state.params, state.batch_stats, state.extra, batch["image"],
                          batch.get("image_hw"))
      out = {**out, **{k: batch[k] for k in self._passthrough}}
      out, y, i, m = parallel.fetch((out, batch["label"], batch["index"], batch["mask"]))
      m = np.asarray(m)
      for k, v in out.items():
        outputs.setdefault(k, []).append(np.asarray(v)[m])
      labels.append(np.asarray(y)[m])
      indices.append(np.asarray(i)[m])
    order = np.argsort(np.concatenate(indices), kind="stable")
    return ({k: np.concatenate(v)[order] for k, v in outputs.items()},
            np.concatenate(labels)[order])


def check_labeled_splits(train_x, train_y, test_x, test_y) -> None:
  """One-line errors for feature/label arrays a classifier protocol cannot use."""
  if train_x.ndim != 2 or test_x.ndim != 2 or train_x.shape[1] != test_x.shape[1]:
    raise ValueError(f"Feature shapes {train_x.shape} and {test_x.shape} must be "
                     "[num, dim] with the same dim.")
  if train_y.shape != train_x.shape[:1] or test_y.shape != test_x.shape[:1]:
    raise ValueError("Labels must be 1-D with exactly one label per feature row.")
  if not len(test_x):
    raise ValueError("The test set is empty.")


def backbone_outputs(objective) -> Callable:
  """The backbone's pooled features, as kNN and linear probes use them."""

  def outputs(params, batch_stats, extra, x):
    del extra
    features, _ = objective.apply(params, batch_stats, x, train=False,
                                  method=objective.network.embed)
    return {"features": features}

  return outputs


def vit_linear_outputs(objective, n_last_blocks: int, avgpool: bool) -> Callable:
  """DINOv2's linear-probe input for a ViT run (`ViT.linear_features`)."""

  def linear_features(net, x, train):
    del train
    return net.backbone.linear_features(x, n_last_blocks, avgpool)

  def outputs(params, batch_stats, extra, x):
    del extra
    features, _ = objective.apply(params, batch_stats, x, train=False, method=linear_features)
    return {"features": features}

  return outputs


class TextEmbedder:
  """The text tower's embeddings of token sequences [M, L] -> [M, D], in
  batches of `batch_size` split over the mesh (every process passes the same
  sequences, as prompts and caption lists are known on every host)."""

  def __init__(self, objective, mesh, batch_size: int):
    self._mesh = mesh
    self._batch_size = batch_size

    def forward(params, batch_stats, tokens):
      out, _ = objective.apply(params, batch_stats, tokens, train=False,
                               method=objective.network.encode_text)
      return out

    self._forward = jax.jit(forward, out_shardings=parallel.batch_sharded(mesh))

  def __call__(self, state, tokens: np.ndarray) -> np.ndarray:
    tokens = np.asarray(tokens, np.int32)
    size, processes = self._batch_size, jax.process_count()
    share = size // processes
    out = []
    for start in range(0, len(tokens), size):
      chunk = np.zeros((size,) + tokens.shape[1:], np.int32)
      rows = tokens[start:start + size]
      chunk[:len(rows)] = rows
      mine = chunk[jax.process_index() * share:(jax.process_index() + 1) * share]
      batch = parallel.global_batch({"tokens": mine}, self._mesh)
      embedded = parallel.fetch(self._forward(state.params, state.batch_stats, batch["tokens"]))
      out.append(np.asarray(embedded)[:len(rows)])
    return np.concatenate(out)
