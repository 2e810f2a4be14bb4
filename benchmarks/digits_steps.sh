#!/bin/bash
# Times every method's `digits` train step (benchmarks/throughput.py, synthetic
# input) and prints one table row per method (BENCHMARKS.md, "Every method's
# digits step").
#   benchmarks/digits_steps.sh [OUT_JSONL] [METHOD ...]
set -uo pipefail
OUT=${1:-benchmarks/digits_steps.jsonl}
shift || true
METHODS=${*:-$(ls configs/*.py | xargs -n1 basename | sed 's/\.py$//' | grep -v -x -e __init__ -e common)}
for m in ${METHODS}; do
  # Image-text configs train on captions: their CPU variant is `shapes`, not `digits`.
  grep -q "^VARIANTS = common.IMAGE_TEXT_VARIANTS" "configs/${m}.py" && continue
  python benchmarks/throughput.py --config="configs/${m}.py:digits" --steps=10 --warmup=2 \
    --out="$OUT" > "/tmp/digits_step.${m}.log" 2>&1 || { echo "| $m | FAILED (/tmp/digits_step.${m}.log) |"; continue; }
done
python - "$OUT" <<'PY'
import json, sys
print("| config | backbone | batch | params | compile (s) | step median (ms) | images/s median (min-max) | view drawing (ms) | XLA GFLOPs/image | memory (MiB) |")
print("|---|---|---|---|---|---|---|---|---|---|")
for line in open(sys.argv[1]):
  r = json.loads(line)
  c, ips, st = r["config"], r["images_per_sec"], r["step_time_s"]
  flops = r["xla_flops_per_image"]
  print(f"| {c['method']} | {c['backbone']} | {c['batch_size']} | {r['num_params']:,} | "
        f"{r['compile_s']:.1f} | {st['median'] * 1e3:.0f} | {ips['median']:.0f} "
        f"({ips['min']:.0f}-{ips['max']:.0f}) | {r['augment_time_s']['median'] * 1e3:.1f} | "
        f"{flops / 1e9:.3f} | {r['memory']['peak_bytes'] / 2**20:.0f} |")
PY
