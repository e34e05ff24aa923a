#!/usr/bin/env bash
# GPU speed of `nbcompile train`: the Inception-like and the 7-vertex 9-edge cell at
# the default network, synthetic data resident on the GPU, compiled step; shortened runs,
# extrapolated to 108 epochs (see benchmarks/train_speed.py). Meant to finish in < 4 minutes on
# one H100/H200. Usage: benchmarks/train_gpu.sh [OUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-benchmarks/results/train_gpu}
mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
# float32 (the recipe as specified), both cells
timeout 150 python3 benchmarks/train_speed.py --device cuda --cells inception 7v9e --precision fp32 \
    --warmup 20 --steps 60 --windows 3 --out "$OUT/fp32.json"
# bf16 autocast + channels-last (TPU v2 multiplied in bf16), the Inception-like cell
timeout 80 python3 benchmarks/train_speed.py --device cuda --cells inception --precision bf16 --channels-last \
    --warmup 20 --steps 60 --windows 3 --out "$OUT/bf16_channels_last.json"
