"""Throughput of the real train step on synthetic data: images/s, FLOPs, MFU, memory.

  python benchmarks/throughput.py --config=configs/mae.py:imagenet \
      --config.batch_size=256 --steps=20 --warmup=3 --model_flops_per_image=58.7e9

The step is the trainer's own: `train.build_setup` builds the objective,
optimizer, schedule and online probe, and the step is jitted with the
trainer's shardings and state donation. By default no dataset is opened: the
batch is uint8 noise shaped as the catalog stores the dataset
(`DatasetSpec.example_shapes`: ImageNet's 341-px canvas with `image_hw`),
put on the devices once, so the figures are the step alone. `--end_to_end`
then times the same compiled step fed by the real input pipeline (the
config's dataset, prepared as for training), so the input's cost shows as the
difference:

  python benchmarks/throughput.py --config=configs/simclr.py:digits --end_to_end

The schedule and any memory bank are sized for a nominal dataset
(`NOMINAL_EXAMPLES`, or `--num_examples`). Methods that start from a pretrained
encoder (SCAN, DEC) are timed from random weights, and their pass over the
dataset before step 0 is not part of the step.

Prints a summary and appends one JSON line (the dict `measure` returns, plus
the command) to `--out`. Keys of that dict (`RESULT_KEYS`):

  config                 method, data, backbone, dtype, batch, image and crop size,
                         scanned and rematerialised blocks
  steps, warmup          timed and untimed steps
  num_devices            devices the global batch is split over
  num_params             parameters of the network
  lower_s, compile_s     tracing + lowering, and XLA compilation, of the step
  xla_flops_per_step     compiled step's `cost_analysis()` FLOPs, all devices
                         (the per-device SPMD program's count x devices); None
                         with model.scan_blocks (XLA counts the loop body once)
  xla_flops_per_image    the same per image of the global batch
  model_flops_per_image  as given (e.g. 58.7e9 for MAE ViT-B/16), else None
  step_time_s            {median, min, max, p25, p75} over the timed steps
  augment_time_s         the same for the step's view drawing jitted alone
  end_to_end             with --end_to_end: images/s, step time and the host's
                         wait per step when the real input pipeline feeds the
                         step (`_time_end_to_end`); else None
  images_per_sec         {median, min, max, p25, p75}: batch / each step's time
  peak_flops_per_device  dense bf16 peak of the device kind (None if unknown/CPU)
  mfu                    model FLOPs/s over peak (needs both), at the median
  xla_flops_utilization  XLA-counted FLOPs/s over peak, at the median
  memory                 peak bytes per device: the allocator's high-water mark
                         (GPU), else arguments + outputs - donated + temporaries
                         of the compiled step (`memory_analysis()`), with source
  final_loss             the last step's loss (sanity only: the data is noise)
  machine, versions      host, devices, CPU count, load average; library versions
"""

import datetime
import json
import os
import platform
import subprocess
import sys
import time
from typing import Any

_HERE = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(_HERE)
# `configs/` (imported by the config files) lives in the root; `stats` beside this file.
for _path in (REPO_ROOT, _HERE):
  if _path not in sys.path:
    sys.path.insert(0, _path)

import jax
import ml_collections
import numpy as np

import stats
from repr_learn import compile_options
from repr_learn import config_checks
from repr_learn import parallel
from repr_learn import train
from repr_learn.data import augment
from repr_learn.data import catalog
from repr_learn.data import pipeline
from repr_learn.data import sources

RESULT_KEYS = (
    "config", "steps", "warmup", "num_devices", "num_params", "lower_s", "compile_s",
    "xla_flops_per_step", "xla_flops_per_image", "model_flops_per_image", "step_time_s",
    "images_per_sec", "augment_time_s", "end_to_end", "peak_flops_per_device", "mfu",
    "xla_flops_utilization", "memory", "final_loss", "machine", "versions")

# Pretraining-split sizes; they only size the schedule and memory banks.
NOMINAL_EXAMPLES = {
    "digits": 1_437, "cifar10": 50_000, "cifar100": 50_000, "stl10": 100_000,
    "imagenette": 9_469, "imagenet2012": 1_281_167, "shapes": 6_000,
    "coco_captions": 113_287, "captions": 2_900_000,  # captions: CC3M, open_clip's example
}

