"""Device helpers shared by ``optimize``, training and the benchmarks: dtype names, autocast,
training precisions and the float32 math they select, waiting for a device, and seeded weight
initialisation that leaves the global RNG as it was."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from nbcompile.errors import ConfigError

#: The dtypes ``optimize``, training, the AOT packages and the benchmarks accept, by name.
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


def check_dtype(name: str, field: str = "dtype", *, allow_auto: bool = False) -> str:
    """``name`` if it is a dtype name (or ``auto`` where allowed), else a ConfigError for ``field``."""
    names = ["auto", *DTYPES] if allow_auto else list(DTYPES)
    if name not in names:
        raise ConfigError(f"{field} must be one of {', '.join(names)}, got {name!r}", field=field)
    return name


def resolve_dtype(device: torch.device, dtype: str) -> str:
    """``"auto"`` → bf16 on a CUDA device that supports it, else fp32; other names are checked."""
    if check_dtype(dtype, allow_auto=True) == "auto":
        return "bf16" if device.type == "cuda" and torch.cuda.is_bf16_supported() else "fp32"
    return dtype


def autocast(device: torch.device, dtype: str, cache: bool = True) -> contextlib.AbstractContextManager:
    """bf16 autocast on ``device``; for fp32 nothing (autocast is left as the caller has it).
    ``dtype`` is a name checked beforehand: this runs at every step. ``cache``: autocast's cache
    of cast weights (off while a CUDA graph is captured, as PyTorch requires)."""
    if dtype == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=DTYPES[dtype], cache_enabled=cache)


#: Training precisions. ``fp32``: IEEE float32 convolutions and matmuls (TF32 off); ``tf32``: TF32
#: convolutions and matmuls on Ampere and later GPUs; ``bf16``: bf16 autocast of forward and loss,
#: the float32 math left over in IEEE float32.
PRECISIONS = ("fp32", "tf32", "bf16")


def check_precision(name: str, field: str = "precision") -> str:
    """``name`` if it is one of :data:`PRECISIONS`, else a ConfigError for ``field``."""
    if name not in PRECISIONS:
        raise ConfigError(f"{field} must be one of {', '.join(PRECISIONS)}, got {name!r}", field=field)
    return name


def autocast_dtype(precision: str) -> str:
    """The autocast dtype name of a training precision: bf16 for ``bf16``, else fp32 (none)."""
    return "bf16" if precision == "bf16" else "fp32"


@contextlib.contextmanager
def float32_math(precision: str) -> Iterator[None]:
    """Run the block with cuDNN's and the float32 matmuls' TF32 switched on for ``tf32`` and off
    otherwise; both settings are put back afterwards (PyTorch's own defaults differ: cuDNN
    allows TF32, matmuls do not)."""
    check_precision(precision)
    saved = torch.backends.cudnn.allow_tf32, torch.get_float32_matmul_precision()
    tf32 = precision == "tf32"
    torch.backends.cudnn.allow_tf32 = tf32
    torch.set_float32_matmul_precision("high" if tf32 else "highest")
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32 = saved[0]
        torch.set_float32_matmul_precision(saved[1])


def synchronize(device: torch.device) -> None:
    """Wait until ``device`` has finished its queued work (CUDA and MPS; the CPU has no queue)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Run the block with torch's CPU generator (where weights are initialised) seeded, and put
    its state back afterwards; other devices' generators are not touched."""
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(seed)
        yield
