"""An MAE train step in PyTorch on synthetic data: the ViT reference that
repr_learn's jitted MAE step is timed against (`benchmarks/side_by_side.py`).

  python benchmarks/pytorch_mae.py --device=cuda --dtype=bfloat16 --batch_size=256

Built as facebookresearch/mae's `models_mae.py` builds it, since that is the
code MAE users run: timm's `PatchEmbed` and `Block` (pre-LN, qkv bias, GELU
MLP), a class token, fixed 2-D sin-cos positions in encoder and decoder,
per-example random masking by sorting uniform noise, the encoder over the
visible patches and the class token only, a linear decoder embedding, mask
tokens, a narrower transformer decoder and a linear pixel head; the loss is
the MSE against per-patch normalised pixels (unbiased variance, as
`torch.var`) on the hidden patches. AdamW with betas (0.9, 0.95), weight decay
on weights of rank > 1 only (the official timm `add_weight_decay` split), lr
1.5e-4 x batch / 256 held constant. Mixed precision is bf16 autocast (the
official script's fp16 autocast needs a loss scaler; repr_learn computes in
bf16). The views are fixed random crops drawn once (`main_pretrain.py` crops in
DataLoader workers on the host, beside the step), so the timed step is the
network and optimizer alone, where repr_learn's step also crops and flips on
the device.

Sizes default to ViT-B/16 at 224 px with the 512-wide, 8-block decoder
(`mae_vit_base_patch16_dec512d8b`).
"""

import time
from typing import Any

import numpy as np
import torch
from timm.models import vision_transformer
from torch import nn

import pytorch_reference