# Dense bf16 peak FLOP/s per device, first matching substring of `device_kind`
# (NVIDIA datasheets; with sparsity the sheets quote twice these).
PEAK_FLOPS = (
    ("H200", 989e12),
    ("H100 PCIe", 756e12),
    ("H100 NVL", None),   # not in the table: report n/a rather than a wrong peak
    ("H100", 989e12),     # SXM, e.g. "NVIDIA H100 80GB HBM3"
    ("A100", 312e12),
)


def peak_flops(device) -> float | None:
  if device.platform != "gpu":
    return None
  for kind, peak in PEAK_FLOPS:
    if kind in device.device_kind:
      return peak
  return None


def synthetic_batch(config, spec, objective, mesh, seed: int = 0) -> dict[str, jax.Array]:
  """This process's share of a global batch of uint8 noise, on the devices."""
  rng = np.random.default_rng(seed)
  local = parallel.per_process_batch_size(config.batch_size)
  first = jax.process_index() * local
  batch = {}
  captions = (config.data.max_captions, config.data.context_length)
  for key, (shape, dtype) in spec.example_shapes(objective.pairs_with_neighbours,
                                                 captions).items():
    if key.endswith("image"):
      batch[key] = rng.integers(0, 256, (local,) + shape, dtype=np.uint8)
    elif key.endswith("image_hw"):  # a 3:4 or 4:3 image in its canvas
      batch[key] = np.where(rng.random((local, 1)) < 0.5, [[spec.image_size, spec.canvas_size]],
                            [[spec.canvas_size, spec.image_size]]).astype(np.int32)
    elif key == "tokens":  # start-of-text, random tokens, then end-of-text at the end
      batch[key] = rng.integers(3, 250, (local,) + shape).astype(np.int32)
      batch[key][..., 0], batch[key][..., -1] = 1, 2
    elif key == "num_captions":
      batch[key] = np.full((local,), captions[0], np.int32)
  batch["label"] = (rng.integers(0, spec.num_classes, (local,), dtype=np.int32)
                    if spec.num_classes else np.full((local,), -1, np.int32))
  batch["index"] = np.arange(first, first + local, dtype=np.int32)
  return parallel.global_batch(batch, mesh)


def _time_end_to_end(config, spec, setup, compiled, state, mesh, *, steps: int,
                     warmup: int) -> dict[str, Any]:
  """The same compiled step fed by the real input pipeline, as the trainer's
  loop feeds it: grain reads and decodes batches in its threads (and
  `data.worker_count` processes), and the host fetches batch k+1 while the
  device runs step k (JAX dispatches asynchronously); the window is timed as a
  whole and the devices waited for once, at its end."""
  if setup.objective.pairs_with_neighbours:
    raise ValueError(f"--end_to_end does not mine {config.objective.name}'s neighbours; "
                     "time its step on synthetic data.")
  source = sources.open_source(spec, train.training_split(config, spec), config.data)
  data_iter = pipeline.make_train_iterator(
      source, global_batch_size=config.batch_size, process_index=jax.process_index(),
      process_count=jax.process_count(), seed=config.seed,
      worker_count=config.data.worker_count)
  fetch_s = []
  for i in range(warmup + steps):
    if i == warmup:
      jax.block_until_ready(state)
      start = time.perf_counter()
    fetch_start = time.perf_counter()
    batch = parallel.global_batch(next(data_iter), mesh)
    if i >= warmup:
      fetch_s.append(time.perf_counter() - fetch_start)
    state, _ = compiled(state, batch)
  jax.block_until_ready(state)
  seconds = time.perf_counter() - start
  return {"images_per_sec": config.batch_size * steps / seconds, "step_time_s": seconds / steps,
          "host_wait_s_per_step": float(np.mean(fetch_s)), "examples": len(source),
          "worker_count": config.data.worker_count}


def _time_augmentation(objective, batch, *, steps: int, warmup: int) -> list[float]:
  """Per-call times of the step's view drawing alone (`augment.make_views` for
  the objective's views, jitted on its own): its share of the step, roughly,
  since inside the step XLA may fuse it with the network's first layers."""
  draw = jax.jit(lambda rng, images: augment.make_views(
      rng, images, objective.views, objective.pixel_mean, objective.pixel_std,
      image_hw=batch.get("image_hw")))
  rng = jax.random.key(0)
  jax.block_until_ready(draw(rng, batch["image"]))
  times = []
  for i in range(warmup + steps):
    start = time.perf_counter()
    jax.block_until_ready(draw(jax.random.fold_in(rng, i), batch["image"]))
    if i >= warmup:
      times.append(time.perf_counter() - start)
  return times


