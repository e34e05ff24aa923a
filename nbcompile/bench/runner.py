"""Run the modes over cells and batch sizes, in one process, and collect the numbers."""

from __future__ import annotations

import contextlib
import copy
import datetime
import platform
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from nbcompile._version import __version__
from nbcompile.bench.modes import MODES, Mode, ModeSkipped, build, check_applicable
from nbcompile.bench.timing import matmul_peak_tflops, synchronize, time_calls
from nbcompile.compiler.render import render_plan
from nbcompile.compiler.config import NetworkConfig
from nbcompile.runtime.dynamic import DynamicNetwork
from nbcompile.runtime.loader import load_model_class
from nbcompile.compiler.lower import lower
from nbcompile.space.spec import ModelSpec

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


@dataclass(frozen=True)
class BenchSettings:
    """What to measure and how."""

    device: str = "cpu"
    batch_sizes: tuple[int, ...] = (1, 64, 256)
    modes: tuple[str, ...] = tuple(MODES)
    dtype: str = "fp32"
    channels_last: bool = False
    train: bool = False
    warmup: int = 5
    iters: int = 50
    max_seconds: float = 10.0
    compile_backend: str = "inductor"
    image_size: int = 32
    canonical: bool = False
    measure_peak: bool = True
    config: NetworkConfig = field(default_factory=NetworkConfig)

    def __post_init__(self) -> None:
        unknown = [m for m in self.modes if m not in MODES]
        if unknown:
            raise ValueError(f"unknown mode {unknown[0]!r} (known: {', '.join(MODES)})")
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}")
        if not self.batch_sizes or min(self.batch_sizes) < 1:
            raise ValueError("batch sizes must be positive integers")


@dataclass
class Cell:
    """A benchmarked cell: its label, the generated class and the reference network."""

    label: str
    spec: ModelSpec
    module_hash: str
    flops_per_image: int
    trainable_parameters: int
    static: nn.Module
    dynamic: nn.Module


def prepare_cell(label: str, spec: ModelSpec, settings: BenchSettings, folder: Path) -> Cell:
    """Compile the spec, load the generated Network and a DynamicNetwork with the same weights."""
    plan = lower(spec, settings.config, settings.canonical)
    path = folder / f"bench_{plan.module_hash}_{len(list(folder.iterdir()))}.py"
    path.write_text(render_plan(plan), encoding="utf-8")
    torch.manual_seed(0)
    static = load_model_class(path)(num_labels=settings.config.num_labels)
    dynamic = DynamicNetwork(plan.built, **settings.config.as_dict())
    dynamic.load_state_dict(static.state_dict())
    return Cell(label, spec, plan.module_hash, plan.flops, plan.trainable_parameters, static, dynamic)


def _autocast(device: torch.device, dtype: str) -> contextlib.AbstractContextManager:
    if dtype == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=DTYPES[dtype])


def _step_function(module: Callable, raw: nn.Module, x: torch.Tensor, settings: BenchSettings, device: torch.device) -> Callable[[], object]:
    """One inference forward, or one training step (forward, backward, SGD step)."""
    if not settings.train:

        def infer() -> object:
            with torch.no_grad(), _autocast(device, settings.dtype):
                return module(x)

        return infer
    labels = torch.randint(0, settings.config.num_labels, (x.shape[0],), device=device)
    optimizer = torch.optim.SGD(raw.parameters(), lr=0.01, momentum=0.9)

    def train_step() -> object:
        optimizer.zero_grad(set_to_none=True)
        with _autocast(device, settings.dtype):
            loss = F.cross_entropy(module(x), labels)
        loss.backward()
        optimizer.step()
        return loss

    return train_step


def _graph_breaks(module: nn.Module, x: torch.Tensor, settings: BenchSettings, device: torch.device) -> dict[str, Any]:
    """Dynamo's view of the module: graphs, breaks, and the first break reason."""
    torch._dynamo.reset()
    with contextlib.ExitStack() as stack:
        if not settings.train:
            stack.enter_context(torch.no_grad())
        stack.enter_context(_autocast(device, settings.dtype))
        explanation = torch._dynamo.explain(module)(x)
    torch._dynamo.reset()
    reasons = [str(getattr(r, "reason", r)).splitlines()[0] for r in explanation.break_reasons]
    return {
        "graph_count": explanation.graph_count,
        "graph_breaks": explanation.graph_break_count,
        "first_break_reason": reasons[0] if reasons else None,
    }


