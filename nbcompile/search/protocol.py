"""The benchmark protocol of NAS-Bench-101's optimizer comparison: what one query returns and costs.

One :class:`Benchmark` serves one trial of one optimizer. A query of a cell at an epoch budget
draws one of the cell's stored runs at random (or, in the naszilla variant, takes the mean of all
of them), returns that run's validation accuracy to the optimizer and charges that run's
``training_time`` to the trial's clock. Every query becomes one :class:`Evaluation`, the row of
``evaluations.parquet``: its test accuracy is the cell's *mean* test accuracy at 108 epochs, which
the optimizer never sees. A configuration outside the space (more than 9 edges, an invalid cell,
or a cell the file lacks) is recorded as invalid, charged nothing, and never becomes the
incumbent, as the reference implementation of the paper's study does.

The incumbent is the valid evaluation with the best validation accuracy so far; the test regret
is the best mean test accuracy of any cell in the dataset (computed from the file, 0.943175752957662
for the official one) minus the incumbent's mean test accuracy.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from nbcompile.errors import DatasetError
from nbcompile.nasbench.api import NASBench
from nbcompile.nasbench.tables import METRIC_FIELDS
from nbcompile.space.ops import TRAIN_EPOCHS
from nbcompile.space.spec import ModelSpec

#: How a trial pays: simulated training seconds, or a number of queries.
BUDGET_KINDS = ("time", "queries")
#: The paper's budget of one trial: 10^7 simulated seconds.
PAPER_BUDGET_SECONDS = 1e7
#: Consecutive invalid configurations after which a trial ends (an optimizer stuck outside the space).
MAX_CONSECUTIVE_INVALID = 10_000

_TRAINING_TIME = METRIC_FIELDS.index("final_training_time")
_VALIDATION = METRIC_FIELDS.index("final_validation_accuracy")
_TEST = METRIC_FIELDS.index("final_test_accuracy")


@dataclass(frozen=True)
class Budget:
    """What one trial may spend: ``amount`` simulated seconds (``kind="time"``) or queries."""

    amount: float = 5e6
    kind: str = "time"

    def __post_init__(self) -> None:
        if self.kind not in BUDGET_KINDS:
            raise ValueError(f"budget kind must be one of {', '.join(BUDGET_KINDS)}, got {self.kind!r}")
        if not (self.amount > 0 and math.isfinite(self.amount)):
            raise ValueError(f"budget must be positive and finite, got {self.amount!r}")

    def is_spent(self, seconds: float | np.ndarray, queries: int | np.ndarray) -> bool | np.ndarray:
        """Whether a trial that has charged ``seconds`` for ``queries`` valid queries is done: a
        time budget ends with the query that crosses it (that query counts, as in the notebook and
        the paper's scripts); a budget of N queries ends with the N-th. Elementwise for arrays
        (a trial's running totals, as :func:`~nbcompile.search.analysis.within_budget` passes)."""
        return seconds > self.amount if self.kind == "time" else queries >= self.amount


@dataclass(frozen=True)
class Evaluation:
    """One query of one trial: a row of ``evaluations.parquet``."""

    algorithm: str
    trial: int
    #: Position of the query in its trial, from 0.
    index: int
    #: The queried cell's module hash; empty for an invalid configuration.
    module_hash: str
    epochs: int
    #: The stored run drawn (0-based); -1 for the mean of the runs, or an invalid configuration.
    repeat: int
    #: What the optimizer sees (0.0 for an invalid configuration).
    validation_accuracy: float
    #: The cell's mean test accuracy over its runs at 108 epochs (NaN for an invalid configuration).
    test_accuracy: float
    #: Seconds charged for this query (0.0 for an invalid configuration).
    training_time: float
    #: Seconds charged by the trial up to and including this query.
    cumulative_time: float
    valid: bool


class BudgetExhausted(Exception):
    """Raised by :meth:`Benchmark.evaluate` once the trial's budget is spent; its record is kept."""


class CellsExhausted(Exception):
    """Raised when a trial can find no more cells worth a query; its records are complete."""


def epoch_column(dataset: NASBench, epochs: int) -> int:
    """The column of ``epochs`` in the dataset's tables (DatasetError if the file lacks that budget)."""
    budgets = dataset.tables.epochs.tolist()
    if epochs not in budgets:
        raise DatasetError(
            f"{dataset.dataset_file} has no runs at {epochs} epochs (its budgets: {', '.join(map(str, budgets))})"
        )
    return budgets.index(epochs)


def mean_test_accuracies(dataset: NASBench) -> np.ndarray:
    """(N,) each cell's mean test accuracy over its runs at 108 epochs (NaN where it has none)."""
    column = epoch_column(dataset, TRAIN_EPOCHS)
    values = dataset.tables.metrics[:, column, :, _TEST]
    counts = np.isfinite(values).sum(axis=1)
    sums = np.where(np.isfinite(values), values, 0.0).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def best_mean_test_accuracy(dataset: NASBench) -> float:
    """The regret's reference: the best mean test accuracy at 108 epochs of any cell in the file."""
    means = mean_test_accuracies(dataset)
    if not np.isfinite(means).any():
        raise DatasetError(f"{dataset.dataset_file} has no test accuracy at {TRAIN_EPOCHS} epochs")
    return float(np.nanmax(means))


@dataclass
class Benchmark:
    """The tabular benchmark of one trial: answers queries, charges the clock, keeps the rows."""

    dataset: NASBench
    budget: Budget
    algorithm: str = ""
    trial: int = 0
    #: Seed of the repeat draws (upstream's ``random.Random``, as ``NASBench.query`` draws them).
    seed: int = 0
    #: The naszilla variant: every query scores the mean of the cell's runs.
    mean_of_repeats: bool = False
    #: Never query a cell twice (only for the optimizers that draw specs themselves).
    deduplicate: bool = False
    evaluations: list[Evaluation] = field(default_factory=list)
    spent: float = 0.0

    def __post_init__(self) -> None:
        self._draw = random.Random(self.seed)
        self._seen: set[str] = set()
        self._invalid_streak = 0
        self._valid_count = 0
        self._test_means: dict[int, float] = {}
        self._columns = {int(e): i for i, e in enumerate(self.dataset.tables.epochs.tolist())}

    # --- what an optimizer may ask for free ------------------------------------------------------
    def is_new(self, spec: ModelSpec, epochs: int = TRAIN_EPOCHS) -> bool:
        """Worth a query: in the dataset with runs at ``epochs`` and, if de-duplicating, not yet queried."""
        row = self.dataset.find_row(spec.module_hash)
        if row is None or (self.deduplicate and spec.module_hash in self._seen):
            return False
        column = self._columns.get(epochs)
        return column is not None and self.dataset.tables.repeats[row, column] > 0

    @property
    def budgets(self) -> tuple[int, ...]:
        """The epoch budgets of the file, ascending."""
        return tuple(self._columns)

    # --- queries -------------------------------------------------------------------------------
    def evaluate(self, spec: ModelSpec | None, epochs: int = TRAIN_EPOCHS) -> Evaluation:
        """Query ``spec`` at ``epochs``; ``None`` is a configuration outside the space.

        Records the evaluation, then raises :class:`BudgetExhausted` if it spent the budget
        (:meth:`Budget.is_spent`)."""
        if epochs not in self._columns:
            raise DatasetError(
                f"{self.dataset.dataset_file} has no runs at {epochs} epochs "
                f"(its budgets: {', '.join(map(str, self._columns))})"
            )
        row = None
        if spec is not None and spec.is_valid():
            row = self.dataset.find_row(spec.module_hash)
        column = self._columns[epochs]
        count = 0 if row is None else int(self.dataset.tables.repeats[row, column])
        if count == 0:
            return self._record_invalid(epochs)
        runs = self.dataset.tables.metrics[row, column, :count]
        if self.mean_of_repeats:
            repeat = -1
            validation, seconds = (float(v) for v in runs[:, [_VALIDATION, _TRAINING_TIME]].mean(axis=0))
        else:
            repeat = self._draw.randrange(count)
            validation, seconds = float(runs[repeat, _VALIDATION]), float(runs[repeat, _TRAINING_TIME])
        if self.budget.kind == "time" and not (math.isfinite(seconds) and seconds > 0):
            raise DatasetError(
                f"cell {spec.module_hash} has training time {seconds} at {epochs} epochs: "
                "a time budget cannot be charged for it"
            )
        self._invalid_streak = 0
        self._valid_count += 1
        self._seen.add(spec.module_hash)
        self.spent += seconds
        evaluation = Evaluation(
            self.algorithm,
            self.trial,
            len(self.evaluations),
            spec.module_hash,
            epochs,
            repeat,
            validation,
            self._test_mean(row),
            seconds,
            self.spent,
            True,
        )
        self.evaluations.append(evaluation)
        if self.budget.is_spent(self.spent, self.queries):
            raise BudgetExhausted
        return evaluation

    @property
    def queries(self) -> int:
        """Valid queries so far (the unit of a budget in queries)."""
        return self._valid_count

    def _record_invalid(self, epochs: int) -> Evaluation:
        evaluation = Evaluation(
            self.algorithm, self.trial, len(self.evaluations), "", epochs, -1, 0.0, math.nan, 0.0, self.spent, False
        )
        self.evaluations.append(evaluation)
        self._invalid_streak += 1
        if self._invalid_streak >= MAX_CONSECUTIVE_INVALID:
            raise CellsExhausted(
                f"{MAX_CONSECUTIVE_INVALID:,} invalid configurations in a row after {self.queries:,} valid queries "
                f"(the dataset holds {len(self.dataset):,} cells)"
            )
        return evaluation

    def _test_mean(self, row: int) -> float:
        if row not in self._test_means:
            column = self._columns.get(TRAIN_EPOCHS)
            values = self.dataset.tables.metrics[row, column, :, _TEST] if column is not None else np.array([])
            values = values[np.isfinite(values)]
            self._test_means[row] = float(values.mean()) if values.size else math.nan
        return self._test_means[row]


def incumbent_rows(valid: np.ndarray, validation: np.ndarray) -> np.ndarray:
    """After each evaluation, the position of the incumbent: the valid evaluation with the best
    validation accuracy so far, the earlier of ties (-1 before the first valid one; a NaN
    accuracy never becomes the incumbent)."""
    values = np.where(np.asarray(valid, dtype=bool), np.asarray(validation, dtype=float), -np.inf)
    if not values.size:
        return np.empty(0, dtype=np.int64)
    best_before = np.concatenate(([-np.inf], np.fmax.accumulate(values)[:-1]))
    improved = values > best_before
    return np.maximum.accumulate(np.where(improved, np.arange(values.size), -1))


def incumbent_curve(evaluations: Sequence[Evaluation]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """After each evaluation: the cumulative time, the incumbent's validation accuracy and its mean
    test accuracy (NaN before the first valid evaluation). Ties keep the earlier incumbent."""
    times = np.array([e.cumulative_time for e in evaluations], dtype=float)
    validation = np.array([e.validation_accuracy for e in evaluations], dtype=float)
    test = np.array([e.test_accuracy for e in evaluations], dtype=float)
    rows = incumbent_rows(np.array([e.valid for e in evaluations], dtype=bool), validation)
    held = rows >= 0
    return times, np.where(held, validation[rows], np.nan), np.where(held, test[rows], np.nan)
