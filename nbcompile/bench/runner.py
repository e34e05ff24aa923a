"""Run the modes over cells and batch sizes, in one process, and collect the numbers.

For each (cell, batch size) every mode is built first (its setup, compile and first call
timed), then timed in ``rounds`` interleaved rounds (ABC ABC ABC), so that host noise hits
every mode alike. A mode reports the median of its round medians and their spread; its ratio
to ``dynamic`` eager is given with its worst and best round.
"""

from __future__ import annotations

import contextlib
import copy
import datetime
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from nbcompile._version import __version__
from nbcompile.bench.environment import cudnn_benchmark, describe_environment
from nbcompile.bench.modes import MODES, Mode, build, check_mode_names, skip_reason
from nbcompile.bench.timing import matmul_peak_tflops, time_calls
from nbcompile.compiler.config import NetworkConfig
from nbcompile.compiler.lower import lower
from nbcompile.compiler.render import render_plan
from nbcompile.errors import first_line
from nbcompile.runtime.device import DTYPES, autocast, check_dtype, seeded, synchronize
from nbcompile.runtime.dynamic import DynamicNetwork
from nbcompile.runtime.loader import load_model_class
from nbcompile.runtime.optimize import optimize
from nbcompile.space.spec import ModelSpec


@dataclass(frozen=True)
class BenchSettings:
    """What to measure and how. ``iters`` and ``max_seconds`` apply to each mode in each round."""

    device: str = "cpu"
    batch_sizes: tuple[int, ...] = (1, 64, 256)
    modes: tuple[str, ...] = tuple(MODES)
    dtype: str = "fp32"
    channels_last: bool = False
    train: bool = False
    warmup: int = 5
    iters: int = 50
    max_seconds: float = 10.0
    rounds: int = 3
    compile_backend: str = "inductor"
    image_size: int = 32
    canonical: bool = False
    measure_peak: bool = True
    config: NetworkConfig = field(default_factory=NetworkConfig)

    def __post_init__(self) -> None:
        check_mode_names(self.modes)
        check_dtype(self.dtype)
        if not self.batch_sizes or min(self.batch_sizes) < 1:
            raise ValueError("batch sizes must be positive integers")
        if self.rounds < 1:
            raise ValueError(f"rounds must be at least 1, got {self.rounds}")


@dataclass
class Cell:
    """A benchmarked cell: its label, generated source, reference weights and dynamic network."""

    label: str
    spec: ModelSpec
    module_hash: str
    flops_per_image: int
    trainable_parameters: int
    source: str
    static: nn.Module
    dynamic: nn.Module


def prepare_cell(label: str, spec: ModelSpec, settings: BenchSettings, folder: Path) -> Cell:
    """Compile the spec, load the generated Network and a DynamicNetwork with the same weights."""
    plan = lower(spec, settings.config, settings.canonical)
    source = render_plan(plan)
    with seeded(0):
        static = _load_static(source, folder, "reference")(num_labels=settings.config.num_labels)
        dynamic = DynamicNetwork(plan.built, **settings.config.as_dict())
    dynamic.load_state_dict(static.state_dict())
    return Cell(label, spec, plan.module_hash, plan.flops, plan.trainable_parameters, source, static, dynamic)


def _load_static(source: str, folder: Path, tag: str) -> type[nn.Module]:
    """The Network class of ``source`` from a file of its own: each mode compiles its own code
    objects, so that no mode's compiled graphs (or frozen weights) are shared with another's."""
    path = folder / f"bench_{len(list(folder.iterdir()))}_{tag.replace('-', '_')}.py"
    path.write_text(source, encoding="utf-8")
    return load_model_class(path)


def _network_for(mode: Mode, cell: Cell, settings: BenchSettings, device: torch.device, folder: Path) -> nn.Module:
    """A fresh copy of the mode's network with the cell's weights, on ``device``."""
    if mode.network == "static":
        with seeded(0):
            module = _load_static(cell.source, folder, mode.name)(num_labels=settings.config.num_labels)
        module.load_state_dict(cell.static.state_dict())
    else:
        module = copy.deepcopy(cell.dynamic)
    return module.to(device=device, memory_format=_memory_format(settings)).train(settings.train)


def _memory_format(settings: BenchSettings) -> torch.memory_format:
    return torch.channels_last if settings.channels_last else torch.contiguous_format


def _step_function(
    module: Callable,
    raw: nn.Module,
    x: torch.Tensor,
    labels: torch.Tensor,
    settings: BenchSettings,
    device: torch.device,
) -> Callable[[], object]:
    """One inference forward, or one training step (forward, backward, SGD step)."""
    if not settings.train:

        def infer() -> object:
            with torch.no_grad(), autocast(device, settings.dtype):
                return module(x)

        return infer
    optimizer = torch.optim.SGD(raw.parameters(), lr=0.01, momentum=0.9)

    def train_step() -> object:
        optimizer.zero_grad(set_to_none=True)
        with autocast(device, settings.dtype):
            loss = F.cross_entropy(module(x), labels)
        loss.backward()
        optimizer.step()
        return loss

    return train_step


