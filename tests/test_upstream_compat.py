"""nbcompile.nasbench as a drop-in for upstream's ``nasbench.api`` (issue 14), and the rough edges
around it: load feedback, optional dependencies checked first, hashes for ``compile``, fixtures
named as synthetic, the notebook's plot layout.

Upstream's behaviour is the reference's (nasbench101.md §1-§6); where a foreign spec object is
needed, ``UpstreamModelSpec`` below is a small fake of upstream's class (TF's nasbench is not
installed).
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import INCEPTION, cell_matrices, not_loading_lines

from nbcompile.cli import main
from nbcompile.errors import MissingDependencyError, SpecError
from nbcompile.space.enumeration import sample_cells
from nbcompile.synthetic.fixture import ONLY_108, write_fixture
from nbcompile.synthetic.naming import is_synthetic_dataset

# The notebook's constants (NASBench.ipynb), as a user's code has them.
INPUT, OUTPUT = "input", "output"
CONV3X3, CONV1X1, MAXPOOL3X3 = "conv3x3-bn-relu", "conv1x1-bn-relu", "maxpool3x3"
NOTEBOOK_MATRIX = [
    [0, 1, 1, 1, 0, 1, 0],
    [0, 0, 0, 0, 0, 0, 1],
    [0, 0, 0, 0, 0, 0, 1],
    [0, 0, 0, 0, 1, 0, 0],
    [0, 0, 0, 0, 0, 0, 1],
    [0, 0, 0, 0, 0, 0, 1],
    [0, 0, 0, 0, 0, 0, 0],
]
NOTEBOOK_OPS = [INPUT, CONV1X1, CONV3X3, CONV3X3, CONV3X3, MAXPOOL3X3, OUTPUT]
CHAIN = [[0, 1, 0], [0, 0, 1], [0, 0, 0]]


class UpstreamModelSpec:
    """A fake of upstream's ``ModelSpec`` (reference §1.1-1.2): it checks only the shape and the
    upper triangle, keeps any op name, and prunes to the vertices on an input→output path."""

    def __init__(self, matrix, ops, data_format="channels_last"):
        matrix = np.array(matrix)
        if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
            raise ValueError("matrix must be square")
        if matrix.shape[0] != len(ops):
            raise ValueError("length of ops must match matrix dimensions")
        if np.any(np.tril(matrix)):
            raise ValueError("matrix must be upper triangular")
        self.original_matrix, self.original_ops = matrix.copy(), list(ops)
        size = len(ops)
        forward, backward = {0}, {size - 1}
        for u in range(size):
            if u in forward:
                forward |= {v for v in range(u + 1, size) if matrix[u, v]}
        for u in reversed(range(size)):
            if u in backward:
                backward |= {v for v in range(u) if matrix[v, u]}
        kept = sorted(forward & backward)
        self.valid_spec = len(kept) >= 2
        self.matrix = matrix[np.ix_(kept, kept)] if self.valid_spec else None
        self.ops = [ops[v] for v in kept] if self.valid_spec else None
        self.data_format = data_format


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    from nbcompile.space.enumeration import EnumeratedCell
    from nbcompile.space.spec import ModelSpec as StrictSpec

    inception = StrictSpec(INCEPTION["matrix"], INCEPTION["ops"])
    canonical = inception.canonical()
    cells = [EnumeratedCell(inception.module_hash, canonical.pruned_matrix, canonical.pruned_ops), *sample_cells(12)]
    path = tmp_path_factory.mktemp("compat") / "compat_synthetic.tfrecord"
    write_fixture(path, cells, ONLY_108)
    return path


@pytest.fixture
def nasbench(dataset, tmp_path):
    from nbcompile.nasbench import api

    return api.NASBench(str(dataset), seed=5, cache_dir=tmp_path / "cache", progress=False)


def _run(*args: str):
    return CliRunner().invoke(main, list(args))


# --- the import surface ------------------------------------------------------------------------------
def test_upstream_import_line_works_as_upstreams_module() -> None:
    from nbcompile import errors
    from nbcompile.nasbench import ModelSpec, NASBench, OutOfDomainError, api

    assert api.NASBench is NASBench and api.ModelSpec is ModelSpec
    assert api.OutOfDomainError is OutOfDomainError is errors.OutOfDomainError
    import nbcompile.nasbench as package

    assert {"api", "ModelSpec", "NASBench", "OutOfDomainError"} <= set(package.__all__)
    assert {"ModelSpec", "NASBench", "OutOfDomainError"} <= set(api.__all__)


def test_importing_the_dataset_package_loads_no_compiler_torch_or_plotting() -> None:
    code = (
        "import sys\nfrom nbcompile.nasbench import api\napi.ModelSpec([[0, 1], [0, 0]], ['input', 'output'])\n"
        "print(sorted(m for m in ('black', 'jinja2', 'torch', 'matplotlib', 'nbcompile.compiler') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_notebook_code_runs_with_only_the_import_line_changed(dataset, tmp_path, capsys) -> None:
    """The notebook's first cells, as written for upstream, with `from nasbench import api` changed."""
    notebook = f"""
from nbcompile.nasbench import api
nasbench = api.NASBench({str(dataset)!r})
cell = api.ModelSpec(matrix={NOTEBOOK_MATRIX!r}, ops={NOTEBOOK_OPS!r})
data = nasbench.query(cell)
for k, v in data.items():
    print('%s: %s' % (k, str(v)))
print(nasbench.is_valid(cell), nasbench.get_budget_counters()[1])
fixed_stats, computed_stats = nasbench.get_metrics_from_spec(cell)
for unique_hash in nasbench.hash_iterator():
    fixed_metrics, computed_metrics = nasbench.get_metrics_from_hash(unique_hash)
    break
nasbench.reset_budget_counters()
"""
    cache = tmp_path / "cache"
    env = {"NBCOMPILE_CACHE_DIR": str(cache)}
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)
        exec(compile(notebook, "notebook", "exec"), {})
    out = capsys.readouterr().out.splitlines()
    assert "trainable_parameters: 2694282" in out and out[-1] == "True 108"
    assert [line.split(":")[0] for line in out if line[:1].isalpha()][:7] == [
        "module_adjacency",
        "module_operations",
        "trainable_parameters",
        "training_time",
        "train_accuracy",
        "validation_accuracy",
        "test_accuracy",
    ]


