"""The package's dependency rule, checked in fresh interpreters (README, "Architecture")."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "nbcompile"

#: Which layer may import which (besides the base modules errors, io, parallel, _version).
ALLOWED = {
    "space": {"space"},
    "compiler": {"compiler", "space"},
    "runtime": {"runtime", "compiler", "space"},
    "nasbench": {"nasbench", "space"},
    "search": {"search", "nasbench", "space"},
    "bench": {"bench", "runtime", "compiler", "space"},
    "train": {"train", "runtime", "compiler", "nasbench", "space"},
}
BASE = {"errors", "fileio", "optional", "parallel", "_version"}


def _loaded_after(statement: str) -> set[str]:
    code = f"import sys, json; {statement}; print(json.dumps(sorted(sys.modules)))"
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return set(json.loads(output))


@pytest.mark.parametrize("statement", ["import nbcompile.nasbench", "from nbcompile.nasbench import NASBench"])
def test_the_dataset_layer_loads_no_compiler_and_no_torch(statement: str) -> None:
    loaded = _loaded_after(statement)
    for heavy in ("black", "jinja2", "torch", "nbcompile.compiler", "nbcompile.runtime"):
        assert heavy not in loaded, f"{statement!r} imported {heavy}"


def test_the_compiler_loads_no_torch() -> None:
    loaded = _loaded_after("import nbcompile.compiler.driver")
    assert "torch" not in loaded and "nbcompile.runtime" not in loaded


def test_the_package_root_is_lazy() -> None:
    loaded = _loaded_after("import nbcompile; nbcompile.__version__")
    assert not any(name.startswith("nbcompile.") and name != "nbcompile._version" for name in loaded)


def _imported_layers(path: Path) -> set[str]:
    """The nbcompile subpackages/modules a source file imports, at any depth in the file."""
    layers = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] == "nbcompile" and len(parts) > 1:
                layers.add(parts[1])
    return layers


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_each_layer_imports_only_the_layers_below_it(layer: str) -> None:
    for path in sorted((PACKAGE / layer).rglob("*.py")):
        extra = _imported_layers(path) - ALLOWED[layer] - BASE
        assert not extra, f"{path.relative_to(PACKAGE.parent)} imports {sorted(extra)}"


def test_base_modules_import_no_layer() -> None:
    for name in sorted(BASE):
        path = PACKAGE / f"{name}.py"
        assert not (_imported_layers(path) - BASE), f"{path.name} imports a layer"
