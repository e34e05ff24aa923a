"""Dataset-backed search algorithms: random search, regularized evolution, local search.

Each takes a dataset (:class:`~nbcompile.nasbench.NASBench`), a :class:`Budget`, a seed and options, and
returns a :class:`SearchResult`: after every query, the budget spent, the best validation accuracy
so far and the test accuracy of that same cell. Selection uses validation accuracy only; test
accuracy is only ever reported. Random search and regularized evolution follow the NAS-Bench-101
notebook step by step (upstream's ``NASBench.ipynb``); local search is the NASLib/naszilla kind.

Cells the dataset lacks, and cells without runs at the search's epoch budget, are skipped: drawing
them is free. A run whose draws stop finding such cells (a de-duplicating run that used up the
dataset, or a file holding a small part of the space) ends with what it found and a ``note``.
The caller's dataset is left as it was: its budget counters and repeat sampling are restored.
"""

from __future__ import annotations

import functools
import math
import random
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from nbcompile.errors import DatasetError
from nbcompile.nasbench.api import NASBench
from nbcompile.search.specs import mutate_spec, neighbours, random_spec
from nbcompile.space.ops import TRAIN_EPOCHS
from nbcompile.space.spec import ModelSpec

#: How a run pays: the notebook's simulated training seconds, or a number of queries.
BUDGET_KINDS = ("time", "queries")


@dataclass(frozen=True)
class Budget:
    amount: float = 5e6
    kind: str = "time"

    def __post_init__(self) -> None:
        if self.kind not in BUDGET_KINDS:
            raise ValueError(f"budget kind must be one of {', '.join(BUDGET_KINDS)}, got {self.kind!r}")
        if not (self.amount > 0 and math.isfinite(self.amount)):
            raise ValueError(f"budget must be positive and finite, got {self.amount!r}")


@dataclass(frozen=True)
class SearchOptions:
    #: Never query a cell (module hash) twice in one run; duplicates are drawn again for free.
    deduplicate: bool = False
    #: Score each query on the mean of the 3 repeats instead of one sampled repeat.
    mean_of_repeats: bool = False
    epochs: int = TRAIN_EPOCHS
    population_size: int = 50
    tournament_size: int = 10
    mutation_rate: float = 1.0


@dataclass
class SearchResult:
    algorithm: str
    seed: int
    #: After query i: simulated training seconds spent, best validation so far, its test accuracy.
    times: list[float] = field(default_factory=lambda: [0.0])
    best_valids: list[float] = field(default_factory=lambda: [0.0])
    best_tests: list[float] = field(default_factory=lambda: [0.0])
    best_hash: str | None = None
    queried_hashes: list[str] = field(default_factory=list)
    #: Training time each query returned (their sum is ``times[-1]``).
    training_times: list[float] = field(default_factory=list)
    #: Why the run ended before its budget was spent (None: the budget was spent).
    note: str | None = None

    @property
    def queries(self) -> int:
        return len(self.queried_hashes)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class BudgetExhausted(Exception):
    """Raised inside a run when its budget is spent; the run's result is complete."""


class CellsExhausted(Exception):
    """Raised inside a run when no more cells worth a query can be drawn; the result is complete."""


#: Draws :meth:`_Oracle.fresh` makes before it gives up on finding a cell worth a query.
FRESH_ATTEMPTS = 10_000


class _Oracle:
    """Queries the dataset for one run: budget, de-duplication, trajectory."""

    def __init__(self, dataset: NASBench, budget: Budget, options: SearchOptions, result: SearchResult) -> None:
        self.dataset = dataset
        self.budget = budget
        self.options = options
        self.result = result
        self.seen: set[str] = set()
        self.spent = 0.0
        epochs = dataset.tables.epochs.tolist()
        column = epochs.index(options.epochs) if options.epochs in epochs else None
        #: Runs stored per cell at the search's budget (None: an invalid budget; query says so).
        self.runs = None if column is None else dataset.tables.repeats[:, column]

    def is_new(self, spec: ModelSpec) -> bool:
        """Worth a query: in the dataset with runs at the epoch budget and, if de-duplicating, unseen."""
        module_hash = spec.module_hash
        if module_hash not in self.dataset or (self.options.deduplicate and module_hash in self.seen):
            return False
        return self.runs is None or self.runs[self.dataset.row_of(module_hash)] > 0

    def validation(self, spec: ModelSpec) -> float:
        """Query ``spec`` (charging the budget) and return its validation accuracy."""
        reduce = "mean" if self.options.mean_of_repeats else None
        data = self.dataset.query(spec, self.options.epochs, reduce=reduce)
        seconds = data["training_time"]
        if self.budget.kind == "time" and not (math.isfinite(seconds) and seconds > 0):
            raise DatasetError(
                f"cell {spec.module_hash} has training time {seconds} at {self.options.epochs} epochs: "
                "a time budget cannot be charged for it"
            )
        result = self.result
        self.seen.add(spec.module_hash)
        result.queried_hashes.append(spec.module_hash)
        result.training_times.append(seconds)
        self.spent += seconds
        result.times.append(self.spent)
        if data["validation_accuracy"] > result.best_valids[-1]:
            result.best_valids.append(data["validation_accuracy"])
            result.best_tests.append(data["test_accuracy"])
            result.best_hash = spec.module_hash
        else:
            result.best_valids.append(result.best_valids[-1])
            result.best_tests.append(result.best_tests[-1])
        used = self.spent if self.budget.kind == "time" else result.queries
        if used > self.budget.amount:  # the notebook stops once the budget is exceeded
            raise BudgetExhausted
        return data["validation_accuracy"]

    def fresh(self, draw: Callable[[], ModelSpec]) -> ModelSpec:
        """A spec from ``draw`` that :meth:`is_new` accepts; drawing is free. (A dataset that holds only
        part of the space, like a small fixture, simply draws again for the cells it lacks.)"""
        attempts = FRESH_ATTEMPTS
        for _ in range(attempts):
            spec = draw()
            if self.is_new(spec):
                return spec
        raise CellsExhausted(
            f"no cell worth a query in {attempts:,} draws after {self.result.queries:,} queries "
            f"({'every cell drawn was already queried or ' if self.options.deduplicate else ''}"
            f"the dataset holds {len(self.dataset):,} cells)"
        )