# --- ModelSpec --------------------------------------------------------------------------------------
def test_model_spec_takes_and_keeps_data_format() -> None:
    from nbcompile.nasbench import api
    from nbcompile.space.spec import ModelSpec as StrictSpec

    assert api.ModelSpec(NOTEBOOK_MATRIX, NOTEBOOK_OPS).data_format == "channels_last"  # upstream's default
    assert api.ModelSpec(NOTEBOOK_MATRIX, NOTEBOOK_OPS, data_format="channels_first").data_format == "channels_first"
    assert api.ModelSpec(NOTEBOOK_MATRIX, NOTEBOOK_OPS, "channels_first").data_format == "channels_first"
    assert StrictSpec(NOTEBOOK_MATRIX, NOTEBOOK_OPS, data_format="channels_first").data_format == "channels_first"
    # the format does not change the cell: same hash either way
    assert (
        api.ModelSpec(NOTEBOOK_MATRIX, NOTEBOOK_OPS, "channels_first").module_hash
        == StrictSpec(NOTEBOOK_MATRIX, NOTEBOOK_OPS).module_hash
    )


def test_op_outside_the_space_builds_for_the_api_and_is_strict_for_the_compiler(nasbench) -> None:
    from nbcompile.nasbench import api
    from nbcompile.space.spec import ModelSpec as StrictSpec

    odd = api.ModelSpec(CHAIN, [INPUT, "conv5x5", OUTPUT])  # upstream: builds
    assert odd.ops == [INPUT, "conv5x5", OUTPUT] and odd.is_valid() is False
    assert nasbench.is_valid(odd) is False
    with pytest.raises(api.OutOfDomainError, match=r"ops\[1\] = 'conv5x5' is not a NAS-Bench-101 op"):
        nasbench.query(odd)
    with pytest.raises(ValueError):  # upstream: ValueError from list.index in hash_spec
        odd.hash_spec()
    assert nasbench.get_budget_counters() == (0.0, 0)
    # upstream drops a pruned vertex's op unchecked: a cell whose odd op is cut off is valid
    cut = api.ModelSpec([[0, 1, 1], [0, 0, 0], [0, 0, 0]], [INPUT, "conv5x5", OUTPUT])
    assert cut.is_valid() and cut.ops == [INPUT, OUTPUT]
    # the compiler's spec keeps its strict error, and the CLI reports it on one line
    with pytest.raises(SpecError, match="conv5x5"):
        StrictSpec(CHAIN, [INPUT, "conv5x5", OUTPUT])


