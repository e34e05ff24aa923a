"""Compile every NAS-Bench-101 cell and report the compiler's throughput.

Usage: python3 benchmarks/compile_space.py [--limit N] [--workers W] [--black-sample N]
       [--import-sample N] [--json PATH]

1. Sources for all cells (or the first N): plan, render (black only for over-long lines, the
   default path), and Python's compile() of the result, in W processes.
2. The same with black forced on every file, on an evenly spaced sample, checking that both
   paths give identical bytes.
3. Import and build (on the meta device) an evenly spaced sample, checking that the network's
   parameter count equals the plan's.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from nbcompile._version import __version__
from nbcompile.compiler.lower import lower
from nbcompile.compiler.render import render_plan
from nbcompile.space.enumeration import enumerate_cells
from nbcompile.space.spec import ModelSpec


def _sources(cells: list[tuple[tuple, tuple]]) -> tuple[int, int]:
    """Compile a chunk of cells to source; returns (cells, total source bytes)."""
    size = 0
    for matrix, ops in cells:
        size += len(render_plan(lower(ModelSpec(matrix, ops))))
    return len(cells), size


def _sample(items: list, count: int) -> list:
    if count <= 0:
        return []
    step = max(1, len(items) // count)
    return items[::step][:count]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--workers", type=int, default=len(os.sched_getaffinity(0)))
    parser.add_argument("--black-sample", type=int, default=300)
    parser.add_argument("--import-sample", type=int, default=300)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    started = time.perf_counter()
    cells = [(c.matrix, c.ops) for c in enumerate_cells()]
    enumerate_s = time.perf_counter() - started
    if args.limit:
        cells = cells[: args.limit]
    chunks = [cells[i : i + 2000] for i in range(0, len(cells), 2000)]

    started = time.perf_counter()
    with ProcessPoolExecutor(args.workers) as pool:
        done = list(pool.map(_sources, chunks))
    sources_s = time.perf_counter() - started
    compiled = sum(n for n, _ in done)
    print(
        f"sources: {compiled:,} cells in {sources_s:.1f} s = {compiled / sources_s:,.0f} specs/s "
        f"({args.workers} processes), {sum(b for _, b in done) / compiled:,.0f} bytes each",
        flush=True,
    )

    sample = _sample(cells, args.black_sample)
    started = time.perf_counter()
    mismatches = 0
    for matrix, ops in sample:
        plan = lower(ModelSpec(matrix, ops))
        mismatches += render_plan(plan, formatter="black") != render_plan(plan)
    black_s = time.perf_counter() - started
    print(
        f"black on every file: {len(sample)} cells in {black_s:.1f} s = {len(sample) / black_s:.1f} specs/s "
        f"(1 process, includes the fast path for comparison); mismatches: {mismatches}",
        flush=True,
    )

    import torch

    from nbcompile.runtime.loader import load_model_class

    sample = _sample(cells, args.import_sample)
    wrong = 0
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as folder:
        for index, (matrix, ops) in enumerate(sample):
            plan = lower(ModelSpec(matrix, ops))
            path = Path(folder) / f"cell_{index}.py"
            path.write_text(render_plan(plan))
            with torch.device("meta"):
                network = load_model_class(path)()
            wrong += sum(p.numel() for p in network.parameters()) != plan.trainable_parameters
    import_s = time.perf_counter() - started
    print(
        f"import + build + count: {len(sample)} cells in {import_s:.1f} s = {len(sample) / import_s:.1f} specs/s; "
        f"parameter mismatches: {wrong}",
        flush=True,
    )

    report = {
        "nbcompile_version": __version__,
        "python": sys.version.split()[0],
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "date": time.strftime("%Y-%m-%d"),
        "enumerate_s": enumerate_s,
        "cells": compiled,
        "workers": args.workers,
        "sources_s": sources_s,
        "sources_per_s": compiled / sources_s,
        "black_sample": args.black_sample,
        "black_per_s": args.black_sample / black_s if args.black_sample else None,
        "black_mismatches": mismatches,
        "import_sample": args.import_sample,
        "import_per_s": args.import_sample / import_s if args.import_sample else None,
        "parameter_mismatches": wrong,
    }
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