@contextmanager
def _restored(dataset: NASBench) -> Iterator[None]:
    """Leave the caller's dataset as it was: budget counters and repeat sampling state."""
    counters = (dataset.training_time_spent, dataset.total_epochs_spent)
    state = dataset._rng.getstate()
    try:
        yield
    finally:
        dataset.training_time_spent, dataset.total_epochs_spent = counters
        dataset._rng.setstate(state)


def _run(
    algorithm: str,
    body: Callable[[_Oracle, np.random.Generator], None],
    dataset: NASBench,
    budget: Budget,
    seed: int,
    options: SearchOptions,
) -> SearchResult:
    rng = np.random.default_rng(seed)
    result = SearchResult(algorithm, seed)
    with _restored(dataset):
        dataset.reseed(seed)  # the repeats a query samples: a function of the run's seed only
        try:
            body(_Oracle(dataset, budget, options, result), rng)
        except BudgetExhausted:
            pass
        except CellsExhausted as ended:
            result.note = str(ended)
    return result


def random_search(
    dataset: NASBench, budget: Budget = Budget(), seed: int = 0, options: SearchOptions = SearchOptions()
) -> SearchResult:
    """Query uniformly random valid cells until the budget is spent."""

    def body(oracle: _Oracle, rng: np.random.Generator) -> None:
        while True:
            oracle.validation(oracle.fresh(lambda: random_spec(rng)))

    return _run("random", body, dataset, budget, seed, options)


def regularized_evolution(
    dataset: NASBench, budget: Budget = Budget(), seed: int = 0, options: SearchOptions = SearchOptions()
) -> SearchResult:
    """Aging evolution (Real et al. 2019), as in the notebook: a random population, then the best
    of a tournament (drawn without replacement) is mutated; the child joins, the oldest leaves."""
    sampler = random.Random(seed)  # tournament draws, apart from the spec generator

    def body(oracle: _Oracle, rng: np.random.Generator) -> None:
        population: list[tuple[float, ModelSpec]] = []
        for _ in range(options.population_size):
            spec = oracle.fresh(lambda: random_spec(rng))
            population.append((oracle.validation(spec), spec))
        while True:
            tournament = sampler.sample(population, min(options.tournament_size, len(population)))
            parent = max(tournament, key=lambda member: member[0])[1]
            child = oracle.fresh(functools.partial(mutate_spec, parent, rng, options.mutation_rate))
            population.append((oracle.validation(child), child))
            population.pop(0)

    return _run("evolution", body, dataset, budget, seed, options)


def local_search(
    dataset: NASBench, budget: Budget = Budget(), seed: int = 0, options: SearchOptions = SearchOptions()
) -> SearchResult:
    """Hill climbing: query every neighbour (one edge or one op changed) of the current cell in a
    random order and move to the best if it beats the current one; restart from a random cell at a
    local optimum."""

    def body(oracle: _Oracle, rng: np.random.Generator) -> None:
        while True:
            current = oracle.fresh(lambda: random_spec(rng))
            current_valid = oracle.validation(current)
            while True:
                candidates = [n for n in neighbours(current) if oracle.is_new(n)]
                rng.shuffle(candidates)
                scored = [(oracle.validation(n), i, n) for i, n in enumerate(candidates)]
                if not scored:
                    break
                best_valid, _, best = max(scored, key=lambda item: (item[0], -item[1]))
                if best_valid <= current_valid:
                    break
                current, current_valid = best, best_valid

    return _run("local", body, dataset, budget, seed, options)


ALGORITHMS: dict[str, Callable[..., SearchResult]] = {
    "random": random_search,
    "evolution": regularized_evolution,
    "local": local_search,
}
