"""One scatter plot per proxy: its score against the mean validation and mean test accuracy at
108 epochs, one point per cell (matplotlib, no pyplot)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from nbcompile.proxies.correlation import ProxyCorrelation

#: The project's colours: validation red, test blue.
VALIDATION_COLOR = "red"
TEST_COLOR = "blue"
#: Scores spread over more than this ratio (all of one sign) are drawn on a logarithmic axis.
LOG_RATIO = 1e3


def scatter_figure(values: np.ndarray, validation: np.ndarray, test: np.ndarray, row: ProxyCorrelation) -> Any:
    """The figure of one proxy: two panels, validation and test, with ρ and τ in their titles."""
    from matplotlib.figure import Figure  # no pyplot: no global backend or figure state

    kept = np.isfinite(values) & np.isfinite(validation) & np.isfinite(test)
    x = values[kept]
    figure = Figure(figsize=(9, 3.8), layout="constrained")
    panels = (
        ("validation", validation[kept], VALIDATION_COLOR, row.spearman_validation, row.kendall_validation),
        ("test", test[kept], TEST_COLOR, row.spearman_test, row.kendall_test),
    )
    for column, (name, y, color, rho, tau) in enumerate(panels):
        axes = figure.add_subplot(1, 2, column + 1)
        axes.scatter(x, y, s=2, alpha=0.3, color=color, linewidths=0, rasterized=True)
        if len(x) and (x.min() > 0 or x.max() < 0) and x.max() / x.min() > LOG_RATIO:
            axes.set_xscale("log")
        axes.set_xlabel(row.proxy)
        axes.set_ylabel(f"mean {name} accuracy, 108 epochs")
        axes.set_title(f"ρ = {rho:.3f}, τ = {tau:.3f} ({row.cells:,} cells)", fontsize=10)
    return figure


def plot_correlations(
    scores: dict[str, np.ndarray], validation: np.ndarray, test: np.ndarray, rows: list[ProxyCorrelation], folder: Path
) -> list[Path]:
    """Write ``<proxy>.png`` into ``folder`` for every row (each file atomically); returns the paths."""
    from nbcompile.fileio import save_png

    return [
        save_png(
            scatter_figure(np.asarray(scores[row.proxy], float), validation, test, row),
            folder / f"{row.proxy}.png",
            100,
        )
        for row in rows
    ]
