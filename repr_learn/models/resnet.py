"""ResNet backbones (He et al. 2016) with the ImageNet and the CIFAR stem.

BatchNorm semantics: the train step is compiled with `jax.jit` over the *global*
batch, so `nn.BatchNorm` computes its statistics over every device's examples
(SyncBN, as SimCLR's global BN). When several views are stacked into one forward
pass, the statistics cover all views together, as in SimCLR and BYOL. Methods that
need per-device statistics (MoCo v2's shuffle-BN) wrap the forward in `shard_map`.

Padding is torchvision's by default: one pixel on each side of every 3x3
convolution and of the stem's max-pool. XLA's 'SAME' pads a stride-2 window on
an even input by (0, 1), which shifts every strided sample by one pixel, so
torchvision's weights computed something else here (google/flax#963). Runs
trained before keep 'SAME' (`padding='same'`, from their config.json).
"""

import functools
from typing import Any, Callable, Sequence

import flax.linen as nn
import jax.numpy as jnp

ModuleDef = Any
PADDINGS = ("torch", "same")


def _conv(features, kernel_size, strides=(1, 1), *, pad3, **kwargs):
  """`nn.Conv` whose padding follows the ResNet's choice: `pad3` for 3x3
  kernels, none for 1x1 (the same in torch and SAME). Explicit paddings pass."""
  padding = kwargs.pop("padding", pad3 if tuple(kernel_size) == (3, 3) else "VALID")
  return nn.Conv(features, kernel_size, strides, padding=padding, **kwargs)


def _add_shortcut(block: nn.Module, residual, y, strides: int):
  """relu(shortcut(x) + y); a 1x1 projection when the shape changes."""
  if residual.shape != y.shape:
    residual = block.conv(y.shape[-1], (1, 1), (strides, strides), name="proj_conv")(residual)
    residual = block.norm(name="proj_bn")(residual)
  return nn.relu(residual + y)


class BasicBlock(nn.Module):
  """Two 3x3 convolutions (ResNet-18/34)."""
  filters: int
  conv: ModuleDef
  norm: ModuleDef
  strides: int = 1

  @nn.compact
  def __call__(self, x):
    residual = x
    y = self.conv(self.filters, (3, 3), (self.strides, self.strides))(x)
    y = nn.relu(self.norm()(y))
    y = self.conv(self.filters, (3, 3))(y)
    # Zero-init the last BN scale so each block starts as identity (Goyal et al.).
    y = self.norm(scale_init=nn.initializers.zeros)(y)
    return _add_shortcut(self, residual, y, self.strides)


class Bottleneck(nn.Module):
  """1x1 → 3x3 → 1x1 bottleneck (ResNet-50 and deeper)."""
  filters: int
  conv: ModuleDef
  norm: ModuleDef
  strides: int = 1

  @nn.compact
  def __call__(self, x):
    residual = x
    y = nn.relu(self.norm()(self.conv(self.filters, (1, 1))(x)))
    y = self.conv(self.filters, (3, 3), (self.strides, self.strides))(y)
    y = nn.relu(self.norm()(y))
    y = self.conv(self.filters * 4, (1, 1))(y)
    y = self.norm(scale_init=nn.initializers.zeros)(y)
    return _add_shortcut(self, residual, y, self.strides)


class ResNet(nn.Module):
  """ResNet trunk returning globally pooled features [N, C].

  Attributes:
    stage_sizes: blocks per stage.
    block: BasicBlock or Bottleneck.
    width: filters of the first stage (64 in the paper).
    stem: 'imagenet' (7x7/2 conv + 3x3/2 max-pool) or 'cifar' (3x3/1 conv, no
      pool), the latter for 32x32 inputs as in SimCLR's CIFAR experiments.
    padding: 'torch' (1 pixel each side, torchvision's) or 'same' (XLA's,
      runs trained before torch padding became the default).
    bn_momentum: decay of the running statistics used at evaluation.
    bn_axis_name: a named device axis to average BatchNorm statistics over
      (SyncBN in the per-device `pmap` mode); None: over the array's batch axis.
    dtype: computation dtype (bfloat16 on accelerators); params stay float32.
  """
  stage_sizes: Sequence[int]
  block: Callable[..., nn.Module]
  width: int = 64
  stem: str = "imagenet"
  padding: str = "torch"
  bn_momentum: float = 0.9
  bn_axis_name: str | None = None
  dtype: Any = jnp.float32

  @property
  def num_features(self) -> int:
    expansion = 4 if self.block is Bottleneck else 1
    return self.width * 2 ** (len(self.stage_sizes) - 1) * expansion

  @nn.compact
  def __call__(self, x, train: bool = True):
    if self.padding not in PADDINGS:
      raise ValueError(f"Unknown ResNet padding {self.padding!r}; use one of {PADDINGS}.")
    # A 3x3 window: 1 pixel each side (torch) or XLA's SAME; 1x1 convs pad nothing.
    pad3 = [(1, 1), (1, 1)] if self.padding == "torch" else "SAME"
    conv = functools.partial(_conv, pad3=pad3, use_bias=False, dtype=self.dtype,
                             kernel_init=nn.initializers.variance_scaling(
                                 2.0, "fan_out", "normal"))
    norm = functools.partial(nn.BatchNorm, use_running_average=not train,
                             momentum=self.bn_momentum, epsilon=1e-5,
                             axis_name=self.bn_axis_name, dtype=self.dtype)
    x = x.astype(self.dtype)
    if self.stem == "imagenet":
      x = conv(self.width, (7, 7), (2, 2), padding=[(3, 3), (3, 3)],
               name="stem_conv")(x)
      x = nn.relu(norm(name="stem_bn")(x))
      x = nn.max_pool(x, (3, 3), strides=(2, 2), padding=pad3)
    elif self.stem == "cifar":
      x = conv(self.width, (3, 3), name="stem_conv")(x)
      x = nn.relu(norm(name="stem_bn")(x))
    else:
      raise ValueError(f"Unknown ResNet stem {self.stem!r}; use 'imagenet' or 'cifar'.")
    for i, num_blocks in enumerate(self.stage_sizes):
      for j in range(num_blocks):
        strides = 2 if i > 0 and j == 0 else 1
        x = self.block(self.width * 2 ** i, conv=conv, norm=norm,
                       strides=strides)(x)
    return jnp.mean(x, axis=(1, 2)).astype(jnp.float32)


RESNET_DEPTHS = {
    "resnet_tiny": ((1, 1), BasicBlock),  # tests only: two stages, one block each
    "resnet18": ((2, 2, 2, 2), BasicBlock),
    "resnet34": ((3, 4, 6, 3), BasicBlock),
    "resnet50": ((3, 4, 6, 3), Bottleneck),
    "resnet101": ((3, 4, 23, 3), Bottleneck),
}
