"""repr_learn's step beside PyTorch references, eager and compiled, on the same batch.

  python benchmarks/side_by_side.py --batch_size=64 --rounds=4 --steps=10 --warmup=2
  python benchmarks/side_by_side.py --config=configs/simclr.py:imagenet --backbone= \
      --batch_size=256 --torch_device=cuda --channels_last --notorch_augment \
      --torch_modes=eager,default,max-autotune
  python benchmarks/side_by_side.py --config=configs/mae.py:imagenet --batch_size=256 \
      --torch_device=cuda --torch_modes=eager,default
  python benchmarks/side_by_side.py --config=configs/dino.py:imagenet --batch_size=128 \
      --torch_device=cuda --torch_modes=eager,default

repr_learn's side is `throughput.measure`: the trainer's own jitted step
(augmentation on device, the forward, loss, optimizer, the non-finite guard
and the logged metrics) for `--config` (default `configs/simclr.py:cifar10`).
The PyTorch side is the method's reference in `TORCH_SIDES`: SimCLR
(`pytorch_reference.py`: backbone, stem, projector, temperature, optimizer,
learning rate, crop, colour and precision read from the config), MAE
(`pytorch_mae.py`: ViT and decoder sizes, mask ratio, AdamW, precision) or
DINO (`pytorch_dino.py`: ViT, multi-crop sizes and counts, head, teacher,
AdamW, clipping, precision); the settings functions refuse configs their
reference cannot mirror. `--torch_modes` lists the PyTorch sides: `eager`
and `torch.compile` modes (`default`, `reduce-overhead`, `max-autotune`),
the network compiled as users compile it (`torch.compile(model)`, the
optimizer eager). The sides alternate, a repr_learn round then a round of
each PyTorch mode, `--rounds` times, because the machine is shared: load
that comes and goes then hits every side alike. Each round builds its side's
state or model afresh; repr_learn's later rounds reuse the step compiled in
the first (JAX's in-process cache), and compilation is never timed (torch
compiles in its warm-up steps).

SimCLR's CIFAR config trains a ResNet-50; `--backbone` defaults to resnet18
for SimCLR, the CIFAR backbone of `configs/common.py` and of most PyTorch
SimCLR reproductions, and the size a 2-core CPU steps in seconds
(`--backbone=` keeps the config's). `--online_probe` turns the online linear
probe on for both sides (off by default: the reference is SimCLR alone). On
the CPU, JAX sees one device (no `xla_force_host_platform_device_count`) and
uses every core, as PyTorch does with its default `--threads`. On a GPU,
`--torch_device=cuda` (both processes then share the GPU: set
`XLA_PYTHON_CLIENT_MEM_FRACTION` so JAX leaves PyTorch room), and
`--notorch_augment`, since PyTorch users crop in DataLoader workers beside the
step (the comparison then favours PyTorch, whose timed step does not augment).

Prints each side's images/s per round and their medians, the ratio
repr_learn / PyTorch per mode, the machine and versions, and appends one JSON line to
`--out`.
"""

import copy
import os
import sys
from typing import Any, Sequence

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
  sys.path.insert(0, _HERE)

import numpy as np
# torchvision first: imported after TensorFlow (which repr_learn's data modules
# load) it crashes the process (segfault, torch 2.14 / torchvision 0.29).
import pytorch_dino
import pytorch_mae
import pytorch_reference
import throughput  # puts the repository root on sys.path

from repr_learn import optim
from repr_learn.data import catalog
from repr_learn.models import vit


def prepared_config(config, *, batch_size: int, backbone: str | None, online_probe: bool):
  """`config` with the comparison's batch, backbone and probe setting;
  `backbone` None means resnet18 for SimCLR, the config's own otherwise."""
  config = copy.deepcopy(config)
  config.batch_size = batch_size
  if backbone is None and config.objective.name == "simclr":
    backbone = "resnet18"
  if backbone:
    config.model.backbone = backbone
  config.eval.online_probe = online_probe
  return config


def _refuse_unmirrored(required: dict[str, tuple[Any, Any]], wrong: dict[str, Any]):
  wrong = dict(wrong)
  wrong.update({k: f"{v!r}, needs {want!r}" for k, (v, want) in required.items() if v != want})
  if wrong:
    raise ValueError(f"The PyTorch reference does not mirror {wrong}.")


