"""Per-device memory of every `imagenet` recipe's train step, without running it.

  python benchmarks/memory.py                       # every recipe, 8-way split
  python benchmarks/memory.py --configs=mae,dino --devices=8
  python benchmarks/memory.py --configs=dino,swav --variants=imagenet   # e.g. compile time
  python benchmarks/memory.py --scan_blocks      # the transformer recipes, blocks scanned
  python benchmarks/memory.py --remat_blocks     # ... scanned and recomputed in the backward pass

For each config's ImageNet variants, the trainer's own step
(`train.Setup.compiled_train_step`) is lowered on abstract state and batch
(`jax.eval_shape`: no weights exist, no FLOPs run) and compiled for the local
backend; XLA's buffer assignment (`compiled.memory_analysis()`) gives the bytes
one device allocates: inputs (state and batch) + outputs not written in place
of the donated state + temporaries. With at least `--devices` local devices
(on a CPU host: XLA_FLAGS=--xla_force_host_platform_device_count=8) the step
is partitioned over them at the recipe's global batch, exactly as the
multi-GPU run: state replicated except dataset-sized banks, split over the
devices. With fewer, one device compiles the recipe's batch / `--devices`
(the same per-device program for replicated state, but whole banks).

On a CPU host the figure is XLA:CPU's assignment, a proxy for the GPU's: both
keep the same state and activations, but fusion, cuDNN workspaces and the
allocator differ. BENCHMARKS.md sets it beside GPU high-water marks measured
at the same batch. Prints one line per recipe and appends a JSON line each to
`--out`.
"""

import importlib
import os
import pathlib
import sys
import time
from typing import Any

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
  sys.path.insert(0, _HERE)

import jax
import numpy as np

import throughput  # puts the repository root on sys.path

from configs import common
from repr_learn import config_checks
from repr_learn import parallel
from repr_learn import train
from repr_learn.data import catalog

GIB = 2 ** 30
GPU_MEMORY_GIB = 80  # the H100/A100 the recipes must fit


def measure(config, *, devices: int) -> dict[str, Any]:
  """Compiles `config`'s step for `devices` devices (see the module doc) and
  returns one device's bytes; `config.batch_size` is changed in place when one
  device stands in for the `devices`."""
  if config.batch_size % devices:
    raise ValueError(f"batch {config.batch_size} does not split over {devices} devices.")
  global_batch = config.batch_size
  spmd = jax.local_device_count() >= devices
  if not spmd:
    config.batch_size = global_batch // devices
  config_checks.validate(config)
  spec = catalog.get_spec(config.data.name)
  mesh = parallel.make_mesh(jax.local_devices()[:devices if spmd else 1])
  setup = train.build_setup(config, spec, throughput.NOMINAL_EXAMPLES[spec.name], mesh)
  state = setup.abstract_state()
  batch = setup.abstract_batch(spec)
  start = time.perf_counter()
  lowered = setup.compiled_train_step(state).lower(state, batch)
  lowered_at = time.perf_counter()
  compiled = lowered.compile()
  compile_s = time.perf_counter() - lowered_at
  memory = throughput.compiled_memory(compiled, device=None)
  state_bytes = sum(int(np.prod(x.sharding.shard_shape(x.shape))) * x.dtype.itemsize
                    for x in jax.tree.leaves(state))  # on one device
  return {"method": config.objective.name, "backbone": config.model.backbone,
          "dtype": config.model.dtype, "global_batch": global_batch, "devices": devices,
          "program": f"SPMD over {devices} devices" if spmd else "one device at batch/devices",
          "per_device_batch": global_batch // devices, "state_bytes": int(state_bytes),
          "lower_s": lowered_at - start, "compile_s": compile_s, "memory": memory,
          "fits_80gb": memory["peak_bytes"] is not None
                       and memory["peak_bytes"] < GPU_MEMORY_GIB * GIB}


def main() -> None:
  from absl import app
  from absl import flags

  names = flags.DEFINE_list("configs", None, "Config files (default: every one in configs/).")
  devices = flags.DEFINE_integer("devices", 8, "GPUs the recipe's batch is split over.")
  variants = flags.DEFINE_list("variants", None, "Only these variants (default: every "
                               "variant whose name starts with 'imagenet').")
  out = flags.DEFINE_string("out", "benchmarks/memory.jsonl", "JSON lines file to append to.")
  scan_blocks = flags.DEFINE_bool("scan_blocks", False, "Set model.scan_blocks in the "
                                  "recipes with a transformer (one block per stack in the program).")
  remat_blocks = flags.DEFINE_bool("remat_blocks", False, "Set model.remat_blocks (and "
                                   "model.scan_blocks) in the recipes with a transformer.")

  def run(argv):
    del argv
    root = pathlib.Path(throughput.REPO_ROOT) / "configs"
    chosen = names.value or sorted(p.stem for p in root.glob("*.py")
                                   if p.stem not in ("__init__", "common"))
    machine, versions = throughput.machine_info()
    for name in chosen:
      module = importlib.import_module(f"configs.{name}")
      for variant in [v for v in common.variants(module) if v.startswith("imagenet")
                      and (not variants.value or v in variants.value)]:
        config = module.get_config(variant)
        if scan_blocks.value or remat_blocks.value:
          if not config_checks.has_transformer(config):
            continue
          config.model.scan_blocks = True  # remat runs inside the scan
          config.model.remat_blocks = remat_blocks.value
        r = measure(config, devices=devices.value)
        r.update(config=f"configs/{name}.py:{variant}", machine=machine, versions=versions,
                 scan_blocks=config.model.scan_blocks, remat_blocks=config.model.remat_blocks)
        m = r["memory"]
        print(f"{r['config']:<40} {r['backbone']:<10} {r['dtype']:<9} batch "
              f"{r['global_batch']:>5} / {devices.value} = {r['per_device_batch']:>4}: "
              f"{m['peak_bytes'] / GIB:6.2f} GiB per device (state {r['state_bytes'] / GIB:.2f}, "
              f"temporaries {m.get('temp_size_in_bytes', 0) / GIB:.2f}); "
              f"{'under' if r['fits_80gb'] else 'over'} 80 GB by this backend's assignment; "
              f"lower {r['lower_s']:.1f} s, compile {r['compile_s']:.1f} s", flush=True)
        throughput.append_record(out.value, r)

  app.run(run)


if __name__ == "__main__":
  main()
