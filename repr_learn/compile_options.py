"""XLA compile options for a network's programs, chosen by what it is built of.

On the CPU, jaxlib 0.10's XLA hands convolutions to YNNPACK library fusions.
For ResNets these ran slower than XLA's own convolutions: keeping YNNPACK to
matrix products, elementwise ops and reductions took SimCLR ResNet-18's CPU
train step from 13.0 to 21.3 images/s and its forward from 102 to 141. ViTs
keep the default: their one convolution is the patch embedding, and the same
setting cost their steps 15-20% (MAE ViT-B/16 2.06 -> 1.76 images/s, DINO
ViT-S/16 0.95 -> 0.76). Figures and commands: BENCHMARKS.md, "XLA:CPU's
library fusions". GPUs and TPUs compile with XLA's defaults.
"""

import functools
import os

from absl import logging
import jax
import jax.numpy as jnp
import ml_collections

YNN_FUSION_TYPE = "xla_cpu_experimental_ynn_fusion_type"
# YNNPACK for dots, elementwise ops and reductions; convolutions stay with XLA.
CONVOLUTIONS_IN_XLA = {YNN_FUSION_TYPE: "LIBRARY_FUSION_TYPE_DOT,LIBRARY_FUSION_TYPE_ELTWISE,"
                                        "LIBRARY_FUSION_TYPE_REDUCE"}


def for_network(model: ml_collections.ConfigDict, mesh) -> dict[str, str] | None:
  """The `compiler_options` for `jax.jit` of a program running `model` (the
  config's model section) on `mesh`; None keeps XLA's defaults. A choice made
  in XLA_FLAGS stands."""
  if (mesh.devices.flat[0].platform != "cpu" or not model.backbone.startswith("resnet")
      or YNN_FUSION_TYPE in os.environ.get("XLA_FLAGS", "")):
    return None
  return dict(CONVOLUTIONS_IN_XLA) if _accepted(tuple(CONVOLUTIONS_IN_XLA.items())) else None


@functools.cache
def _accepted(options: tuple[tuple[str, str], ...]) -> bool:
  """Whether this jaxlib's XLA:CPU knows `options` (the YNNPACK option is
  experimental, and a later jaxlib may rename it): checked once on a tiny program."""
  try:
    jax.jit(lambda x: x + 1, compiler_options=dict(options)).lower(jnp.zeros(1)).compile()
    return True
  except jax.errors.JaxRuntimeError as e:
    logging.warning("XLA:CPU refused %s (%s); compiling with its defaults.", dict(options), e)
    return False