def sincos_positions(width: int, grid: int) -> torch.Tensor:
  """[grid*grid, width] fixed 2-D sin-cos positions: half the channels encode
  the row, half the column, each as sin then cos of geometric frequencies."""
  def one_axis(dim: int, coords: np.ndarray) -> np.ndarray:
    freqs = 1.0 / 10000 ** (np.arange(dim // 2, dtype=np.float64) / (dim / 2))
    angles = coords.reshape(-1)[:, None] * freqs[None]
    return np.concatenate([np.sin(angles), np.cos(angles)], axis=1)
  rows, cols = np.meshgrid(np.arange(grid, dtype=np.float64), np.arange(grid, dtype=np.float64),
                           indexing="ij")
  table = np.concatenate([one_axis(width // 2, cols), one_axis(width // 2, rows)], axis=1)
  return torch.from_numpy(table).float()


class MaskedAutoencoder(nn.Module):
  """MAE's encoder over visible patches, decoder over all, pixel head."""

  def __init__(self, *, image_size: int = 224, patch_size: int = 16, width: int = 768,
               depth: int = 12, num_heads: int = 12, mlp_dim: int = 3072,
               decoder_width: int = 512, decoder_depth: int = 8, decoder_heads: int = 16,
               decoder_mlp_dim: int = 2048, mask_ratio: float = 0.75):
    super().__init__()
    self.patch_size, self.mask_ratio = patch_size, mask_ratio
    self.patch_embed = vision_transformer.PatchEmbed(image_size, patch_size, 3, width)
    grid = image_size // patch_size
    self.cls_token = nn.Parameter(torch.zeros(1, 1, width))
    self.register_buffer("positions", sincos_positions(width, grid)[None])
    self.blocks = nn.ModuleList(
        vision_transformer.Block(width, num_heads, mlp_ratio=mlp_dim / width, qkv_bias=True)
        for _ in range(depth))
    self.norm = nn.LayerNorm(width, eps=1e-6)
    self.decoder_embed = nn.Linear(width, decoder_width)
    self.mask_token = nn.Parameter(torch.zeros(1, 1, decoder_width))
    self.register_buffer("decoder_positions", sincos_positions(decoder_width, grid)[None])
    self.decoder_blocks = nn.ModuleList(
        vision_transformer.Block(decoder_width, decoder_heads,
                                 mlp_ratio=decoder_mlp_dim / decoder_width, qkv_bias=True)
        for _ in range(decoder_depth))
    self.decoder_norm = nn.LayerNorm(decoder_width, eps=1e-6)
    self.decoder_pred = nn.Linear(decoder_width, patch_size ** 2 * 3)
    nn.init.normal_(self.cls_token, std=0.02)
    nn.init.normal_(self.mask_token, std=0.02)

  def patchify(self, images: torch.Tensor) -> torch.Tensor:
    """[N, 3, H, W] -> [N, L, p*p*3], each patch's pixels row-major, channel last."""
    n, c, h, w = images.shape
    p = self.patch_size
    x = images.reshape(n, c, h // p, p, w // p, p)
    return torch.einsum("nchpwq->nhwpqc", x).reshape(n, (h // p) * (w // p), p * p * c)

  def forward(self, images: torch.Tensor) -> torch.Tensor:
    tokens = self.patch_embed(images) + self.positions
    n, length, width = tokens.shape
    keep = int(length * (1 - self.mask_ratio))
    order = torch.argsort(torch.rand(n, length, device=images.device), dim=1)
    restore = torch.argsort(order, dim=1)
    kept = order[:, :keep]
    x = torch.gather(tokens, 1, kept[..., None].expand(-1, -1, width))
    x = torch.cat([self.cls_token.expand(n, -1, -1), x], dim=1)
    for block in self.blocks:
      x = block(x)
    x = self.decoder_embed(self.norm(x))
    mask_tokens = self.mask_token.expand(n, length - keep, -1)
    x_patches = torch.cat([x[:, 1:], mask_tokens], dim=1)
    x_patches = torch.gather(x_patches, 1, restore[..., None].expand(-1, -1, x.shape[-1]))
    x = torch.cat([x[:, :1], x_patches + self.decoder_positions], dim=1)
    for block in self.decoder_blocks:
      x = block(x)
    predictions = self.decoder_pred(self.decoder_norm(x))[:, 1:]
    hidden = torch.ones(n, length, device=images.device)
    hidden[:, :keep] = 0
    hidden = torch.gather(hidden, 1, restore)
    return self.loss(images, predictions.float(), hidden)

  def loss(self, images: torch.Tensor, predictions: torch.Tensor,
           hidden: torch.Tensor) -> torch.Tensor:
    target = self.patchify(images.float())
    target = (target - target.mean(-1, keepdim=True)) / (target.var(-1, keepdim=True) + 1e-6) ** 0.5
    per_patch = ((predictions - target) ** 2).mean(-1)
    return (per_patch * hidden).sum() / hidden.sum()


def make_optimizer(model: nn.Module, lr: float, weight_decay: float = 0.05,
                   betas: tuple[float, float] = (0.9, 0.95)) -> torch.optim.Optimizer:
  decayed = [p for p in model.parameters() if p.ndim > 1]
  plain = [p for p in model.parameters() if p.ndim <= 1]
  return torch.optim.AdamW([{"params": decayed, "weight_decay": weight_decay},
                            {"params": plain, "weight_decay": 0.0}], lr=lr, betas=betas)


def measure(batch_size: int, image_size: int, steps: int, warmup: int,
            threads: int | None = None, *, crop_size: int | None = None,
            model: dict[str, Any] | None = None, lr: float | None = None,
            weight_decay: float = 0.05, betas: tuple[float, float] = (0.9, 0.95),
            device: str = "cpu", dtype: str = "float32", compile_mode: str = "",
            seed: int = 0, **unused) -> dict[str, Any]:
  """Times `steps` MAE steps after `warmup` untimed ones on one batch of noise
  images at `crop_size`; the same keys as `pytorch_reference.measure`.
  `model` holds `MaskedAutoencoder`'s size arguments."""
  del unused  # SimCLR-only settings side_by_side passes to both references
  if steps < 1 or warmup < 0:
    raise ValueError(f"need steps >= 1 and warmup >= 0, got {steps} and {warmup}.")
  threads = pytorch_reference.set_threads(threads)
  torch.manual_seed(seed)
  device = torch.device(device)
  crop_size = crop_size or image_size
  lr = 1.5e-4 * batch_size / 256 if lr is None else lr
  net = MaskedAutoencoder(image_size=crop_size, **(model or {})).to(device).train()
  opt = make_optimizer(net, lr, weight_decay, betas)
  net_fn = pytorch_reference.compiled(net, compile_mode)
  mean = torch.tensor(pytorch_reference.IMAGENET_MEAN, device=device)[:, None, None]
  std = torch.tensor(pytorch_reference.IMAGENET_STD, device=device)[:, None, None]
  views = (torch.rand(batch_size, 3, crop_size, crop_size, device=device) - mean) / std

  times, losses = [], []
  for i in range(warmup + steps):
    start = time.perf_counter()
    with pytorch_reference.autocast(device, dtype):
      loss = net_fn(views)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    losses.append(loss.item())  # waits for the device
    if i >= warmup:
      times.append(time.perf_counter() - start)
  config = pytorch_reference.fixed_views_config(
      "mae", batch_size=batch_size, device=device, dtype=dtype, compile_mode=compile_mode,
      image_size=image_size, crop_size=crop_size, model=dict(model or {}), lr=lr,
      weight_decay=weight_decay)
  return pytorch_reference.timed_result(config, net, steps=steps, warmup=warmup,
                                        threads=threads, times=times, losses=losses)


def main() -> None:
  from absl import app
  from absl import flags

  batch_size = flags.DEFINE_integer("batch_size", 64, "Images per step.")
  image_size = flags.DEFINE_integer("image_size", 224, "Image side.")
  run_flags = pytorch_reference.define_run_flags(steps=10, warmup=2)

  def run(argv):
    del argv
    r = measure(batch_size.value, image_size.value,
                **{k: f.value for k, f in run_flags.items()})
    print(pytorch_reference.one_line("MAE ViT-B/16", r))

  app.run(run)


if __name__ == "__main__":
  main()