def measure_mode(cell: Cell, mode: Mode, batch_size: int, settings: BenchSettings, device: torch.device) -> dict[str, Any]:
    """Measure one (cell, mode, batch size); a failure or skip is recorded, never raised."""
    result: dict[str, Any] = {"cell": cell.label, "module_hash": cell.module_hash, "mode": mode.name, "batch_size": batch_size}
    memory_format = torch.channels_last if settings.channels_last else torch.contiguous_format
    raw = copy.deepcopy(cell.static if mode.network == "static" else cell.dynamic)
    raw = raw.to(device=device, memory_format=memory_format).train(settings.train)
    x = torch.randn(batch_size, settings.config.in_channels, settings.image_size, settings.image_size, device=device)
    x = x.contiguous(memory_format=memory_format)
    import torch._inductor.config as inductor_config

    try:
        check_applicable(mode, device, settings.train)
        with inductor_config.patch(dict(mode.inductor_options)):
            if mode.compiles:
                result.update(_graph_breaks(raw, x, settings, device))
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            started = time.perf_counter()
            module = build(mode, raw, settings.compile_backend)
            step = _step_function(module, raw, x, settings, device)
            step()
            synchronize(device)
            result["setup_s"] = time.perf_counter() - started
            timing = time_calls(step, device, settings.warmup, settings.iters, settings.max_seconds)
    except ModeSkipped as reason:
        result.update(status="skipped", error=str(reason))
        return result
    except Exception as error:  # noqa: BLE001 - a failing mode is a result, not a crash
        message = str(error).strip().splitlines()
        result.update(status="failed", error=f"{type(error).__name__}: {message[0] if message else ''}")
        return result
    finally:
        if mode.compiles:
            torch._dynamo.reset()
    seconds = timing.median_ms * 1e-3
    flops = cell.flops_per_image * batch_size * (3 if settings.train else 1)
    result.update(
        status="ok",
        median_ms=timing.median_ms,
        iqr_ms=timing.iqr_ms,
        calls=timing.calls,
        images_per_s=batch_size / seconds,
        tflops=flops / seconds / 1e12,
    )
    if device.type == "cuda":
        result["peak_memory_bytes"] = torch.cuda.max_memory_allocated(device)
    return result


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{platform.processor() or platform.machine()} CPU, {torch.get_num_threads()} threads"


def run_benchmark(
    cells: list[tuple[str, ModelSpec]],
    settings: BenchSettings,
    on_result: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Benchmark every cell × batch size × mode; returns the JSON-ready report."""
    device = torch.device(settings.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    peak = matmul_peak_tflops(device, DTYPES[settings.dtype]) if settings.measure_peak else None
    results: list[dict[str, Any]] = []
    cell_info = []
    with tempfile.TemporaryDirectory(prefix="nbcompile-bench-") as folder:
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
                for name in settings.modes:
                    result = measure_mode(cell, MODES[name], batch_size, settings, device)
                    results.append(result)
                    if on_result is not None:
                        on_result(result)
    _add_ratios(results, peak)
    return {
        "nbcompile_version": __version__,
        "torch_version": torch.__version__,
        "python_version": sys.version.split()[0],
        "device": _device_name(device),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "settings": {**asdict(settings), "config": settings.config.as_dict()},
        "matmul_peak_tflops": peak,
        "cells": cell_info,
        "results": results,
    }


def _add_ratios(results: list[dict[str, Any]], peak: float | None) -> None:
    """Speedup over dynamic eager of the same cell and batch, and the fraction of the matmul peak."""
    baseline = {
        (r["cell"], r["batch_size"]): r["median_ms"]
        for r in results
        if r["mode"] == "dynamic" and r.get("status") == "ok"
    }
    for r in results:
        if r.get("status") != "ok":
            continue
        base = baseline.get((r["cell"], r["batch_size"]))
        r["speedup_vs_dynamic"] = base / r["median_ms"] if base else None
        r["fraction_of_peak"] = r["tflops"] / peak if peak else None


def iter_modes(names: str) -> Iterator[str]:
    """Mode names from a comma-separated list ('all' for every mode)."""
    if names.strip() == "all":
        yield from MODES
        return
    for name in names.split(","):
        if name.strip():
            yield name.strip()
