"""A SimCLR train step in PyTorch on synthetic data: the reference that
repr_learn's jitted step is timed against (`benchmarks/side_by_side.py`).

  python benchmarks/pytorch_reference.py --batch_size=64 --steps=10 --warmup=2
  python benchmarks/pytorch_reference.py --compile_mode=max-autotune

Written as the field's users write it, so the comparison is with common
practice rather than with a tuned PyTorch program: eager mode by default
(`--compile_mode` wraps the network in `torch.compile`, the optimizer stays
eager), NCHW float32 on the CPU, torchvision's `resnet18` (or
`resnet50`) with the CIFAR stem (3x3 stride-1 conv1, no max-pool, fc removed;
`--stem=imagenet` keeps torchvision's own) and `zero_init_residual` as
repr_learn's ResNet, a projector Linear(no bias)
-> BatchNorm1d -> ReLU -> Linear as `MLPHead` with num_layers=2, both views
through one forward pass so BatchNorm sees all 2N images (repr_learn's
`forward_views`), NT-Xent with the diagonal masked out of the softmax.

Each view is drawn per sample by a torchvision.transforms.v2 pipeline (random
resized crop, flip, colour jitter 0.8, grayscale 0.2, no blur: SimCLR's CIFAR
recipe at colour strength 0.5, repr_learn's `view_recipes.simclr`), in the
timed loop without a DataLoader, because repr_learn augments inside its step;
the augmentation's share of each step is reported on its own, and
`--noaugment` times the network and optimizer alone (views drawn once, reused).

Optimizer: LARS, because `configs/simclr.py` trains with `optax.lars`, and
mirroring it costs a few lines: weight decay and the trust ratio on weights of
rank > 1 only, momentum on the lr-scaled update. PyTorch ships no LARS; users
take such a per-parameter loop from solo-learn or the SimCLR ports, and it is
slower than `torch.optim.SGD`'s fused multi-tensor path, so `--optimizer=sgd`
(SGD with momentum, the same decay mask) is there to show what it costs.

On a GPU (`--device=cuda`) the usual mixed-precision form: bf16 autocast
(`--dtype=bfloat16`, float32 weights and optimizer) and channels-last
activations (`--channels_last`), as repr_learn's `imagenet` variants compute
in bf16. There the views are best drawn by DataLoader workers on the host, in
parallel with the step, so `--noaugment` is the fair GPU figure (and favours
PyTorch: repr_learn's step still augments on the device).

The lr is constant (repr_learn's warm-up schedule is a scalar per step).
`--online_probe` adds repr_learn's online linear probe: an eval-mode forward of
the first view without gradient and one SGD step of a linear classifier.
"""

import os
import platform
import time
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
import torchvision
from torch import nn
from torchvision.transforms import v2

import stats

IMAGENET_MEAN = (0.485, 0.456, 0.406)  # as repr_learn.data.augment normalises
IMAGENET_STD = (0.229, 0.224, 0.225)
ARCHS = ("resnet18", "resnet50")
STEMS = ("cifar", "imagenet")
OPTIMIZERS = ("lars", "sgd")
DTYPES = ("float32", "bfloat16")


def resnet_backbone(arch: str, stem: str = "cifar") -> tuple[nn.Module, int]:
  """torchvision's ResNet returning pooled features, with the CIFAR stem (3x3
  stride-1 conv1, no max-pool) or torchvision's own 7x7/2 + max-pool."""
  if arch not in ARCHS:
    raise ValueError(f"Unknown arch {arch!r}; choose one of {ARCHS}.")
  if stem not in STEMS:
    raise ValueError(f"Unknown stem {stem!r}; choose one of {STEMS}.")
  net = getattr(torchvision.models, arch)(weights=None, zero_init_residual=True)
  if stem == "cifar":
    net.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
    nn.init.kaiming_normal_(net.conv1.weight, mode="fan_out", nonlinearity="relu")
    net.maxpool = nn.Identity()
  features = net.fc.in_features
  net.fc = nn.Identity()
  return net, features