def _flops(compiled) -> float | None:
  """FLOPs of the compiled (per-device) program; older jax versions return a
  list with one dict per program from `cost_analysis`, newer ones the dict."""
  cost = compiled.cost_analysis()
  if isinstance(cost, (list, tuple)):
    cost = cost[0] if cost else None
  flops = (cost or {}).get("flops")
  return float(flops) if flops is not None and flops >= 0 else None


def compiled_memory(compiled, device) -> dict[str, Any]:
  """Peak bytes on one device: the allocator's high-water mark where the
  backend keeps one (GPU, TPU), else XLA's buffer assignment of the step."""
  stats = device.memory_stats() if hasattr(device, "memory_stats") else None
  if stats and "peak_bytes_in_use" in stats:
    return {"peak_bytes": int(stats["peak_bytes_in_use"]), "source": "device.memory_stats",
            "bytes_limit": stats.get("bytes_limit")}
  analysis = compiled.memory_analysis()
  if analysis is None:
    return {"peak_bytes": None, "source": None}
  fields = {name: int(getattr(analysis, name)) for name in (
      "argument_size_in_bytes", "output_size_in_bytes", "alias_size_in_bytes",
      "temp_size_in_bytes", "peak_memory_in_bytes") if hasattr(analysis, name)}
  # Everything the step allocates: inputs, outputs not written in place of a
  # donated input, and the temporaries. (`peak_memory_in_bytes` is kept as
  # reported, but on CPU it comes out below the temporaries alone.)
  peak = (fields["argument_size_in_bytes"] + fields["output_size_in_bytes"]
          - fields["alias_size_in_bytes"] + fields["temp_size_in_bytes"])
  return {"peak_bytes": peak, "source": "compiled.memory_analysis", **fields}


def append_record(path: str, result: dict[str, Any]) -> None:
  """Appends `result`, with the time and the command line, as one JSON line
  (process 0 only)."""
  if jax.process_index() != 0:
    return
  record = {"time": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "command": " ".join(sys.argv), **result}
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  with open(path, "a") as f:
    f.write(json.dumps(record) + "\n")
  print(f"Appended to {path}")


def machine_info() -> tuple[dict[str, Any], dict[str, str]]:
  import flax
  import jaxlib
  import optax
  device = jax.devices()[0]
  cpu_model = None
  try:
    with open("/proc/cpuinfo") as f:
      cpu_model = next((line.split(":", 1)[1].strip() for line in f
                        if line.startswith("model name")), None)
  except OSError:
    pass
  try:
    git = subprocess.run(["git", "-C", REPO_ROOT, "rev-parse", "--short", "HEAD"],
                         capture_output=True, text=True, timeout=10).stdout.strip()
    dirty = subprocess.run(["git", "-C", REPO_ROOT, "status", "--porcelain"],
                           capture_output=True, text=True, timeout=10).stdout.strip()
    git = f"{git}{'+uncommitted' if dirty else ''}" or None
  except (OSError, subprocess.SubprocessError):
    git = None
  machine = {
      "platform": platform.platform(), "machine": platform.machine(), "cpu_model": cpu_model,
      "cpu_count": os.cpu_count(),
      "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
      "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
      "backend": device.platform, "device_kind": device.device_kind,
      "device_count": jax.device_count(), "process_count": jax.process_count(),
      "xla_flags": os.environ.get("XLA_FLAGS"),
      "compilation_cache_dir": jax.config.jax_compilation_cache_dir,
      "git": git,
  }
  versions = {"python": platform.python_version(), "jax": jax.__version__,
              "jaxlib": jaxlib.__version__, "flax": flax.__version__,
              "optax": optax.__version__}
  return machine, versions


