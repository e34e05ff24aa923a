"""Run searches: N repeats × algorithms, with independent seeds, on several processes or Ray.

Every run (a :class:`Trial`) gets its own seed, derived from the experiment seed, the
algorithm's name and the repeat number, so results do not depend on the number of processes or
the order runs finish in. Trials run through :func:`nbcompile.tasks.run_tasks`, in this process,
a local pool (:func:`local_executor`) or Ray (:func:`ray_executor`); forked pool workers inherit
the parent's open dataset, other workers open it once each, from its cache (memory-mapped,
shared through the page cache).
:func:`run_experiment` returns the results; :mod:`nbcompile.search.study` writes them to a
resumable study folder.
"""

from __future__ import annotations

import functools
import hashlib
import json
import multiprocessing
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nbcompile import tasks
from nbcompile.nasbench.api import NASBench
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


@dataclass(frozen=True)
class Trial:
    """One trial of an experiment: an algorithm, its number and its seed."""

    algorithm: str
    number: int
    seed: int

    @property
    def name(self) -> str:
        return f"{self.algorithm}-{self.number:05d}"


def trials_of(experiment: Experiment) -> list[Trial]:
    """Every trial of ``experiment``, algorithm by algorithm."""
    return [Trial(a, number, experiment.run_seed(a, number)) for a, number in experiment.runs()]


@dataclass(frozen=True)
class TrialSettings:
    """What every trial shares: the dataset to open (a cache folder, memory-mapped and shared
    through the page cache, where there is one), the budget and the options."""

    dataset: str
    cache_dir: str | None
    budget: Budget
    options: SearchOptions


@dataclass
class TrialRun:
    """A finished trial, and the compute seconds it took."""

    result: SearchResult
    seconds: float


def run_trial_on(dataset: NASBench, trial: Trial, settings: TrialSettings, attempt: int) -> TrialRun:
    """One attempt at ``trial`` on an open ``dataset`` (the attempt changes nothing: a trial is
    seeded by its own seed alone)."""
    started = time.perf_counter()
    result = search(trial.algorithm, dataset, settings.budget, trial.seed, settings.options, trial.number)
    return TrialRun(result, time.perf_counter() - started)


#: The dataset open in this worker process, by (source, cache folder): inherited from a forked
#: parent (:func:`inherit_dataset`) or opened by the worker's first trial. Empty in the parent.
_worker_dataset: dict[tuple[str, str | None], NASBench] = {}


def inherit_dataset(source: str, cache_dir: str | None, dataset: NASBench) -> None:
    """Initializer of a forked pool worker: its trials use the parent's open dataset, shared
    copy-on-write, instead of opening it again (a third of a second per worker on the full file)."""
    _worker_dataset[(source, cache_dir)] = dataset


def dataset_in_this_process(source: str, cache_dir: str | None) -> NASBench:
    """The dataset of a worker process (local pool or Ray): the inherited one, or opened by its
    first trial; one at a time."""
    key = (source, cache_dir)
    if key not in _worker_dataset:
        _worker_dataset.clear()
        _worker_dataset[key] = NASBench(source, cache_dir=cache_dir, workers=1, progress=False)
    return _worker_dataset[key]


def run_trial_in_worker(trial: Trial, settings: TrialSettings, attempt: int) -> TrialRun:
    """One attempt at ``trial`` in a worker process, on :func:`dataset_in_this_process`."""
    return run_trial_on(dataset_in_this_process(settings.dataset, settings.cache_dir), trial, settings, attempt)


def trial_settings(experiment: Experiment, dataset: NASBench) -> TrialSettings:
    source = str(dataset.cache_folder) if dataset.cache_folder else experiment.dataset
    return TrialSettings(source, experiment.cache_dir, experiment.budget, experiment.options)


def local_executor(experiment: Experiment, dataset: NASBench, workers: int) -> tasks.Executor:
    """Trials in this process (``workers`` 1), or in a pool of ``workers`` processes: forked ones
    inherit the open ``dataset``, others open it from its cache."""
    settings = trial_settings(experiment, dataset)
    if workers <= 1:
        return tasks.InProcess(functools.partial(run_trial_on, dataset), settings)
    if multiprocessing.get_start_method() != "fork":  # the dataset would be pickled: workers open it
        return tasks.ProcessPool(run_trial_in_worker, settings, workers)
    return tasks.ProcessPool(
        run_trial_in_worker,
        settings,
        workers,
        initializer=inherit_dataset,
        initargs=lambda: (settings.dataset, settings.cache_dir, dataset),
        start_method="fork",
    )


def ray_executor(
    experiment: Experiment, dataset: NASBench, address: str | None = None, num_cpus: int | None = None
) -> tasks.Executor:
    """Every trial a Ray task of one CPU; the dataset path must be readable on every worker."""
    return tasks.RayTasks(run_trial_in_worker, trial_settings(experiment, dataset), address, num_cpus)


def run_experiment(
    experiment: Experiment,
    workers: int = 1,
    on_result: Callable[[SearchResult], None] | None = None,
    dataset: NASBench | None = None,
) -> list[SearchResult]:
    """All runs of ``experiment``, in (algorithm, repeat) order; the first error stops them.
    ``dataset``: the dataset, if the caller has it open already (otherwise it is opened,
    converting it once if needed). Forked workers inherit it; others open it from its cache folder."""
    if dataset is None:  # converted once here, not in every worker
        dataset = NASBench(experiment.dataset, cache_dir=experiment.cache_dir, progress=False)
    trials = trials_of(experiment)
    results: dict[str, SearchResult] = {}

    def record(trial: Trial, run: TrialRun | None, errors: list[str]) -> None:
        if run is None:
            raise RuntimeError(f"{trial.name}: {errors[-1]}")
        results[trial.name] = run.result
        if on_result:
            on_result(run.result)

    executor = local_executor(experiment, dataset, min(workers, len(trials)))
    tasks.run_tasks(trials, executor, record, key=lambda trial: trial.name)
    return [results[trial.name] for trial in trials]


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