class SimCLRNet(nn.Module):
  """Backbone + projector; BatchNorm momentum 0.1 is flax's 0.9 decay."""

  def __init__(self, arch: str, hidden_dim: int, output_dim: int, last_bn: bool = False,
               stem: str = "cifar"):
    super().__init__()
    self.backbone, self.num_features = resnet_backbone(arch, stem)
    layers = [nn.Linear(self.num_features, hidden_dim, bias=False),
              nn.BatchNorm1d(hidden_dim), nn.ReLU(inplace=True),
              nn.Linear(hidden_dim, output_dim, bias=not last_bn)]
    if last_bn:  # SimCLR v2's BN without affine on the output
      layers.append(nn.BatchNorm1d(output_dim, affine=False))
    self.projector = nn.Sequential(*layers)

  def forward(self, x):
    return self.projector(self.backbone(x))


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
  """SimCLR's loss over 2N anchors; the positive of anchor i is its other view."""
  n = z1.shape[0]
  z = F.normalize(torch.cat([z1, z2]), dim=1)
  logits = z @ z.T / temperature
  self_mask = torch.eye(2 * n, dtype=torch.bool, device=z.device)
  logits = logits.masked_fill(self_mask, float("-inf"))
  targets = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
  return F.cross_entropy(logits, targets)


class Lars(torch.optim.Optimizer):
  """`optax.lars` as repr_learn configures it (eps 0, no Nesterov).

  For weights of rank > 1: u = g + wd * w, scaled by eta * |w| / |u| (1 where
  either norm is 0); biases and BatchNorm parameters: u = g. Then
  m = momentum * m + lr * u and w -= m.
  """

  def __init__(self, params, lr: float, momentum: float = 0.9, weight_decay: float = 1e-6,
               trust_coefficient: float = 0.001):
    super().__init__(params, dict(lr=lr, momentum=momentum, weight_decay=weight_decay,
                                  trust_coefficient=trust_coefficient))

  @torch.no_grad()
  def step(self, closure=None):
    del closure
    for group in self.param_groups:
      for p in group["params"]:
        if p.grad is None:
          continue
        update = p.grad
        if p.ndim > 1:
          update = update.add(p, alpha=group["weight_decay"])
          w_norm, u_norm = torch.linalg.vector_norm(p), torch.linalg.vector_norm(update)
          trust = group["trust_coefficient"] * w_norm / u_norm
          update = update * torch.where((w_norm > 0) & (u_norm > 0), trust, 1.0)
        state = self.state[p]
        if "momentum" not in state:
          state["momentum"] = torch.zeros_like(p)
        buf = state["momentum"]
        buf.mul_(group["momentum"]).add_(update, alpha=group["lr"])
        p.sub_(buf)


def make_optimizer(model: nn.Module, name: str, lr: float, momentum: float = 0.9,
                   weight_decay: float = 1e-6) -> torch.optim.Optimizer:
  if name == "lars":
    return Lars(model.parameters(), lr, momentum=momentum, weight_decay=weight_decay)
  if name == "sgd":
    decayed = [p for p in model.parameters() if p.ndim > 1]
    plain = [p for p in model.parameters() if p.ndim <= 1]
    return torch.optim.SGD([{"params": decayed, "weight_decay": weight_decay},
                            {"params": plain, "weight_decay": 0.0}], lr=lr, momentum=momentum)
  raise ValueError(f"Unknown optimizer {name!r}; choose one of {OPTIMIZERS}.")


def view_transform(size: int, min_scale: float = 0.08, color_strength: float = 0.5):
  """One SimCLR view of a uint8 CHW image, normalised float32."""
  s = color_strength
  return v2.Compose([
      v2.RandomResizedCrop(size, scale=(min_scale, 1.0), ratio=(3 / 4, 4 / 3), antialias=True),
      v2.RandomHorizontalFlip(),
      v2.RandomApply([v2.ColorJitter(0.8 * s, 0.8 * s, 0.8 * s, 0.2 * s)], p=0.8),
      v2.RandomGrayscale(p=0.2),
      v2.ToDtype(torch.float32, scale=True),
      v2.Normalize(IMAGENET_MEAN, IMAGENET_STD),
  ])


