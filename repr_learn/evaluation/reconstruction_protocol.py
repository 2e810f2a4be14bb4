"""Reconstructions of masked images, for the pixel-predicting methods (MAE,
SimMIM): DIR/plots/reconstructions.png and DIR/eval/reconstructions.json.

Users of masked autoencoders look at what the model fills in. The first few
test images are masked with a fixed key (the same masks at every evaluation),
run through the network in eval mode, and drawn as original / masked /
reconstruction; the mean squared error on the hidden pixels (in normalised
units) is the figure recorded beside the picture.
"""

import os
from typing import Any

import jax
import numpy as np

from repr_learn import parallel
from repr_learn.data import augment
from repr_learn.evaluation import protocol_base

NUM_IMAGES = 8
PLOT_FILE = os.path.join("plots", "reconstructions.png")


def _to_unit_range(images: np.ndarray, mean, std) -> np.ndarray:
  mean, std = np.asarray(mean), np.asarray(std)
  return np.clip(images * std + mean, 0.0, 1.0)


@protocol_base.register
class ReconstructionProtocol(protocol_base.Protocol):
  name = "reconstructions"
  headline = ("masked_mse",)

  def __init__(self, context: protocol_base.EvalContext):
    super().__init__(context)
    objective = context.objective
    if not getattr(objective, "reconstructs", False):
      raise ValueError(f"The reconstructions protocol needs a pixel-predicting objective "
                       f"(mae, simmim); {objective.name!r} has none: drop it from "
                       "config.eval.protocols.")
    size = context.image_size

    def reconstruct(params, batch_stats, images_uint8, image_hw):
      x = augment.center_view(images_uint8, size, objective.pixel_mean, objective.pixel_std,
                              image_hw)
      out = objective.reconstruct(params, batch_stats, x, jax.random.PRNGKey(0))
      return x, out["masked"], out["reconstruction"], out["hidden"]

    self._reconstruct = jax.jit(reconstruct, out_shardings=parallel.replicated(context.mesh))

  def evaluate(self, state, step: int) -> dict[str, Any]:
    source = self.context.source(self.context.splits[1])
    count = min(NUM_IMAGES, len(source))
    examples = [source[i] for i in range(count)]
    images = np.stack([e["image"] for e in examples])
    image_hw = np.stack([e["image_hw"] for e in examples]) if "image_hw" in examples[0] else None
    x, masked, recon, hidden = jax.device_get(
        self._reconstruct(state.params, state.batch_stats, images, image_hw))
    error = np.square(recon - x).mean(axis=-1)
    result = {"step": int(step), "num_images": count,
              "masked_mse": float((error * hidden).sum() / max(hidden.sum(), 1)),
              **self.context.describe()}
    if self.context.workdir is not None and jax.process_index() == 0:
      # pylint: disable-next=g-import-not-at-top (matplotlib is heavy)
      from repr_learn.evaluation import drawing
      objective = self.context.objective

      def unit(images):
        return _to_unit_range(images, objective.pixel_mean, objective.pixel_std)

      result["plot"] = drawing.plot_reconstructions(
          os.path.join(self.context.workdir, PLOT_FILE), unit(x), unit(masked), unit(recon))
    return result
