"""Figures (matplotlib): the notebook's, in its layout, and a study's, in the NAS-Bench-101 paper's.

``trajectories.png``: one panel per algorithm; every run's best validation accuracy so far (red)
and the test accuracy of that cell (blue), on a linear time axis. ``mean_iqr.png``: per algorithm,
the mean and interquartile range over runs of that test accuracy (random red, evolution blue, as
in the notebook). The y axis spans the data (see :func:`y_range`), not a fixed 0.92-0.96: a
synthetic fixture's accuracies lie elsewhere.

A study's figures (:func:`plot_study`), after the paper's Fig. 7: ``regret_time.png``, the mean
test regret against simulated time, log-log, with a band of ±1 standard error of the mean;
``regret_ecdf.png``, the empirical CDF of the final test regret; ``regret_queries.png``, the mean
test regret against valid queries.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from nbcompile.search.algorithms import SearchResult
from nbcompile.search.analysis import TrialRegret, by_algorithm, mean_over_queries, mean_over_time

#: The notebook's colours: validation red, test blue; random search red, evolution blue.
VALIDATION_COLOR = "red"
TEST_COLOR = "blue"
ALGORITHM_COLORS = {"random": "red", "evolution": "blue", "local": "green"}
_GRID_POINTS = 500


def step_on_grid(times: Sequence[float], values: Sequence[float], grid: np.ndarray) -> np.ndarray:
    """The best-so-far curve ``values`` (a step after each query) at each time on ``grid``."""
    index = np.searchsorted(np.asarray(times), grid, side="right") - 1
    return np.asarray(values)[index]


def y_range(results: Sequence[SearchResult], x_max: float) -> tuple[float, float]:
    """y limits that show the data: from the 5th percentile of the values the runs hold over the
    time axis (from each run's first query on; the low values of the first few queries fall
    below) to the highest value, with 5% padding."""
    grid = np.linspace(0.0, x_max, _GRID_POINTS)
    held, highest = [], []
    for result in results:
        if len(result.times) < 2:  # no query: only the starting 0.0
            continue
        after_first = grid[grid >= result.times[1]]
        for values in (result.best_valids, result.best_tests):
            held.append(step_on_grid(result.times, values, after_first))
            highest.append(max(values[1:]))
    if not held:
        return 0.0, 1.0
    low, high = float(np.percentile(np.concatenate(held), 5)), float(max(highest))
    pad = max(0.05 * (high - low), 0.002)
    return low - pad, high + pad


def plot_results(results: Sequence[SearchResult], out_dir: Path, budget: float, synthetic: bool) -> list[Path]:
    """Write ``trajectories.png`` and ``mean_iqr.png`` into ``out_dir``; returns their paths.

    ``budget``: the end of the time axis (simulated training seconds)."""
    from nbcompile.fileio import save_png

    figures = {
        "trajectories.png": trajectories_figure(results, budget, synthetic),
        "mean_iqr.png": mean_iqr_figure(results, budget, synthetic),
    }
    return [save_png(figure, out_dir / name, dpi=110) for name, figure in figures.items()]


def _note(synthetic: bool) -> str:
    return "\n(SYNTHETIC dataset: accuracies are made up)" if synthetic else ""


def trajectories_figure(results: Sequence[SearchResult], budget: float, synthetic: bool):
    """One panel per algorithm: each run's best validation so far (red) and its test accuracy (blue)."""
    from matplotlib.figure import Figure

    algorithms = list(dict.fromkeys(r.algorithm for r in results))
    figure = Figure(figsize=(5 * len(algorithms), 4.2))
    axes = figure.subplots(1, len(algorithms), sharey=True, squeeze=False)[0]
    for axis, algorithm in zip(axes, algorithms):
        for result in (r for r in results if r.algorithm == algorithm):
            axis.plot(
                result.times,
                result.best_valids,
                color=VALIDATION_COLOR,
                alpha=0.5,
                drawstyle="steps-post",
                label="validation",
            )
            axis.plot(
                result.times, result.best_tests, color=TEST_COLOR, alpha=0.5, drawstyle="steps-post", label="test"
            )
        axis.set_title(f"{algorithm} search trajectories (red=validation, blue=test){_note(synthetic)}", fontsize=10)
        axis.set_xlabel("total training time spent (seconds)")
        axis.set_xlim(0, budget)
        axis.grid(alpha=0.3)
    axes[0].set_ylim(*y_range(results, budget))
    axes[0].set_ylabel("accuracy")
    figure.tight_layout()
    return figure


def mean_iqr_figure(results: Sequence[SearchResult], budget: float, synthetic: bool):
    """Per algorithm, the mean and interquartile range over runs of the test accuracy of the best
    cell by validation, at each time."""
    from matplotlib.figure import Figure

    grid = np.linspace(0, budget, _GRID_POINTS)
    figure = Figure(figsize=(7, 4.5))
    axis = figure.subplots()
    for algorithm in dict.fromkeys(r.algorithm for r in results):
        curves = np.array([step_on_grid(r.times, r.best_tests, grid) for r in results if r.algorithm == algorithm])
        q25, q75 = np.percentile(curves, [25, 75], axis=0)
        color = ALGORITHM_COLORS.get(algorithm)
        axis.plot(grid, curves.mean(axis=0), color=color, linewidth=2, label=f"{algorithm} (mean of {len(curves)})")
        axis.fill_between(grid, q25, q75, color=color, alpha=0.1, linewidth=0)
    axis.set_xlabel("total training time spent (seconds)")
    axis.set_ylabel("test accuracy of the best cell by validation")
    axis.set_title("Mean and interquartile range over runs" + _note(synthetic), fontsize=10)
    axis.set_xlim(0, budget)
    axis.set_ylim(*y_range(results, budget))
    axis.grid(alpha=0.3)
    axis.legend(loc="lower right")
    figure.tight_layout()
    return figure


