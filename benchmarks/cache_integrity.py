"""What the cache's integrity checks cost on a warm load, at the real datasets' scale.

    python benchmarks/cache_integrity.py [--out benchmarks/results/cache_integrity.json] [--runs 5]

Builds caches of 423,624 cells (1 epoch budget like nasbench_only108, 4 like nasbench_full; 3
repeats; random values of the right types), then, in fresh processes, times a warm load: the
arrays' shape, dtype and consistency checks alone, with the CRC-32C of every array added (what
every load does), and a whole ``NASBench`` open of the cache folder, with and without the CRC-32C. Also the CRC-32C of a
source-sized file (what ``data verify`` adds). Medians of ``--runs`` fresh processes.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

CELLS = 423_624
_CHILD = """
import json, sys, time
from pathlib import Path
started = time.perf_counter()
from nbcompile.nasbench import NASBench, cache
imported = time.perf_counter()
folder = Path(sys.argv[1])
t0 = time.perf_counter(); cache.load_tables(folder, verify_content=False); t1 = time.perf_counter()
cache.load_tables(folder, verify_content=True); t2 = time.perf_counter()
NASBench(folder); t3 = time.perf_counter()
checked = cache.load_tables
cache.load_tables = lambda folder, key=None: checked(folder, key, verify_content=False)
NASBench(folder); t4 = time.perf_counter()
print(json.dumps({"checks_without_crc_s": t1 - t0, "checks_with_crc_s": t2 - t1, "nasbench_open_s": t3 - t2,
                  "nasbench_open_without_crc_s": t4 - t3}))
"""


def _tables(budgets: int):
    from nbcompile.nasbench.tables import METRIC_FIELDS, DatasetTables
    from nbcompile.space.ops import MAX_VERTICES, PAD_CODE

    rng = np.random.default_rng(0)
    hashes = np.array([f"{i:032x}".encode() for i in range(CELLS)], dtype="S32")
    vertices = rng.integers(2, MAX_VERTICES + 1, CELLS).astype(np.uint8)
    ops = rng.integers(0, 5, (CELLS, MAX_VERTICES)).astype(np.int8)
    ops[np.arange(MAX_VERTICES) >= vertices[:, None]] = PAD_CODE
    matrices = np.triu(rng.integers(0, 2, (CELLS, MAX_VERTICES, MAX_VERTICES)), 1).astype(np.uint8)
    epochs = np.array([4, 12, 36, 108][-budgets:], dtype=np.int64)
    return DatasetTables(
        hashes,
        vertices,
        matrices,
        ops,
        rng.integers(1, 10**7, CELLS).astype(np.int64),
        epochs,
        np.full((CELLS, budgets), 3, dtype=np.uint8),
        rng.random((CELLS, budgets, 3, len(METRIC_FIELDS))),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="benchmarks/results/cache_integrity.json")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    from nbcompile.nasbench import cache

    results = {
        "machine": f"{platform.machine()}, {len(__import__('os').sched_getaffinity(0))} CPUs",
        "python": platform.python_version(),
        "date": time.strftime("%Y-%m-%d"),
        "runs": args.runs,
        "caches": {},
    }
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        source = root / "source.tfrecord"
        source.write_bytes(b"x")
        for name, budgets in (("only108-scale", 1), ("full-scale", 4)):
            folder = root / name
            tables = _tables(budgets)
            cache.save_tables(tables, folder, source, cache.SourceKey.of(source), {})
            size = sum(p.stat().st_size for p in folder.iterdir())
            subprocess.run(
                [sys.executable, "-c", _CHILD, str(folder)], check=True, capture_output=True
            )  # warm the page cache
            runs = [
                json.loads(
                    subprocess.run(
                        [sys.executable, "-c", _CHILD, str(folder)], check=True, capture_output=True, text=True
                    ).stdout
                )
                for _ in range(args.runs)
            ]
            medians = {key: statistics.median(run[key] for run in runs) for key in runs[0]}
            results["caches"][name] = {
                "cells": CELLS,
                "budgets": budgets,
                "cache_mb": round(size / 1e6, 1),
                **{key: round(value, 4) for key, value in medians.items()},
            }
            print(
                f"{name:>14}: cache {size / 1e6:7.1f} MB  checks {medians['checks_without_crc_s']:.3f} s  "
                f"+CRC-32C {medians['checks_with_crc_s']:.3f} s  NASBench open {medians['nasbench_open_s']:.3f} s "
                f"(without the CRC-32C {medians['nasbench_open_without_crc_s']:.3f} s)"
            )
        for label, megabytes in (("nasbench_only108.tfrecord size", 499), ("nasbench_full.tfrecord size", 2000)):
            big = root / "big.bin"
            with open(big, "wb") as handle:
                handle.truncate(megabytes * 10**6)
            cache.file_checksum(big)  # warm
            times = []
            for _ in range(args.runs):
                started = time.perf_counter()
                cache.file_checksum(big)
                times.append(time.perf_counter() - started)
            results[f"source_crc32c_s ({label}, warm)"] = round(statistics.median(times), 4)
            print(f"CRC-32C of a {megabytes} MB source ({label}), warm: {statistics.median(times):.3f} s")
            big.unlink()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
