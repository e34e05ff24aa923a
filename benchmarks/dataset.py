"""Dataset benchmarks: cold conversion in every byte layout, warm load (time and memory), query rates.

    python benchmarks/dataset.py write DIR [--cells N]        # the same records in every layout
    python benchmarks/dataset.py layouts DIR [--runs 1] [--out benchmarks/results/dataset_layouts.json]
    python benchmarks/dataset.py queries DATASET.tfrecord [--out benchmarks/results/dataset.json]
    python benchmarks/dataset.py convert DATASET.tfrecord [--runs 3] [--out benchmarks/results/dataset_convert.json]

``write`` makes one only108-scale file per layout of ``nbcompile data fixture --layout`` (metrics
synthetic, parameter counts real; each cell is lowered once for all layouts). Conversion and
warm load run in fresh processes with a fresh cache folder; peak memory counts the converting
process and its largest worker. ``convert`` repeats the cold load of one file (the full 4-budget
file: ``nbcompile data fixture FULL --all --full``) and reports its time and peak memory. The
numbers printed are also saved as JSON.
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
dataset = NASBench(sys.argv[1], cache_dir=sys.argv[2], progress=False)
loaded = time.perf_counter()
print(json.dumps({"converted": dataset.converted, "cells": len(dataset), "records": dataset.tables.num_records,
                  "import_s": imported - started, "load_s": loaded - imported,
                  "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "max_worker_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))
"""


def _child(dataset: str, cache_dir: str) -> dict:
    output = subprocess.run(
        [sys.executable, "-c", _CHILD, dataset, cache_dir], check=True, capture_output=True, text=True
    )
    return json.loads(output.stdout)


def _rate(function, items, repeats: int = 3) -> float:
    """Best of ``repeats`` passes over ``items``, in calls per second."""
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        function(items)
        best = min(best, time.perf_counter() - started)
    return len(items) / best


def _machine() -> str:
    import os

    return f"{platform.machine()}, {len(os.sched_getaffinity(0))} CPUs, Python {platform.python_version()}"


def _layout_path(folder: Path, layout: str) -> Path:
    return folder / f"only108_{layout}_synthetic.tfrecord"


def write_layouts(args: argparse.Namespace) -> None:
    from nbcompile.nasbench.writer import LAYOUTS
    from nbcompile.parallel import available_cpus
    from nbcompile.space.enumeration import enumerate_cells, sample_cells
    from nbcompile.synthetic.fixture import write_fixtures

    folder = Path(args.folder)
    cells = sample_cells(args.cells) if args.cells else enumerate_cells()
    started = time.perf_counter()
    count = write_fixtures({name: _layout_path(folder, name) for name in LAYOUTS}, cells, workers=available_cpus())
    print(f"wrote {count:,} records in each of {len(LAYOUTS)} layouts in {time.perf_counter() - started:.0f} s")


def measure_layouts(args: argparse.Namespace) -> None:
    import statistics

    from nbcompile.nasbench.writer import LAYOUTS

    folder = Path(args.folder)
    names = args.only.split(",") if args.only else list(LAYOUTS)
    out = Path(args.out)
    results = json.loads(out.read_text()) if out.exists() and args.append else {}
    results.update({"machine": _machine(), "date": time.strftime("%Y-%m-%d"), "folder": folder.name})
    layouts = results.setdefault("layouts", {})
    for name in names:
        path = _layout_path(folder, name)
        entry = layouts.setdefault(name, {"dataset_bytes": path.stat().st_size, "cold": []})
        for _ in range(args.runs):
            with tempfile.TemporaryDirectory() as cache_dir:
                cold = _child(str(path), cache_dir)
            assert cold["converted"]
            entry["cold"].append(cold)
            print(
                f"{name:>13}: cold {cold['load_s']:.2f} s for {cold['records']:,} records "
                f"(peak RSS {cold['max_rss_mb']:.0f} MB, worker {cold['max_worker_rss_mb']:.0f} MB)",
                flush=True,
            )
        times = [run["load_s"] for run in entry["cold"]]
        entry["cold_median_s"] = statistics.median(times)
        entry["cold_runs"] = len(times)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    for name, entry in layouts.items():
        print(f"{name:>13}: median {entry['cold_median_s']:.2f} s over {entry['cold_runs']} run(s)")
    print(f"wrote {out}")


