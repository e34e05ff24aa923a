"""Import generated model files by path, without them being on sys.path."""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from torch import nn


def import_generated(path_or_module: str | os.PathLike[str] | ModuleType) -> ModuleType:
    """The module for a generated file path, an importable module name, or a module itself."""
    if isinstance(path_or_module, ModuleType):
        return path_or_module
    path = Path(path_or_module)
    if isinstance(path_or_module, os.PathLike) or path.suffix == ".py" or path.exists():
        return _import_file(path)
    return importlib.import_module(str(path_or_module))


def _import_file(path: Path) -> ModuleType:
    path = path.resolve()
    if not path.is_file():
        raise FileNotFoundError(f"no generated model file at {path}")
    # The name depends on the path and the content: loading the same file again returns the
    # same module (so earlier models still pickle), a regenerated file loads afresh.
    digest = hashlib.sha1(str(path).encode() + b"\0" + path.read_bytes()).hexdigest()[:12]
    name = f"_nbcompile_generated_{path.stem}_{digest}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # TorchScript and pickling look modules up by name
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def load_model_class(path_or_module: str | os.PathLike[str] | ModuleType) -> type[nn.Module]:
    """The ``Network`` class of a generated file (by path) or module."""
    module = import_generated(path_or_module)
    network = getattr(module, "Network", None)
    if not (isinstance(network, type) and issubclass(network, nn.Module)):
        raise ImportError(f"{module.__name__} defines no Network class: is it an nbcompile file?")
    return network


def load_model(path_or_module: str | os.PathLike[str] | ModuleType, **kwargs: Any) -> nn.Module:
    """An instance of the generated ``Network`` (``kwargs`` go to its constructor)."""
    return load_model_class(path_or_module)(**kwargs)