def measure(config: ml_collections.ConfigDict, *, steps: int, warmup: int,
            model_flops_per_image: float | None = None,
            num_examples: int | None = None, end_to_end: bool = False,
            profile_dir: str | None = None) -> dict[str, Any]:
  """Compiles `config`'s train step as the trainer does and times `steps` steps
  after `warmup` untimed ones; with `profile_dir`, 3 more steps run under
  `jax.profiler.trace` (a Perfetto trace there, for `profile_summary.py`).
  Returns the dict described in the module doc."""
  if steps < 1 or warmup < 0:
    raise ValueError(f"need steps >= 1 and warmup >= 0, got {steps} and {warmup}.")
  config_checks.validate(config)
  spec = catalog.get_spec(config.data.name)
  if num_examples is None:
    if spec.name not in NOMINAL_EXAMPLES:
      raise ValueError(f"No nominal size for {spec.name!r}; pass num_examples.")
    num_examples = NOMINAL_EXAMPLES[spec.name]
  mesh = parallel.make_mesh()
  parallel.check_batch_size(config.batch_size, mesh)

  setup = train.build_setup(config, spec, num_examples, mesh)
  state = setup.initial_state()
  batch = synthetic_batch(config, spec, setup.objective, mesh, seed=config.seed)
  train_step = setup.compiled_train_step(state)  # The trainer's own jitted step.

  t0 = time.perf_counter()
  lowered = train_step.lower(state, batch)
  t1 = time.perf_counter()
  compiled = lowered.compile()
  t2 = time.perf_counter()

  times = []
  for i in range(warmup + steps):
    start = time.perf_counter()
    state, metrics = compiled(state, batch)
    jax.block_until_ready((state, metrics))
    if i >= warmup:
      times.append(time.perf_counter() - start)
  if profile_dir:
    with jax.profiler.trace(profile_dir, create_perfetto_trace=True):
      for _ in range(3):
        state, metrics = compiled(state, batch)
      jax.block_until_ready((state, metrics))
  augment_times = _time_augmentation(setup.objective, batch, steps=steps, warmup=warmup)
  fed = (_time_end_to_end(config, spec, setup, compiled, state, mesh, steps=steps,
                          warmup=warmup) if end_to_end else None)

  num_devices = mesh.devices.size
  # XLA's cost analysis counts a while loop's body once: a scanned stack's
  # blocks would be counted as one.
  per_device = None if config.model.scan_blocks else _flops(compiled)
  xla_flops = per_device * num_devices if per_device is not None else None
  step_time = stats.spread(times)
  images_per_sec = stats.spread([config.batch_size / t for t in times])
  peak = peak_flops(jax.devices()[0])
  total_peak = peak * num_devices if peak else None
  rate = images_per_sec["median"]
  machine, versions = machine_info()
  return {
      "config": {"method": config.objective.name, "data": config.data.name,
                 "backbone": config.model.backbone,
                 "patch_size": config.model.patch_size if "vit" in config.model.backbone else None,
                 "dtype": config.model.dtype, "batch_size": config.batch_size,
                 "image_size": spec.image_size, "crop_size": config.augment.crop_size,
                 "nominal_examples": num_examples, "scan_blocks": config.model.scan_blocks,
                 "remat_blocks": config.model.remat_blocks,
                 "compile_options": compile_options.for_network(config.model, mesh)},
      "steps": steps, "warmup": warmup, "num_devices": num_devices,
      "num_params": int(sum(x.size for x in jax.tree.leaves(state.params))),
      "lower_s": t1 - t0, "compile_s": t2 - t1,
      "xla_flops_per_step": xla_flops,
      "xla_flops_per_image": xla_flops / config.batch_size if xla_flops else None,
      "model_flops_per_image": model_flops_per_image,
      "step_time_s": step_time, "images_per_sec": images_per_sec,
      "augment_time_s": stats.spread(augment_times),
      "end_to_end": fed,
      "peak_flops_per_device": peak,
      "mfu": (model_flops_per_image * rate / total_peak
              if total_peak and model_flops_per_image else None),
      "xla_flops_utilization": (xla_flops / step_time["median"] / total_peak
                                if total_peak and xla_flops else None),
      "memory": compiled_memory(compiled, jax.local_devices()[0]),
      "final_loss": float(parallel.local_copy(metrics["loss"])),
      "machine": machine, "versions": versions,
  }


