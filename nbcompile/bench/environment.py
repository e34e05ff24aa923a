"""What the benchmark ran on: versions, the device (GPU clocks by nvidia-smi), the inductor
cache's state, and cudnn.benchmark switched on for a CUDA run."""

from __future__ import annotations

import contextlib
import os
import platform
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch


def _device_name(device: torch.device) -> str:
    """The GPU's name, or the CPU's with the threads torch uses."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{platform.processor() or platform.machine()} CPU, {torch.get_num_threads()} threads"


def _gpu_clocks(device: torch.device) -> dict[str, str] | None:
    """nvidia-smi's clocks, power and temperature for ``device``; None without nvidia-smi."""
    if shutil.which("nvidia-smi") is None:
        return None
    fields = "clocks.sm,clocks.max.sm,clocks.mem,clocks.max.mem,power.draw,power.limit,temperature.gpu,driver_version"
    index = device.index if device.index is not None else torch.cuda.current_device()
    try:
        output = subprocess.run(
            ["nvidia-smi", f"--query-gpu={fields}", "--format=csv,noheader", "-i", str(index)],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return dict(zip(fields.split(","), (value.strip() for value in output.strip().split(","))))


def describe_environment(device: torch.device) -> dict[str, Any]:
    """Versions, the device (GPU name, capability, clocks on CUDA) and the inductor cache's state."""
    info: dict[str, Any] = {
        "torch_version": torch.__version__,
        "python_version": sys.version.split()[0],
        "device": _device_name(device),
        "cpu_threads": torch.get_num_threads(),
        "inductor_cache": inductor_cache_state(),
    }
    if device.type == "cuda":
        properties = torch.cuda.get_device_properties(device)
        info.update(
            cuda_version=torch.version.cuda,
            cudnn_version=torch.backends.cudnn.version(),
            gpu={
                "name": properties.name,
                "capability": f"{properties.major}.{properties.minor}",
                "multiprocessors": properties.multi_processor_count,
                "memory_bytes": properties.total_memory,
                "clocks": _gpu_clocks(device),
            },
        )
    return info


def inductor_cache_state(limit: int = 10_000) -> dict[str, Any]:
    """Where inductor caches compiled code, whether that is not torch's default (set by
    TORCHINDUCTOR_CACHE_DIR), and whether it already held files (warm) before this run (files
    counted up to ``limit``)."""
    from torch._inductor.runtime.cache_dir_utils import cache_dir, default_cache_dir

    folder = Path(cache_dir())
    from_env = folder != Path(default_cache_dir())  # importing dynamo sets the variable itself
    count = 0
    if folder.is_dir():
        for _, _, files in os.walk(folder):
            count += len(files)
            if count >= limit:
                break
    return {"dir": str(folder), "from_env": from_env, "files_before": count, "warm": count > 0}


@contextlib.contextmanager
def cudnn_benchmark(device: torch.device) -> Iterator[None]:
    """cudnn.benchmark on for a CUDA run, put back as it was afterwards."""
    before = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = before or device.type == "cuda"
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = before
