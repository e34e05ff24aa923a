"""The NASBench API on small fixtures: query, the budget counters, repeats drawn like upstream's,
is_valid, errors, statistics, query_many, the DataFrame export, cells with missing runs, and the
feedback of a first load."""

from __future__ import annotations

import random
import sys
import types
import warnings

import numpy as np
import pytest
from cli_runner import assert_one_line_error, invoke
from dataset_files import records_in
from example_cells import INCEPTION, INCEPTION_HASH, QUERY_KEYS
from nasbench_bytes import frame

from nbcompile.errors import DatasetError, OutOfDomainError
from nbcompile.nasbench import NASBench, UnknownCellError
from nbcompile.nasbench.tables import METRIC_FIELDS
from nbcompile.nasbench.writer import LAYOUTS
from nbcompile.space.spec import ModelSpec
from nbcompile.synthetic.fixture import ONLY_108, fixture_records

INCEPTION_SPEC = ModelSpec(INCEPTION["matrix"], INCEPTION["ops"])


@pytest.fixture
def bench(only108, tmp_path) -> NASBench:
    return NASBench(only108, seed=3, cache_dir=tmp_path / "cache")


def test_query_returns_upstreams_keys_and_the_stored_cell(bench, cells) -> None:
    result = bench.query(INCEPTION_SPEC)
    assert tuple(result) == QUERY_KEYS
    assert result["module_adjacency"].dtype == np.int8
    assert result["module_adjacency"].tolist() == [list(r) for r in cells[0].matrix]
    assert result["module_operations"] == list(cells[0].ops) != INCEPTION["ops"]
    assert result["trainable_parameters"] == 2_694_282
    _fixed, computed = bench.get_metrics_from_spec(INCEPTION_SPEC)
    finals = [run["final_test_accuracy"] for run in computed[108]]
    assert result["test_accuracy"] in finals and list(computed) == [108] and len(finals) == 3
    assert set(computed[108][0]) == set(METRIC_FIELDS)


def test_budget_counters_and_halfway(bench) -> None:
    full_run = bench.query(INCEPTION_SPEC, reduce="mean")
    half = bench.query(INCEPTION_SPEC, stop_halfway=True, reduce="mean")
    computed = bench.get_metrics_from_spec(INCEPTION_SPEC)[1][108]
    assert half["training_time"] == pytest.approx(np.mean([r["halfway_training_time"] for r in computed]))
    assert half["validation_accuracy"] == pytest.approx(np.mean([r["halfway_validation_accuracy"] for r in computed]))
    assert bench.get_budget_counters() == (pytest.approx(full_run["training_time"] + half["training_time"]), 108 + 54)
    bench.get_metrics_from_hash(INCEPTION_HASH)  # free
    assert bench.get_budget_counters()[1] == 162
    bench.reset_budget_counters()
    assert bench.get_budget_counters() == (0.0, 0)


def test_repeats_come_from_a_private_rng_like_upstreams(only108, tmp_path) -> None:
    bench = NASBench(only108, seed=11, cache_dir=tmp_path)
    runs = bench.get_metrics_from_spec(INCEPTION_SPEC)[1][108]
    state = random.getstate()
    picked = [
        [r["final_test_accuracy"] for r in runs].index(bench.query(INCEPTION_SPEC)["test_accuracy"]) for _ in range(40)
    ]
    assert random.getstate() == state  # the global random module is untouched
    upstream = random.Random(11)  # upstream: random.seed(seed); random.randint(0, num_repeats - 1)
    assert picked == [upstream.randint(0, 2) for _ in range(40)]
    assert len(set(picked)) == 3


def test_is_valid_fixes_upstreams_bugs(bench) -> None:
    eight = np.zeros((8, 8), dtype=int)
    for v in range(7):
        eight[v, v + 1] = 1
    big = ModelSpec(eight, ["input"] + ["conv3x3-bn-relu"] * 6 + ["output"])
    assert bench.is_valid(big) is False  # upstream: TypeError
    float_matrix = np.array(INCEPTION["matrix"], dtype=float)
    assert bench.query(ModelSpec(float_matrix, INCEPTION["ops"]))["trainable_parameters"] == 2_694_282
    upstream_like = types.SimpleNamespace(
        original_matrix=np.array(INCEPTION["matrix"]), original_ops=INCEPTION["ops"], matrix=None, ops=None
    )
    assert bench.is_valid(upstream_like) and bench.query(upstream_like)["trainable_parameters"] == 2_694_282
    assert bench.query({"matrix": INCEPTION["matrix"], "ops": INCEPTION["ops"]})["trainable_parameters"] == 2_694_282


