#!/usr/bin/env bash
# The GPU figures of BENCHMARKS.md in one run (one GPU, bf16), issue 24's list:
#   1. SimCLR ResNet-50 224 px, MAE ViT-B/16 and DINO ViT-S/16 (2x224 + 8x96)
#      each beside its PyTorch reference, eager and torch.compile'd, rounds
#      alternating (side_by_side.py);
#   2. a jax.profiler trace of each of the three steps, summarised
#      (profile_summary.py);
#   3. MAE with cuDNN's fused attention against XLA's; the blur three ways;
#   4. DINOv2 ViT-L/16 at its per-GPU batch;
#   5. DINO unrolled then scanned (model.scan_blocks), DINOv2 scanned (against
#      step 4's unrolled run), all with the same steps: compile time and step
#      time; DINOv2 scanned and rematerialised at 256 per GPU (its batch split
#      over 8 GPUs, not 32).
#
#   bash benchmarks/gpu_goals.sh [OUTDIR [STEP ...]]   (default benchmarks/gpu, every step)
#
# Steps: simclr_side_by_side mae_side_by_side dino_side_by_side simclr_profile
# mae_profile dino_profile mae_cudnn_attention blur_224 blur_96 dinov2
# dino_unrolled dino_scan dinov2_scan dinov2_remat. Each
# has its own time limit (STEP_LIMIT seconds, default 240) so one slow compile
# cannot eat the lease; the log says which ran out. All of them take longer
# than one 10-minute device call: run the three side-by-sides in one call,
# the profiles to dinov2 in a second, dino_unrolled and dino_scan in a third,
# dinov2_scan and dinov2_remat in a fourth (the first two matter most). TORCH_MODES (default eager,default) sets the PyTorch
# sides; max-autotune compiles for minutes per model.
#
# Model FLOPs per image (2 x MACs, training = 3 x forward):
#   SimCLR R50: 2 views x 3 x 8.2e9          = 49.2e9
#   MAE ViT-B/16: ../shared/notes/masked-modeling.md section 7 = 58.7e9
#   DINO ViT-S/16: student 3 x (2 x 9.1e9 + 8 x 1.6e9) + teacher 2 x 9.1e9 = 111e9
#   DINOv2 ViT-L/16 (vitl16_short): forward 123e9 at 224 px, 23e9 at 96 px, the
#   head on ~59 masked tokens 2.8e9; student 3 x (2 x 123 + 8 x 23 + 2.8)e9
#   + teacher (2 x 123 + 2.8)e9                = 1.55e12
# Per-GPU batches: SimCLR 256 and MAE 256 (recipes: 4096 over 16 and 64 GPUs);
# DINO 128 (1024 over 8); DINOv2 64 (2048 over 32).
set -uo pipefail
out=${1:-benchmarks/gpu}
mkdir -p "$out"
py=${PYTHON:-python3}
limit=${STEP_LIMIT:-240}
shift $(( $# > 0 ? 1 : 0 ))
wanted=" $* "
modes=${TORCH_MODES:-eager,default}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt"
# JAX and PyTorch share the GPU in the side-by-sides.
export XLA_PYTHON_CLIENT_MEM_FRACTION=${XLA_PYTHON_CLIENT_MEM_FRACTION:-0.5}
common=(--steps=10 --warmup=3)
run() {  # run NAME COMMAND...: one step of the list, its own time limit
  local name=$1; shift
  [ "$wanted" != "  " ] && [[ "$wanted" != *" $name "* ]] && return 0
  echo "== $name ($(date +%T))"
  timeout "$limit" "$@"; local rc=$?
  [ $rc -eq 124 ] && echo "== $name: over its ${limit}-s limit"
  return 0
}

run simclr_side_by_side "$py" benchmarks/side_by_side.py --config=configs/simclr.py:imagenet \
    --backbone= --batch_size=256 --rounds=2 "${common[@]}" --torch_device=cuda \
    --channels_last --notorch_augment --torch_modes=$modes \
    --model_flops_per_image=49.2e9 --out="$out/side_by_side.jsonl"
run mae_side_by_side "$py" benchmarks/side_by_side.py --config=configs/mae.py:imagenet \
    --batch_size=256 --rounds=2 "${common[@]}" --torch_device=cuda \
    --torch_modes=$modes --model_flops_per_image=58.7e9 --out="$out/side_by_side.jsonl"
run dino_side_by_side "$py" benchmarks/side_by_side.py --config=configs/dino.py:imagenet \
    --batch_size=128 --rounds=2 "${common[@]}" --torch_device=cuda \
    --torch_modes=$modes --model_flops_per_image=111e9 --out="$out/side_by_side.jsonl"
for m in simclr:256:49.2e9 mae:256:58.7e9 dino:128:111e9; do
  IFS=: read -r method batch flops <<< "$m"
  run "${method}_profile" "$py" benchmarks/throughput.py --config="configs/$method.py:imagenet" \
      --config.batch_size="$batch" --steps=5 --warmup=2 --model_flops_per_image="$flops" \
      --profile_dir="$out/profile_$method" --out="$out/throughput.jsonl"
  [[ "$wanted" == "  " || "$wanted" == *" ${method}_profile "* ]] && [ -d "$out/profile_$method" ] \
      && "$py" benchmarks/profile_summary.py \
      "$out/profile_$method" --top=30 --json="$out/profiles.jsonl" | tee "$out/profile_$method.txt"
done
run mae_cudnn_attention "$py" benchmarks/throughput.py --config=configs/mae.py:imagenet \
    --config.batch_size=256 --config.model.attention=cudnn "${common[@]}" \
    --model_flops_per_image=58.7e9 --out="$out/throughput.jsonl"
run blur_224 "$py" benchmarks/blur.py --batch=512 --size=224 --out="$out/blur.jsonl"
run blur_96 "$py" benchmarks/blur.py --batch=1024 --size=96 --taps=9 --out="$out/blur.jsonl"
run dinov2 "$py" benchmarks/throughput.py --config=configs/dinov2.py:imagenet \
    --config.batch_size=64 "${common[@]}" --model_flops_per_image=1.55e12 \
    --out="$out/throughput.jsonl"
run dino_unrolled "$py" benchmarks/throughput.py --config=configs/dino.py:imagenet \
    --config.batch_size=128 "${common[@]}" \
    --model_flops_per_image=111e9 --out="$out/throughput.jsonl"
run dino_scan "$py" benchmarks/throughput.py --config=configs/dino.py:imagenet \
    --config.batch_size=128 --config.model.scan_blocks=True "${common[@]}" \
    --model_flops_per_image=111e9 --out="$out/throughput.jsonl"
run dinov2_scan "$py" benchmarks/throughput.py --config=configs/dinov2.py:imagenet \
    --config.batch_size=64 --config.model.scan_blocks=True "${common[@]}" \
    --model_flops_per_image=1.55e12 --out="$out/throughput.jsonl"
run dinov2_remat "$py" benchmarks/throughput.py --config=configs/dinov2.py:imagenet \
    --config.batch_size=256 --config.model.scan_blocks=True --config.model.remat_blocks=True \
    "${common[@]}" --model_flops_per_image=1.55e12 --out="$out/throughput.jsonl"
