"""Timing primitives: median and interquartile range of repeated calls, and the matmul peak."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from nbcompile.runtime.device import synchronize


@dataclass(frozen=True)
class Timing:
    """Latency statistics of one timed callable, in milliseconds."""

    median_ms: float
    iqr_ms: float
    calls: int


def time_calls(fn: Callable[[], object], device: torch.device, warmup: int, iters: int, max_seconds: float) -> Timing:
    """Warm up, then time ``fn`` call by call (CUDA events on GPU, perf_counter on CPU).

    Stops after ``iters`` timed calls, or earlier once ``max_seconds`` have passed (at least
    three timed calls are always made).
    """
    for _ in range(warmup):
        fn()
    synchronize(device)
    samples: list[float] = []
    deadline = time.perf_counter() + max_seconds
    while len(samples) < iters and (len(samples) < 3 or time.perf_counter() < deadline):
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            samples.append(start.elapsed_time(end))
        else:
            begin = time.perf_counter()
            fn()
            samples.append((time.perf_counter() - begin) * 1e3)
    quartiles = statistics.quantiles(samples, n=4) if len(samples) > 1 else [samples[0]] * 3
    return Timing(statistics.median(samples), quartiles[2] - quartiles[0], len(samples))


def matmul_peak_tflops(device: torch.device, dtype: torch.dtype) -> float:
    """Measured dense matmul rate (TFLOP/s) in ``dtype``: 8192³ on GPU, 2048³ on CPU."""
    size = 8192 if device.type == "cuda" else 2048
    generator = torch.Generator().manual_seed(0)  # a local generator: the global RNG is left alone
    a = torch.randn(size, size, generator=generator).to(device=device, dtype=dtype)
    b = torch.randn(size, size, generator=generator).to(device=device, dtype=dtype)
    timing = time_calls(lambda: a @ b, device, warmup=2, iters=10, max_seconds=5.0)
    return 2 * size**3 / (timing.median_ms * 1e-3) / 1e12
