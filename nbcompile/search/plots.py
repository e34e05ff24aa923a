"""The notebook's two figures: per-run trajectories, and mean with IQR over time (matplotlib)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from nbcompile.search.algorithms import SearchResult

_COLORS = {"random": "tab:red", "evolution": "tab:blue", "local": "tab:green"}


def _step_on_grid(result: SearchResult, grid: np.ndarray) -> np.ndarray:
    """Best test accuracy (of the best-by-validation cell) at each time on ``grid``."""
    index = np.searchsorted(np.asarray(result.times), grid, side="right") - 1
    return np.asarray(result.best_tests)[index]


def plot_results(results: Sequence[SearchResult], out_dir: Path, budget: float, synthetic: bool) -> list[Path]:
    """Write ``trajectories.png`` and ``mean_iqr.png`` into ``out_dir``; returns their paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from nbcompile.io import atomic_output

    note = " (SYNTHETIC dataset: accuracies are made up)" if synthetic else ""
    algorithms = list(dict.fromkeys(r.algorithm for r in results))
    paths = []

    figure, axes = plt.subplots(1, len(algorithms), figsize=(5 * len(algorithms), 4), sharey=True, squeeze=False)
    for axis, algorithm in zip(axes[0], algorithms):
        for result in (r for r in results if r.algorithm == algorithm):
            axis.plot(result.times, result.best_tests, color=_COLORS.get(algorithm), alpha=0.6, drawstyle="steps-post")
        axis.set_title(algorithm)
        axis.set_xlabel("total training time spent (s)")
        axis.set_xscale("symlog", linthresh=1e4)
        axis.grid(alpha=0.3)
    axes[0][0].set_ylabel("test accuracy of the best cell by validation")
    figure.suptitle("Search trajectories" + note)
    figure.tight_layout()
    paths.append(_save(figure, out_dir / "trajectories.png", atomic_output))
    plt.close(figure)

    grid = np.linspace(0, budget, 500)
    figure, axis = plt.subplots(figsize=(7, 4.5))
    for algorithm in algorithms:
        curves = np.array([_step_on_grid(r, grid) for r in results if r.algorithm == algorithm])
        q25, q75 = np.percentile(curves, [25, 75], axis=0)
        color = _COLORS.get(algorithm)
        axis.plot(grid, curves.mean(axis=0), color=color, label=f"{algorithm} (mean of {len(curves)})")
        axis.fill_between(grid, q25, q75, color=color, alpha=0.2)
    axis.set_xlabel("total training time spent (s)")
    axis.set_ylabel("test accuracy of the best cell by validation")
    axis.set_title("Mean and interquartile range" + note, fontsize=10)
    finals = [r.best_tests[-1] for r in results]
    axis.set_ylim(min(finals) - 0.02, max(finals) + 0.005)
    axis.grid(alpha=0.3)
    axis.legend(loc="lower right")
    figure.tight_layout()
    paths.append(_save(figure, out_dir / "mean_iqr.png", atomic_output))
    plt.close(figure)
    return paths


def _save(figure, path: Path, atomic_output) -> Path:
    with atomic_output(path) as temporary:
        figure.savefig(temporary, format="png", dpi=110)
    return path
