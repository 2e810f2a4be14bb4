"""A DINO multi-crop train step in PyTorch on synthetic data: the reference that
repr_learn's jitted DINO step is timed against (`benchmarks/side_by_side.py`).

  python benchmarks/pytorch_dino.py --device=cuda --dtype=bfloat16 --batch_size=128
  python benchmarks/pytorch_dino.py --compile_mode=default     # torch.compile

Built as facebookresearch/dino builds it (main_dino.py, utils.py,
vision_transformer.py), since that is the code DINO users run:
- the ViT of `vision_transformer.py`: conv patch embedding, class token,
  learned positions resampled bicubically at scale (grid + 0.1) / 14 for the
  96-px crops (`interpolate_pos_encoding`), timm-style pre-LN blocks (qkv bias,
  GELU MLP, drop path), final LayerNorm, the class token as the feature;
- `utils.MultiCropWrapper`: one backbone pass per run of equal crop sizes
  (the 2 global crops together, the locals together), the head once on the
  concatenated features;
- `DINOHead`: 3-layer GELU MLP 2048 -> 256, L2-normalised, a weight-normalised
  linear layer to the prototypes (`norm_last_layer` as the config says);
- `DINOLoss`: the teacher's 2 global outputs centred and sharpened, the
  student's every crop at temperature 0.1, the cross-entropy summed over all
  pairs but a crop with itself and averaged, the centre's EMA update;
- the teacher a copy of the student (backbone and head) updated by EMA, only
  the 2 global crops through it;
- AdamW with biases and 1-D parameters unregularised (`get_params_groups`),
  each parameter's gradient clipped to norm `clip` (`clip_gradients`).

Differs, for PyTorch's sake: `clip_gradients` there reads every norm with
`.item()` (a device sync per parameter); here the clip stays on the device.
The teacher's EMA uses `torch._foreach_*` instead of a per-parameter loop. The
last layer's first-epoch freeze is off (the steady state is what is timed).
Mixed precision is bf16 autocast (the official fp16 autocast needs a loss
scaler). The crops are fixed random tensors drawn once (DINO crops in
DataLoader workers beside the step), so the timed step is the networks, loss
and optimizer alone, where repr_learn's step also draws its 10 views.
`--compile_mode` wraps student and teacher in `torch.compile` (two graphs
each: one per crop size). repr_learn's ViT has one width-sized parameter
vector fewer: it has no position for the class token (the official ViT's is
a constant added to the class token, which the import folds into it).
"""

import math
import time
from typing import Any

import torch
import torch.nn.functional as F
from timm.models import vision_transformer
from torch import nn

import pytorch_reference

VIT_SIZES = {"vit_tiny": (192, 12, 3), "vit_small": (384, 12, 6), "vit_base": (768, 12, 12)}


class DinoViT(nn.Module):
  """vision_transformer.VisionTransformer of the DINO repository, classifier removed."""

  def __init__(self, *, image_size: int = 224, patch_size: int = 16, width: int = 384,
               depth: int = 12, num_heads: int = 6, drop_path: float = 0.1):
    super().__init__()
    self.patch_size = patch_size
    self.patch_embed = vision_transformer.PatchEmbed(image_size, patch_size, 3, width,
                                                     strict_img_size=False)
    grid = image_size // patch_size
    self.cls_token = nn.Parameter(torch.zeros(1, 1, width))
    self.pos_embed = nn.Parameter(torch.zeros(1, grid * grid + 1, width))
    rates = [x.item() for x in torch.linspace(0, drop_path, depth)]
    self.blocks = nn.ModuleList([
        vision_transformer.Block(width, num_heads, mlp_ratio=4.0, qkv_bias=True,
                                 drop_path=rate, norm_layer=nn.LayerNorm) for rate in rates])
    self.norm = nn.LayerNorm(width)
    nn.init.trunc_normal_(self.pos_embed, std=0.02)
    nn.init.trunc_normal_(self.cls_token, std=0.02)

  def interpolate_pos_encoding(self, tokens: int, h: int, w: int) -> torch.Tensor:
    grid = int(math.sqrt(self.pos_embed.shape[1] - 1))
    if tokens - 1 == grid * grid and h == w:
      return self.pos_embed
    cls_pos, patch_pos = self.pos_embed[:, :1], self.pos_embed[:, 1:]
    h0, w0 = h // self.patch_size + 0.1, w // self.patch_size + 0.1
    dim = patch_pos.shape[-1]
    patch_pos = F.interpolate(
        patch_pos.reshape(1, grid, grid, dim).permute(0, 3, 1, 2),
        scale_factor=(h0 / grid, w0 / grid), mode="bicubic")
    return torch.cat([cls_pos, patch_pos.permute(0, 2, 3, 1).reshape(1, -1, dim)], dim=1)

  def forward(self, images: torch.Tensor) -> torch.Tensor:
    h, w = images.shape[-2:]
    x = self.patch_embed(images)
    x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)
    x = x + self.interpolate_pos_encoding(x.shape[1], h, w)
    for block in self.blocks:
      x = block(x)
    return self.norm(x)[:, 0]