def test_foreign_upstream_specs_follow_upstreams_rules(nasbench) -> None:
    from nbcompile.nasbench import api

    odd = UpstreamModelSpec(CHAIN, [INPUT, "conv5x5", OUTPUT])
    assert nasbench.is_valid(odd) is False
    with pytest.raises(api.OutOfDomainError):
        nasbench.query(odd)
    inception = UpstreamModelSpec(NOTEBOOK_MATRIX, NOTEBOOK_OPS, data_format="channels_first")
    assert nasbench.is_valid(inception) and nasbench.query(inception)["trainable_parameters"] == 2_694_282
    assert nasbench.is_valid({"matrix": CHAIN, "ops": [INPUT, "conv5x5", OUTPUT]}) is False


def test_query_accepts_an_integral_float_epoch_count(dataset, tmp_path) -> None:
    from nbcompile.nasbench import api

    by_int = api.NASBench(str(dataset), seed=9, cache_dir=tmp_path, progress=False)
    by_float = api.NASBench(str(dataset), seed=9, cache_dir=tmp_path, progress=False)
    cell = api.ModelSpec(NOTEBOOK_MATRIX, NOTEBOOK_OPS)
    for epochs in (108.0, np.float64(108.0), np.int64(108)):
        assert _comparable(by_float.query(cell, epochs=epochs)) == _comparable(by_int.query(cell, epochs=108))
    assert by_float.query(cell, epochs=108.0, stop_halfway=True)["training_time"] > 0
    spent = by_float.get_budget_counters()[1]
    assert spent == 3 * 108 + 54 and type(spent) is int
    for bad in (108.5, True, "108", 12.0):
        with pytest.raises(api.OutOfDomainError, match="invalid number of epochs"):
            by_float.query(cell, epochs=bad)
    assert by_float.query_many([cell], epochs=108.0)["trainable_parameters"].tolist() == [2_694_282]


def _comparable(result: dict) -> dict:
    """Query results compare by value once the adjacency array is a list."""
    return {**result, "module_adjacency": result["module_adjacency"].tolist()}


def test_comparable_results_differ_when_values_do(nasbench) -> None:
    """(The helper above must not make unequal results compare equal.)"""
    first = nasbench.query(INCEPTION, reduce="mean")
    other = {**first, "test_accuracy": first["test_accuracy"] + 1}
    assert _comparable(first) != _comparable(other)


