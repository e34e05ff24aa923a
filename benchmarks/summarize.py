"""Turn benchmark JSON files into the Markdown tables of the README.

Usage: python3 benchmarks/summarize.py [--compact] RESULT.json [RESULT.json ...]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def _cell(value: float | None, pattern: str) -> str:
    return "" if value is None else pattern.format(value)


def summarize(path: Path) -> str:
    report = json.loads(path.read_text())
    settings = report["settings"]
    kind = "training step (forward, backward, SGD step)" if settings["train"] else "inference"
    layout = ", channels_last" if settings["channels_last"] else ""
    peak = report.get("matmul_peak_tflops")
    lines = [
        f"**{path.name}**: {report['device']}, torch {report['torch_version']}, {settings['dtype']}{layout}, "
        f"{kind}, {report['date'][:10]}"
        + (f"; measured {settings['dtype']} matmul peak {peak:.3g} TFLOP/s" if peak else ""),
        "",
        "| cell | batch | mode | median ms | IQR ms | images/s | vs dynamic | TFLOP/s | setup s | graphs / breaks | note |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for r in report["results"]:
        graphs = f"{r['graph_count']} / {r['graph_breaks']}" if "graph_count" in r else ""
        note = "" if r.get("status") == "ok" else f"{r['status']}: {r.get('error', '')}"
        lines.append(
            f"| {r['cell']} | {r['batch_size']} | {r['mode']} | {_cell(r.get('median_ms'), '{:.2f}')} "
            f"| {_cell(r.get('iqr_ms'), '{:.2f}')} | {_cell(r.get('images_per_s'), '{:,.0f}')} "
            f"| {_cell(r.get('speedup_vs_dynamic'), '{:.2f}x')} | {_cell(r.get('tflops'), '{:.3f}')} "
            f"| {_cell(r.get('setup_s'), '{:.1f}')} | {graphs} | {note} |"
        )
    return "\n".join(lines)


def compact(path: Path) -> str:
    """One row per (cell, batch): each mode's median ms and its speedup over dynamic eager."""
    report = json.loads(path.read_text())
    modes = list(dict.fromkeys(r["mode"] for r in report["results"] if r.get("status") == "ok"))
    lines = [
        "| cell | batch | " + " | ".join(modes) + " |",
        "|---|---:|" + "---:|" * len(modes),
    ]
    rows: dict[tuple[str, int], dict[str, dict]] = {}
    for r in report["results"]:
        rows.setdefault((r["cell"], r["batch_size"]), {})[r["mode"]] = r
    for (cell, batch), by_mode in rows.items():
        cells = []
        for mode in modes:
            r = by_mode.get(mode, {})
            if r.get("status") != "ok":
                cells.append(r.get("status", ""))
            else:
                cells.append(f"{r['median_ms']:.1f} ms ({r['speedup_vs_dynamic']:.2f}x)")
        lines.append(f"| {cell} | {batch} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    if sys.argv[1] == "--compact":
        print("\n\n".join(compact(Path(arg)) for arg in sys.argv[2:]))
    else:
        print("\n\n".join(summarize(Path(arg)) for arg in sys.argv[1:]))