def simclr_settings(config, *, torch_augment: bool, channels_last: bool) -> dict[str, Any]:
  """`pytorch_reference.measure`'s arguments for a SimCLR `config`."""
  spec = catalog.get_spec(config.data.name)
  m, p, a, o = config.model, config.model.projector, config.augment, config.optimizer
  required = {
      "augment.recipe": (a.recipe, "simclr"), "model.width": (m.width, 64),
      "model.projector.num_layers": (p.num_layers, 2), "model.projector.use_bn": (p.use_bn, True),
      "model.projector.activation": (p.activation, "relu"),
      "model.predictor.num_layers": (config.model.predictor.num_layers, 0),
      "optimizer.trust_coefficient": (o.trust_coefficient, 0.001),
      "optimizer.lars_variant": (o.lars_variant, "optax"),  # the reference's LARS is optax's
  }
  if torch_augment:  # the reference's views have no blur
    required["augment.blur_prob"] = (a.blur_prob, 0.0)
  wrong = {}
  if m.backbone not in pytorch_reference.ARCHS:
    wrong["model.backbone"] = m.backbone
  if o.name not in pytorch_reference.OPTIMIZERS:
    wrong["optimizer.name"] = o.name
  _refuse_unmirrored(required, wrong)
  return dict(
      batch_size=config.batch_size, image_size=spec.image_size, crop_size=a.crop_size,
      arch=m.backbone, stem=m.stem, hidden_dim=p.hidden_dim, output_dim=p.output_dim,
      last_bn=p.last_bn, temperature=config.objective.temperature, optimizer=o.name,
      lr=optim.scaled_learning_rate(o, config.batch_size), momentum=o.momentum,
      weight_decay=o.weight_decay, min_scale=a.min_scale, color_strength=a.color_strength,
      online_probe=bool(config.eval.online_probe), num_classes=spec.num_classes or 10,
      dtype=config.model.dtype, channels_last=channels_last, seed=config.seed)


def mae_settings(config, *, torch_augment: bool, channels_last: bool) -> dict[str, Any]:
  """`pytorch_mae.measure`'s arguments for an MAE `config` (its views are always
  drawn once: `torch_augment` does not apply; a ViT has no channels-last form)."""
  del torch_augment
  if channels_last:
    raise ValueError("--channels_last applies to the ResNet references only.")
  spec = catalog.get_spec(config.data.name)
  m, d, o = config.model, config.model.decoder, config.optimizer
  wrong = {} if m.backbone in vit.VIT_SIZES else {"model.backbone": m.backbone}
  _refuse_unmirrored({"model.decoder.kind": (d.kind, "transformer"),
                      "objective.norm_pix_loss": (config.objective.norm_pix_loss, True),
                      "optimizer.name": (o.name, "adamw"),
                      "eval.online_probe": (config.eval.online_probe, False)}, wrong)
  width, depth, heads, mlp_dim = vit.VIT_SIZES[m.backbone]
  return dict(
      batch_size=config.batch_size, image_size=spec.image_size, crop_size=config.augment.crop_size,
      model=dict(patch_size=m.patch_size, width=width, depth=depth, num_heads=heads,
                 mlp_dim=mlp_dim, decoder_width=d.width, decoder_depth=d.depth,
                 decoder_heads=d.num_heads, decoder_mlp_dim=d.mlp_dim,
                 mask_ratio=config.objective.mask_ratio),
      lr=optim.scaled_learning_rate(o, config.batch_size), weight_decay=o.weight_decay,
      betas=(o.adam_b1, o.adam_b2), dtype=config.model.dtype, seed=config.seed)


def dino_settings(config, *, torch_augment: bool, channels_last: bool) -> dict[str, Any]:
  """`pytorch_dino.measure`'s arguments for a DINO ViT `config` (its crops are
  drawn once, as MAE's views)."""
  del torch_augment
  if channels_last:
    raise ValueError("--channels_last applies to the ResNet references only.")
  m, a, o, obj = config.model, config.augment, config.optimizer, config.objective
  wrong = {} if m.backbone in pytorch_dino.VIT_SIZES else {"model.backbone": m.backbone}
  _refuse_unmirrored({"model.projector.num_layers": (m.projector.num_layers, 3),
                      "model.projector.use_bn": (m.projector.use_bn, False),
                      "model.projector.activation": (m.projector.activation, "gelu"),
                      "model.pooling": (m.pooling, "cls"),
                      "optimizer.name": (o.name, "adamw"),
                      "eval.online_probe": (config.eval.online_probe, False)}, wrong)
  return dict(
      batch_size=config.batch_size, image_size=a.crop_size, crop_size=a.crop_size,
      local_crop_size=a.local_crop_size, num_local_crops=a.num_local_crops,
      backbone=m.backbone, patch_size=m.patch_size, drop_path=m.drop_path,
      hidden_dim=m.projector.hidden_dim, bottleneck_dim=m.projector.output_dim,
      num_prototypes=m.prototypes.num_prototypes,
      norm_last_layer=not m.prototypes.learned_norm,
      teacher_temperature=obj.warmup_teacher_temperature,
      student_temperature=obj.student_temperature, momentum=obj.base_momentum,
      lr=optim.scaled_learning_rate(o, config.batch_size), weight_decay=o.weight_decay,
      clip=o.clip_each_parameter_norm, dtype=m.dtype, seed=config.seed)


