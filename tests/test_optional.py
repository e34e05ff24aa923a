"""Optional dependencies (nbcompile.optional): a missing one is named with the extra that installs
it, and checked before any work."""

from __future__ import annotations

import sys

import pytest
from cli_runner import invoke
from example_cells import REPO

from nbcompile.errors import MissingDependencyError


def test_search_plot_without_matplotlib_fails_first(small_only108, tmp_path, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    out = tmp_path / "out"
    result = invoke(
        [
            "search",
            "--dataset",
            str(small_only108),
            "--cache-dir",
            str(tmp_path / "cache"),
            "--repeats",
            "1",
            "--budget",
            "5",
            "--budget-kind",
            "queries",
            "--out",
            str(out),
            "--plot",
            "--workers",
            "1",
        ]
    )
    assert result.exit_code == 2
    assert (
        result.stderr
        == 'nbcompile: error: --plot needs matplotlib, which is not installed: pip install "nbcompile[plot]"\n'
    )
    assert not out.exists() and not (tmp_path / "cache").exists()  # no search, not even a conversion


def test_to_dataframe_and_tf_reader_name_their_extra(nasbench, small_only108, monkeypatch) -> None:
    from nbcompile.nasbench.tf_reader import convert_file_tf

    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(MissingDependencyError, match=r'to_dataframe\(\) needs pandas.*"nbcompile\[pandas\]"'):
        nasbench.to_dataframe()
    monkeypatch.setitem(sys.modules, "tensorflow", None)
    with pytest.raises(MissingDependencyError, match=r'TensorFlow reader needs tensorflow.*"nbcompile\[tf\]"'):
        convert_file_tf(small_only108)


def test_every_extra_named_exists_in_pyproject() -> None:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+

    from nbcompile.optional import EXTRAS

    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    for module, extra in EXTRAS.items():
        assert any(
            requirement.startswith(module.replace("tensorflow", "tensorflow-cpu")) for requirement in extras[extra]
        )


def test_missing_optional_dependency_names_the_extra(monkeypatch):
    from nbcompile import optional
    from nbcompile.errors import MissingDependencyError

    monkeypatch.setitem(optional.EXTRAS, "surely_not_a_module_nbcompile", "ray")
    with pytest.raises(MissingDependencyError, match=r'--ray needs .*pip install "nbcompile\[ray\]"'):
        optional.require("surely_not_a_module_nbcompile", "--ray")
