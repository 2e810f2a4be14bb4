#!/bin/bash
# Plain SimCLR against Matryoshka SimCLR on digits, each evaluated on the first
# 4, 8, ..., 64 of its 128 feature dimensions (BENCHMARKS.md "Matryoshka
# SimCLR on digits"). Trains both runs (minutes each on 2 CPU cores), then
# prints the table and draws benchmarks/figures/matryoshka_digits.png.
#   benchmarks/matryoshka_digits.sh [RUNS_DIR]
set -euo pipefail
RUNS=${1:-runs}
PLAIN="$RUNS/simclr_digits_plain"
NESTED="$RUNS/simclr_digits_matryoshka"
python main.py --config=configs/simclr.py:digits --workdir="$PLAIN" \
  --config.eval.dims="(4, 8, 16, 32, 64)"
python main.py --config=configs/simclr.py:digits_matryoshka --workdir="$NESTED"
python - "$PLAIN" "$NESTED" <<'PY'
import sys
from repr_learn.evaluation import drawing
runs = {"SimCLR": sys.argv[1], "SimCLR + Matryoshka": sys.argv[2]}
curves = {label: drawing.accuracy_by_dim(workdir) for label, workdir in runs.items()}
dims = sorted(curves["SimCLR"]["knn"])
print("| protocol | run | " + " | ".join(f"{m} dims" for m in dims) + " |")
print("|---|---|" + "---|" * len(dims))
for protocol in drawing.NESTED_PROTOCOLS:
  for label, curve in curves.items():
    print(f"| {protocol} top-1 | {label} | "
          + " | ".join(f"{curve[protocol][m]:.2f}" for m in dims) + " |")
print("Wrote", drawing.plot_accuracy_by_dim("benchmarks/figures/matryoshka_digits.png", runs))
PY
