"""Precompiled AOTInductor packages (``.pt2``): deploy an optimised inference network with no
compilation at load time.

``build_package`` exports what ``optimize`` prepares for inference (eval, BatchNorm folded,
channels_last, weights in the chosen dtype) with ``torch.export`` and compiles it with
``torch._inductor.aoti_compile_and_package``. **The weights go with the package**: they are
the model's weights when it was built, baked in as constants. To deploy other weights, build a
new package from the model that holds them. ``load_package`` loads one (no recompilation) and
returns a callable that takes fp32 images of the batch size it was built for and returns fp32
logits.
"""

from __future__ import annotations

import json
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from nbcompile._version import __version__
from nbcompile.errors import ConfigError, NbcompileError, first_line
from nbcompile.fileio import atomic_output
from nbcompile.runtime.device import resolve_dtype
from nbcompile.runtime.optimize import prepare_inference

_METADATA_KEY = "nbcompile"


@dataclass(frozen=True)
class PackageInfo:
    """What a package was built for (stored in the package's metadata)."""

    device: str
    dtype: str
    batch_size: int
    image_size: int
    in_channels: int
    nbcompile_version: str
    module_hash: str = ""

    def input_shape(self) -> tuple[int, int, int, int]:
        return (self.batch_size, self.in_channels, self.image_size, self.image_size)


def check_package_options(device: str, dtype: str, batch_size: int) -> tuple[torch.device, str]:
    """The package's device and dtype (``auto`` resolved), or a ConfigError naming the bad option."""
    try:
        device_ = torch.device(device)
    except RuntimeError:
        raise ConfigError(f"device must be cpu, cuda or cuda:N, got {device!r}", field="device") from None
    if device_.type not in ("cpu", "cuda"):
        raise ConfigError(f"device must be cpu, cuda or cuda:N, got {device!r}", field="device")
    if device_.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {device}: CUDA is not available on this machine", field="device")
    if batch_size < 1:
        raise ConfigError(f"batch_size must be a positive integer, got {batch_size}", field="batch_size")
    return device_, resolve_dtype(device_, dtype)


def build_package(
    model: nn.Module,
    path: str | os.PathLike[str],
    *,
    device: str = "cpu",
    dtype: str = "fp32",
    batch_size: int = 1,
    image_size: int = 32,
    in_channels: int = 3,
    module_hash: str = "",
) -> Path:
    """Export and AOT-compile ``model`` (left unchanged) for inference to ``path`` (atomically).

    The input shape is fixed: (batch_size, in_channels, image_size, image_size), fp32.
    """
    device_, dtype = check_package_options(device, dtype, batch_size)
    info = PackageInfo(str(device_), dtype, batch_size, image_size, in_channels, __version__, module_hash)
    prepared, _ = prepare_inference(model, device_, dtype)
    example = torch.zeros(info.input_shape(), device=device_)
    with torch.no_grad():
        exported = torch.export.export(prepared, (example,))
    configs = {"aot_inductor.metadata": {_METADATA_KEY: json.dumps(info.__dict__)}}
    target = Path(path)
    with atomic_output(target) as temporary:
        # aoti_compile_and_package writes a zip archive; the name must end in .pt2.
        staged = temporary.with_name(temporary.name + ".pt2")
        try:
            torch._inductor.aoti_compile_and_package(exported, package_path=str(staged), inductor_configs=configs)
            os.replace(staged, temporary)
        finally:
            staged.unlink(missing_ok=True)
    return target


class PackagedNetwork:
    """A loaded AOT package: call it with fp32 images of the shape it was built for."""

    def __init__(self, runner: Any, info: PackageInfo, path: Path, load_s: float) -> None:
        self._runner = runner
        self.info = info
        self.path = path
        self.load_s = load_s

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        expected = self.info.input_shape()
        if tuple(x.shape) != expected:
            raise ConfigError(
                f"{self.path}: built for input shape {list(expected)}, got {list(x.shape)}", field="input"
            )
        return self._runner(x.to(device=self.info.device, dtype=torch.float32))

    def __repr__(self) -> str:
        return f"PackagedNetwork({str(self.path)!r}, {self.info})"


def load_package(path: str | os.PathLike[str]) -> PackagedNetwork:
    """Load a package written by ``build_package`` (or ``nbcompile compile --aot``), with no
    compilation; its weights are the ones it was built with."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no AOT package at {path}")
    started = time.perf_counter()
    try:
        runner = _load_runner(path)
        metadata = runner.get_metadata()
    except Exception as error:
        raise NbcompileError(f"{path}: not a loadable AOT package ({first_line(error)})") from None
    if _METADATA_KEY not in metadata:
        raise NbcompileError(
            f"{path}: an AOT package, but not one written by nbcompile (no {_METADATA_KEY!r} metadata)"
        )
    info = PackageInfo(**json.loads(metadata[_METADATA_KEY]))
    built_on = metadata.get("AOTI_MACHINE")
    if built_on and built_on != platform.machine():
        raise NbcompileError(f"{path}: built for {built_on} machines, this one is {platform.machine()}")
    return PackagedNetwork(runner, info, path, time.perf_counter() - started)


def _load_runner(path: Path) -> Any:
    """The package's runner. ``torch._inductor.aoti_load_package`` first probes the CPU's vector
    instruction sets by compiling test programs (~25 s on a cold inductor cache, 2 cores) only to
    warn on a mismatch; the package loader it wraps does no compilation, so it is used directly
    where this torch has it."""
    loader_class = getattr(getattr(torch._C, "_aoti", None), "AOTIModelPackageLoader", None)
    try:
        from torch.export.pt2_archive._package import AOTICompiledModel
    except ImportError:
        loader_class = None
    if loader_class is None:
        return torch._inductor.aoti_load_package(str(path))
    return AOTICompiledModel(loader_class(str(path), "model", False, 1, -1))
