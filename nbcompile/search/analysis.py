"""A study's results from its rows: test regret curves, their means, and the per-algorithm summary.

The test regret after a query is the regret's reference (the best mean test accuracy at 108 epochs
of any cell in the dataset, :func:`~nbcompile.search.protocol.best_mean_test_accuracy`) minus the
mean test accuracy of the incumbent, the valid evaluation with the best validation accuracy so far
(:func:`~nbcompile.search.protocol.incumbent_rows`); it is undefined (NaN) before the first valid
query. A trial's regret is a step function of the simulated time: after each query it holds until
the next one. The mean over an algorithm's trials is computed exactly, at every time any trial's
incumbent changes; it is defined from the time every trial has an incumbent on.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from nbcompile.search.protocol import Budget, incumbent_rows

#: The algorithm whose final mean regret the others are timed against (the paper's speed-ups).
BASELINE = "random"


@dataclass(frozen=True)
class TrialRegret:
    """One trial's test regret after each of its evaluations."""

    algorithm: str
    trial: int
    #: Simulated seconds spent after each evaluation (its ``cumulative_time``).
    times: np.ndarray
    #: Regret after each evaluation (NaN before the first valid one).
    regrets: np.ndarray
    #: Regret after each valid query, in order (x = 1, 2, ... queries).
    regrets_by_query: np.ndarray

    @property
    def final(self) -> float:
        """The regret of the trial's last incumbent (NaN if it made no valid query)."""
        return float(self.regrets[-1]) if self.regrets.size else math.nan

    @property
    def queries(self) -> int:
        return int(self.regrets_by_query.size)

    def changes(self) -> tuple[np.ndarray, np.ndarray]:
        """The times at which the regret changes (the first defined value included), and the new values."""
        previous = np.concatenate(([np.nan], self.regrets[:-1]))
        changed = ~((self.regrets == previous) | (np.isnan(self.regrets) & np.isnan(previous)))
        return self.times[changed], self.regrets[changed]


def _trial_slices(columns: Mapping[str, np.ndarray]) -> list[tuple[int, int]]:
    """(start, end) of each trial's rows in ``columns`` (rows of one trial together)."""
    algorithms, trials = columns["algorithm"], columns["trial"].astype(np.int64)
    count = len(trials)
    if not count:
        return []
    boundaries = np.flatnonzero((trials[1:] != trials[:-1]) | (algorithms[1:] != algorithms[:-1])) + 1
    starts = [0, *boundaries.tolist()]
    return list(zip(starts, [*starts[1:], count]))


def within_budget(columns: Mapping[str, np.ndarray], budget: Budget) -> dict[str, np.ndarray]:
    """The rows each trial in ``columns`` would have made with the smaller ``budget``: its rows up
    to the valid query that spends it (:meth:`~nbcompile.search.protocol.Budget.is_spent`), all of
    them if none does. No optimizer sees the budget, so these are the rows of the same trial run
    with ``budget``: one study at a large budget answers for every smaller one."""
    keep = np.zeros(len(columns["trial"]), dtype=bool)
    for start, end in _trial_slices(columns):
        valid = columns["valid"][start:end].astype(bool)
        spent = valid & budget.is_spent(columns["cumulative_time"][start:end].astype(float), np.cumsum(valid))
        last = int(np.argmax(spent)) if spent.any() else end - start - 1
        keep[start : start + last + 1] = True
    return {name: values[keep] for name, values in columns.items()}


def trial_regrets(columns: Mapping[str, np.ndarray], reference: float) -> list[TrialRegret]:
    """The regret curve of every trial in ``columns`` (an evaluations table as numpy arrays, rows
    of one trial together and in query order), in the order the trials come."""
    algorithms, trials = columns["algorithm"], columns["trial"].astype(np.int64)
    curves = []
    for start, end in _trial_slices(columns):
        valid = columns["valid"][start:end].astype(bool)
        rows = incumbent_rows(valid, columns["validation_accuracy"][start:end])
        tests = columns["test_accuracy"][start:end].astype(float)
        regrets = np.where(rows >= 0, reference - tests[np.maximum(rows, 0)], np.nan)
        curves.append(
            TrialRegret(
                str(algorithms[start]),
                int(trials[start]),
                columns["cumulative_time"][start:end].astype(float),
                regrets,
                regrets[valid],
            )
        )
    return curves


