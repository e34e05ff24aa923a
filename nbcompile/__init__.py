"""nbcompile: compile NAS-Bench-101 cell specs into static, standalone PyTorch modules.

The package is layered (see the design page of the documentation): ``space`` (the search space),
``compiler`` (spec → plan → source), ``runtime`` (torch layers, the graph-walking oracle, the
loader), ``nasbench`` (the dataset, on ``space`` only), ``synthetic`` (made-up dataset files),
and ``search``, ``bench``, ``train`` and ``cli`` on top. The names below are imported on first
use, so that ``import nbcompile.nasbench`` loads neither the compiler nor torch.
"""

from __future__ import annotations

import importlib
from typing import Any

from nbcompile._version import __version__ as __version__

#: Public name → the module that defines it.
_EXPORTS = {
    "NbcompileError": "nbcompile.errors",
    "ConfigError": "nbcompile.errors",
    "OutOfDomainError": "nbcompile.errors",
    "SpecError": "nbcompile.errors",
    "MissingDependencyError": "nbcompile.errors",
    "ModelSpec": "nbcompile.space.spec",
    "NetworkConfig": "nbcompile.compiler.config",
    "compute_vertex_channels": "nbcompile.compiler.channels",
    "compile_to_file": "nbcompile.compiler.driver",
    "generate_source": "nbcompile.compiler.driver",
    "DynamicNetwork": "nbcompile.runtime.dynamic",
    "load_model": "nbcompile.runtime.loader",
    "load_model_class": "nbcompile.runtime.loader",
    "optimize": "nbcompile.runtime.optimize",
    "build_package": "nbcompile.runtime.aot",
    "load_package": "nbcompile.runtime.aot",
}

__all__ = sorted([*_EXPORTS, "__version__"])


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'nbcompile' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
