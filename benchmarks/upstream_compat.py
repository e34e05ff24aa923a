"""What the upstream-compatible surface costs: queries with ``api.ModelSpec``, the read-only
statistics views, and the first load's feedback lines.

    python benchmarks/upstream_compat.py DATASET.tfrecord [--out benchmarks/results/upstream_compat.json]

Make a file first (metrics synthetic, parameter counts real):
    nbcompile data fixture /tmp/bench_synthetic.tfrecord --cells 5000
Rates are the best of 5 passes; run it several times (and against an older checkout with
PYTHONPATH pointing there) to compare. The numbers printed are also saved as JSON.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

_FIRST_LOAD = """
import sys
from nbcompile.nasbench import api
api.NASBench(sys.argv[1], cache_dir=sys.argv[2])
"""


def _best_seconds(function, repeats: int = 5) -> float:
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - started)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset")
    parser.add_argument("--out", default="benchmarks/results/upstream_compat.json")
    args = parser.parse_args()

    from nbcompile.nasbench import api
    from nbcompile.space.spec import ModelSpec as CompilerSpec

    with tempfile.TemporaryDirectory() as cache:
        first = subprocess.run(  # from the folder of the cache: `-c` puts the working folder first on sys.path
            [sys.executable, "-c", _FIRST_LOAD, args.dataset, cache],
            capture_output=True,
            text=True,
            check=True,
            cwd=cache,
        )
        nasbench = api.NASBench(args.dataset, seed=0, cache_dir=cache, progress=False)
        hashes = list(nasbench.hash_iterator())
        cells = [
            (nasbench.tables.cell_matrix(row).tolist(), nasbench.tables.cell_ops(row)) for row in range(len(hashes))
        ]
        api_specs = [api.ModelSpec(matrix, ops) for matrix, ops in cells]
        compiler_specs = [CompilerSpec(matrix, ops) for matrix, ops in cells]
        for spec in api_specs + compiler_specs:
            spec.module_hash  # noqa: B018 -- hash once, as a search that re-queries would

        def query_all(specs):
            return lambda: [nasbench.query(spec) for spec in specs]

        def read_views():
            for module_hash in hashes:
                nasbench.fixed_statistics[module_hash]
                nasbench.computed_statistics[module_hash]

        def copies():
            for module_hash in hashes:
                nasbench.get_metrics_from_hash(module_hash)

        count = len(hashes)
        results = {
            "date": time.strftime("%Y-%m-%d"),
            "machine": f"{platform.machine()}, {platform.python_version()}",
            "dataset": Path(args.dataset).name,
            "cells": count,
            "first_load_stderr": first.stderr.splitlines(),
            "query_per_s_api_modelspec": count / _best_seconds(query_all(api_specs)),
            "query_per_s_compiler_modelspec": count / _best_seconds(query_all(compiler_specs)),
            "views_us_per_cell": 1e6 * _best_seconds(read_views) / count,
            "get_metrics_from_hash_us_per_cell": 1e6 * _best_seconds(copies) / count,
        }
    for key, value in results.items():
        print(f"{key:<36} {value:,.1f}" if isinstance(value, float) else f"{key:<36} {value}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