# objective name -> (settings from the config, the PyTorch side's measure)
TORCH_SIDES = {
    "simclr": (simclr_settings, pytorch_reference.measure),
    "mae": (mae_settings, pytorch_mae.measure),
    "dino": (dino_settings, pytorch_dino.measure),
}


def torch_side(config, *, torch_augment: bool = True, channels_last: bool = False):
  """(settings, measure) of the PyTorch reference for `config`'s method."""
  name = config.objective.name
  if name not in TORCH_SIDES:
    raise ValueError(f"No PyTorch reference for {name!r}; choose one of {sorted(TORCH_SIDES)}.")
  make_settings, measure = TORCH_SIDES[name]
  return make_settings(config, torch_augment=torch_augment, channels_last=channels_last), measure


def compare(config, *, rounds: int, steps: int, warmup: int, threads: int | None = None,
            torch_augment: bool = True, torch_device: str = "cpu",
            channels_last: bool = False, torch_modes: Sequence[str] = ("",),
            model_flops_per_image: float | None = None) -> dict[str, Any]:
  """`rounds` x (a repr_learn round, then a PyTorch round per mode of
  `torch_modes`: '' eager, else a `torch.compile` mode); medians over the
  rounds' median images/s and repr_learn's ratio to each mode."""
  settings, torch_measure = torch_side(config, torch_augment=torch_augment,
                                       channels_last=channels_last)
  jax_runs, torch_runs = [], {mode or "eager": [] for mode in torch_modes}
  for _ in range(rounds):
    jax_runs.append(throughput.measure(config, steps=steps, warmup=warmup,
                                       model_flops_per_image=model_flops_per_image))
    for mode in torch_modes:
      torch_runs[mode or "eager"].append(torch_measure(
          steps=steps, warmup=warmup, threads=threads, augment=torch_augment,
          device=torch_device, compile_mode=mode, **settings))
  jax_ips = [r["images_per_sec"]["median"] for r in jax_runs]
  machine, versions = throughput.machine_info()
  versions.update(pytorch_reference.versions())
  pytorch, ratio, ratio_per_round = {}, {}, {}
  for mode, runs in torch_runs.items():
    ips = [r["images_per_sec"]["median"] for r in runs]
    last = runs[-1]
    pytorch[mode] = {
        "images_per_sec_per_round": ips, "images_per_sec_median": float(np.median(ips)),
        "per_step_s_per_round": [r["per_step_s"] for r in runs],
        "augment_s_per_round": [r["augment_time_s"]["median"] for r in runs],
        "losses_per_round": [r["losses"] for r in runs],
        "num_params": last["num_params"], "threads": last["threads"],
        "interop_threads": last["interop_threads"], "config": last["config"]}
    ratio[mode] = float(np.median(jax_ips) / np.median(ips))
    ratio_per_round[mode] = [j / t for j, t in zip(jax_ips, ips)]
  return {
      "config": jax_runs[0]["config"], "rounds": rounds, "steps": steps, "warmup": warmup,
      "online_probe": bool(config.eval.online_probe),
      "repr_learn": {
          "images_per_sec_per_round": jax_ips, "images_per_sec_median": float(np.median(jax_ips)),
          "step_time_s_per_round": [r["step_time_s"] for r in jax_runs],
          "compile_s_per_round": [r["compile_s"] for r in jax_runs],
          "num_params": jax_runs[0]["num_params"], "num_devices": jax_runs[0]["num_devices"],
          "mfu_per_round": [r["mfu"] for r in jax_runs],
          "augment_s_per_round": [r["augment_time_s"]["median"] for r in jax_runs],
          "xla_flops_per_image": jax_runs[0]["xla_flops_per_image"],
          "memory": jax_runs[0]["memory"],
          "final_loss_per_round": [r["final_loss"] for r in jax_runs]},
      "pytorch": pytorch, "ratio": ratio, "ratio_per_round": ratio_per_round,
      "machine": machine, "versions": versions,
  }


def _joined(values) -> str:
  return ", ".join(f"{x:.4g}" for x in values)


