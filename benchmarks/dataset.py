"""Dataset benchmarks: cold conversion, warm load (time and memory), query rates.

    python benchmarks/dataset.py DATASET.tfrecord [--out benchmarks/results/dataset.json]

Make an only108-scale file first (metrics synthetic, parameter counts real):
    nbcompile data fixture /tmp/nasbench_only108_synthetic.tfrecord --all
Conversion and warm load run in fresh processes with a fresh cache folder; the numbers printed
are also saved as JSON.
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

_CHILD = """
import json, resource, sys, time
started = time.perf_counter()
from nbcompile.nasbench import NASBench
imported = time.perf_counter()
bench = NASBench(sys.argv[1], cache_dir=sys.argv[2], progress=False)
loaded = time.perf_counter()
print(json.dumps({"converted": bench.converted, "cells": len(bench), "records": bench.tables.num_records,
                  "import_s": imported - started, "load_s": loaded - imported,
                  "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def _child(dataset: str, cache_dir: str) -> dict:
    output = subprocess.run([sys.executable, "-c", _CHILD, dataset, cache_dir], check=True, capture_output=True, text=True)
    return json.loads(output.stdout)


def _rate(function, items, repeats: int = 3) -> float:
    """Best of ``repeats`` passes over ``items``, in calls per second."""
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        function(items)
        best = min(best, time.perf_counter() - started)
    return len(items) / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset")
    parser.add_argument("--out", default="benchmarks/results/dataset.json")
    parser.add_argument("--queries", type=int, default=20_000)
    args = parser.parse_args()

    import numpy as np

    from nbcompile.space import graph
    from nbcompile.nasbench import NASBench
    from nbcompile.search.specs import random_spec
    from nbcompile.space.spec import ModelSpec

    results: dict = {
        "dataset": args.dataset,
        "dataset_bytes": Path(args.dataset).stat().st_size,
        "machine": f"{platform.machine()}, {len(__import__('os').sched_getaffinity(0))} CPUs, Python {platform.python_version()}",
        "date": time.strftime("%Y-%m-%d"),
    }
    with tempfile.TemporaryDirectory() as cache_dir:
        results["cold"] = cold = _child(args.dataset, cache_dir)
        results["warm"] = warm = _child(args.dataset, cache_dir)
        assert cold["converted"] and not warm["converted"]
        print(f"cold conversion: {cold['load_s']:.2f} s for {cold['records']:,} records (peak RSS {cold['max_rss_mb']:.0f} MB)")
        print(f"warm load: {warm['load_s']:.3f} s (+ {warm['import_s']:.3f} s import), peak RSS {warm['max_rss_mb']:.0f} MB")

        bench = NASBench(args.dataset, seed=0, cache_dir=cache_dir)
        rng = np.random.default_rng(0)
        rows = rng.choice(len(bench), min(args.queries, len(bench)), replace=False)
        raw = [(bench.tables.cell_matrix(r).tolist(), bench.tables.cell_ops(r)) for r in rows]
        hashed = [ModelSpec(m, o) for m, o in raw]
        for spec in hashed:
            spec.module_hash  # noqa: B018 - hash once, as a search holding specs would

        def query_raw(items):
            graph._cached_module_hash.cache_clear()  # every cell hashed from scratch
            for matrix, ops in items:
                bench.query(ModelSpec(matrix, ops))

        def query_hashed(items):
            for spec in items:
                bench.query(spec)

        generator = np.random.default_rng(1)
        stream = []
        while len(stream) < len(raw):
            spec = random_spec(generator)
            stream.append((spec.original_matrix.tolist(), spec.original_ops))

        def query_stream(items):
            graph._cached_module_hash.cache_clear()
            for matrix, ops in items:
                bench.query(ModelSpec(matrix, ops))

        vertices = np.bincount([len(o) for _, o in raw], minlength=8)[2:].tolist()
        results["queries"] = {
            "raw_dataset_cells_per_s": _rate(query_raw, raw),
            "raw_cells_vertex_histogram_2_to_7": vertices,
            "raw_random_spec_stream_per_s": _rate(query_stream, stream),
            "hashed_spec_per_s": _rate(query_hashed, hashed),
            "query_many_hashes_per_s": _rate(lambda items: bench.query_many(items), [s.module_hash for s in hashed]),
        }
        for key, value in results["queries"].items():
            if key.endswith("_per_s"):
                print(f"{key}: {value:,.0f}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
