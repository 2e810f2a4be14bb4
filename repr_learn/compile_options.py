"""XLA compile options for a network's programs, chosen by what it is built of.

On the CPU, jaxlib 0.10's XLA gives each matrix product and each convolution
its own YNNPACK library fusion by default (the same program as
`individual_dot,individual_convolution`). For ResNets, YNNPACK fusions of
matrix products, elementwise ops and reductions instead (most convolutions
then run in XLA's own kernels: 5 of 59 stayed in YNNPACK in SimCLR
ResNet-18's step, against 53) took the CPU train step from 13.0 to 21.3
images/s and the forward from 102 to 141; dropping only the convolutions
(`individual_dot`) gave 18.0. ViTs keep the default: the fused products,
elementwise ops and reductions cost their steps 15-20% (MAE ViT-B/16 2.06 ->
1.76 images/s, DINO ViT-S/16 0.95 -> 0.76). Figures and commands:
BENCHMARKS.md, "XLA:CPU's library fusions". GPUs and TPUs compile with XLA's
defaults.
"""

import functools
import os

from absl import logging
import jax
import jax.numpy as jnp
import ml_collections

YNN_FUSION_TYPE = "xla_cpu_experimental_ynn_fusion_type"
# YNNPACK fusions of dots, elementwise ops and reductions; most convolutions go to XLA.
RESNET_ON_CPU = {YNN_FUSION_TYPE: "LIBRARY_FUSION_TYPE_DOT,LIBRARY_FUSION_TYPE_ELTWISE,"
                                        "LIBRARY_FUSION_TYPE_REDUCE"}


def for_network(model: ml_collections.ConfigDict, mesh) -> dict[str, str] | None:
  """The `compiler_options` for `jax.jit` of a program running `model` (the
  config's model section) on `mesh`; None keeps XLA's defaults. A choice made
  in XLA_FLAGS stands."""
  if (mesh.devices.flat[0].platform != "cpu" or not model.backbone.startswith("resnet")
      or YNN_FUSION_TYPE in os.environ.get("XLA_FLAGS", "")):
    return None
  return dict(RESNET_ON_CPU) if _accepted(tuple(RESNET_ON_CPU.items())) else None


@functools.cache
def _accepted(options: tuple[tuple[str, str], ...]) -> bool:
  """Whether this jaxlib's XLA:CPU knows `options` (the YNNPACK option is
  experimental, and a later jaxlib may rename it): checked once on a tiny program."""
  try:
    probe = jax.device_put(jnp.zeros(1), jax.devices("cpu")[0])
    jax.jit(lambda x: x + 1, compiler_options=dict(options)).lower(probe).compile()
    return True
  except jax.errors.JaxRuntimeError as e:
    logging.warning("XLA:CPU refused %s (%s); compiling with its defaults.", dict(options), e)
    return False
