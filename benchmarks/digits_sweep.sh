#!/bin/bash
# Trains every method's `digits` config and prints its kNN top-1 beside the
# random-init encoder's (the README's digits column comes from this).
#   benchmarks/digits_sweep.sh [OUT_DIR] [METHOD ...]
set -uo pipefail
OUT=${1:-runs/digits_sweep}
shift || true
METHODS=${*:-simclr moco_v2 moco_v3 nnclr supcon npid byol simsiam barlow_twins vicreg align_uniform}
for m in ${METHODS}; do
  start=$(date +%s)
  python main.py --config="configs/${m}.py:digits" --workdir="${OUT}/${m}" \
    > "${OUT}.${m}.log" 2>&1
  status=$?
  secs=$(( $(date +%s) - start ))
  python - "$OUT/$m/eval/knn.json" "$m" "$secs" "$status" <<'PY'
import json, sys
path, method, secs, status = sys.argv[1:]
try:
  r = json.load(open(path))
  print(f"{method:14s} kNN top-1 {r['top1']:6.2f}  random init {r['random_init_top1']:6.2f}  {secs}s")
except FileNotFoundError:
  print(f"{method:14s} FAILED (exit {status}, {secs}s)")
PY
done
