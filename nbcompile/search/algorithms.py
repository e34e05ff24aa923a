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

from nbcompile.errors import DatasetError
from nbcompile.nasbench.api import NASBench
from nbcompile.search import model_based, native, reinforce
from nbcompile.search.optimizer import Optimizer, SearchContext, SearchOptions, run_trial
from nbcompile.search.protocol import Benchmark, Budget, Evaluation, incumbent_curve
from nbcompile.space.ops import TRAIN_EPOCHS


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
        Algorithm("tpe", model_based.tpe, "TPE (Optuna, hyperopt's defaults)", ("optuna",), "search"),
        Algorithm("smac", model_based.smac, "SMAC (SMAC3 random-forest BO)", ("smac", "ConfigSpace"), "search"),
        Algorithm(
            "hyperband",
            model_based.hyperband,
            "Hyperband (SMAC3, eta 3, 4 to 108 epochs)",
            ("smac", "ConfigSpace"),
            "search",
            multi_fidelity=True,
        ),
        Algorithm(
            "bohb",
            model_based.bohb,
            "BOHB-like multi-fidelity BO (SMAC3 random forest + Hyperband)",
            ("smac", "ConfigSpace"),
            "search",
            multi_fidelity=True,
        ),
    )
}


def check_budgets(algorithm: str, dataset: NASBench, epochs: int = TRAIN_EPOCHS) -> None:
    """DatasetError naming the missing epoch budgets if ``algorithm`` queries budgets ``dataset`` lacks
    (a multi-fidelity algorithm queries 4, 12, 36 and 108 epochs; any other ``epochs``)."""
    needed = model_based.MULTI_FIDELITY_EPOCHS if ALGORITHMS[algorithm].multi_fidelity else (epochs,)
    present = set(dataset.tables.epochs.tolist())
    missing = [epochs for epochs in needed if epochs not in present]
    if missing:
        raise DatasetError(
            f"{algorithm} queries {', '.join(map(str, needed))} epochs; {dataset.dataset_file} has no runs at "
            f"{', '.join(map(str, missing))} epochs (use a file with every budget, such as nasbench_full.tfrecord)"
        )


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
    check_budgets(algorithm, dataset, options.epochs)
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