def measure_queries(args: argparse.Namespace) -> None:
    import numpy as np

    from nbcompile.nasbench import NASBench
    from nbcompile.search.specs import random_spec
    from nbcompile.space import graph
    from nbcompile.space.spec import ModelSpec

    results: dict = {
        "dataset": Path(args.dataset).name,
        "dataset_bytes": Path(args.dataset).stat().st_size,
        "machine": _machine(),
        "date": time.strftime("%Y-%m-%d"),
    }
    with tempfile.TemporaryDirectory() as cache_dir:
        results["cold"] = cold = _child(args.dataset, cache_dir)
        results["warm"] = warm = _child(args.dataset, cache_dir)
        assert cold["converted"] and not warm["converted"]
        print(
            f"cold conversion: {cold['load_s']:.2f} s for {cold['records']:,} records "
            f"(peak RSS {cold['max_rss_mb']:.0f} MB)"
        )
        print(
            f"warm load: {warm['load_s']:.3f} s (+ {warm['import_s']:.3f} s import), "
            f"peak RSS {warm['max_rss_mb']:.0f} MB"
        )

        dataset = NASBench(args.dataset, seed=0, cache_dir=cache_dir)
        rng = np.random.default_rng(0)
        rows = rng.choice(len(dataset), min(args.queries, len(dataset)), replace=False)
        raw = [(dataset.tables.cell_matrix(r).tolist(), dataset.tables.cell_ops(r)) for r in rows]
        hashed = [ModelSpec(m, o) for m, o in raw]
        for spec in hashed:
            spec.module_hash  # noqa: B018 - hash once, as a search holding specs would

        def query_raw(items):
            graph._cached_module_hash.cache_clear()  # every cell hashed from scratch
            for matrix, ops in items:
                dataset.query(ModelSpec(matrix, ops))

        def query_hashed(items):
            for spec in items:
                dataset.query(spec)

        generator = np.random.default_rng(1)
        stream = []
        while len(stream) < len(raw):
            spec = random_spec(generator)
            stream.append((spec.original_matrix.tolist(), spec.original_ops))

        def query_stream(items):
            graph._cached_module_hash.cache_clear()
            for matrix, ops in items:
                dataset.query(ModelSpec(matrix, ops))

        vertices = np.bincount([len(o) for _, o in raw], minlength=8)[2:].tolist()
        results["queries"] = {
            "raw_dataset_cells_per_s": _rate(query_raw, raw),
            "raw_cells_vertex_histogram_2_to_7": vertices,
            "raw_random_spec_stream_per_s": _rate(query_stream, stream),
            "hashed_spec_per_s": _rate(query_hashed, hashed),
            "query_many_hashes_per_s": _rate(lambda items: dataset.query_many(items), [s.module_hash for s in hashed]),
        }
        for key, value in results["queries"].items():
            if key.endswith("_per_s"):
                print(f"{key}: {value:,.0f}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {out}")


def measure_conversion(args: argparse.Namespace) -> None:
    import statistics

    path = Path(args.dataset)
    results: dict = {
        "dataset": path.name,
        "dataset_bytes": path.stat().st_size,
        "machine": _machine(),
        "date": time.strftime("%Y-%m-%d"),
        "runs": [],
    }
    for _ in range(args.runs):
        with tempfile.TemporaryDirectory() as cache_dir:
            cold = _child(str(path), cache_dir)
            cold["cache_bytes"] = sum(file.stat().st_size for file in Path(cache_dir).rglob("*.npy"))
        assert cold["converted"]
        results["runs"].append(cold)
        print(
            f"cold conversion: {cold['load_s']:.2f} s for {cold['records']:,} records, peak RSS "
            f"{cold['max_rss_mb']:.0f} MB (largest worker {cold['max_worker_rss_mb']:.0f} MB), "
            f"cache {cold['cache_bytes'] / 1e6:.0f} MB",
            flush=True,
        )
    runs = results["runs"]
    results["load_s_median"] = statistics.median(run["load_s"] for run in runs)
    results["max_rss_mb_max"] = max(run["max_rss_mb"] for run in runs)
    print(f"median {results['load_s_median']:.2f} s, highest peak RSS {results['max_rss_mb_max']:.0f} MB")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    write = commands.add_parser("write", help="write the same records in every layout")
    write.add_argument("folder")
    write.add_argument("--cells", type=int, default=0, help="cells spread over the space (default: all 423,624)")
    write.set_defaults(run=write_layouts)
    layouts = commands.add_parser("layouts", help="cold load of each layout's file")
    layouts.add_argument("folder")
    layouts.add_argument("--runs", type=int, default=1)
    layouts.add_argument("--only", default="", help="comma-separated layouts (default: all)")
    layouts.add_argument("--append", action="store_true", help="add runs to those already in --out")
    layouts.add_argument("--out", default="benchmarks/results/dataset_layouts.json")
    layouts.set_defaults(run=measure_layouts)
    queries = commands.add_parser("queries", help="cold and warm load of one file, then query rates")
    queries.add_argument("dataset")
    queries.add_argument("--out", default="benchmarks/results/dataset.json")
    queries.add_argument("--queries", type=int, default=20_000)
    queries.set_defaults(run=measure_queries)
    convert = commands.add_parser("convert", help="cold load of one file: time and peak memory")
    convert.add_argument("dataset")
    convert.add_argument("--runs", type=int, default=3)
    convert.add_argument("--out", default="benchmarks/results/dataset_convert.json")
    convert.set_defaults(run=measure_conversion)
    args = parser.parse_args()
    args.run(args)


if __name__ == "__main__":
    main()
