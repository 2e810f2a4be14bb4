"""Loading an export in PyTorch (needs torch and torchvision; nothing else here does).

`repr_learn.export --format=torchvision` writes torchvision's names. A standard
ResNet (width 64, ImageNet stem) loads straight into `torchvision.models.resnetN()`;
the narrower or CIFAR-stem ResNets that small-data runs train (the digits
quickstart: width 16, 3x3 stem without max-pool) load into torchvision's own
`ResNet` class rebuilt at that width and stem, which `load_resnet` does:

  from repr_learn.interop import torch_models
  model = torch_models.load_resnet("OUT")   # OUT/config.json + OUT/model.safetensors
  features = model(images_nchw)             # fc is Identity: pooled features
"""

import json
import os

from repr_learn.interop import checkpoint_files


def resnet(block: str, layers, width: int = 64, stem: str = "imagenet"):
  """torchvision's ResNet (v1.5) with `width` filters in its first stage and
  the CIFAR stem (3x3 convolution, stride 1, no max-pool) when asked; `fc` is
  Identity, so the output is the pooled features."""
  import torch  # pylint: disable=g-import-not-at-top
  from torchvision.models import resnet as tv_resnet  # pylint: disable=g-import-not-at-top

  block_cls = {"BasicBlock": tv_resnet.BasicBlock, "Bottleneck": tv_resnet.Bottleneck}[block]
  model = tv_resnet.ResNet(block_cls, list(layers))
  if width != 64 or stem != "imagenet":
    model.inplanes = width
    if stem == "cifar":
      model.conv1 = torch.nn.Conv2d(3, width, 3, 1, 1, bias=False)
      model.maxpool = torch.nn.Identity()
    else:
      model.conv1 = torch.nn.Conv2d(3, width, 7, 2, 3, bias=False)
    model.bn1 = torch.nn.BatchNorm2d(width)
    for i, blocks in enumerate(layers):
      # torchvision's own stage builder, at our widths.
      stage = model._make_layer(block_cls, width * 2 ** i, blocks,  # pylint: disable=protected-access
                                stride=1 if i == 0 else 2)
      setattr(model, f"layer{i + 1}", stage)
  model.fc = torch.nn.Identity()
  return model


def load_resnet(out_dir: str):
  """The exported ResNet in `out_dir`, loaded with `strict=True`, eval mode."""
  import torch  # pylint: disable=g-import-not-at-top

  with open(os.path.join(out_dir, "config.json")) as f:
    info = json.load(f)
  model = resnet(info["block"], info["layers"], info["width"], info["stem"])
  weights = checkpoint_files.read(os.path.join(out_dir, "model.safetensors"))
  model.load_state_dict({k: torch.from_numpy(v) for k, v in weights.items()}, strict=True)
  return model.eval()
