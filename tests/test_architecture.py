"""The package's architecture: the dependency rule between layers, no import circle between
modules, and the light imports, checked by reading every import and in fresh interpreters
(README, "Architecture")."""

from __future__ import annotations

import ast
import graphlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
from example_cells import REPO

PACKAGE = REPO / "nbcompile"

#: Which layer may import which (besides the base modules).
ALLOWED = {
    "space": {"space"},
    "compiler": {"compiler", "space"},
    "runtime": {"runtime", "compiler", "space"},
    "nasbench": {"nasbench", "space"},
    "synthetic": {"synthetic", "nasbench", "compiler", "space"},
    "search": {"search", "nasbench", "space"},
    "bench": {"bench", "runtime", "compiler", "space"},
    "train": {"train", "runtime", "compiler", "nasbench", "space"},
    "proxies": {"proxies", "train", "runtime", "compiler", "nasbench", "space"},
    "cli": {"cli", "search", "bench", "train", "proxies", "synthetic", "runtime", "compiler", "nasbench", "space"},
}
#: The base modules at the package root: used by every layer, importing none.
BASE = {"errors", "fileio", "optional", "parallel", "tasks", "_version"}
#: The package's entry points at its root, and what they may import besides the base modules
#: (``__init__`` names its exports as strings and imports them on first use).
ENTRY_POINTS = {"__init__": set(), "__main__": {"cli"}}


def _loaded_after(statement: str) -> set[str]:
    code = f"import sys, json; {statement}; print(json.dumps(sorted(sys.modules)))"
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return set(json.loads(output))


@pytest.mark.parametrize("statement", ["import nbcompile.nasbench", "from nbcompile.nasbench import NASBench"])
def test_the_dataset_layer_loads_no_compiler_and_no_torch(statement: str) -> None:
    loaded = _loaded_after(statement)
    for heavy in ("black", "jinja2", "torch", "nbcompile.compiler", "nbcompile.runtime", "nbcompile.synthetic"):
        assert heavy not in loaded, f"{statement!r} imported {heavy}"


def test_the_upstream_api_and_its_spec_load_no_compiler_torch_or_plotting() -> None:
    loaded = _loaded_after("from nbcompile.nasbench import api; api.ModelSpec([[0, 1], [0, 0]], ['input', 'output'])")
    assert {"black", "jinja2", "torch", "matplotlib", "nbcompile.compiler"} & loaded == set()


def test_the_synthetic_naming_rule_loads_no_compiler_and_no_dataset() -> None:
    loaded = _loaded_after("import nbcompile.synthetic.naming")
    for heavy in ("numpy", "nbcompile.compiler", "nbcompile.nasbench"):
        assert heavy not in loaded, f"the naming rule imported {heavy}"


def test_the_compiler_loads_no_torch() -> None:
    loaded = _loaded_after("import nbcompile.compiler.driver")
    assert "torch" not in loaded and "nbcompile.runtime" not in loaded


def test_the_package_root_is_lazy() -> None:
    loaded = _loaded_after("import nbcompile; nbcompile.__version__")
    assert not any(name.startswith("nbcompile.") and name != "nbcompile._version" for name in loaded)


# --- reading the imports --------------------------------------------------------------------------
def _module_name(path: Path, root: Path) -> str:
    """``nbcompile/space/spec.py`` → ``nbcompile.space.spec``; a package's ``__init__`` → the package."""
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imported_names(path: Path) -> set[str]:
    """Every absolute dotted name a source file imports, at any depth (inside functions and
    ``if TYPE_CHECKING:`` blocks too): ``import a.b`` gives ``a.b``, ``from a import b`` gives
    ``a.b`` (a module, or a name defined in ``a``)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def import_graph(root: Path) -> dict[str, set[str]]:
    """Module → the modules of the package ``root`` that it imports (an imported name counts as
    an import of the innermost module that holds it)."""
    modules = {_module_name(path, root): path for path in sorted(root.rglob("*.py"))}
    graph = {}
    for module, path in modules.items():
        imported = set()
        for name in _imported_names(path):
            while name and name not in modules:
                name = name.rpartition(".")[0]
            if name and name != module:
                imported.add(name)
        graph[module] = imported
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle of ``graph`` (its modules in order, the first repeated last), or None."""
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as error:
        return list(error.args[1])
    return None


def _imported_layers(path: Path) -> set[str]:
    """The nbcompile subpackages/modules a source file imports, at any depth in the file."""
    return {name.split(".")[1] for name in _imported_names(path) if name.startswith("nbcompile.")}


def test_every_entry_at_the_package_root_is_a_layer_a_base_module_or_an_entry_point() -> None:
    entries = {path.stem for path in PACKAGE.glob("*.py")}
    entries |= {path.name for path in PACKAGE.iterdir() if (path / "__init__.py").is_file()}
    unclassified = entries - set(ALLOWED) - BASE - set(ENTRY_POINTS)
    assert not unclassified, f"add {sorted(unclassified)} to ALLOWED, BASE or ENTRY_POINTS"


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_each_layer_imports_only_the_layers_below_it(layer: str) -> None:
    for path in sorted((PACKAGE / layer).rglob("*.py")):
        extra = _imported_layers(path) - ALLOWED[layer] - BASE
        assert not extra, f"{path.relative_to(PACKAGE.parent)} imports {sorted(extra)}"


@pytest.mark.parametrize("name", sorted(BASE | set(ENTRY_POINTS)))
def test_root_modules_import_only_what_they_may(name: str) -> None:
    path = PACKAGE / f"{name}.py"
    extra = _imported_layers(path) - BASE - ENTRY_POINTS.get(name, set())
    assert not extra, f"{path.name} imports {sorted(extra)}"


def test_no_module_imports_itself_through_others() -> None:
    cycle = find_cycle(import_graph(PACKAGE))
    assert cycle is None, "import circle: " + " -> ".join(cycle or [])


def test_the_circle_check_finds_a_circle(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    (package / "sub").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "sub" / "__init__.py").write_text("from pkg.sub.b import B\n")
    (package / "sub" / "a.py").write_text("def f():\n    from pkg.sub import b\n")  # lazy, still a circle
    (package / "sub" / "b.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import pkg.sub.a\n")
    graph = import_graph(package)
    assert graph["pkg.sub.a"] == {"pkg.sub.b"} and graph["pkg.sub"] == {"pkg.sub.b"}
    assert set(find_cycle(graph) or []) == {"pkg.sub.a", "pkg.sub.b"}
    (package / "sub" / "b.py").write_text("B = 1\n")
    assert find_cycle(import_graph(package)) is None


def test_no_module_is_named_like_a_standard_library_module() -> None:
    """A module named like one of the standard library's (``io``) shadows it for a script run from
    inside its folder, and misleads readers."""
    names = {path.stem for path in PACKAGE.rglob("*.py")} | {path.name for path in PACKAGE.rglob("*") if path.is_dir()}
    assert not names & set(sys.stdlib_module_names)