@dataclass(frozen=True)
class MeanCurve:
    """The mean regret of several trials at each ``x`` (time or queries), with its standard error
    and quartiles; NaN where some trial has no incumbent yet."""

    x: np.ndarray
    mean: np.ndarray
    standard_error: np.ndarray
    q25: np.ndarray
    q75: np.ndarray
    trials: int

    def first_reaching(self, target: float) -> float | None:
        """The first ``x`` at which the mean regret is at most ``target`` (None if never)."""
        reached = np.flatnonzero(self.mean <= target + 1e-12)
        return float(self.x[reached[0]]) if reached.size else None


def _mean_curve(x: np.ndarray, values: np.ndarray) -> MeanCurve:
    """``values``: (trials, len(x))."""
    trials = values.shape[0]
    defined = ~np.isnan(values).any(axis=0)
    mean = np.full(x.size, np.nan)
    error = np.full(x.size, np.nan)
    q25, q75 = np.full(x.size, np.nan), np.full(x.size, np.nan)
    if defined.any():
        held = values[:, defined]
        mean[defined] = held.mean(axis=0)
        error[defined] = held.std(axis=0, ddof=1) / math.sqrt(trials) if trials > 1 else 0.0
        q25[defined], q75[defined] = np.percentile(held, [25, 75], axis=0)
    return MeanCurve(x, mean, error, q25, q75, trials)


def regret_at(curve: TrialRegret, times: np.ndarray) -> np.ndarray:
    """The trial's regret at each of ``times``: that after its last evaluation at or before it."""
    change_times, change_values = curve.changes()
    index = np.searchsorted(change_times, times, side="right") - 1
    return np.where(index >= 0, change_values[np.maximum(index, 0)], np.nan)


def mean_over_time(curves: Sequence[TrialRegret]) -> MeanCurve:
    """The mean regret of ``curves`` at every time one of them changes, and at the end."""
    changes = [curve.changes()[0] for curve in curves]
    ends = [curve.times[-1] for curve in curves if curve.times.size]
    times = np.unique(np.concatenate([*changes, np.array(ends, dtype=float)]))
    return _mean_curve(times, np.array([regret_at(curve, times) for curve in curves]).reshape(len(curves), -1))


def mean_over_queries(curves: Sequence[TrialRegret]) -> MeanCurve:
    """The mean regret after 1, 2, ... valid queries, up to the fewest any trial made."""
    fewest = min((curve.queries for curve in curves), default=0)
    values = np.array([curve.regrets_by_query[:fewest] for curve in curves]).reshape(len(curves), fewest)
    return _mean_curve(np.arange(1, fewest + 1, dtype=float), values)


def by_algorithm(curves: Sequence[TrialRegret]) -> dict[str, list[TrialRegret]]:
    grouped: dict[str, list[TrialRegret]] = {}
    for curve in curves:
        grouped.setdefault(curve.algorithm, []).append(curve)
    return grouped


