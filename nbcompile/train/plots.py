"""A metrics plot per training run: the sampled loss and the three evaluations."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nbcompile.fileio import save_png


def plot_run(result: dict[str, Any], path: Path) -> Path:
    """Save ``result``'s loss curve and accuracies as a PNG at ``path`` (atomically)."""
    from matplotlib.figure import Figure  # no pyplot: no global backend or figure state

    figure = Figure(figsize=(9, 3.6), layout="constrained")
    loss_axes, accuracy_axes = figure.subplots(1, 2)
    steps_per_epoch = result["steps"] / result["epochs"]
    losses = result["losses"]
    loss_axes.plot([step / steps_per_epoch for step, _ in losses], [value for _, value in losses], lw=1)
    loss_axes.set(xlabel="epoch", ylabel="training loss (with L2)", title="loss")
    epochs = [e["current_epoch"] for e in result["evaluations"]]
    for key, label in (
        ("train_accuracy", "train (batch 1)"),
        ("validation_accuracy", "valid (batch 5)"),
        ("test_accuracy", "test"),
    ):
        accuracy_axes.plot(epochs, [e[key] for e in result["evaluations"]], marker="o", label=label)
    accuracy_axes.set(xlabel="epoch", ylabel="accuracy", ylim=(0, 1), title="evaluations")
    accuracy_axes.legend(loc="lower right")
    figure.suptitle(f"{result['module_hash'][:12]}, {result['epochs']} epochs, repeat {result['repeat']}", fontsize=10)
    return save_png(figure, path, dpi=90)