# --- a study's figures: the NAS-Bench-101 paper's Fig. 7 -----------------------------------------
#: Colours of the study's figures, one per algorithm (others take matplotlib's cycle).
STUDY_COLORS = {
    "random": "tab:red",
    "evolution": "tab:blue",
    "local": "tab:green",
    "reinforce": "tab:purple",
    "tpe": "tab:orange",
    "smac": "tab:brown",
    "hyperband": "tab:pink",
    "bohb": "tab:olive",
}
BAND_NOTE = "band: ±1 standard error of the mean over trials"


def plot_study(curves: Sequence[TrialRegret], out_dir: Path, synthetic: bool) -> list[Path]:
    """Write ``regret_time.png`` (mean test regret against simulated time, log-log, with a band of
    ±1 standard error), ``regret_ecdf.png`` (ECDF of the final test regret) and
    ``regret_queries.png`` (mean test regret against valid queries) into ``out_dir``."""
    from nbcompile.fileio import save_png

    figures = {
        "regret_time.png": regret_figure(curves, synthetic, "time"),
        "regret_ecdf.png": regret_ecdf_figure(curves, synthetic),
        "regret_queries.png": regret_figure(curves, synthetic, "queries"),
    }
    return [save_png(figure, out_dir / name, dpi=110) for name, figure in figures.items()]


def regret_floor(curves: Sequence[TrialRegret]) -> float:
    """Where a log axis draws a regret of 0: a decade below the smallest positive regret."""
    positive = [c.regrets[c.regrets > 0].min() for c in curves if (c.regrets > 0).any()]
    return 10 ** (math.floor(math.log10(min(positive))) - 1) if positive else 1e-6


def _color(algorithm: str, index: int) -> str:
    return STUDY_COLORS.get(algorithm, f"C{index % 10}")


def regret_figure(curves: Sequence[TrialRegret], synthetic: bool, axis_kind: str):
    """Per algorithm, the mean test regret over trials and ±1 standard error against simulated
    time (``axis_kind`` "time") or valid queries ("queries"), log-log; a mean of 0 is drawn at
    :func:`regret_floor`."""
    from matplotlib.figure import Figure

    floor = regret_floor(curves)
    figure = Figure(figsize=(7, 4.8))
    axis = figure.subplots()
    for index, (algorithm, runs) in enumerate(by_algorithm(curves).items()):
        curve = mean_over_time(runs) if axis_kind == "time" else mean_over_queries(runs)
        shown = ~np.isnan(curve.mean) & (curve.x > 0)
        if not shown.any():
            continue
        x, mean, error = curve.x[shown], curve.mean[shown], curve.standard_error[shown]
        color = _color(algorithm, index)
        axis.plot(
            x,
            np.maximum(mean, floor),
            color=color,
            linewidth=1.8,
            drawstyle="steps-post",
            label=f"{algorithm} ({curve.trials} trials)",
        )
        axis.fill_between(
            x,
            np.maximum(mean - error, floor),
            np.maximum(mean + error, floor),
            color=color,
            alpha=0.15,
            linewidth=0,
            step="post",
        )
    axis.set_xscale("log")
    axis.set_yscale("log")
    axis.set_xlabel("total training time spent (simulated seconds)" if axis_kind == "time" else "valid queries")
    axis.set_ylabel("mean test regret")
    axis.set_title(f"Test regret of the incumbent (by validation); {BAND_NOTE}{_note(synthetic)}", fontsize=9)
    axis.grid(alpha=0.3, which="both")
    axis.legend(loc="lower left", fontsize=8)
    figure.tight_layout()
    return figure


def regret_ecdf_figure(curves: Sequence[TrialRegret], synthetic: bool):
    """Per algorithm, the empirical CDF of the trials' final test regret (log x axis; a regret of 0
    is drawn at :func:`regret_floor`)."""
    from matplotlib.figure import Figure

    floor = regret_floor(curves)
    figure = Figure(figsize=(7, 4.8))
    axis = figure.subplots()
    for index, (algorithm, runs) in enumerate(by_algorithm(curves).items()):
        finals = np.sort([run.final for run in runs if not math.isnan(run.final)])
        if not finals.size:
            continue
        fractions = np.arange(finals.size + 1) / finals.size  # from 0 at the smallest regret
        axis.step(
            np.maximum(np.concatenate((finals[:1], finals)), floor),
            fractions,
            where="post",
            color=_color(algorithm, index),
            label=f"{algorithm} ({finals.size} trials)",
        )
    axis.set_xscale("log")
    axis.set_ylim(0, 1.02)
    axis.set_xlabel(f"final test regret (0 drawn at {floor:.0e})")
    axis.set_ylabel("fraction of trials")
    axis.set_title("Empirical CDF of the final test regret" + _note(synthetic), fontsize=9)
    axis.grid(alpha=0.3, which="both")
    axis.legend(loc="lower right", fontsize=8)
    figure.tight_layout()
    return figure