def summary(r: dict[str, Any]) -> str:
  c, jx, m = r["config"], r["repr_learn"], r["machine"]
  load = ", ".join(f"{x:.2f}" for x in m["load_average"] or [])
  lines = [
      f"{c['method']} on {c['data']} ({c['backbone']}, {c['dtype']}), batch {c['batch_size']}, "
      f"{c['image_size']}px -> {c['crop_size']}px crops, online probe "
      f"{'on' if r['online_probe'] else 'off'}; {r['rounds']} rounds x {r['steps']} steps "
      f"after {r['warmup']} warm-up, repr_learn then each PyTorch mode in each round",
      f"repr_learn (jit, {jx['num_devices']} {m['backend']} device(s), {jx['num_params']:,} "
      f"params): images/s per round {_joined(jx['images_per_sec_per_round'])}; median "
      f"{jx['images_per_sec_median']:.4g} (compile s per round: "
      f"{_joined(jx['compile_s_per_round'])}; view drawing alone "
      f"{np.median(jx['augment_s_per_round']) * 1e3:.0f} ms per step)"]
  for mode, pt in r["pytorch"].items():
    step_s = np.median([np.median(s) for s in pt["per_step_s_per_round"]])
    aug_s = np.median(pt["augment_s_per_round"])
    lines += [
        f"PyTorch ({mode} on {pt['config']['device']}, {pt['threads']} threads, "
        f"{pt['config']['optimizer']}, {pt['config']['dtype']} {pt['config']['memory_format']}, "
        f"augment {pt['config']['augment']}, {pt['num_params']:,} params): images/s per round "
        f"{_joined(pt['images_per_sec_per_round'])}; median {pt['images_per_sec_median']:.4g} "
        f"(augmentation {aug_s * 1e3:.0f} ms of {step_s * 1e3:.0f} ms per step)",
        f"Ratio repr_learn / PyTorch {mode} (images/s): {r['ratio'][mode]:.3f} "
        f"(per round: {_joined(r['ratio_per_round'][mode])})"]
  return "\n".join(lines + [
      f"Machine: {m['cpu_model']}, {m['cpus_usable']} usable of {m['cpu_count']} CPUs, "
      f"{m['platform']}; load average {load}",
      "Versions: " + ", ".join(f"{k} {v}" for k, v in r["versions"].items())
      + f"; git {m['git']}",
  ])


def main() -> None:
  from absl import app
  from absl import flags
  from ml_collections import config_flags

  config_flag = config_flags.DEFINE_config_file(
      "config", "configs/simclr.py:cifar10",
      f"Config to compare, of a method in {sorted(TORCH_SIDES)}.", lock_config=True)
  batch_size = flags.DEFINE_integer("batch_size", 64, "Global batch of both sides.")
  backbone = flags.DEFINE_string("backbone", None,
                                 "Backbone of both sides (default: resnet18 for SimCLR, else the "
                                 "config's); empty keeps the config's.")
  online_probe = flags.DEFINE_bool("online_probe", False, "Online linear probe on both sides.")
  rounds = flags.DEFINE_integer("rounds", 3, "Interleaved rounds per side.")
  steps = flags.DEFINE_integer("steps", 10, "Timed steps per round.")
  warmup = flags.DEFINE_integer("warmup", 2, "Untimed steps per round before them.")
  threads = flags.DEFINE_integer("threads", None,
                                 "PyTorch intra-op threads (default: usable CPUs).")
  torch_augment = flags.DEFINE_bool("torch_augment", True,
                                    "PyTorch draws the views in its timed step, as repr_learn "
                                    "does; --notorch_augment times its network alone.")
  torch_device = flags.DEFINE_string("torch_device", "cpu", "PyTorch's device: cpu | cuda.")
  channels_last = flags.DEFINE_bool("channels_last", False, "PyTorch ResNet in NHWC.")
  torch_modes = flags.DEFINE_list("torch_modes", ["eager"],
                                  "PyTorch sides, each timed every round: eager and/or "
                                  "torch.compile modes (default, reduce-overhead, max-autotune).")
  model_flops = flags.DEFINE_float("model_flops_per_image", None,
                                   "Model FLOPs per image, for repr_learn's MFU.")
  out = flags.DEFINE_string("out", "benchmarks/side_by_side.jsonl", "JSON lines file to append to.")

  def run(argv):
    del argv
    config = prepared_config(config_flag.value, batch_size=batch_size.value,
                             backbone=backbone.value, online_probe=online_probe.value)
    result = compare(config, rounds=rounds.value, steps=steps.value, warmup=warmup.value,
                     threads=threads.value, torch_augment=torch_augment.value,
                     torch_device=torch_device.value, channels_last=channels_last.value,
                     torch_modes=[m if m != "eager" else "" for m in torch_modes.value],
                     model_flops_per_image=model_flops.value)
    print(summary(result))
    throughput.append_record(out.value, result)

  app.run(run)


if __name__ == "__main__":
  main()
