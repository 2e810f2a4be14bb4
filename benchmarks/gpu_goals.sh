#!/usr/bin/env bash
# The GPU throughput figures of BENCHMARKS.md in one run (one GPU, bf16):
#   SimCLR ResNet-50 224 px, MAE ViT-B/16 (each beside its PyTorch reference)
#   and DINO ViT-S/16 with 2x224 + 10x96 crops.
#
#   bash benchmarks/gpu_goals.sh [OUTDIR]     (default benchmarks/gpu)
#
# Model FLOPs per image (2 x MACs, training = 3 x forward):
#   SimCLR R50: 2 views x 3 x 8.2e9          = 49.2e9
#   MAE ViT-B/16: ../shared/notes/masked-modeling.md section 7 = 58.7e9
#   DINO ViT-S/16: student 3 x (2 x 9.1e9 + 10 x 1.6e9) + teacher 2 x 9.1e9 = 121e9
#   DINOv2 ViT-L/16 (vitl16_short): forward 123e9 at 224 px, 23e9 at 96 px, the
#   head on ~59 masked tokens 2.8e9; student 3 x (2 x 123 + 8 x 23 + 2.8)e9
#   + teacher (2 x 123 + 2.8)e9                = 1.55e12
# Per-GPU batches: SimCLR 256 and MAE 256 (recipes: 4096 over 16 and 64 GPUs);
# DINO 128 (1024 over 8); DINOv2 64 (2048 over 32).
set -uo pipefail
out=${1:-benchmarks/gpu}
mkdir -p "$out"
py=${PYTHON:-python3}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt"
# JAX and PyTorch share the GPU in the side-by-sides.
export XLA_PYTHON_CLIENT_MEM_FRACTION=${XLA_PYTHON_CLIENT_MEM_FRACTION:-0.5}
common=(--steps=15 --warmup=3)

"$py" benchmarks/side_by_side.py --config=configs/simclr.py:imagenet --backbone= \
    --batch_size=256 --rounds=2 "${common[@]}" --torch_device=cuda --channels_last \
    --notorch_augment --model_flops_per_image=49.2e9 --out="$out/side_by_side.jsonl"
"$py" benchmarks/side_by_side.py --config=configs/mae.py:imagenet \
    --batch_size=256 --rounds=2 "${common[@]}" --torch_device=cuda \
    --model_flops_per_image=58.7e9 --out="$out/side_by_side.jsonl"
"$py" benchmarks/throughput.py --config=configs/dino.py:imagenet --config.batch_size=128 \
    "${common[@]}" --model_flops_per_image=121e9 --out="$out/throughput.jsonl"
"$py" benchmarks/throughput.py --config=configs/dinov2.py:imagenet --config.batch_size=64 \
    "${common[@]}" --model_flops_per_image=1.55e12 --out="$out/throughput.jsonl"
