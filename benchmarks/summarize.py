"""Turn benchmark JSON files into the Markdown tables of the README.

Usage: python3 benchmarks/summarize.py [--compact] RESULT.json [RESULT.json ...]
Ratios are medians of round medians, with the worst and best round's ratio.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def _cell(value: float | None, pattern: str) -> str:
    return "" if value is None else pattern.format(value)


def _range(r: dict) -> str:
    low_high = r.get("speedup_range")
    return f"{low_high[0]:.2f}–{low_high[1]:.2f}x" if low_high else ""


def _environment(report: dict) -> str:
    """GPU, CUDA and clocks where recorded, and the inductor cache's state."""
    parts = []
    gpu = report.get("gpu")
    if gpu:
        clocks = gpu.get("clocks") or {}
        parts.append(f"CUDA {report.get('cuda_version')}, capability {gpu['capability']}")
        if clocks:
            parts.append(
                f"SM clock {clocks.get('clocks.sm')} (max {clocks.get('clocks.max.sm')}), "
                f"driver {clocks.get('driver_version')}"
            )
    cache = report.get("inductor_cache")
    if cache:
        parts.append(
            f"inductor cache {'warm' if cache['warm'] else 'cold'} ({cache['files_before']} files in {cache['dir']})"
        )
    return "; ".join(parts)


def summarize(path: Path) -> str:
    report = json.loads(path.read_text())
    settings = report["settings"]
    kind = "training step (forward, backward, SGD step)" if settings["train"] else "inference"
    layout = ", channels_last" if settings["channels_last"] else ""
    peak = report.get("matmul_peak_tflops")
    rounds = settings.get("rounds", 1)
    lines = [
        f"**{path.name}**: {report['device']}, torch {report['torch_version']}, {settings['dtype']}{layout}, "
        f"{kind}, {report['date'][:10]}, {rounds} interleaved rounds"
        + (f"; measured {settings['dtype']} matmul peak {peak:.3g} TFLOP/s" if peak else ""),
        "",
        _environment(report),
        "",
        "| cell | batch | mode | median ms | round spread ms | images/s | vs dynamic | worst–best round "
        "| TFLOP/s | compile s | first call s | graphs / breaks | note |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for r in report["results"]:
        graphs = f"{r['graph_count']} / {r['graph_breaks']}" if "graph_count" in r else ""
        note = "" if r.get("status") == "ok" else f"{r['status']}: {r.get('error', '')}"
        lines.append(
            f"| {r['cell']} | {r['batch_size']} | {r['mode']} | {_cell(r.get('median_ms'), '{:.2f}')} "
            f"| {_cell(r.get('spread_ms'), '{:.2f}')} | {_cell(r.get('images_per_s'), '{:,.0f}')} "
            f"| {_cell(r.get('speedup_vs_dynamic'), '{:.2f}x')} | {_range(r)} | {_cell(r.get('tflops'), '{:.3f}')} "
            f"| {_cell(r.get('compile_s'), '{:.1f}')} | {_cell(r.get('first_call_s'), '{:.2f}')} | {graphs} | {note} |"
        )
    return "\n".join(lines)


def summarize_aot(path: Path) -> str:
    """The AOT package against JIT torch.compile (benchmarks/aot.py)."""
    report = json.loads(path.read_text())
    build, load, latency = report["build"], report["load"], report["latency"]
    where = report.get("gpu") or report["device"]
    return "\n".join(
        [
            f"**{path.name}**: {report['spec']}, {where}, torch {report['torch_version']}, {report['dtype']}, "
            f"batch {report['batch_size']}",
            "",
            "| path | compile / build s | load s (fresh process) | compiled at load "
            "| latency ms (median of rounds) | round medians ms |",
            "|---|---:|---:|---|---:|---|",
            (
                f"| JIT `optimize` | {latency['jit_compile_and_first_calls_s']:.1f} | | yes "
                f"| {latency['median_ms']['jit']:.3f} "
                f"| {', '.join(f'{v:.3f}' for v in latency['round_medians_ms']['jit'])} |"
            ),
            (
                f"| AOT package | {build['build_s']:.1f} | {load['load_s']:.2f} (+{load['import_s']:.1f} import, "
                f"{load['first_call_s']:.2f} first call) | {'yes' if load['compiled_in_process'] else 'no'} "
                f"| {latency['median_ms']['aot']:.3f} "
                f"| {', '.join(f'{v:.3f}' for v in latency['round_medians_ms']['aot'])} |"
            ),
        ]
    )


def _summary(path: Path) -> str:
    """A bench report, or an AOT report of benchmarks/aot.py (it has build, load and latency)."""
    return summarize_aot(path) if "latency" in json.loads(path.read_text()) else summarize(path)


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
                ratio = f"{r['speedup_vs_dynamic']:.2f}x" if r.get("speedup_vs_dynamic") else "n/a"
                low_high = f", {_range(r)}" if r.get("speedup_range") else ""
                cells.append(f"{r['median_ms']:.2f} ms ({ratio}{low_high})")
        lines.append(f"| {cell} | {batch} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    if sys.argv[1] == "--compact":
        print("\n\n".join(compact(Path(arg)) for arg in sys.argv[2:]))
    else:
        print("\n\n".join(_summary(Path(arg)) for arg in sys.argv[1:]))