def test_errors(bench) -> None:
    with pytest.raises(OutOfDomainError, match=r"invalid number of epochs 12, must be one of \[108\]"):
        bench.query(ModelSpec([[0, 0], [0, 0]], ["input", "output"]), epochs=12)  # epochs are checked first
    with pytest.raises(OutOfDomainError, match="not reachable"):
        bench.query(ModelSpec([[0, 0], [0, 0]], ["input", "output"]))
    absent = ModelSpec([[0, 1, 1], [0, 0, 1], [0, 0, 0]], ["input", "maxpool3x3", "output"])
    if absent.module_hash in bench:
        absent = ModelSpec([[0, 1, 1], [0, 0, 1], [0, 0, 0]], ["input", "conv1x1-bn-relu", "output"])
    with pytest.raises(KeyError, match=absent.module_hash) as caught:
        bench.query(absent)
    assert isinstance(caught.value, UnknownCellError) and "\n" not in str(caught.value)
    with pytest.raises(UnknownCellError):
        bench.get_metrics_from_hash("0" * 32)
    with pytest.raises(ValueError, match="reduce"):
        bench.query(INCEPTION_SPEC, reduce="median")
    assert bench.get_budget_counters() == (0.0, 0)


def test_returned_statistics_are_copies(bench) -> None:
    fixed, computed = bench.get_metrics_from_hash(INCEPTION_HASH)
    fixed["module_adjacency"][0, 1] = 7
    fixed["module_operations"].append("x")
    computed[108][0]["final_test_accuracy"] = -1.0
    again_fixed, again = bench.get_metrics_from_hash(INCEPTION_HASH)
    assert again_fixed["module_adjacency"][0, 1] != 7 and "x" not in again_fixed["module_operations"]
    assert again[108][0]["final_test_accuracy"] > 0
    assert bench.fixed_statistics[INCEPTION_HASH]["trainable_parameters"] == 2_694_282
    assert list(bench.computed_statistics) == list(bench.hash_iterator())


def test_hash_iterator_is_file_order(bench, only108) -> None:
    order = list(dict.fromkeys(r.module_hash for r in records_in(only108)))
    assert list(bench.hash_iterator()) == order and len(bench) == 41


def test_query_many_matches_query(bench) -> None:
    hashes = list(bench.hash_iterator())[:10]
    specs = [bench.spec_of(h) for h in hashes]
    many = bench.query_many(specs, reduce="mean")
    assert many["module_hash"].tolist() == hashes
    for i, spec in enumerate(specs):
        one = bench.query(spec, reduce="mean")
        assert many["test_accuracy"][i] == pytest.approx(one["test_accuracy"])
        assert many["trainable_parameters"][i] == one["trainable_parameters"]
    spent = bench.get_budget_counters()
    assert spent[0] == pytest.approx(2 * many["training_time"].sum()) and spent[1] == 20 * 108
    sampled = bench.query_many(hashes)  # hashes work too; one sampled repeat each
    for i, h in enumerate(hashes):
        runs = bench.get_metrics_from_hash(h)[1][108]
        assert sampled["validation_accuracy"][i] in [r["final_validation_accuracy"] for r in runs]


def test_dataframe_export(bench) -> None:
    pd = pytest.importorskip("pandas")
    frame = bench.to_dataframe()
    assert isinstance(frame, pd.DataFrame) and len(frame) == 41 * 3
    assert set(METRIC_FIELDS) <= set(frame.columns)
    row = frame[(frame.module_hash == INCEPTION_HASH) & (frame.repeat == 1)].iloc[0]
    runs = bench.get_metrics_from_spec(INCEPTION_SPEC)[1][108]
    assert row.final_test_accuracy == runs[1]["final_test_accuracy"] and row.trainable_parameters == 2_694_282


