"""``nbcompile data export``: every row recomputed from an independent read of the dataset file,
and ``--mean`` the mean of the rows."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
from cli_runner import assert_one_line_error, invoke
from reference_reader import METRICS, read

pq = pytest.importorskip("pyarrow.parquet")

KEY = ("module_hash", "epochs")


def export(dataset: Path, out: Path, tmp_path: Path, *extra: str) -> dict[str, list]:
    result = invoke(["data", "export", str(dataset), "--out", str(out), "--cache-dir", str(tmp_path / "c"), *extra])
    assert result.exit_code == 0, result.stderr
    return pq.read_table(out).to_pydict()


def same(a: float, b: float) -> bool:
    return (np.isnan(a) and np.isnan(b)) or a == b


@pytest.mark.parametrize("fixture", ["full", "missing_runs"])
def test_every_run_is_a_row_as_the_file_holds_it(fixture: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    dataset = request.getfixturevalue(fixture)
    dataset = dataset[0] if isinstance(dataset, tuple) else dataset
    columns = export(dataset, tmp_path / "runs.parquet", tmp_path)
    assert list(columns) == [*KEY, "repeat", "adjacency", "ops", "trainable_parameters", *METRICS]
    expected = []  # (hash, epochs, repeat, adjacency, ops, parameters, *metrics) in the file's cell order
    for module_hash, cell in read(dataset.read_bytes()).items():
        for epochs in sorted(cell.runs):
            for repeat, values in enumerate(cell.runs[epochs]):
                expected.append(
                    (module_hash, epochs, repeat, cell.adjacency, ",".join(cell.ops), cell.parameters, *values)
                )
    rows = list(zip(*columns.values()))
    assert len(rows) == len(expected)
    for row, want in zip(rows, expected):
        assert row[:6] == want[:6] and all(same(a, b) for a, b in zip(row[6:], want[6:])), (row, want)
    if fixture == "missing_runs":  # a budget without runs has no row; NaN accuracies stay NaN
        assert any(np.isnan(v) for v in columns["final_test_accuracy"])


def test_the_mean_rows_are_the_means_of_the_runs(missing_runs: tuple, tmp_path: Path) -> None:
    dataset = missing_runs[0]
    runs = export(dataset, tmp_path / "runs.parquet", tmp_path)
    means = export(dataset, tmp_path / "mean.parquet", tmp_path, "--mean")
    assert list(means) == [*KEY, "repeats", "adjacency", "ops", "trainable_parameters", *METRICS]
    grouped: dict[tuple, list[int]] = defaultdict(list)
    for index, key in enumerate(zip(*(runs[name] for name in KEY))):
        grouped[key].append(index)
    assert list(zip(*(means[name] for name in KEY))) == list(grouped)  # the same order, once each
    for row, indices in enumerate(grouped.values()):
        assert means["repeats"][row] == len(indices)
        for name in ("adjacency", "ops", "trainable_parameters"):
            assert means[name][row] == runs[name][indices[0]]
        for name in METRICS:
            assert same(means[name][row], float(np.mean([runs[name][i] for i in indices]))), name


def test_bad_output_is_refused_before_the_dataset_is_read(full: Path, tmp_path: Path, monkeypatch) -> None:
    out = tmp_path / "t.csv"
    args = ["data", "export", str(full), "--cache-dir", str(tmp_path / "c")]
    assert_one_line_error(invoke([*args, "--out", str(out)]), "--out", ".parquet")
    import importlib.util

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "pyarrow" else real_find_spec(name, *a)
    )
    assert_one_line_error(invoke([*args, "--out", str(tmp_path / "t.parquet")]), "pyarrow", "nbcompile[parquet]")
    assert not (tmp_path / "c").exists() and not list(tmp_path.glob("*.parquet"))