def two_views(images: torch.Tensor, transform) -> torch.Tensor:
  """Both views of every image, stacked [2N, C, H, W] as one forward's input."""
  return torch.stack([transform(x) for x in images] + [transform(x) for x in images])


class OnlineProbe:
  """repr_learn's online probe: linear classifier on eval-mode, detached
  features of the first view, SGD(lr 0.1, momentum 0.9)."""

  def __init__(self, model: SimCLRNet, num_classes: int = 10):
    self.model = model
    self.linear = nn.Linear(model.num_features, num_classes).to(next(model.parameters()).device)
    self.optimizer = torch.optim.SGD(self.linear.parameters(), lr=0.1, momentum=0.9)

  def step(self, first_view: torch.Tensor, labels: torch.Tensor) -> None:
    self.model.eval()
    with torch.no_grad():
      features = self.model.backbone(first_view)
    self.model.train()
    loss = F.cross_entropy(self.linear(features), labels)
    self.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    self.optimizer.step()


def train_step(model: nn.Module, optimizer: torch.optim.Optimizer, views: torch.Tensor,
               temperature: float, dtype: str = "float32") -> float:
  with autocast(views.device, dtype):
    z1, z2 = model(views).chunk(2)
  loss = nt_xent(z1.float(), z2.float(), temperature)  # the loss in float32, as repr_learn's
  optimizer.zero_grad(set_to_none=True)
  loss.backward()
  optimizer.step()
  return loss.item()  # waits for the device: each timed step is complete


def autocast(device: torch.device, dtype: str):
  """Mixed precision as PyTorch users write it: bf16 autocast, float32 weights."""
  if dtype not in DTYPES:
    raise ValueError(f"Unknown dtype {dtype!r}; choose one of {DTYPES}.")
  return torch.autocast(device.type, dtype=torch.bfloat16, enabled=dtype == "bfloat16")


COMPILE_MODES = ("", "default", "reduce-overhead", "max-autotune")
COMPILE_HELP = ("torch.compile mode of the network ('': eager; default, reduce-overhead, "
                "max-autotune); the warm-up's first step compiles.")


def compiled(module: nn.Module, mode: str):
  """`module` itself (eager) or `torch.compile(module, mode=mode)`, as users
  compile a model: forward and backward graphs, the optimizer step eager."""
  if mode not in COMPILE_MODES:
    raise ValueError(f"Unknown compile mode {mode!r}; choose one of {COMPILE_MODES}.")
  return torch.compile(module, mode=mode) if mode else module


def set_threads(threads: int | None) -> int:
  """Intra-op threads: `threads`, else every CPU this process may run on (as
  XLA's CPU client uses)."""
  if threads is None:
    threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
  torch.set_num_threads(threads)
  return torch.get_num_threads()


def versions() -> dict[str, str]:
  return {"python": platform.python_version(), "torch": torch.__version__,
          "torchvision": torchvision.__version__, "numpy": np.__version__,
          "torch_parallel_backend": "openmp" if torch.backends.openmp.is_available() else "native",
          "mkldnn": str(torch.backends.mkldnn.is_available())}