def test_which_epoch_budgets_a_file_has(small_only108, full, missing_runs, tmp_path) -> None:
    """A multi-fidelity search needs the full file: the API says which of the four budgets are missing."""
    only108 = NASBench(small_only108, cache_dir=tmp_path, progress=False)
    assert only108.missing_epochs() == [4, 12, 36] and not only108.has_all_epochs
    assert only108.missing_epochs([108]) == []
    every = NASBench(full, cache_dir=tmp_path, progress=False)
    assert every.missing_epochs() == [] and every.has_all_epochs
    assert every.missing_epochs((36, 200, 1)) == [1, 200]
    two = NASBench(missing_runs[0], cache_dir=tmp_path, progress=False)  # 4 and 108 epochs
    assert two.missing_epochs() == [12, 36] and not two.has_all_epochs


# --- cells with fewer runs, or none at a budget ---------------------------------------------------


def test_cells_with_fewer_runs_sample_only_those(tmp_path, cells) -> None:
    payloads = [LAYOUTS["empty-path"].payload(r) for r in fixture_records(cells[:2], ONLY_108)]
    path = tmp_path / "missing_run.tfrecord"
    path.write_bytes(b"".join(frame(p) for p in payloads[:5]))  # cell 1 has 2 runs, not 3
    bench = NASBench(path, seed=0, cache_dir=tmp_path / "cache")
    assert bench.tables.repeats.ravel().tolist() == [3, 2]
    spec = bench.spec_of(cells[1].module_hash)
    runs = bench.get_metrics_from_spec(spec)[1][108]
    assert len(runs) == 2 and np.isnan(bench.tables.metrics[1, 0, 2]).all()
    seen = {bench.query(spec)["test_accuracy"] for _ in range(30)}
    assert seen == {r["final_test_accuracy"] for r in runs}


def test_query_mean_of_a_cell_without_runs_names_cell_and_budget(missing_runs, tmp_path) -> None:
    path, cells = missing_runs
    dataset = NASBench(path, cache_dir=tmp_path, workers=1)
    spec = dataset.spec_of(cells[0].module_hash)
    for reduce in (None, "mean"):
        with pytest.raises(DatasetError, match=f"cell {cells[0].module_hash} has no run at 4 epochs"):
            dataset.query(spec, 4, reduce=reduce)
        with pytest.raises(DatasetError, match="has no run at 4 epochs"):
            dataset.query_many([cells[1].module_hash, cells[0].module_hash], 4, reduce=reduce)
    assert dataset.query(spec, 108, reduce="mean")["validation_accuracy"] > 0
    many = dataset.query_many([c.module_hash for c in cells[1:4]], 108, reduce="mean")
    single = [
        dataset.query(dataset.spec_of(c.module_hash), 108, reduce="mean")["validation_accuracy"] for c in cells[1:4]
    ]
    assert many["validation_accuracy"].tolist() == single
    result = invoke(
        ["data", "query", str(path), cells[0].module_hash, "--epochs", "4", "--mean", "--cache-dir", str(tmp_path)]
    )
    assert_one_line_error(result, "has no run at 4 epochs")


# --- feedback on the first load -------------------------------------------------------------------


def test_first_load_prints_a_line_at_start_and_end(small_only108, tmp_path, capsys) -> None:
    from nbcompile.nasbench import api

    api.NASBench(str(small_only108), cache_dir=tmp_path)  # stderr is not a terminal here
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith(f"nbcompile: loading {small_only108} for the first time: converting it")
    assert lines[1].startswith("nbcompile: loaded 12 cells (36 records) in ") and lines[1].endswith(" s")
    api.NASBench(str(small_only108), cache_dir=tmp_path)  # from the cache: quick, and quiet
    api.NASBench(str(small_only108), cache=False, progress=False)  # asked to be quiet
    assert capsys.readouterr().err == ""


def test_progress_bar_only_where_it_can_be_drawn(small_only108, tmp_path, capsys, monkeypatch) -> None:
    import rich.console

    from nbcompile.nasbench import api

    api.NASBench(str(small_only108), cache=False, progress=True)  # forced: the bar's last frame is printed
    err = capsys.readouterr().err
    assert f"converting {small_only108.name}" in err and "36/36" in err
    monkeypatch.setattr(rich.console, "_is_jupyter", lambda: True)
    monkeypatch.setitem(sys.modules, "ipywidgets", None)  # Jupyter without widgets: lines only, no warning
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        api.NASBench(str(small_only108), cache=False)
    err = capsys.readouterr().err
    assert not seen and f"converting {small_only108.name}" not in err and err.count("nbcompile: load") == 2
