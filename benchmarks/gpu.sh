#!/usr/bin/env bash
# The whole GPU suite in one go. Usage: benchmarks/gpu.sh [DEVICE] [OUT_DIR] [extra bench flags...]
#   DEVICE defaults to cuda; OUT_DIR to benchmarks/results/gpu.
# On the lent device machine, nbcompile's pure-Python dependencies other than black are in the
# image; carry black's wheel (see the device tool's README) or install it before running.
# Smoke test on a CPU (tiny network, few calls):
#   benchmarks/gpu.sh cpu /tmp/gpu-smoke --stem-channels 4 --num-stacks 2 --cells-per-stack 1 \
#       --iters 2 --warmup 0 --compile-backend eager --no-peak
set -euo pipefail
cd "$(dirname "$0")/.."
DEVICE=${1:-cuda}
OUT=${2:-benchmarks/results/gpu}
shift 2 || shift $#
mkdir -p "$OUT"
CELLS="examples/inception.json examples/seven_vertex_nine_edge.json"
COMMON=(--device "$DEVICE" --batch-sizes 1,64,256 --warmup 10 --iters 50 --max-seconds 3)
INFERENCE_MODES=dynamic,dynamic-compile,static,static-fused,static-script,static-compile,static-freeze,static-cudagraph
TRAIN_MODES=dynamic,static,static-compile

export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null || true
python3 -m nbcompile bench $CELLS "${COMMON[@]}" --dtype bf16 --channels-last --modes "$INFERENCE_MODES" \
    --json "$OUT/inference_bf16_cl.json" --plot "$OUT/inference_bf16_cl.png" "$@"
python3 -m nbcompile bench $CELLS "${COMMON[@]}" --dtype fp32 --modes dynamic,static,static-compile,static-cudagraph \
    --json "$OUT/inference_fp32.json" --plot "$OUT/inference_fp32.png" "$@"
python3 -m nbcompile bench $CELLS "${COMMON[@]}" --dtype bf16 --channels-last --train --modes "$TRAIN_MODES" \
    --json "$OUT/train_bf16_cl.json" "$@"
python3 benchmarks/summarize.py "$OUT"/*.json | tee "$OUT/summary.md"