def measure(batch_size: int, image_size: int, steps: int, warmup: int,
            threads: int | None = None, *, arch: str = "resnet18", stem: str = "cifar",
            crop_size: int | None = None, hidden_dim: int = 2048, output_dim: int = 128,
            last_bn: bool = False, temperature: float = 0.5, optimizer: str = "lars",
            lr: float | None = None, momentum: float = 0.9, weight_decay: float = 1e-6,
            min_scale: float = 0.08, color_strength: float = 0.5, augment: bool = True,
            online_probe: bool = False, num_classes: int = 10, device: str = "cpu",
            dtype: str = "float32", channels_last: bool = False,
            compile_mode: str = "", seed: int = 0) -> dict[str, Any]:
  """Times `steps` SimCLR steps after `warmup` untimed ones on one batch of
  uint8 noise at `image_size`, cropped to `crop_size` (default `image_size`).

  `lr` defaults to SimCLR's 1.0 x batch / 256. Returns images_per_sec and
  step_time_s (median, min, max, quartiles), the per-step times, the
  augmentation's time per step, the losses and the threads used.
  """
  if steps < 1 or warmup < 0:
    raise ValueError(f"need steps >= 1 and warmup >= 0, got {steps} and {warmup}.")
  threads = set_threads(threads)
  torch.manual_seed(seed)
  device = torch.device(device)
  crop_size = crop_size or image_size
  lr = 1.0 * batch_size / 256 if lr is None else lr
  memory_format = torch.channels_last if channels_last else torch.contiguous_format
  model = SimCLRNet(arch, hidden_dim, output_dim, last_bn, stem).to(
      device, memory_format=memory_format).train()
  opt = make_optimizer(model, optimizer, lr, momentum, weight_decay)
  model_fn = compiled(model, compile_mode)
  probe = OnlineProbe(model, num_classes) if online_probe else None
  images = torch.randint(0, 256, (batch_size, 3, image_size, image_size), dtype=torch.uint8,
                         device=device)
  labels = torch.randint(0, num_classes, (batch_size,), device=device)
  transform = view_transform(crop_size, min_scale, color_strength)
  draw_views = lambda: two_views(images, transform).contiguous(memory_format=memory_format)
  fixed_views = None if augment else draw_views()

  times, augment_times, losses = [], [], []
  for i in range(warmup + steps):
    start = time.perf_counter()
    views = draw_views() if augment else fixed_views
    augmented = time.perf_counter()
    losses.append(train_step(model_fn, opt, views, temperature, dtype))
    if probe is not None:
      probe.step(views[:batch_size], labels)
    if i >= warmup:
      times.append(time.perf_counter() - start)
      augment_times.append(augmented - start)
  config = {"arch": arch, "stem": stem, "batch_size": batch_size,
            "image_size": image_size, "crop_size": crop_size, "hidden_dim": hidden_dim,
            "output_dim": output_dim, "last_bn": last_bn, "temperature": temperature,
            "optimizer": optimizer, "lr": lr, "weight_decay": weight_decay,
            "augment": augment, "online_probe": online_probe, "device": str(device),
            "dtype": dtype, "memory_format": "NHWC" if channels_last else "NCHW",
            "mode": compile_mode or "eager"}
  return timed_result(config, model, steps=steps, warmup=warmup, threads=threads,
                      times=times, losses=losses, augment_times=augment_times)


def fixed_views_config(method: str, *, batch_size: int, device, dtype: str, compile_mode: str,
                       **settings) -> dict[str, Any]:
  """`timed_result`'s config for a reference whose views are drawn once
  (MAE, DINO: AdamW, no augmentation or probe in the timed step)."""
  return {"method": method, "batch_size": batch_size, "optimizer": "adamw", **settings,
          "augment": False, "online_probe": False, "device": str(device), "dtype": dtype,
          "memory_format": "NCHW", "mode": compile_mode or "eager"}


def timed_result(config: dict[str, Any], model: nn.Module, *, steps: int, warmup: int,
                 threads: int, times: list[float], losses: list[float],
                 augment_times: list[float] | None = None) -> dict[str, Any]:
  """The record every reference's `measure` returns (`side_by_side` reads it)."""
  batch_size = config["batch_size"]
  return {
      "config": config, "steps": steps, "warmup": warmup, "threads": threads,
      "interop_threads": torch.get_num_interop_threads(),
      "num_params": sum(p.numel() for p in model.parameters()),
      "step_time_s": stats.spread(times),
      "images_per_sec": stats.spread([batch_size / t for t in times]),
      "augment_time_s": stats.spread(augment_times or [0.0] * len(times)),
      "per_step_s": times, "losses": losses, "final_loss": losses[-1], "versions": versions(),
  }


def define_run_flags(*, steps: int, warmup: int) -> dict[str, Any]:
  """The command-line flags every reference's `main` shares."""
  from absl import flags  # pylint: disable=g-import-not-at-top
  return {
      "steps": flags.DEFINE_integer("steps", steps, "Timed steps."),
      "warmup": flags.DEFINE_integer("warmup", warmup, "Untimed steps before them."),
      "device": flags.DEFINE_string("device", "cpu", "torch device: cpu | cuda."),
      "dtype": flags.DEFINE_enum("dtype", "float32", DTYPES, "bfloat16: autocast."),
      "compile_mode": flags.DEFINE_enum("compile_mode", "", COMPILE_MODES, COMPILE_HELP),
  }


