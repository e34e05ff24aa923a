"""A synthetic landscape's shape and its fixture's writing time, measured from the file written.

    python benchmarks/landscape.py [--landscape structured] [--cells N | --all] [--budgets 4,12,36,108]
        [--workers 2] [--out benchmarks/results/landscape_structured.json]

Writes a fixture with ``nbcompile.synthetic.fixture.write_fixture`` (timed), reads it back through
the dataset reader (``NASBench``, a fresh cache) and prints, from the mean of the 3 runs of each
cell: test accuracy at 108 epochs (mean, median, best, share below 0.8 and 0.85), validation
accuracy at each budget, and Spearman rank correlations of validation accuracy between each budget
and 108 epochs, over all cells and among the top 10 % of cells (by validation at 108 epochs).
The numbers printed are also saved as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

VALID, TEST = 6, 7  # final validation and test accuracy in the tables' metrics (METRIC_FIELDS)


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman's rank correlation (ties broken by position; accuracies rarely tie in means of 3)."""
    rank_x, rank_y = np.argsort(np.argsort(x)), np.argsort(np.argsort(y))
    return float(np.corrcoef(rank_x, rank_y)[0, 1])


def landscape_figures(tables) -> dict:
    """The figures this benchmark reports, from a dataset's tables."""
    epochs = tables.epochs.tolist()
    valid = np.nanmean(tables.metrics[..., VALID], axis=2)  # (cells, budgets)
    final = epochs.index(108)
    test = np.nanmean(tables.metrics[:, final, :, TEST], axis=1)
    top = valid[:, final] >= np.quantile(valid[:, final], 0.9)
    return {
        "cells": int(tables.num_cells),
        "test_108": {
            "mean": float(test.mean()),
            "median": float(np.median(test)),
            "best": float(test.max()),
            "share_below_0.80": float((test < 0.8).mean()),
            "share_below_0.85": float((test < 0.85).mean()),
        },
        "best_validation_108": float(valid[:, final].max()),
        "mean_validation": {str(e): float(valid[:, i].mean()) for i, e in enumerate(epochs)},
        "spearman_vs_108_all": {str(e): spearman(valid[:, i], valid[:, final]) for i, e in enumerate(epochs)},
        "spearman_vs_108_top10": {str(e): spearman(valid[top, i], valid[top, final]) for i, e in enumerate(epochs)},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--landscape", default="structured")
    parser.add_argument("--cells", type=int, default=20_000, help="cells spread over the space")
    parser.add_argument("--all", action="store_true", help="every one of the 423,624 cells")
    parser.add_argument("--budgets", default="4,12,36,108")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    from nbcompile.nasbench import NASBench
    from nbcompile.space.enumeration import enumerate_cells, sample_cells
    from nbcompile.synthetic.fixture import write_fixture

    budgets = tuple(int(b) for b in args.budgets.split(","))
    started = time.perf_counter()
    cells = list(enumerate_cells(workers=args.workers)) if args.all else sample_cells(args.cells)
    enumerated = time.perf_counter() - started
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"landscape_{args.landscape}_synthetic.tfrecord"
        started = time.perf_counter()
        records = write_fixture(path, cells, budgets, workers=args.workers, landscape=args.landscape)
        written = time.perf_counter() - started
        dataset = NASBench(path, cache_dir=Path(folder) / "cache", progress=False)
        figures = landscape_figures(dataset.tables)
    result = {
        "command": f"python benchmarks/landscape.py {' '.join(sys.argv[1:])}",
        "machine": f"{platform.machine()}, {len(os.sched_getaffinity(0))} CPUs, Python {platform.python_version()}",
        "landscape": args.landscape,
        "budgets": list(budgets),
        "records": records,
        "enumerate_s": enumerated,
        "write_s": written,
        **figures,
    }
    print(json.dumps(result, indent=2))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