class DinoHead(nn.Module):
  """DINOHead without BN: MLP, L2 normalisation, weight-normalised prototypes."""

  def __init__(self, in_dim: int, out_dim: int, *, hidden_dim: int = 2048,
               bottleneck_dim: int = 256, num_layers: int = 3, norm_last_layer: bool = True):
    super().__init__()
    layers, dim = [], in_dim
    for _ in range(num_layers - 1):
      layers += [nn.Linear(dim, hidden_dim), nn.GELU()]
      dim = hidden_dim
    self.mlp = nn.Sequential(*layers, nn.Linear(dim, bottleneck_dim))
    for m in self.mlp:
      if isinstance(m, nn.Linear):
        nn.init.trunc_normal_(m.weight, std=0.02)
        nn.init.zeros_(m.bias)
    self.last_layer = nn.utils.parametrizations.weight_norm(
        nn.Linear(bottleneck_dim, out_dim, bias=False))
    self.last_layer.parametrizations.weight.original0.data.fill_(1)
    if norm_last_layer:
      self.last_layer.parametrizations.weight.original0.requires_grad = False

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    return self.last_layer(F.normalize(self.mlp(x), dim=-1))


class MultiCropWrapper(nn.Module):
  """One backbone pass per run of equal crop sizes, the head on all features."""

  def __init__(self, backbone: nn.Module, head: nn.Module):
    super().__init__()
    self.backbone, self.head = backbone, head

  def forward(self, crops: list[torch.Tensor]) -> torch.Tensor:
    features, start = [], 0
    while start < len(crops):
      end = start
      while end < len(crops) and crops[end].shape[-1] == crops[start].shape[-1]:
        end += 1
      features.append(self.backbone(torch.cat(crops[start:end])))
      start = end
    return self.head(torch.cat(features))


class DinoLoss(nn.Module):
  def __init__(self, out_dim: int, num_crops: int, *, student_temperature: float = 0.1,
               centre_momentum: float = 0.9):
    super().__init__()
    self.num_crops, self.student_temperature = num_crops, student_temperature
    self.centre_momentum = centre_momentum
    self.register_buffer("centre", torch.zeros(1, out_dim))

  def forward(self, student_out: torch.Tensor, teacher_out: torch.Tensor,
              teacher_temperature: float) -> torch.Tensor:
    student = (student_out / self.student_temperature).chunk(self.num_crops)
    teacher = F.softmax((teacher_out - self.centre) / teacher_temperature, dim=-1).detach()
    total, terms = 0.0, 0
    for iq, q in enumerate(teacher.chunk(2)):
      for v, s in enumerate(student):
        if v != iq:
          total = total + torch.sum(-q * F.log_softmax(s, dim=-1), dim=-1).mean()
          terms += 1
    with torch.no_grad():
      batch_centre = teacher_out.mean(dim=0, keepdim=True)
      self.centre.mul_(self.centre_momentum).add_(batch_centre * (1 - self.centre_momentum))
    return total / terms


def params_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
  """utils.get_params_groups: no decay on biases and 1-D parameters."""
  decayed, plain = [], []
  for name, p in model.named_parameters():
    if p.requires_grad:
      (plain if name.endswith(".bias") or p.ndim == 1 else decayed).append(p)
  return [{"params": decayed, "weight_decay": weight_decay},
          {"params": plain, "weight_decay": 0.0}]


def clip_each_gradient(model: nn.Module, clip: float) -> None:
  """utils.clip_gradients without its per-parameter `.item()`."""
  grads = [p.grad for p in model.parameters() if p.grad is not None]
  norms = torch._foreach_norm(grads)
  coefs = [torch.clamp(clip / (n + 1e-6), max=1.0) for n in norms]
  torch._foreach_mul_(grads, coefs)


