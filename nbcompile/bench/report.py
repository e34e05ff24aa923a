"""Benchmark output: a rich table, the JSON file and a latency plot."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.table import Table

from nbcompile.fileio import save_png, write_atomic


def _fmt(value: float | None, pattern: str) -> str:
    return "" if value is None else pattern.format(value)


def results_table(report: dict[str, Any]) -> Table:
    """One row per (cell, batch, mode)."""
    settings = report["settings"]
    kind = "training step" if settings["train"] else "inference"
    layout = ", channels_last" if settings["channels_last"] else ""
    table = Table(
        title=f"{report['device']} · torch {report['torch_version']} · {settings['dtype']}{layout} · {kind} · "
        f"{settings['rounds']} rounds"
    )
    for column in (
        "cell",
        "batch",
        "mode",
        "median ms",
        "round spread ms",
        "img/s",
        "vs dynamic",
        "worst–best round",
        "TFLOP/s",
        "compile s",
        "first call s",
        "graphs/breaks",
        "note",
    ):
        table.add_column(column, justify="left" if column in ("cell", "mode", "note") else "right")
    for r in report["results"]:
        graphs = f"{r['graph_count']}/{r['graph_breaks']}" if "graph_count" in r else ""
        low_high = r.get("speedup_range")
        table.add_row(
            r["cell"],
            str(r["batch_size"]),
            r["mode"],
            _fmt(r.get("median_ms"), "{:.2f}"),
            _fmt(r.get("spread_ms"), "{:.2f}"),
            _fmt(r.get("images_per_s"), "{:,.0f}"),
            _fmt(r.get("speedup_vs_dynamic"), "{:.2f}x"),
            f"{low_high[0]:.2f}–{low_high[1]:.2f}x" if low_high else "",
            _fmt(r.get("tflops"), "{:.3f}"),
            _fmt(r.get("compile_s"), "{:.1f}"),
            _fmt(r.get("first_call_s"), "{:.2f}"),
            graphs,
            (r.get("error") or "") if r.get("status") != "ok" else "",
        )
    return table


def write_json(report: dict[str, Any], path: str | Path) -> None:
    write_atomic(Path(path), json.dumps(report, indent=2) + "\n")


def plot_latency(report: dict[str, Any], path: str | Path) -> None:
    """Latency against batch size, one line per mode, one panel per cell (log-log), saved as a PNG
    at ``path`` (atomically)."""
    from matplotlib.figure import Figure  # no pyplot: no global backend or figure state

    cells = [cell["label"] for cell in report["cells"]]
    figure = Figure(figsize=(6 * len(cells), 4.5))
    axes = figure.subplots(1, len(cells), squeeze=False)
    for axis, cell in zip(axes[0], cells):
        rows = [r for r in report["results"] if r["cell"] == cell and r.get("status") == "ok"]
        for mode in dict.fromkeys(r["mode"] for r in rows):
            points = sorted((r["batch_size"], r["median_ms"]) for r in rows if r["mode"] == mode)
            axis.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=mode)
        axis.set(xscale="log", yscale="log", xlabel="batch size", ylabel="median latency (ms)", title=cell)
        axis.grid(True, which="both", alpha=0.3)
        axis.legend(fontsize=8)
    settings = report["settings"]
    figure.suptitle(
        f"{report['device']}, torch {report['torch_version']}, {settings['dtype']}, "
        f"{'train step' if settings['train'] else 'inference'}"
    )
    figure.tight_layout()
    save_png(figure, Path(path), dpi=120)