def one_line(name: str, r: dict[str, Any]) -> str:
  """A `timed_result` in one line."""
  ips, st, c = r["images_per_sec"], r["step_time_s"], r["config"]
  return (f"PyTorch {name} ({r['num_params']:,} params, {c['mode']} {c['dtype']} on "
          f"{c['device']}), batch {c['batch_size']}: images/s median {ips['median']:.4g} "
          f"(min {ips['min']:.4g}, max {ips['max']:.4g}); step {st['median'] * 1e3:.1f} ms; "
          f"losses {', '.join(f'{x:.4f}' for x in r['losses'])}")


def summary(r: dict[str, Any]) -> str:
  c, ips, st, aug = r["config"], r["images_per_sec"], r["step_time_s"], r["augment_time_s"]
  return "\n".join([
      f"PyTorch SimCLR ({c['arch']} {c['stem']} stem, {c['optimizer']}, {c['mode']} {c['dtype']} "
      f"{c['memory_format']} on {c['device']}), batch {c['batch_size']}, {c['image_size']}px -> "
      f"{c['crop_size']}px, augment {c['augment']}, online probe "
      f"{c['online_probe']}, {r['num_params']:,} params, {r['threads']} threads",
      f"Images/s: median {ips['median']:.4g} (min {ips['min']:.4g}, max {ips['max']:.4g}) "
      f"over {r['steps']} steps after {r['warmup']} warm-up",
      f"Step time: median {st['median'] * 1e3:.1f} ms, of which augmentation "
      f"{aug['median'] * 1e3:.1f} ms",
      f"Losses: {', '.join(f'{x:.4f}' for x in r['losses'])}",
      "Versions: " + ", ".join(f"{k} {v}" for k, v in r["versions"].items()),
  ])


def main() -> None:
  from absl import app
  from absl import flags

  batch_size = flags.DEFINE_integer("batch_size", 64, "Images per step (2 views each).")
  image_size = flags.DEFINE_integer("image_size", 32, "Stored image side.")
  crop_size = flags.DEFINE_integer("crop_size", None, "View side (default: image_size).")
  steps = flags.DEFINE_integer("steps", 10, "Timed steps.")
  warmup = flags.DEFINE_integer("warmup", 2, "Untimed steps before them.")
  threads = flags.DEFINE_integer("threads", None, "torch intra-op threads (default: usable CPUs).")
  arch = flags.DEFINE_enum("arch", "resnet18", ARCHS, "torchvision backbone.")
  stem = flags.DEFINE_enum("stem", "cifar", STEMS, "ResNet stem.")
  device = flags.DEFINE_string("device", "cpu", "torch device: cpu | cuda.")
  dtype = flags.DEFINE_enum("dtype", "float32", DTYPES, "bfloat16: autocast.")
  channels_last = flags.DEFINE_bool("channels_last", False, "NHWC activations.")
  optimizer = flags.DEFINE_enum("optimizer", "lars", OPTIMIZERS, "Optimizer.")
  temperature = flags.DEFINE_float("temperature", 0.5, "NT-Xent temperature.")
  augment = flags.DEFINE_bool("augment", True, "Draw the views in every step.")
  online_probe = flags.DEFINE_bool("online_probe", False, "Also step an online linear probe.")
  compile_mode = flags.DEFINE_enum("compile_mode", "", COMPILE_MODES, COMPILE_HELP)

  def run(argv):
    del argv
    print(summary(measure(batch_size.value, image_size.value, steps.value, warmup.value,
                          threads.value, arch=arch.value, stem=stem.value,
                          crop_size=crop_size.value, device=device.value, dtype=dtype.value,
                          channels_last=channels_last.value, optimizer=optimizer.value,
                          temperature=temperature.value, augment=augment.value,
                          online_probe=online_probe.value,
                          compile_mode=compile_mode.value)))

  app.run(run)


if __name__ == "__main__":
  main()
