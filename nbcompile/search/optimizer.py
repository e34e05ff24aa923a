"""The ask/tell interface every search algorithm implements, and the loop of one trial.

An :class:`Optimizer` proposes one configuration at a time (:meth:`~Optimizer.ask`) and learns the
outcome of the query (:meth:`~Optimizer.tell`). A :class:`Proposal` carries a cell, or ``None``
for a configuration outside the space (the benchmark records it as invalid and charges nothing),
the epoch budget to query it at, and whatever the optimizer needs to recognise it when told
(a library's trial object, an encoded configuration). :func:`run_trial` drives one optimizer
against one :class:`~nbcompile.search.protocol.Benchmark` until the budget is spent.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any

from nbcompile.search.cell_encodings import ENCODINGS
from nbcompile.search.protocol import Benchmark, BudgetExhausted, CellsExhausted, Evaluation
from nbcompile.space.ops import TRAIN_EPOCHS
from nbcompile.space.spec import ModelSpec

#: Regularized evolution's settings: the colab's (the default) and the NAS-Bench-101 paper's.
EVOLUTION_SETTINGS: dict[str, dict[str, Any]] = {
    "colab": {"population_size": 50, "tournament_size": 10, "mutation": "rate", "mutation_rate": 1.0},
    "paper": {"population_size": 100, "tournament_size": 10, "mutation": "single"},
}
#: How evolution mutates: each entry and op with a probability (the colab), or exactly one (the paper).
MUTATIONS = ("rate", "single")


@dataclass(frozen=True)
class SearchOptions:
    """Settings of a search; each algorithm reads the ones it has."""

    #: Never query a cell (module hash) twice in one trial; duplicates are drawn again for free.
    deduplicate: bool = False
    #: Score each query on the mean of the 3 repeats instead of one sampled repeat (naszilla).
    mean_of_repeats: bool = False
    #: The epoch budget of every query of a single-fidelity algorithm.
    epochs: int = TRAIN_EPOCHS
    population_size: int = 50
    tournament_size: int = 10
    mutation_rate: float = 1.0
    mutation: str = "rate"
    #: The ConfigSpace encoding of a cell for the model-based methods: A, B or C.
    encoding: str = "A"
    #: SMAC and BOHB retrain their random forest after this many new configurations (SMAC3's
    #: default; 1 is the paper's SMAC, and costs seconds per query).
    smac_retrain_after: int = 8
    #: Random configurations SMAC and BOHB score by expected improvement at each retraining, the
    #: best of which start its local search (SMAC3's default is 10,000).
    smac_challengers: int = 1000

    def __post_init__(self) -> None:
        if self.mutation not in MUTATIONS:
            raise ValueError(f"mutation must be one of {', '.join(MUTATIONS)}, got {self.mutation!r}")
        if self.encoding not in ENCODINGS:
            raise ValueError(f"encoding must be one of {', '.join(ENCODINGS)}, got {self.encoding!r}")
        if self.smac_retrain_after < 1:
            raise ValueError(f"smac_retrain_after must be at least 1, got {self.smac_retrain_after!r}")
        if self.smac_challengers < 1:
            raise ValueError(f"smac_challengers must be at least 1, got {self.smac_challengers!r}")


@dataclass(frozen=True)
class SearchContext:
    """What an algorithm gets to build its optimizer for one trial."""

    seed: int
    options: SearchOptions
    #: Free check that a cell is worth a query at an epoch budget (in the dataset, not yet queried
    #: when de-duplicating); for algorithms that draw cells themselves.
    is_new: Callable[[ModelSpec, int], bool]
    #: The epoch budgets of the dataset file, ascending.
    budgets: tuple[int, ...]
    #: Valid queries made so far in the trial (for messages).
    queries: Callable[[], int] = lambda: 0


@dataclass(frozen=True)
class Proposal:
    """What an optimizer asks the benchmark to evaluate."""

    #: The cell, or None for a configuration outside the space.
    spec: ModelSpec | None
    epochs: int = TRAIN_EPOCHS
    #: The optimizer's own handle on the proposal (a library's trial, an encoded configuration).
    ticket: Any = None


class Optimizer(ABC):
    """One trial's search algorithm, driven by ask/tell; one proposal is outstanding at a time."""

    @abstractmethod
    def ask(self) -> Proposal:
        """The next configuration to evaluate."""

    @abstractmethod
    def tell(self, proposal: Proposal, evaluation: Evaluation) -> None:
        """The outcome of evaluating ``proposal``."""


#: A search written as a generator: it yields proposals and receives each one's evaluation.
Steps = Generator[Proposal, Evaluation, None]


class GeneratorOptimizer(Optimizer):
    """Ask/tell around a generator, for algorithms that read best as a loop (evolution, local search)."""

    def __init__(self, steps: Steps) -> None:
        self._steps = steps
        self._pending: Proposal | None = None

    def ask(self) -> Proposal:
        if self._pending is None:
            self._pending = next(self._steps)
        return self._pending

    def tell(self, proposal: Proposal, evaluation: Evaluation) -> None:
        if proposal is not self._pending:
            raise ValueError("tell() must answer the proposal of the last ask()")
        self._pending = self._steps.send(evaluation)


def run_trial(optimizer: Optimizer, benchmark: Benchmark) -> str | None:
    """Ask, evaluate and tell until the benchmark's budget is spent; returns why the trial ended
    early (no more cells worth a query), or None when it spent its budget."""
    try:
        while True:
            proposal = optimizer.ask()
            optimizer.tell(proposal, benchmark.evaluate(proposal.spec, proposal.epochs))
    except BudgetExhausted:
        return None
    except CellsExhausted as ended:
        return str(ended)


#: Draws :func:`fresh` makes before it gives up on finding a cell worth a query.
FRESH_ATTEMPTS = 10_000


def fresh(draw: Callable[[], ModelSpec], is_new: Callable[[ModelSpec], bool], queries: int = 0) -> ModelSpec:
    """A spec from ``draw`` that ``is_new`` accepts; drawing is free. (A dataset holding only part
    of the space, like a small fixture, simply draws again for the cells it lacks.)"""
    for _ in range(FRESH_ATTEMPTS):
        spec = draw()
        if is_new(spec):
            return spec
    raise CellsExhausted(
        f"no cell worth a query in {FRESH_ATTEMPTS:,} draws after {queries:,} queries "
        "(every cell drawn was outside the dataset or, when de-duplicating, already queried)"
    )