def summarize_study(
    curves: Sequence[TrialRegret],
    algorithms: Sequence[str],
    failed: Mapping[str, int],
    seconds: Mapping[str, list[float]] | None = None,
) -> list[dict[str, Any]]:
    """Per algorithm of ``algorithms``: finished and failed trials, mean valid and invalid queries,
    the final regret's mean, median and quartiles, and when its mean regret curve first reaches
    random search's final mean regret, with the speed-up over random search's own time to reach
    it (None without random search, or if never reached). ``seconds``: each finished trial's
    compute seconds, per algorithm (reported as a mean)."""
    grouped = by_algorithm(curves)
    baseline_target = baseline_time = None
    if grouped.get(BASELINE):
        baseline = mean_over_time(grouped[BASELINE])
        baseline_target = float(baseline.mean[-1])
        baseline_time = baseline.first_reaching(baseline_target)
    rows = []
    for algorithm in algorithms:
        runs = grouped.get(algorithm, [])
        finals = np.array([curve.final for curve in runs], dtype=float)
        row: dict[str, Any] = {
            "algorithm": algorithm,
            "trials": len(runs),
            "failed": int(failed.get(algorithm, 0)),
            "mean_queries": float(np.mean([c.queries for c in runs])) if runs else None,
            "mean_invalid": float(np.mean([c.times.size - c.queries for c in runs])) if runs else None,
        }
        quartiles = np.percentile(finals, [25, 50, 75]) if runs else [None] * 3
        row.update(
            {
                "final_regret_mean": float(finals.mean()) if runs else None,
                "final_regret_median": _number(quartiles[1]),
                "final_regret_q25": _number(quartiles[0]),
                "final_regret_q75": _number(quartiles[2]),
                "reaches_random_final_at": None,
                "speedup_vs_random": None,
                "trial_seconds_mean": float(np.mean(times)) if (times := (seconds or {}).get(algorithm)) else None,
            }
        )
        if runs and baseline_target is not None:
            reached = mean_over_time(runs).first_reaching(baseline_target)
            row["reaches_random_final_at"] = reached
            if reached and baseline_time:
                row["speedup_vs_random"] = baseline_time / reached
        rows.append(row)
    return rows


def _number(value: Any) -> float | None:
    return None if value is None else float(value)


def _cell(value: Any, spec: str) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, spec)


#: The summary's columns: header, key, format.
_COLUMNS = (
    ("algorithm", "algorithm", ""),
    ("trials", "trials", "d"),
    ("failed", "failed", "d"),
    ("queries", "mean_queries", ".1f"),
    ("invalid", "mean_invalid", ".1f"),
    ("regret mean", "final_regret_mean", ".2e"),
    ("median", "final_regret_median", ".2e"),
    ("q25", "final_regret_q25", ".2e"),
    ("q75", "final_regret_q75", ".2e"),
    ("reaches RS final (s)", "reaches_random_final_at", ".3g"),
    ("speed-up", "speedup_vs_random", ".2f"),
    ("s/trial", "trial_seconds_mean", ".3f"),
)
SUMMARY_NOTES = (
    "trials: finished trials (failed ones apart); queries, invalid: mean valid queries and invalid "
    "configurations per trial",
    "regret: final test regret (best mean test accuracy in the dataset - the incumbent's mean test accuracy), "
    "mean, median and quartiles over trials",
    "reaches RS final: simulated seconds at which the algorithm's mean regret curve first reaches random "
    "search's final mean regret; speed-up: random search's own time to reach it / that time",
    "s/trial: mean compute seconds per trial on this machine",
)


def format_summary(rows: Sequence[dict[str, Any]], notes: bool = True) -> str:
    """The summary as a plain-text table, with notes unless ``notes`` is False."""
    table = [[header for header, _, _ in _COLUMNS]]
    table += [[_cell(row[key], spec) for _, key, spec in _COLUMNS] for row in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(_COLUMNS))]
    lines = [
        "  ".join(text.ljust(w) if i == 0 else text.rjust(w) for i, (text, w) in enumerate(zip(line, widths)))
        for line in table
    ]
    return "\n".join([*lines, *(SUMMARY_NOTES if notes else ())])


def summary_markdown(rows: Sequence[dict[str, Any]], title: str) -> str:
    """The summary as a Markdown table, with notes."""
    lines = [f"# {title}", "", "| " + " | ".join(header for header, _, _ in _COLUMNS) + " |"]
    lines.append("|" + "|".join(["---"] + ["---:"] * (len(_COLUMNS) - 1)) + "|")
    lines += ["| " + " | ".join(_cell(row[key], spec) for _, key, spec in _COLUMNS) + " |" for row in rows]
    return "\n".join([*lines, "", *(f"- {note}" for note in SUMMARY_NOTES)]) + "\n"
