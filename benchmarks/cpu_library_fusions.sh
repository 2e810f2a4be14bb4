#!/bin/bash
# XLA:CPU's library fusions (YNNPACK) on and off, for the three issue-24 steps
# on the CPU (BENCHMARKS.md, "XLA:CPU's library fusions"): SimCLR ResNet-18 on
# CIFAR (batch 64), MAE ViT-B/16 and DINO ViT-S/16 multi-crop (batch 8, float32).
# Each setting runs in its own process (XLA_FLAGS is read at start-up); the
# settings alternate within each round, so load that comes and goes hits all.
# With no XLA_FLAGS the step compiles with `repr_learn.compile_options`' choice
# (ResNets: YNNPACK's dot, elementwise and reduction fusions; ViTs: jaxlib's
# defaults), recorded per run; jaxlib's default for a ResNet is what this script
# measured at commit d7af13c, before that module ("null" compile_options there).
#   benchmarks/cpu_library_fusions.sh [OUT_JSONL] [ROUNDS]
set -uo pipefail
OUT=${1:-benchmarks/cpu_library_fusions.jsonl}
ROUNDS=${2:-2}
SETTINGS=(
  ""                                                      # repr_learn's choice
  "--xla_cpu_experimental_ynn_fusion_type=dot,eltwise,reduce"  # compile_options' ResNet setting
  "--xla_cpu_experimental_ynn_fusion_type=individual_dot"  # jaxlib's default less convolutions
  "--xla_cpu_experimental_ynn_fusion_type="                # no YNNPACK fusions
)
CONFIGS=(
  "--config=configs/simclr.py:cifar10 --config.model.backbone=resnet18 --config.batch_size=64 --config.eval.online_probe=False"
  "--config=configs/mae.py:imagenet --config.batch_size=8 --config.model.dtype=float32"
  "--config=configs/dino.py:imagenet --config.batch_size=8 --config.model.dtype=float32"
)
for round in $(seq "$ROUNDS"); do
  for config in "${CONFIGS[@]}"; do
    for flags in "${SETTINGS[@]}"; do
      echo "round $round: XLA_FLAGS='$flags' $config" >&2
      # shellcheck disable=SC2086  # the config is a list of flags
      XLA_FLAGS="$flags" python benchmarks/throughput.py $config --steps=3 --warmup=1 \
          --out="$OUT" > /tmp/cpu_library_fusions.log 2>&1 \
          || { echo "FAILED, see /tmp/cpu_library_fusions.log" >&2; exit 1; }
    done
  done
done
python - "$OUT" <<'PY'
import collections, json, statistics, sys
runs = collections.defaultdict(list)
for line in open(sys.argv[1]):
  r = json.loads(line)
  c = r["config"]
  options = json.dumps(c.get("compile_options"))  # absent in records before it was logged
  runs[(f"{c['method']} {c['backbone']} b{c['batch_size']}", r["machine"].get("xla_flags") or "",
        options)].append(r["images_per_sec"]["median"])
print("| step | XLA_FLAGS | compile_options | images/s per round | median |")
print("|---|---|---|---|---|")
for (step, flags, options), rates in runs.items():
  print(f"| {step} | `{flags or '(none)'}` | `{options}` | {', '.join(f'{x:.2f}' for x in rates)} | "
        f"{statistics.median(rates):.2f} |")
PY