def summary(r: dict[str, Any]) -> str:
  c, m, v = r["config"], r["machine"], r["versions"]
  model = c["backbone"] + (f"/{c['patch_size']}" if c["patch_size"] else "")
  ips, st = r["images_per_sec"], r["step_time_s"]
  lines = [
      f"{c['method']} on {c['data']} ({model}, {c['dtype']}), global batch {c['batch_size']}, "
      f"{c['image_size']}px stored -> {c['crop_size']}px crops, {r['num_params']:,} params, "
      f"{r['num_devices']} {m['backend']} device(s)",
      f"Compile: lower {r['lower_s']:.1f} s, compile {r['compile_s']:.1f} s",
  ]
  if r["xla_flops_per_step"]:
    line = (f"FLOPs (XLA cost analysis): {r['xla_flops_per_step']:.4g} per step, "
            f"{r['xla_flops_per_image']:.4g} per image")
    if r["model_flops_per_image"]:
      line += (f"; model {r['model_flops_per_image']:.4g} per image "
               f"(XLA/model {r['xla_flops_per_image'] / r['model_flops_per_image']:.2f}x)")
    lines.append(line)
  else:
    lines.append("FLOPs: n/a (" + ("XLA counts a scanned block once"
                                   if r["config"].get("scan_blocks") else "no cost analysis") + ")")
  lines += [
      f"Images/s: median {ips['median']:.4g} (min {ips['min']:.4g}, max {ips['max']:.4g}, "
      f"IQR {ips['p25']:.4g}-{ips['p75']:.4g}) over {r['steps']} steps after {r['warmup']} warm-up",
      f"Step time: median {st['median'] * 1e3:.1f} ms (min {st['min'] * 1e3:.1f}, "
      f"max {st['max'] * 1e3:.1f}); view drawing alone "
      f"{r['augment_time_s']['median'] * 1e3:.1f} ms",
  ]
  if r["peak_flops_per_device"] is None:
    why = "CPU" if m["backend"] == "cpu" else f"no peak for {m['device_kind']!r}"
    lines.append(f"MFU: n/a ({why})")
  else:
    mfu = f"{r['mfu']:.1%}" if r["mfu"] is not None else "n/a (no --model_flops_per_image)"
    lines.append(f"MFU: {mfu} of {r['peak_flops_per_device']:.4g} FLOP/s bf16 dense per device; "
                 f"XLA-counted FLOPs {r['xla_flops_utilization']:.1%}")
  mem = r["memory"]
  if mem["peak_bytes"] is not None:
    size = (f"{mem['peak_bytes'] / 2**30:.2f} GiB" if mem["peak_bytes"] >= 2**30
            else f"{mem['peak_bytes'] / 2**20:.1f} MiB")
    lines.append(f"Peak memory per device: {size} ({mem['source']})")
  if r["end_to_end"]:
    e = r["end_to_end"]
    lines.append(f"End to end (real input pipeline, {e['worker_count']} grain workers): "
                 f"{e['images_per_sec']:.4g} images/s, {e['step_time_s'] * 1e3:.1f} ms per "
                 f"step, of which the host waited {e['host_wait_s_per_step'] * 1e3:.1f} ms for "
                 f"data; {e['images_per_sec'] / r['images_per_sec']['median']:.0%} of the "
                 "synthetic-input rate")
  lines.append(f"Loss after the last step: {r['final_loss']:.4g} (synthetic data)")
  load = ", ".join(f"{x:.2f}" for x in m["load_average"] or [])
  lines.append(f"Machine: {m['device_kind']} x{m['device_count']}, {m['cpu_model']}, "
               f"{m['cpu_count']} CPUs, {m['platform']}; load average {load}")
  lines.append("Versions: " + ", ".join(f"{k} {val}" for k, val in v.items())
               + f"; git {m['git']}")
  return "\n".join(lines)


def main() -> None:
  from absl import app
  from absl import flags
  from ml_collections import config_flags

  config_flag = config_flags.DEFINE_config_file(
      "config", None, "Experiment config: configs/<method>.py:<variant>.", lock_config=True)
  steps = flags.DEFINE_integer("steps", 10, "Timed steps.")
  warmup = flags.DEFINE_integer("warmup", 2, "Untimed steps before them.")
  model_flops = flags.DEFINE_float(
      "model_flops_per_image", None, "Model FLOPs per trained image, for MFU "
      "(MAE ViT-B/16 at 224px, 75% masked: 58.7e9).")
  num_examples = flags.DEFINE_integer(
      "num_examples", None, "Dataset size for the schedule and memory banks "
      "(default: the dataset's nominal size).")
  end_to_end = flags.DEFINE_bool(
      "end_to_end", False, "Also time the step fed by the real input pipeline (the "
      "config's dataset must be prepared; data.worker_count sets grain's processes).")
  profile_dir = flags.DEFINE_string(
      "profile_dir", None, "Also trace 3 steps with jax.profiler into this folder "
      "(summarise with benchmarks/profile_summary.py).")
  out = flags.DEFINE_string("out", "benchmarks/results.jsonl", "JSON lines file to append to.")
  flags.mark_flags_as_required(["config"])

  def run(argv):
    del argv
    result = measure(config_flag.value, steps=steps.value, warmup=warmup.value,
                     model_flops_per_image=model_flops.value,
                     num_examples=num_examples.value, end_to_end=end_to_end.value,
                     profile_dir=profile_dir.value)
    print(summary(result))
    append_record(out.value, result)

  app.run(run)


if __name__ == "__main__":
  main()