# --- read-only statistics ----------------------------------------------------------------------------
def test_statistics_views_refuse_every_write(nasbench) -> None:
    module_hash = next(iter(nasbench.hash_iterator()))
    fixed, computed = nasbench.fixed_statistics[module_hash], nasbench.computed_statistics[module_hash]
    writes = [
        lambda: nasbench.fixed_statistics.__setitem__(module_hash, {}),
        lambda: nasbench.computed_statistics.__delitem__(module_hash),
        lambda: fixed.__setitem__("trainable_parameters", 1),
        lambda: fixed.update(trainable_parameters=1),
        lambda: fixed.pop("trainable_parameters"),
        lambda: fixed["module_operations"].append("conv5x5"),
        lambda: fixed["module_operations"].__setitem__(0, "output"),
        lambda: computed.__setitem__(4, []),
        lambda: computed[108].append({}),
        lambda: computed[108][0].__setitem__("final_test_accuracy", 1.0),
        lambda: computed[108][0].setdefault("extra", 1.0),
    ]
    for write in writes:
        with pytest.raises(TypeError, match="read-only view of the dataset"):
            write()
    with pytest.raises(ValueError, match="read-only"):
        fixed["module_adjacency"][0, 1] = 0
    # nothing changed, and the values are what the copies say
    fresh_fixed, fresh_computed = nasbench.get_metrics_from_hash(module_hash)
    assert _comparable(nasbench.fixed_statistics[module_hash]) == _comparable(fresh_fixed)
    assert nasbench.computed_statistics[module_hash] == fresh_computed
    assert isinstance(fixed, dict) and isinstance(computed[108], list)
    assert json.loads(json.dumps(computed)) == json.loads(json.dumps(fresh_computed))


def test_copies_of_the_views_are_plain_and_writable(nasbench) -> None:
    module_hash = next(iter(nasbench.hash_iterator()))
    computed = copy.deepcopy(nasbench.computed_statistics[module_hash])
    computed[108][0]["final_test_accuracy"] = -1.0
    computed[108].append({})
    assert type(computed) is dict and type(computed[108]) is list
    fixed = copy.deepcopy(nasbench.fixed_statistics[module_hash])
    fixed["module_adjacency"][0, 0] = 5
    shallow = copy.copy(nasbench.fixed_statistics[module_hash])
    shallow["trainable_parameters"] = 0
    assert nasbench.computed_statistics[module_hash][108][0]["final_test_accuracy"] > 0
    assert nasbench.fixed_statistics[module_hash]["module_adjacency"][0, 0] == 0
    assert nasbench.fixed_statistics[module_hash]["trainable_parameters"] > 0


# --- visualize ----------------------------------------------------------------------------------------
def test_visualize_draws_every_pruned_vertex_and_edge(tmp_path) -> None:
    pytest.importorskip("matplotlib")
    import matplotlib.pyplot as plt
    from matplotlib.figure import Figure
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

    from nbcompile.nasbench import api

    # vertex 5 is cut off (it feeds nothing): 6 boxes and the 8 edges that remain
    matrix = [
        [0, 1, 1, 1, 0, 0, 0],
        [0, 0, 0, 0, 0, 0, 1],
        [0, 0, 0, 0, 0, 0, 1],
        [0, 0, 0, 0, 1, 0, 0],
        [0, 0, 0, 0, 0, 1, 1],
        [0, 0, 0, 0, 0, 0, 0],
        [0, 0, 0, 0, 0, 0, 0],
    ]
    figures_before = plt.get_fignums()
    spec = api.ModelSpec(matrix, [INPUT, CONV1X1, CONV3X3, CONV3X3, MAXPOOL3X3, "conv5x5", OUTPUT])
    figure = spec.visualize()
    assert isinstance(figure, Figure) and plt.get_fignums() == figures_before  # pyplot untouched
    axis = figure.axes[0]
    boxes = sorted(p.get_gid() for p in axis.patches if isinstance(p, FancyBboxPatch))
    edges = sorted(p.get_gid() for p in axis.patches if isinstance(p, FancyArrowPatch))
    assert boxes == [f"vertex-{v}" for v in range(6)]
    assert edges == sorted(["edge-0-1", "edge-0-2", "edge-0-3", "edge-1-5", "edge-2-5", "edge-3-4", "edge-4-5"])
    assert [t.get_text() for t in axis.texts] == [INPUT, CONV1X1, CONV3X3, CONV3X3, MAXPOOL3X3, OUTPUT]
    figure.savefig(tmp_path / "cell.png")
    assert (tmp_path / "cell.png").read_bytes()[:4] == b"\x89PNG"
    _, axes = plt.subplots()
    try:
        assert spec.visualize(axes) is axes.figure  # into the caller's axes
    finally:
        plt.close(axes.figure)


