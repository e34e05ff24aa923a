#!/usr/bin/env bash
# The CPU benchmark behind the CPU tables of benchmarks/RESULTS.md. Usage: benchmarks/cpu.sh [OUT_DIR] [extra bench flags...]
# Runs on the machine it is started on (here: 2 cores); writes JSON and PNG files to OUT_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-benchmarks/results/cpu}
shift || true
mkdir -p "$OUT"
CELLS="examples/inception.json examples/seven_vertex_nine_edge.json"
COMMON=(--device cpu --warmup 3 --iters 10 --max-seconds 2 --rounds 3)

python3 -m nbcompile bench $CELLS "${COMMON[@]}" --batch-sizes 1,16 --modes all \
    --json "$OUT/inference_fp32.json" --plot "$OUT/inference_fp32.png" "$@"
python3 -m nbcompile bench examples/inception.json "${COMMON[@]}" --batch-sizes 8 --train \
    --modes dynamic,dynamic-compile,static,static-script,static-compile,static-optimized \
    --json "$OUT/train_fp32.json" "$@"
python3 benchmarks/aot.py examples/inception.json --device cpu --batch-size 1 --rounds 3 --json "$OUT/aot_inception.json"
python3 benchmarks/summarize.py "$OUT"/*.json > "$OUT/summary.md"
cat "$OUT/summary.md"
