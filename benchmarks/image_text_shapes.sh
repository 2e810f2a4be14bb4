#!/bin/bash
# Image-text training on the generated shapes captions (BENCHMARKS.md
# "Image-text on shapes"): CLIP and SigLIP from scratch, then LiT on a SimCLR
# encoder trained on the same images against LiT on that encoder at random
# initialisation (one step at lr 1e-9: random weights, BatchNorm statistics of
# one batch). Minutes per run on 2 CPU cores; prints one table at the end.
#   benchmarks/image_text_shapes.sh [RUNS_DIR]
set -euo pipefail
RUNS=${1:-runs}
python main.py --config=configs/clip.py:shapes --workdir="$RUNS/clip_shapes"
python main.py --config=configs/siglip.py:shapes --workdir="$RUNS/siglip_shapes"
python main.py --config=configs/simclr.py:digits --config.data.name=shapes \
  --config.eval.protocols=knn --workdir="$RUNS/simclr_shapes"
python main.py --config=configs/simclr.py:digits --config.data.name=shapes \
  --config.num_steps=1 --config.optimizer.base_lr=1e-9 --config.optimizer.warmup_epochs=0 \
  --config.eval.protocols=knn --workdir="$RUNS/random_shapes"
python main.py --config=configs/lit.py:shapes --config.model.init_from="$RUNS/simclr_shapes" \
  --workdir="$RUNS/lit_shapes"
python main.py --config=configs/lit.py:shapes --config.model.init_from="$RUNS/random_shapes" \
  --workdir="$RUNS/lit_random_shapes"
python - "$RUNS" <<'PY'
import json, os, sys
from repr_learn.data import shapes
runs = sys.argv[1]
held_out = [shapes.class_names().index(" ".join(pair)) for pair in shapes.HELD_OUT]
print("| run | zero-shot top-1, 24 classes (random init) | on the 4 held-out pairs "
      "| I->T R@1 | T->I R@1 | I->T R@5 | T->I R@5 | kNN top-1 |")
print("|---|---|---|---|---|---|---|---|")
for name in ("clip_shapes", "siglip_shapes", "lit_shapes", "lit_random_shapes"):
  def read(protocol):
    with open(os.path.join(runs, name, "eval", protocol + ".json")) as f:
      return json.load(f)
  z, r, k = read("zeroshot"), read("retrieval"), read("knn")
  unseen = sum(z["per_class_top1"][c] for c in held_out) / len(held_out)
  print(f"| {name} | {z['top1']:.2f} ({z['random_init_top1']:.2f}) | {unseen:.2f} "
        f"| {r['image_to_text_r@1']:.2f} | {r['text_to_image_r@1']:.2f} "
        f"| {r['image_to_text_r@5']:.2f} | {r['text_to_image_r@5']:.2f} | {k['top1']:.2f} |")
PY
