"""The benchmarked modes: how each turns the generated and dynamic networks into a callable."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch is imported when a mode is built, not when the CLI starts
    import torch
    from torch import nn


@dataclass(frozen=True)
class Mode:
    """A way of running a network; ``build`` turns the network into the callable that is timed."""

    name: str
    description: str
    network: str  # "static" or "dynamic": which network it runs
    compiles: bool
    inference_only: bool
    cuda_only: bool
    inductor_options: tuple[tuple[str, object], ...] = ()
    optimized: bool = False  # built by nbcompile.optimize, which brings its own dtype, layout and step


def _compile(module: nn.Module, backend: str, **options: object) -> nn.Module:
    import torch

    return torch.compile(module, backend=backend, **options)  # type: ignore[return-value]


def skip_reason(mode: Mode, device: torch.device, train: bool) -> str | None:
    """Why ``mode`` does not apply to this device or to training, or None if it applies."""
    if mode.cuda_only and device.type != "cuda":
        return "needs a CUDA device"
    if mode.inference_only and train:
        return "inference only"
    return None


def check_mode_names(names: Iterable[str]) -> None:
    """Raise ValueError naming the first of ``names`` that is not a mode."""
    unknown = [name for name in names if name not in MODES]
    if unknown:
        raise ValueError(f"unknown mode {unknown[0]!r} (known: {', '.join(MODES)})")


def build(mode: Mode, module: nn.Module, backend: str) -> Callable:
    """The callable of ``mode`` for ``module`` (already on its device, in train or eval mode)."""
    name = mode.name
    if name in ("dynamic", "static"):
        return module
    if name == "dynamic-compile":
        return _compile(module, backend)
    if name == "static-fused":
        return module.fuse()
    if name == "static-script":
        import torch

        return torch.jit.script(module)
    if name == "static-compile":
        return _compile(module, backend, fullgraph=True)
    if name == "static-freeze":  # the runner patches inductor's config with freezing=True
        return _compile(module, backend, fullgraph=True)
    if name == "static-cudagraph":
        return _compile(module, backend, fullgraph=True, mode="reduce-overhead")
    if mode.optimized:
        raise ValueError(f"{name} is built by nbcompile.optimize, with its example input")
    raise ValueError(f"unknown mode {name!r}")


MODES: dict[str, Mode] = {
    mode.name: mode
    for mode in [
        Mode("dynamic", "DynamicNetwork, eager (graph walking)", "dynamic", False, False, False),
        Mode("dynamic-compile", "torch.compile(DynamicNetwork)", "dynamic", True, False, False),
        Mode("static", "generated Network, eager", "static", False, False, False),
        Mode("static-fused", "generated Network with BatchNorm folded, eager", "static", False, True, False),
        Mode("static-script", "generated Network, TorchScript", "static", False, False, False),
        Mode("static-compile", "torch.compile(Network, fullgraph=True)", "static", True, False, False),
        Mode(
            "static-freeze",
            "torch.compile with inductor freezing (folds BN)",
            "static",
            True,
            True,
            False,
            (("freezing", True),),
        ),
        Mode("static-cudagraph", "torch.compile(mode='reduce-overhead'): CUDA graphs", "static", True, False, True),
        Mode(
            "static-optimized",
            "nbcompile.optimize: BN folded, channels_last, bf16 weights or autocast, compiled, CUDA graphs on CUDA",
            "static",
            True,
            False,
            False,
            optimized=True,
        ),
    ]
}