def test_edge_bends() -> None:
    from nbcompile.nasbench.drawing import edge_bend

    assert edge_bend(0, 1) == edge_bend(3, 4) == 0.0  # neighbours: straight
    assert edge_bend(0, 3) == pytest.approx(0.4) and edge_bend(0, 2) == pytest.approx(-0.25)
    assert edge_bend(0, 6) == pytest.approx(-0.85) and edge_bend(1, 6) == pytest.approx(0.7)


def test_visualize_errors(monkeypatch) -> None:
    from nbcompile.nasbench import api

    with pytest.raises(api.OutOfDomainError, match="nothing to draw"):
        api.ModelSpec([[0, 0], [0, 0]], [INPUT, OUTPUT]).visualize()
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if it were not installed
    with pytest.raises(
        MissingDependencyError, match=r'visualize\(\) needs matplotlib.*pip install "nbcompile\[plot\]"'
    ) as caught:
        api.ModelSpec(CHAIN, [INPUT, CONV3X3, OUTPUT]).visualize()
    assert isinstance(caught.value, ImportError)


# --- feedback on the first load ----------------------------------------------------------------------
def test_first_load_prints_a_line_at_start_and_end(dataset, tmp_path, capsys) -> None:
    from nbcompile.nasbench import api

    api.NASBench(str(dataset), cache_dir=tmp_path)  # stderr is not a terminal here
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith(f"nbcompile: loading {dataset} for the first time: converting it")
    assert lines[1].startswith("nbcompile: loaded 13 cells (39 records) in ") and lines[1].endswith(" s")
    api.NASBench(str(dataset), cache_dir=tmp_path)  # from the cache: quick, and quiet
    api.NASBench(str(dataset), cache=False, progress=False)  # asked to be quiet
    assert capsys.readouterr().err == ""


def test_progress_bar_only_where_it_can_be_drawn(dataset, tmp_path, capsys, monkeypatch) -> None:
    import rich.console

    from nbcompile.nasbench import api

    api.NASBench(str(dataset), cache=False, progress=True)  # forced: the bar's last frame is printed
    err = capsys.readouterr().err
    assert f"converting {dataset.name}" in err and "39/39" in err
    monkeypatch.setattr(rich.console, "_is_jupyter", lambda: True)
    monkeypatch.setitem(sys.modules, "ipywidgets", None)  # Jupyter without widgets: lines only, no warning
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        api.NASBench(str(dataset), cache=False)
    err = capsys.readouterr().err
    assert not seen and f"converting {dataset.name}" not in err and err.count("nbcompile: load") == 2


