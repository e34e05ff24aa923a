"""nbcompile.load_model_class / load_model: importing generated files by path, module or name."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest
import torch
from example_cells import GENERATED, INCEPTION, PER_STACK_HASH, PER_STACK_TRUNCATION, REPO, TWO_VERTEX
from strategies import generated_module, write_generated
from torch import nn

import nbcompile
import nbcompile.runtime.loader

#: The golden file of examples/per_stack_truncation.json.
GOLDEN = GENERATED / "nb101_78e264120b42.py"
GOLDEN_HASH = PER_STACK_HASH

SMALL_CONFIG = {"stem_channels": 6, "num_stacks": 2, "cells_per_stack": 1}


@pytest.mark.parametrize("as_type", [str, Path], ids=["str", "Path"])
def test_load_by_path(as_type: type) -> None:
    """A generated file loads by str or Path, without being on sys.path."""
    network_class = nbcompile.load_model_class(as_type(GOLDEN))
    assert issubclass(network_class, nn.Module) and network_class.__name__ == "Network"
    module = generated_module(network_class)
    assert module.MODULE_HASH == GOLDEN_HASH
    assert Path(module.__file__).resolve() == GOLDEN.resolve()


def test_load_by_relative_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """A relative path is resolved against the working directory."""
    monkeypatch.chdir(REPO)
    network_class = nbcompile.load_model_class("generated/nb101_78e264120b42.py")
    assert generated_module(network_class).MODULE_HASH == GOLDEN_HASH


def test_load_by_module_object(tmp_path: Path) -> None:
    """A module object is used as is."""
    path = write_generated(TWO_VERTEX, tmp_path, **SMALL_CONFIG)
    module = nbcompile.runtime.loader.import_generated(path)
    assert nbcompile.load_model_class(module) is module.Network


def test_load_by_importable_module_name(monkeypatch: pytest.MonkeyPatch) -> None:
    """A dotted module name is imported normally (here the repository's ``generated`` package)."""
    monkeypatch.syspath_prepend(str(REPO))
    monkeypatch.delitem(sys.modules, "generated.nb101_78e264120b42", raising=False)
    network_class = nbcompile.load_model_class("generated.nb101_78e264120b42")
    assert network_class.__module__ == "generated.nb101_78e264120b42"
    assert network_class is importlib.import_module("generated.nb101_78e264120b42").Network
    # ...and the imported module object itself is accepted too.
    assert nbcompile.load_model_class(sys.modules["generated.nb101_78e264120b42"]) is network_class


def test_same_file_name_in_different_folders(tmp_path: Path) -> None:
    """Two ``model.py`` files in different folders load as two distinct classes and modules."""
    path_a = write_generated(INCEPTION, tmp_path / "a", **SMALL_CONFIG)
    path_b = write_generated(PER_STACK_TRUNCATION, tmp_path / "b", **SMALL_CONFIG)
    assert path_a.name == path_b.name == "model.py"
    class_a = nbcompile.load_model_class(path_a)
    class_b = nbcompile.load_model_class(path_b)
    assert class_a is not class_b
    assert class_a.__module__ != class_b.__module__
    # Loading b did not replace a: each module keeps its own cell.
    assert generated_module(class_a).MODULE_HASH == nbcompile.ModelSpec(**INCEPTION).module_hash
    assert generated_module(class_b).MODULE_HASH == nbcompile.ModelSpec(**PER_STACK_TRUNCATION).module_hash
    keys_a, keys_b = set(class_a().state_dict()), set(class_b().state_dict())
    assert keys_a != keys_b
    assert "stack0_cell0.op5.conv.weight" not in keys_a  # vertex 5 of Inception is a max-pool
    assert "stack0_cell0.op4.conv.weight" in keys_a


@pytest.mark.parametrize("as_type", [str, Path], ids=["str", "Path"])
def test_missing_file_raises_file_not_found(tmp_path: Path, as_type: type) -> None:
    """A .py path that does not exist is a FileNotFoundError, not an import of some module."""
    with pytest.raises(FileNotFoundError):
        nbcompile.load_model_class(as_type(tmp_path / "missing" / "nb101_000000000000.py"))


def test_directory_raises_file_not_found(tmp_path: Path) -> None:
    """A folder is not a generated file."""
    with pytest.raises(FileNotFoundError):
        nbcompile.load_model_class(tmp_path)


def test_file_without_network_raises_import_error(tmp_path: Path) -> None:
    """A Python file that defines no Network class is rejected with ImportError."""
    path = tmp_path / "not_a_model.py"
    path.write_text("VALUE = 1\n", encoding="utf-8")
    with pytest.raises(ImportError, match="no Network class"):
        nbcompile.load_model_class(path)


def test_network_that_is_not_a_module_raises_import_error(tmp_path: Path) -> None:
    """``Network`` must be an nn.Module subclass, not any object of that name."""
    path = tmp_path / "fake_model.py"
    path.write_text("class Network:\n    pass\n", encoding="utf-8")
    with pytest.raises(ImportError):
        nbcompile.load_model_class(path)


def test_failed_import_leaves_no_module_behind(tmp_path: Path) -> None:
    """A file that fails to execute raises its error and is not left in sys.modules."""
    path = tmp_path / "broken.py"
    path.write_text("raise RuntimeError('boom')\n", encoding="utf-8")
    before = set(sys.modules)
    with pytest.raises(RuntimeError, match="boom"):
        nbcompile.load_model_class(path)
    assert set(sys.modules) == before


def test_load_model_passes_kwargs(tmp_path: Path) -> None:
    """load_model forwards keyword arguments to the Network constructor."""
    path = write_generated(TWO_VERTEX, tmp_path, **SMALL_CONFIG)
    model = nbcompile.load_model(path, num_labels=5)
    assert model.classifier.out_features == 5
    assert model(torch.randn(2, 3, 8, 8)).shape == (2, 5)
    default = nbcompile.load_model(path)
    assert default.classifier.out_features == 10
    with pytest.raises(TypeError):
        nbcompile.load_model(path, no_such_option=1)


def test_loaded_model_can_be_pickled(tmp_path: Path) -> None:
    """A whole model (not just its state_dict) survives torch.save / torch.load."""
    import io

    path = write_generated(TWO_VERTEX, tmp_path, **SMALL_CONFIG)
    model = nbcompile.load_model(path).eval()
    buffer = io.BytesIO()
    torch.save(model, buffer)
    buffer.seek(0)
    restored = torch.load(buffer, weights_only=False)
    x = torch.randn(1, 3, 8, 8)
    torch.testing.assert_close(restored(x), model(x))


def test_model_from_earlier_load_still_pickles(tmp_path: Path) -> None:
    """Loading a file a second time must not break pickling of models from the first load."""
    import io

    path = write_generated(TWO_VERTEX, tmp_path, **SMALL_CONFIG)
    first = nbcompile.load_model(path)
    nbcompile.load_model(path)  # e.g. another part of the program loads the same file
    torch.save(first, io.BytesIO())


def test_regenerated_file_loads_afresh(tmp_path: Path) -> None:
    """Same path, new content: the new class is returned, not the cached one."""
    path = write_generated(TWO_VERTEX, tmp_path, **SMALL_CONFIG)
    first = nbcompile.load_model_class(path)
    assert nbcompile.load_model_class(path) is first
    path.write_text(path.read_text().replace("num_labels: int = 10", "num_labels: int = 7"))
    assert nbcompile.load_model_class(path)().classifier.out_features == 7


def test_missing_path_without_py_suffix_raises_file_not_found(tmp_path: Path) -> None:
    """A Path object (clearly a path, not a module name) that does not exist."""
    with pytest.raises(FileNotFoundError):
        nbcompile.load_model_class(tmp_path / "missing" / "model")
