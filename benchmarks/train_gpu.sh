#!/usr/bin/env bash
# GPU speed of `nbcompile train`, in under 4 minutes on one H100/H200: the Inception-like and the
# 7-vertex 9-edge cell at the default network, synthetic data resident on the GPU, the compiled
# step (nbcompile.optimize), in fp32 (TF32 off, upstream's recipe) and in bf16 + channels-last,
# each with CUDA graphs off and on; short timed windows, extrapolated to 108 epochs
# (benchmarks/train_speed.py). Usage: benchmarks/train_gpu.sh [OUT_DIR]
#   1. compile: the four (cell, precision) pairs built at once, filling a fresh inductor cache
#      (compile_*.json: the cold build time, under that concurrency);
#   2. measure: fp32, then bf16, both cells each, alone on the GPU, on the warm cache (train_*.json);
#   3. table.md: the rows as one table, also printed.
# Every step has a deadline within TRAIN_GPU_SECONDS (default 225); each JSON is rewritten
# after every row, so a step cut short keeps what it measured.
# CPU smoke test (tiny network and data, aot_eager, a few steps, no CUDA graphs; about 10 minutes on
# 2 heavily loaded cores):
#   TRAIN_GPU_SMOKE=1 benchmarks/train_gpu.sh /tmp/train-gpu-smoke
# Needs torch, numpy and jinja2 (black only for cells with very wide fan-in, not these).
set -uo pipefail
OUT=$(realpath -m "${1:-benchmarks/results/train_gpu}")
cd "$(dirname "$0")/.."
mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
export TORCHINDUCTOR_CACHE_DIR=${TORCHINDUCTOR_CACHE_DIR:-$(mktemp -d -t nbcompile-train-inductor-XXXXXX)}
MODELS=$(mktemp -d -t nbcompile-train-models-XXXXXX)
started=$SECONDS
left() { echo $((BUDGET - (SECONDS - started) > 5 ? BUDGET - (SECONDS - started) : 5)); }
step() { echo "== $1 (at $((SECONDS - started)) s)" >&2; }

if [[ ${TRAIN_GPU_SMOKE:-0} == 1 ]]; then
    COMMON=(--device cpu --compile on --compile-backend aot_eager --cuda-graphs off --train-images 1024
        --batch-size 32 --stem-channels 8 --num-stacks 1 --cells-per-stack 1 --warmup 2 --steps 2 --windows 2)
    COMPILE_SECONDS=180
    BUDGET=${TRAIN_GPU_SECONDS:-600}
else
    COMMON=(--device cuda --compile on --cuda-graphs off on --warmup 10 --window-seconds 0.8 --windows 3)
    COMPILE_SECONDS=105
    BUDGET=${TRAIN_GPU_SECONDS:-225}
    nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.max.sm --format=csv 2>/dev/null || true
fi
declare -A PRECISION=([fp32]="--precision fp32" [bf16]="--precision bf16 --channels-last")

step "1/3 compile, the four pairs at once (at most $COMPILE_SECONDS s)"
for cell in inception 7v9e; do
    for precision in fp32 bf16; do
        # shellcheck disable=SC2086
        timeout "$COMPILE_SECONDS" python3 benchmarks/train_speed.py "${COMMON[@]}" ${PRECISION[$precision]} \
            --cells "$cell" --compile-only --model-dir "$MODELS/$precision" \
            --out "$OUT/compile_${cell}_$precision.json" > "$OUT/compile_${cell}_$precision.log" 2>&1 &
    done
done
wait
tail -n 3 "$OUT"/compile_*.log

step "2/3 measure, one precision at a time, both cells"
for precision in fp32 bf16; do
    # the fp32 process gets 55% of the time left (its 7-vertex cell is the slowest), bf16 the rest
    limit=$(left)
    [[ $precision == fp32 ]] && limit=$((limit * 55 / 100))
    # shellcheck disable=SC2086
    timeout "$limit" python3 benchmarks/train_speed.py "${COMMON[@]}" ${PRECISION[$precision]} \
        --cells inception 7v9e --model-dir "$MODELS/$precision" --out "$OUT/train_$precision.json" \
        2>&1 | tee "$OUT/train_$precision.log" | grep -v "Warning" || echo "(step cut short or failed)"
done

step "3/3 table"
shopt -s nullglob
results=("$OUT"/compile_*.json "$OUT"/train_*.json)
if ((${#results[@]})); then
    python3 benchmarks/train_speed.py --table "${results[@]}" | tee "$OUT/table.md"
else
    echo "no results in $OUT"
fi
rm -rf "$MODELS"
step "done"