def measure(batch_size: int, image_size: int, steps: int, warmup: int,
            threads: int | None = None, *, crop_size: int = 224, local_crop_size: int = 96,
            num_local_crops: int = 8, backbone: str = "vit_small", patch_size: int = 16,
            drop_path: float = 0.1, hidden_dim: int = 2048, bottleneck_dim: int = 256,
            num_prototypes: int = 65536, norm_last_layer: bool = True,
            teacher_temperature: float = 0.04, student_temperature: float = 0.1,
            momentum: float = 0.996, lr: float | None = None, weight_decay: float = 0.04,
            clip: float = 3.0, device: str = "cpu", dtype: str = "float32",
            compile_mode: str = "", seed: int = 0, **unused) -> dict[str, Any]:
  """Times `steps` DINO steps after `warmup` untimed ones (the first of which
  compiles under `compile_mode`); the same keys as `pytorch_reference.measure`."""
  del unused, image_size  # the crops are drawn at their own sizes
  if steps < 1 or warmup < 0:
    raise ValueError(f"need steps >= 1 and warmup >= 0, got {steps} and {warmup}.")
  threads = pytorch_reference.set_threads(threads)
  torch.manual_seed(seed)
  device = torch.device(device)
  lr = 5e-4 * batch_size / 256 if lr is None else lr
  width, depth, heads = VIT_SIZES[backbone]
  def network(rate):
    vit = DinoViT(image_size=crop_size, patch_size=patch_size, width=width, depth=depth,
                  num_heads=heads, drop_path=rate)
    return MultiCropWrapper(vit, DinoHead(width, num_prototypes, hidden_dim=hidden_dim,
                                          bottleneck_dim=bottleneck_dim,
                                          norm_last_layer=norm_last_layer)).to(device)
  student = network(drop_path).train()
  teacher = network(0.0).train()  # main_dino.py: the teacher has no drop path
  teacher.load_state_dict(student.state_dict())
  for p in teacher.parameters():
    p.requires_grad = False
  num_crops = 2 + num_local_crops
  loss_fn = DinoLoss(num_prototypes, num_crops, student_temperature=student_temperature).to(device)
  opt = torch.optim.AdamW(params_groups(student, weight_decay), lr=lr)
  student_fn = pytorch_reference.compiled(student, compile_mode)
  teacher_fn = pytorch_reference.compiled(teacher, compile_mode)
  crops = ([torch.randn(batch_size, 3, crop_size, crop_size, device=device)] * 2
           + [torch.randn(batch_size, 3, local_crop_size, local_crop_size, device=device)]
           * num_local_crops)
  student_params = [p for p in student.parameters()]
  teacher_params = [p for p in teacher.parameters()]

  times, losses = [], []
  for i in range(warmup + steps):
    start = time.perf_counter()
    with pytorch_reference.autocast(device, dtype):
      with torch.no_grad():
        teacher_out = teacher_fn(crops[:2])
      student_out = student_fn(crops)
    loss = loss_fn(student_out.float(), teacher_out.float(), teacher_temperature)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    clip_each_gradient(student, clip)
    opt.step()
    with torch.no_grad():
      torch._foreach_mul_(teacher_params, momentum)
      torch._foreach_add_(teacher_params, student_params, alpha=1 - momentum)
    losses.append(loss.item())  # waits for the device
    if i >= warmup:
      times.append(time.perf_counter() - start)
  config = pytorch_reference.fixed_views_config(
      "dino", batch_size=batch_size, device=device, dtype=dtype, compile_mode=compile_mode,
      crop_size=crop_size, local_crop_size=local_crop_size, num_local_crops=num_local_crops,
      backbone=backbone, num_prototypes=num_prototypes, lr=lr, weight_decay=weight_decay)
  return pytorch_reference.timed_result(config, student, steps=steps, warmup=warmup,
                                        threads=threads, times=times, losses=losses)


def main() -> None:
  from absl import app
  from absl import flags

  batch_size = flags.DEFINE_integer("batch_size", 16, "Images per step.")
  num_local_crops = flags.DEFINE_integer("num_local_crops", 8, "96-px crops per image.")
  backbone = flags.DEFINE_enum("backbone", "vit_small", list(VIT_SIZES), "ViT size.")
  run_flags = pytorch_reference.define_run_flags(steps=5, warmup=2)

  def run(argv):
    del argv
    r = measure(batch_size.value, 224, num_local_crops=num_local_crops.value,
                backbone=backbone.value, **{k: f.value for k, f in run_flags.items()})
    print(pytorch_reference.one_line(
        f"DINO {backbone.value} 2x224 + {num_local_crops.value}x96", r))

  app.run(run)


if __name__ == "__main__":
  main()
