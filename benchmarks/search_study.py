"""How long search studies take, and a projection of the NAS-Bench-101 paper's full study.

Three parts, on one dataset file (a synthetic one at the full file's scale, with the budgets 4, 12,
36 and 108, for the multi-fidelity algorithms):

* ``quick``: the quick study, every algorithm of the paper's comparison that is registered
  (random, evolution, local, reinforce, tpe, smac, hyperband, bohb), ``--trials`` trials each at
  ``--budget`` simulated seconds, on ``--workers`` local processes; its wall time (goal: at most
  10 minutes on 2 cores) and each algorithm's mean compute seconds per trial;
* ``colab``: the colab's search, 20 trials of random search and regularized evolution (colab
  settings) at 5e6 s (goal: under 5 s);
* ``scaling``: ``--scaling-trials`` trials of each algorithm at ``--scaling-budget`` seconds, for
  the growth of a trial's cost with its budget; the projection of the paper's study (500 trials
  × 7 algorithms × 1e7 s) fits seconds per trial = a × budget^k through the quick and scaling
  points of each algorithm and gives core-hours per algorithm and wall time on N Ray workers.

Prints a table and writes JSON (``--out``). Usage:

    python benchmarks/search_study.py FULL --out benchmarks/results/search/study.json
    # the projection from a quick study measured earlier, without running it again:
    python benchmarks/search_study.py FULL --skip colab --quick-from study.json --scaling-budget 1e6 --out scaling.json
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

from nbcompile.nasbench import NASBench
from nbcompile.search import ALGORITHMS, Budget, SearchOptions
from nbcompile.search.experiment import Experiment, local_executor
from nbcompile.search.optimizer import EVOLUTION_SETTINGS
from nbcompile.search.study import run_study, trial_outcomes

#: The paper's comparison, and local search.
PAPER_ALGORITHMS = ("random", "evolution", "local", "reinforce", "tpe", "smac", "hyperband", "bohb")
#: The paper's study: 7 algorithms (local search apart), 500 trials each, 1e7 s each.
PAPER_TRIALS, PAPER_BUDGET = 500, 1e7
RAY_WORKERS = (8, 32, 128)


def timed_study(
    dataset: NASBench,
    source: str,
    cache_dir: str | None,
    algorithms: tuple[str, ...],
    trials: int,
    budget: float,
    workers: int,
    seed: int,
) -> dict[str, Any]:
    """Run a study in a fresh folder; its wall time and, per algorithm, seconds and queries per trial."""
    options = SearchOptions(**EVOLUTION_SETTINGS["colab"])
    experiment = Experiment(source, algorithms, trials, Budget(budget), seed, options, cache_dir)
    with tempfile.TemporaryDirectory(prefix="nbcompile-study-") as out:
        started = time.perf_counter()
        summary = run_study(experiment, out, local_executor(experiment, dataset, workers), dataset)
        wall = time.perf_counter() - started
        per_algorithm: dict[str, dict[str, Any]] = {}
        for trial, table, metadata in trial_outcomes(experiment, out):
            entry = per_algorithm.setdefault(trial.algorithm, {"seconds": [], "queries": [], "failed": 0})
            if metadata["status"] == "ok":
                entry["seconds"].append(metadata["seconds"])
                entry["queries"].append(table.num_rows)
            else:
                entry["failed"] += 1
    return {
        "algorithms": list(algorithms),
        "trials": trials,
        "budget": budget,
        "workers": workers,
        "wall_seconds": wall,
        "failed": summary.failed,
        "per_algorithm": {
            name: {
                "mean_seconds_per_trial": sum(e["seconds"]) / len(e["seconds"]) if e["seconds"] else None,
                "mean_queries_per_trial": sum(e["queries"]) / len(e["queries"]) if e["queries"] else None,
                "failed": e["failed"],
            }
            for name, e in per_algorithm.items()
        },
    }


def projection(quick: dict[str, Any], scaling: dict[str, Any]) -> dict[str, Any]:
    """Seconds per trial at the paper's budget, from a × budget^k through the two measured points."""
    rows = {}
    for name, low in quick["per_algorithm"].items():
        high = scaling["per_algorithm"].get(name, {})
        t1, t2 = low["mean_seconds_per_trial"], high.get("mean_seconds_per_trial")
        if not t1 or not t2:
            continue
        exponent = math.log(t2 / t1) / math.log(scaling["budget"] / quick["budget"])
        per_trial = t2 * (PAPER_BUDGET / scaling["budget"]) ** exponent
        core_hours = PAPER_TRIALS * per_trial / 3600
        rows[name] = {
            "exponent": exponent,
            "seconds_per_trial_at_1e7": per_trial,
            "core_hours_500_trials": core_hours,
        }
    paper = [name for name in rows if name != "local"]
    total = sum(rows[name]["core_hours_500_trials"] for name in paper)
    longest = max((rows[name]["seconds_per_trial_at_1e7"] for name in paper), default=0.0)
    wall = {
        str(n): max(total / n, longest / 3600)  # no faster than the longest single trial
        for n in RAY_WORKERS
    }
    return {"algorithms": rows, "paper_algorithms": paper, "core_hours_total": total, "wall_hours_on_n_workers": wall}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", help="a dataset file with the budgets 4, 12, 36 and 108 (or its cache folder)")
    parser.add_argument("--cache-dir", default=None)
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--budget", type=float, default=2e5)
    parser.add_argument("--scaling-budget", type=float, default=1e6)
    parser.add_argument("--scaling-trials", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip", default="", help="comma-separated parts to skip: quick, colab, scaling")
    parser.add_argument(
        "--quick-from", type=Path, default=None, help="take the quick study's figures from this earlier --out JSON"
    )
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    started = time.perf_counter()
    dataset = NASBench(args.dataset, cache_dir=args.cache_dir, progress=False)
    open_seconds = time.perf_counter() - started
    algorithms = tuple(name for name in PAPER_ALGORITHMS if name in ALGORITHMS)
    results: dict[str, Any] = {
        "dataset": Path(args.dataset).name,
        "cells": len(dataset),
        "budgets": dataset.tables.epochs.tolist(),
        "open_seconds": open_seconds,
        "registered": list(algorithms),
        "missing": [name for name in PAPER_ALGORITHMS if name not in ALGORITHMS],
        "machine": f"{platform.machine()}, {platform.python_version()}",
    }
    if "colab" not in skip:
        colab = timed_study(
            dataset, args.dataset, args.cache_dir, ("random", "evolution"), 10, 5e6, args.workers, args.seed
        )
        results["colab"] = colab
        print(f"colab search (20 trials of RS and RE at 5e6 s): {colab['wall_seconds']:.2f} s (goal: under 5 s)")
    if args.quick_from:
        results["quick"] = json.loads(args.quick_from.read_text())["quick"]
    elif "quick" not in skip:
        quick = timed_study(
            dataset, args.dataset, args.cache_dir, algorithms, args.trials, args.budget, args.workers, args.seed
        )
        results["quick"] = quick
        print(
            f"quick study ({len(algorithms)} algorithms × {args.trials} trials at {args.budget:g} s, "
            f"{args.workers} workers): {quick['wall_seconds']:.1f} s (goal: at most 600 s)"
        )
    if "scaling" not in skip:
        scaling = timed_study(
            dataset,
            args.dataset,
            args.cache_dir,
            algorithms,
            args.scaling_trials,
            args.scaling_budget,
            args.workers,
            args.seed + 1,
        )
        results["scaling"] = scaling
        if "quick" in results:
            results["projection"] = projection(results["quick"], scaling)
    print(f"{'algorithm':<10} {'s/trial':>9} {'queries':>8} {'s/trial':>9} {'queries':>8} {'k':>5} {'core-h @1e7':>12}")
    for name in algorithms:
        low = results.get("quick", {}).get("per_algorithm", {}).get(name, {})
        high = results.get("scaling", {}).get("per_algorithm", {}).get(name, {})
        projected = results.get("projection", {}).get("algorithms", {}).get(name, {})

        def show(value: Any, spec: str) -> str:
            return "-" if value is None else format(value, spec)

        print(
            f"{name:<10} {show(low.get('mean_seconds_per_trial'), '9.3f')} "
            f"{show(low.get('mean_queries_per_trial'), '8.0f')} {show(high.get('mean_seconds_per_trial'), '9.3f')} "
            f"{show(high.get('mean_queries_per_trial'), '8.0f')} {show(projected.get('exponent'), '5.2f')} "
            f"{show(projected.get('core_hours_500_trials'), '12.2f')}"
        )
    if "projection" in results:
        projected = results["projection"]
        hours = ", ".join(f"{n} workers {h:.2f} h" for n, h in projected["wall_hours_on_n_workers"].items())
        print(
            f"paper study ({', '.join(projected['paper_algorithms'])}): "
            f"{projected['core_hours_total']:.1f} core-hours; {hours}"
        )
    if results["missing"]:
        print(f"not registered here: {', '.join(results['missing'])}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