def _optimized_step(optimized: Callable, x: torch.Tensor, labels: torch.Tensor, train: bool) -> Callable[[], object]:
    """The step of ``static-optimized``: ``optimize`` already chose the dtype, layout and optimizer."""
    if train:
        return lambda: optimized(x, labels)
    return lambda: optimized(x)


def _graph_breaks(module: nn.Module, x: torch.Tensor, settings: BenchSettings, device: torch.device) -> dict[str, Any]:
    """Dynamo's view of the module: graphs, breaks, and the first break reason."""
    torch._dynamo.reset()
    with contextlib.ExitStack() as stack:
        if not settings.train:
            stack.enter_context(torch.no_grad())
        stack.enter_context(autocast(device, settings.dtype))
        explanation = torch._dynamo.explain(module)(x)
    torch._dynamo.reset()
    reasons = [str(getattr(r, "reason", r)).splitlines()[0] for r in explanation.break_reasons]
    return {
        "graph_count": explanation.graph_count,
        "graph_breaks": explanation.graph_break_count,
        "first_break_reason": reasons[0] if reasons else None,
    }


def _compile_seconds() -> float:
    """Seconds spent compiling so far in this process: dynamo's frames (the forward graphs,
    inductor included) and the backward graphs, which AOTAutograd compiles on the first backward."""
    from torch._dynamo.utils import compilation_time_metrics

    keys = ("_compile.compile_inner", "backward._backward_impl")
    return sum(sum(compilation_time_metrics.get(key, [])) for key in keys)


def _fxgraph_cache_counts() -> dict[str, int]:
    from torch._dynamo.utils import counters

    return {key: counters["inductor"][f"fxgraph_cache_{key}"] for key in ("hit", "miss", "bypass")}


@dataclass
class _Built:
    """A mode ready to be timed: its result row so far and its step."""

    mode: Mode
    result: dict[str, Any]
    step: Callable[[], object]
    samples: list[list[float]] = field(default_factory=list)  # per round: the timed calls' medians, IQRs, counts


def _failure(error: Exception) -> dict[str, str]:
    return {"status": "failed", "error": first_line(error, with_type=True)}


