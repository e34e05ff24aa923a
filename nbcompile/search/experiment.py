"""Run searches: N repeats × algorithms, with independent seeds, on several processes.

Every run gets its own seed, derived from the experiment seed, the algorithm's name and the repeat
number, so results do not depend on the number of processes or the order runs finish in. Worker
processes open the dataset from its cache (memory-mapped, shared through the page cache); the
parent process keeps no module-level dataset.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nbcompile.nasbench.api import NASBench
from nbcompile.parallel import ordered_map
from nbcompile.search.algorithms import ALGORITHMS, SearchResult, search
from nbcompile.search.optimizer import SearchOptions
from nbcompile.search.protocol import Budget


@dataclass(frozen=True)
class Experiment:
    dataset: str
    algorithms: tuple[str, ...] = ("random", "evolution")
    repeats: int = 10
    budget: Budget = Budget()
    seed: int = 0
    options: SearchOptions = SearchOptions()
    cache_dir: str | None = None

    def __post_init__(self) -> None:
        if not self.algorithms:
            raise ValueError(f"no algorithm given (choose from {', '.join(ALGORITHMS)})")
        unknown = [name for name in self.algorithms if name not in ALGORITHMS]
        if unknown:
            raise ValueError(f"unknown algorithm {unknown[0]!r} (choose from {', '.join(ALGORITHMS)})")
        if self.repeats < 1:
            raise ValueError(f"repeats must be at least 1, got {self.repeats}")

    def run_seed(self, algorithm: str, repeat: int) -> int:
        """The seed of one run: independent across algorithms and repeats."""
        digest = hashlib.sha256(f"{self.seed}/{algorithm}/{repeat}".encode()).digest()
        return int.from_bytes(digest[:4], "little")

    def runs(self) -> list[tuple[str, int]]:
        return [(algorithm, repeat) for algorithm in self.algorithms for repeat in range(self.repeats)]


#: The dataset of a worker process, opened by :func:`_open_in_worker`; never set in the parent.
_WORKER_DATASET: NASBench | None = None


def _open_in_worker(dataset: str, cache_dir: str | None) -> None:
    global _WORKER_DATASET
    _WORKER_DATASET = NASBench(dataset, cache_dir=cache_dir, workers=1, progress=False)


def _run_in_worker(algorithm: str, trial: int, seed: int, budget: Budget, options: SearchOptions) -> SearchResult:
    if _WORKER_DATASET is None:
        raise RuntimeError("_run_in_worker runs only in a worker started by run_experiment")
    return search(algorithm, _WORKER_DATASET, budget, seed, options, trial)


def _run_here(
    dataset: NASBench, algorithm: str, trial: int, seed: int, budget: Budget, options: SearchOptions
) -> SearchResult:
    return search(algorithm, dataset, budget, seed, options, trial)


def run_experiment(
    experiment: Experiment,
    workers: int = 1,
    on_result: Callable[[SearchResult], None] | None = None,
    dataset: NASBench | None = None,
) -> list[SearchResult]:
    """All runs of ``experiment``, in (algorithm, repeat) order. ``dataset``: the dataset, if the
    caller has it open already (otherwise it is opened, converting it once if needed). Worker
    processes open it from its cache folder (memory-mapped, shared through the page cache)."""
    tasks = [
        (algorithm, repeat, experiment.run_seed(algorithm, repeat), experiment.budget, experiment.options)
        for algorithm, repeat in experiment.runs()
    ]
    if dataset is None:  # converted once here, not in every worker
        dataset = NASBench(experiment.dataset, cache_dir=experiment.cache_dir, progress=False)
    if workers > 1 and len(tasks) > 1:
        source = str(dataset.cache_folder) if dataset.cache_folder else experiment.dataset
        runs = ordered_map(
            _run_in_worker, tasks, workers, initializer=_open_in_worker, initargs=(source, experiment.cache_dir)
        )
    else:
        runs = ordered_map(functools.partial(_run_here, dataset), tasks, 1)
    results = []
    for result in runs:
        results.append(result)
        if on_result:
            on_result(result)
    return results


def summarize(results: Sequence[SearchResult]) -> list[dict[str, Any]]:
    """Per algorithm: runs, queries, and the mean and IQR of the final test accuracy of the best
    cell by validation."""
    rows = []
    for algorithm in dict.fromkeys(r.algorithm for r in results):
        runs = [r for r in results if r.algorithm == algorithm]
        finals = np.array([r.best_tests[-1] for r in runs])
        valids = np.array([r.best_valids[-1] for r in runs])
        q25, q75 = np.percentile(finals, [25, 75])
        rows.append(
            {
                "algorithm": algorithm,
                "runs": len(runs),
                "mean_queries": float(np.mean([r.queries for r in runs])),
                "final_test_mean": float(finals.mean()),
                "final_test_q25": float(q25),
                "final_test_q75": float(q75),
                "final_validation_mean": float(valids.mean()),
            }
        )
    return rows


def format_summary(rows: Sequence[dict[str, Any]]) -> str:
    lines = [f"{'algorithm':<10} {'runs':>4} {'queries/run':>11}  {'test (best by validation)':<26} {'validation':>10}"]
    for row in rows:
        test = f"{row['final_test_mean']:.4f} [{row['final_test_q25']:.4f}, {row['final_test_q75']:.4f}]"
        lines.append(
            f"{row['algorithm']:<10} {row['runs']:>4} {row['mean_queries']:>11.0f}  {test:<26} "
            f"{row['final_validation_mean']:>10.4f}"
        )
    lines.append("queries/run: mean number of queries per run")
    lines.append("test: mean [25th, 75th percentile] over runs of the final best-by-validation cell")
    lines.append("validation: mean over runs of the final best validation accuracy")
    return "\n".join(lines)


def results_json(experiment: Experiment, results: Sequence[SearchResult], seconds: float) -> str:
    data = {
        "experiment": {
            **asdict(experiment),
            "budget": asdict(experiment.budget),
            "options": asdict(experiment.options),
        },
        "seconds": round(seconds, 3),
        "summary": summarize(results),
        "runs": [r.to_json() for r in results],
    }
    return json.dumps(data, indent=1) + "\n"


def write_results(out_dir: Path, experiment: Experiment, results: Sequence[SearchResult], seconds: float) -> Path:
    from nbcompile.fileio import write_atomic

    path = out_dir / "results.json"
    write_atomic(path, results_json(experiment, results, seconds))
    return path
