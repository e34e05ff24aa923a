"""nbcompile: compile NAS-Bench-101 cell specs into static, standalone PyTorch modules."""

from __future__ import annotations

__version__ = "0.1.0"

from nbcompile.channels import compute_vertex_channels
from nbcompile.compiler import compile_to_file, generate_source
from nbcompile.config import NetworkConfig
from nbcompile.errors import ConfigError, OutOfDomainError, SpecError
from nbcompile.spec import ModelSpec

__all__ = [
    "ConfigError",
    "DynamicNetwork",
    "ModelSpec",
    "NetworkConfig",
    "OutOfDomainError",
    "SpecError",
    "__version__",
    "compile_to_file",
    "compute_vertex_channels",
    "generate_source",
    "load_model",
    "load_model_class",
]


def __getattr__(name: str):  # torch is imported only when a torch-facing name is used
    if name == "DynamicNetwork":
        from nbcompile.dynamic import DynamicNetwork

        return DynamicNetwork
    if name in ("load_model", "load_model_class"):
        from nbcompile import loader

        return getattr(loader, name)
    raise AttributeError(f"module 'nbcompile' has no attribute {name!r}")