def _batch(batch_size: int, settings: BenchSettings, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """The images (in the run's memory layout) and labels every mode is timed on, drawn from a
    local generator seeded by the batch size."""
    generator = torch.Generator().manual_seed(batch_size)
    images = torch.randn(
        batch_size, settings.config.in_channels, settings.image_size, settings.image_size, generator=generator
    )
    labels = torch.randint(0, settings.config.num_labels, (batch_size,), generator=generator)
    return images.to(device).contiguous(memory_format=_memory_format(settings)), labels.to(device)


def _build_mode(
    mode: Mode, cell: Cell, batch_size: int, settings: BenchSettings, device: torch.device, folder: Path
) -> _Built | dict[str, Any]:
    """Build one mode and make its first call; a skip or failure is returned as a finished row."""
    import torch._inductor.config as inductor_config

    result: dict[str, Any] = {
        "cell": cell.label,
        "module_hash": cell.module_hash,
        "mode": mode.name,
        "batch_size": batch_size,
    }
    reason = skip_reason(mode, device, settings.train)
    if reason is not None:
        return {**result, "status": "skipped", "error": reason}
    x, labels = _batch(batch_size, settings, device)
    try:
        raw = _network_for(mode, cell, settings, device, folder)
        with inductor_config.patch(dict(mode.inductor_options)):
            compiled_before, cache_before = _compile_seconds(), _fxgraph_cache_counts()
            started = time.perf_counter()
            if mode.optimized:
                optimized = optimize(
                    raw, x, train=settings.train, dtype=settings.dtype, backend=settings.compile_backend
                )
                result["applied"] = optimized.summary
                step = _optimized_step(optimized, x, labels, settings.train)
            else:
                module = build(mode, raw, settings.compile_backend)
                step = _step_function(module, raw, x, labels, settings, device)
            synchronize(device)
            result["build_s"] = time.perf_counter() - started
            first = time.perf_counter()
            step()
            synchronize(device)
            result["first_call_s"] = time.perf_counter() - first
            result["setup_s"] = result["build_s"] + result["first_call_s"]
            if mode.compiles:
                result["compile_s"] = _compile_seconds() - compiled_before
                cache_after = _fxgraph_cache_counts()
                result["fxgraph_cache"] = {key: cache_after[key] - cache_before[key] for key in cache_after}
            for _ in range(settings.warmup):
                step()
            synchronize(device)
    except Exception as error:
        return {**result, **_failure(error)}
    return _Built(mode, result, step)


def measure_batch(
    cell: Cell, batch_size: int, settings: BenchSettings, device: torch.device, folder: Path
) -> list[dict[str, Any]]:
    """Every mode for one (cell, batch size): build all, then time them in interleaved rounds."""
    modes = [MODES[name] for name in settings.modes]
    breaks: dict[str, dict[str, Any]] = {}
    for mode in modes:  # dynamo.explain resets dynamo, so it runs before anything is built
        if mode.compiles and skip_reason(mode, device, settings.train) is None:
            try:
                breaks[mode.name] = _graph_breaks(
                    _network_for(mode, cell, settings, device, folder),
                    _batch(batch_size, settings, device)[0],
                    settings,
                    device,
                )
            except Exception as error:
                breaks[mode.name] = {"graph_breaks_error": _failure(error)["error"]}
    built = [_build_mode(mode, cell, batch_size, settings, device, folder) for mode in modes]
    try:
        timed = [b for b in built if isinstance(b, _Built)]
        for round_index in range(settings.rounds):
            for entry in list(timed):
                try:
                    timing = time_calls(
                        entry.step, device, settings.warmup if round_index else 0, settings.iters, settings.max_seconds
                    )
                except Exception as error:
                    entry.result.update(_failure(error))
                    timed.remove(entry)
                    continue
                entry.samples.append([timing.median_ms, timing.iqr_ms, timing.calls])
        rows = []
        for entry in built:
            if isinstance(entry, dict):
                rows.append(entry)
                continue
            row = {**entry.result, **breaks.get(entry.mode.name, {})}
            if row.get("status") != "failed":
                row.update(_round_statistics(entry.samples))
                row.update(_throughput(cell, batch_size, row["median_ms"], settings))
            rows.append(row)
        return rows
    finally:
        if any(mode.compiles for mode in modes):
            torch._dynamo.reset()


def _round_statistics(samples: list[list[float]]) -> dict[str, Any]:
    """Median of the round medians, their spread, the within-round IQR (median over rounds)."""
    medians = [s[0] for s in samples]
    return {
        "status": "ok",
        "round_medians_ms": medians,
        "median_ms": statistics.median(medians),
        "spread_ms": max(medians) - min(medians),
        "iqr_ms": statistics.median(s[1] for s in samples),
        "calls": int(sum(s[2] for s in samples)),
    }


def _throughput(cell: Cell, batch_size: int, median_ms: float, settings: BenchSettings) -> dict[str, float]:
    seconds = median_ms * 1e-3
    flops = cell.flops_per_image * batch_size * (3 if settings.train else 1)
    return {"images_per_s": batch_size / seconds, "tflops": flops / seconds / 1e12}


def run_benchmark(
    cells: list[tuple[str, ModelSpec]],
    settings: BenchSettings,
    on_result: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Benchmark every cell × batch size × mode; returns the JSON-ready report."""
    device = torch.device(settings.device)
    started = datetime.datetime.now(datetime.timezone.utc)
    info = describe_environment(device)
    results: list[dict[str, Any]] = []
    cell_info = []
    with cudnn_benchmark(device), tempfile.TemporaryDirectory(prefix="nbcompile-bench-") as folder:
        peak = matmul_peak_tflops(device, DTYPES[settings.dtype]) if settings.measure_peak else None
        for label, spec in cells:
            cell = prepare_cell(label, spec, settings, Path(folder))
            cell_info.append(
                {
                    "label": label,
                    "module_hash": cell.module_hash,
                    "trainable_parameters": cell.trainable_parameters,
                    "flops_per_image": cell.flops_per_image,
                }
            )
            for batch_size in settings.batch_sizes:
                for result in measure_batch(cell, batch_size, settings, device, Path(folder)):
                    results.append(result)
                    if on_result is not None:
                        on_result(result)
    add_ratios(results, peak)
    return {
        "nbcompile_version": __version__,
        **info,
        "date": started.isoformat(timespec="seconds"),
        "settings": {**asdict(settings), "config": settings.config.as_dict()},
        "matmul_peak_tflops": peak,
        "cells": cell_info,
        "results": results,
    }


def add_ratios(results: list[dict[str, Any]], peak: float | None) -> None:
    """Speedup over dynamic eager of the same cell and batch (median of round medians, and the
    worst and best round's ratio), and the fraction of the matmul peak."""
    baseline = {
        (r["cell"], r["batch_size"]): r["round_medians_ms"]
        for r in results
        if r["mode"] == "dynamic" and r.get("status") == "ok"
    }
    for r in results:
        if r.get("status") != "ok":
            continue
        base = baseline.get((r["cell"], r["batch_size"]))
        if base:
            per_round = [b / m for b, m in zip(base, r["round_medians_ms"])]
            r["speedup_vs_dynamic"] = statistics.median(base) / r["median_ms"]
            r["speedup_range"] = [min(per_round), max(per_round)]
        else:
            r["speedup_vs_dynamic"] = r["speedup_range"] = None
        r["fraction_of_peak"] = r["tflops"] / peak if peak else None
