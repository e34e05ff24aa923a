"""The search algorithms by name, and one trial of one of them on a dataset.

Every algorithm is a factory of an ask/tell :class:`~nbcompile.search.optimizer.Optimizer` for one
trial (:class:`Algorithm`). :func:`search` runs one trial under the benchmark protocol
(:mod:`nbcompile.search.protocol`) and returns a :class:`SearchResult`: every evaluation, and the
trajectory of the valid ones (budget spent, best validation accuracy so far, and the mean test
accuracy at 108 epochs of that same cell). Selection uses validation accuracy only; test
accuracy is only ever reported. The caller's dataset is left as it was: a trial draws repeats from
its own generator and never touches the dataset's budget counters.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from nbcompile.nasbench.api import NASBench
from nbcompile.search import native, reinforce
from nbcompile.search.optimizer import Optimizer, SearchContext, SearchOptions, run_trial
from nbcompile.search.protocol import Benchmark, Budget, Evaluation, incumbent_curve


@dataclass(frozen=True)
class Algorithm:
    """A search algorithm: how to build its optimizer for one trial, and what it needs."""

    name: str
    build: Callable[[SearchContext], Optimizer]
    description: str
    #: Modules it imports (checked before any work), and the extra that installs them.
    modules: tuple[str, ...] = ()
    extra: str | None = None
    #: Queries budgets below 108 epochs: needs a file with all four budgets.
    multi_fidelity: bool = False


ALGORITHMS: dict[str, Algorithm] = {
    algorithm.name: algorithm
    for algorithm in (
        Algorithm("random", native.random_search, "random search"),
        Algorithm("evolution", native.regularized_evolution, "regularized evolution"),
        Algorithm("local", native.local_search, "local search (hill climbing with restarts)"),
        Algorithm("reinforce", reinforce.reinforce, "REINFORCE over a categorical distribution per parameter"),
    )
}


@dataclass
class SearchResult:
    """One trial: its evaluations, and the trajectory of its valid ones."""

    algorithm: str
    seed: int
    trial: int = 0
    #: After valid query i: simulated training seconds spent, best validation so far, and the mean
    #: test accuracy at 108 epochs of that cell (each list starts with the state before any query).
    times: list[float] = field(default_factory=lambda: [0.0])
    best_valids: list[float] = field(default_factory=lambda: [0.0])
    best_tests: list[float] = field(default_factory=lambda: [0.0])
    best_hash: str | None = None
    queried_hashes: list[str] = field(default_factory=list)
    #: Training time each valid query charged (their sum is ``times[-1]``).
    training_times: list[float] = field(default_factory=list)
    #: Why the trial ended before its budget was spent (None: the budget was spent).
    note: str | None = None
    #: Every evaluation, invalid configurations included (the rows of ``evaluations.parquet``).
    evaluations: list[Evaluation] = field(default_factory=list, repr=False)

    @property
    def queries(self) -> int:
        return len(self.queried_hashes)

    @classmethod
    def from_evaluations(
        cls, algorithm: str, seed: int, trial: int, evaluations: list[Evaluation], note: str | None
    ) -> SearchResult:
        result = cls(algorithm, seed, trial, note=note, evaluations=evaluations)
        valid = [e for e in evaluations if e.valid]
        times, best_valids, best_tests = incumbent_curve(valid)
        result.times += times.tolist()
        result.best_valids += best_valids.tolist()
        result.best_tests += best_tests.tolist()
        result.queried_hashes = [e.module_hash for e in valid]
        result.training_times = [e.training_time for e in valid]
        best = max(valid, key=lambda e: e.validation_accuracy, default=None)  # max keeps the first of ties
        result.best_hash = best.module_hash if best else None
        return result

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("evaluations")
        return data


def search(
    algorithm: str,
    dataset: NASBench,
    budget: Budget = Budget(),
    seed: int = 0,
    options: SearchOptions = SearchOptions(),
    trial: int = 0,
) -> SearchResult:
    """One trial of ``algorithm`` on ``dataset``, seeded by ``seed`` alone."""
    benchmark = Benchmark(
        dataset,
        budget,
        algorithm,
        trial,
        seed,
        mean_of_repeats=options.mean_of_repeats,
        deduplicate=options.deduplicate,
    )
    context = SearchContext(
        seed,
        options,
        benchmark.is_new,
        benchmark.budgets,
        lambda: benchmark.queries,
    )
    note = run_trial(ALGORITHMS[algorithm].build(context), benchmark)
    return SearchResult.from_evaluations(algorithm, seed, trial, benchmark.evaluations, note)


def random_search(
    dataset: NASBench, budget: Budget = Budget(), seed: int = 0, options: SearchOptions = SearchOptions()
) -> SearchResult:
    """Query uniformly random valid cells until the budget is spent."""
    return search("random", dataset, budget, seed, options)


def regularized_evolution(
    dataset: NASBench, budget: Budget = Budget(), seed: int = 0, options: SearchOptions = SearchOptions()
) -> SearchResult:
    """Regularized (aging) evolution until the budget is spent."""
    return search("evolution", dataset, budget, seed, options)


def local_search(
    dataset: NASBench, budget: Budget = Budget(), seed: int = 0, options: SearchOptions = SearchOptions()
) -> SearchResult:
    """Local search with restarts until the budget is spent."""
    return search("local", dataset, budget, seed, options)