# --- optional dependencies, checked before any work ---------------------------------------------------
def test_search_plot_without_matplotlib_fails_first(dataset, tmp_path, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    out = tmp_path / "out"
    result = _run(
        "search",
        "--dataset",
        str(dataset),
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
    )
    assert result.exit_code == 2
    assert (
        result.stderr
        == 'nbcompile: error: --plot needs matplotlib, which is not installed: pip install "nbcompile[plot]"\n'
    )
    assert not out.exists() and not (tmp_path / "cache").exists()  # no search, not even a conversion


def test_to_dataframe_and_tf_reader_name_their_extra(nasbench, dataset, monkeypatch) -> None:
    from nbcompile.nasbench.tf_reader import convert_file_tf

    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(MissingDependencyError, match=r'to_dataframe\(\) needs pandas.*"nbcompile\[pandas\]"'):
        nasbench.to_dataframe()
    monkeypatch.setitem(sys.modules, "tensorflow", None)
    with pytest.raises(MissingDependencyError, match=r'TensorFlow reader needs tensorflow.*"nbcompile\[tf\]"'):
        convert_file_tf(dataset)


def test_every_extra_named_exists_in_pyproject() -> None:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+

    from nbcompile.optional import EXTRAS

    extras = tomllib.loads(Path(__file__).parent.parent.joinpath("pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    for module, extra in EXTRAS.items():
        assert any(
            requirement.startswith(module.replace("tensorflow", "tensorflow-cpu")) for requirement in extras[extra]
        )


# --- compile <module hash> ----------------------------------------------------------------------------
def test_compile_a_module_hash_from_the_dataset(dataset, nasbench, tmp_path) -> None:
    from nbcompile.runtime.loader import load_model_class
    from nbcompile.space.spec import ModelSpec as StrictSpec

    module_hash = StrictSpec(INCEPTION["matrix"], INCEPTION["ops"]).module_hash
    spec_file = tmp_path / "chain.json"
    spec_file.write_text(json.dumps({"matrix": CHAIN, "ops": [INPUT, CONV3X3, OUTPUT]}))
    result = _run(
        "compile",
        module_hash,
        str(spec_file),
        "--dataset",
        str(dataset),
        "--cache-dir",
        str(tmp_path / "c"),
        "-o",
        str(tmp_path / "models"),
    )
    assert result.exit_code == 0, result.output
    written = result.stdout.split()
    assert len(written) == 2 and module_hash[:12] in written[0]
    import torch

    with torch.device("meta"):  # shapes only: no weight initialisation
        network = load_model_class(written[0])()
    assert (
        sum(p.numel() for p in network.parameters()) == nasbench.fixed_statistics[module_hash]["trainable_parameters"]
    )


def test_compile_a_module_hash_needs_the_dataset(dataset, tmp_path) -> None:
    module_hash = "0123456789abcdef0123456789abcdef"
    result = _run("compile", module_hash, "-o", str(tmp_path / "models"))
    assert result.exit_code == 2
    assert (
        result.stderr == f"nbcompile: error: {module_hash}: no such file; "
        "to compile a module hash, name the dataset with --dataset FILE\n"
    )
    absent = _run(
        "compile", module_hash, "--dataset", str(dataset), "--cache-dir", str(tmp_path / "c"), "-o", str(tmp_path / "m")
    )
    assert absent.exit_code == 2 and not_loading_lines(absent.stderr) == [
        f"nbcompile: error: module hash '{module_hash}' is not in {dataset}"
    ]
    assert not (tmp_path / "models").exists() and not (tmp_path / "m").exists()


def test_info_bench_and_query_take_a_module_hash_from_the_dataset(dataset, tmp_path, monkeypatch) -> None:
    from nbcompile.space.spec import ModelSpec as StrictSpec

    module_hash = StrictSpec(INCEPTION["matrix"], INCEPTION["ops"]).module_hash
    cache = ["--cache-dir", str(tmp_path / "c")]
    info = _run("info", module_hash, "--dataset", str(dataset), *cache, "--json")
    assert info.exit_code == 0, info.output
    assert json.loads(info.stdout)["module_hash"] == module_hash
    bench_json = tmp_path / "bench.json"
    fast = ["--modes", "dynamic", "--batch-sizes", "1", "--warmup", "0", "--iters", "1", "--rounds", "1", "--no-peak"]
    small = ["--image-size", "8", "--stem-channels", "16", "--num-stacks", "1", "--cells-per-stack", "1"]
    bench = _run("bench", module_hash, "--dataset", str(dataset), *cache, *fast, *small, "--json", str(bench_json))
    assert bench.exit_code == 0, bench.output
    assert [row["cell"] for row in json.loads(bench_json.read_text())["results"]] == [module_hash]
    # a file named like a hash is read as a file, by every command
    monkeypatch.chdir(tmp_path)
    Path(module_hash).write_text(json.dumps({"matrix": CHAIN, "ops": [INPUT, CONV3X3, OUTPUT]}))
    query = _run("data", "query", str(dataset), module_hash, *cache, "--json")
    assert query.exit_code == 2 and "is valid but not in" in query.stderr and module_hash not in query.stderr


@pytest.mark.parametrize("command", ["info", "bench"])
def test_info_and_bench_need_the_dataset_for_a_module_hash(command, tmp_path) -> None:
    module_hash = "0123456789abcdef0123456789abcdef"
    result = _run(command, module_hash)
    verb = "report on" if command == "info" else command
    assert result.exit_code == 2 and result.stderr == (
        f"nbcompile: error: {module_hash}: no such file; "
        f"to {verb} a module hash, name the dataset with --dataset FILE\n"
    )


def test_is_module_hash() -> None:
    from nbcompile.space.graph import is_module_hash

    assert is_module_hash("0123456789abcdef0123456789abcdef")
    for text in ("0123456789ABCDEF0123456789abcdef", "0123456789abcdef0123456789abcde", "cell.json", "g" * 32):
        assert not is_module_hash(text)


# --- synthetic fixtures and search output -------------------------------------------------------------
def test_data_info_and_query_say_a_fixture_is_synthetic(dataset, tmp_path) -> None:
    from nbcompile.nasbench import api

    note = "note: this dataset is SYNTHETIC (a fixture): its accuracies are made up"
    cache = str(tmp_path / "cache")
    text = _run("data", "info", str(dataset), "--cache-dir", cache)
    assert text.exit_code == 0 and text.stdout.splitlines()[-1] == note
    assert json.loads(_run("data", "info", str(dataset), "--cache-dir", cache, "--json").stdout)["synthetic"] is True
    module_hash = next(iter(api.NASBench(str(dataset), cache_dir=cache).hash_iterator()))
    assert _run("data", "query", str(dataset), module_hash, "--cache-dir", cache).stdout.splitlines()[-1] == note
    assert (
        json.loads(_run("data", "query", str(dataset), module_hash, "--cache-dir", cache, "--json").stdout)["synthetic"]
        is True
    )
    # opened through its cache folder, the fixture is still recognised (from the manifest's source)
    folder = api.NASBench(str(dataset), cache_dir=cache).cache_folder
    assert is_synthetic_dataset(api.NASBench(str(folder)))
    assert _run("data", "info", str(folder)).stdout.splitlines()[-1] == note


def test_a_real_looking_name_is_not_called_synthetic(dataset, tmp_path) -> None:
    from nbcompile.nasbench import api

    real_name = tmp_path / "nasbench_only108.tfrecord"
    real_name.write_bytes(dataset.read_bytes())
    bench = api.NASBench(str(real_name), cache=False, progress=False)
    assert is_synthetic_dataset(bench) is False
    info = _run("data", "info", str(real_name), "--no-cache")
    assert info.exit_code == 0 and "SYNTHETIC" not in info.stdout
    with pytest.raises(Exception, match="must contain 'synthetic'"):
        write_fixture(tmp_path / "fake.tfrecord", sample_cells(1))


def test_search_summary_says_queries_are_a_mean_per_run() -> None:
    from nbcompile.search.experiment import format_summary

    row = {
        "algorithm": "random",
        "runs": 3,
        "mean_queries": 12.333,
        "final_test_mean": 0.9,
        "final_test_q25": 0.89,
        "final_test_q75": 0.91,
        "final_validation_mean": 0.92,
    }
    lines = format_summary([row]).splitlines()
    assert lines[0].split()[:3] == ["algorithm", "runs", "queries/run"]
    assert lines[1].split()[:3] == ["random", "3", "12"]
    assert "queries/run: mean number of queries per run" in lines


def _run_result(algorithm: str, times, valids, tests):
    from nbcompile.search.algorithms import SearchResult

    return SearchResult(algorithm, 0, [0.0, *times], [0.0, *valids], [0.0, *tests])


def test_plot_y_range_spans_the_data_not_the_starting_zero() -> None:
    from nbcompile.search.plots import y_range

    # one run: 0.5 from t=10 to 12 (1% of the axis), then 0.9/0.88 until the end at 200; the
    # padding is at least 0.002
    run = _run_result("random", [10.0, 12.0], [0.5, 0.9], [0.5, 0.88])
    assert y_range([run], 200.0) == pytest.approx((0.878, 0.902))
    many_lows = _run_result("random", [10.0, 100.0], [0.5, 0.9], [0.5, 0.88])  # 0.5 held for half the time
    assert y_range([many_lows], 200.0) == pytest.approx((0.5 - 0.05 * 0.4, 0.9 + 0.05 * 0.4))
    assert y_range([_run_result("random", [], [], [])], 10.0) == (0.0, 1.0)  # no query at all


def test_trajectories_in_the_notebooks_layout() -> None:
    pytest.importorskip("matplotlib")
    from matplotlib.colors import to_rgb

    from nbcompile.search.plots import mean_iqr_figure, trajectories_figure, y_range

    runs = [
        _run_result("random", [100.0, 300.0], [0.90, 0.93], [0.89, 0.925]),
        _run_result("random", [50.0, 400.0], [0.91, 0.94], [0.905, 0.93]),
        _run_result("evolution", [80.0, 200.0], [0.92, 0.95], [0.915, 0.94]),
    ]
    figure = trajectories_figure(runs, 500.0, synthetic=True)
    random_axis, evolution_axis = figure.axes
    assert [to_rgb(line.get_color()) for line in random_axis.lines] == [to_rgb("red"), to_rgb("blue")] * 2
    assert [line.get_label() for line in evolution_axis.lines] == ["validation", "test"]
    assert list(random_axis.lines[2].get_ydata()) == [0.0, 0.91, 0.94]  # the second run, validation
    assert random_axis.get_xscale() == "linear" and random_axis.get_xlim() == (0.0, 500.0)
    assert evolution_axis.get_ylim() == pytest.approx(y_range(runs, 500.0))
    assert "SYNTHETIC" in random_axis.get_title() and "red=validation, blue=test" in random_axis.get_title()
    mean = mean_iqr_figure(runs, 500.0, synthetic=False).axes[0]
    assert [to_rgb(line.get_color()) for line in mean.lines] == [to_rgb("red"), to_rgb("blue")]
    assert mean.lines[0].get_ydata()[-1] == pytest.approx((0.925 + 0.93) / 2) and "SYNTHETIC" not in mean.get_title()


@settings(max_examples=150, deadline=None)
@given(matrix=cell_matrices(), data=st.data())
def test_api_spec_agrees_with_the_compilers_and_only_unknown_ops_differ(matrix, data) -> None:
    """Property: on ops inside the space both specs are the same cell; an unknown op on one vertex
    makes the API spec invalid exactly when that vertex survives pruning (upstream's rule), while
    the compiler's spec refuses it outright."""
    from nbcompile.nasbench import api
    from nbcompile.space.spec import ModelSpec as StrictSpec

    size = len(matrix)
    interior = data.draw(
        st.lists(st.sampled_from([CONV3X3, CONV1X1, MAXPOOL3X3]), min_size=size - 2, max_size=size - 2)
    )
    ops = [INPUT, *interior, OUTPUT]
    lenient, strict = api.ModelSpec(matrix, ops), StrictSpec(matrix, ops)
    assert (lenient.pruned_matrix, lenient.pruned_ops, lenient.is_valid()) == (
        strict.pruned_matrix,
        strict.pruned_ops,
        strict.is_valid(),
    )
    if strict.is_valid():
        assert lenient.module_hash == strict.module_hash
    if size < 3:
        return
    vertex = data.draw(st.integers(1, size - 2))
    odd_ops = [*ops[:vertex], "conv5x5", *ops[vertex + 1 :]]
    odd = api.ModelSpec(matrix, odd_ops)
    assert odd.original_ops[vertex] == "conv5x5"
    assert odd.is_valid() == (strict.is_valid() and vertex not in strict.kept_vertices)
    with pytest.raises(SpecError):
        StrictSpec(matrix, odd_ops)
