"""The dataset layer: conversion, the cache, the NASBench API and the data CLI (small fixtures)."""

from __future__ import annotations

import base64
import json
import random
import types
from pathlib import Path

import numpy as np
import pytest
from nasbench_bytes import frame, frames
from strategies import INCEPTION, not_loading_lines

from nbcompile.errors import DatasetError, OutOfDomainError
from nbcompile.nasbench import NASBench, UnknownCellError
from nbcompile.nasbench import convert as convert_module
from nbcompile.nasbench.convert import convert_file, tables_from_records
from nbcompile.nasbench.records import Record, parse_record
from nbcompile.nasbench.tables import METRIC_FIELDS
from nbcompile.nasbench.writer import LAYOUTS
from nbcompile.space.enumeration import EnumeratedCell, sample_cells
from nbcompile.space.spec import ModelSpec
from nbcompile.synthetic.fixture import FULL, ONLY_108, fixture_records, write_fixture

INCEPTION_SPEC = ModelSpec(INCEPTION["matrix"], INCEPTION["ops"])


def _inception_cell() -> EnumeratedCell:
    canonical = INCEPTION_SPEC.canonical()
    return EnumeratedCell(INCEPTION_SPEC.module_hash, canonical.pruned_matrix, canonical.pruned_ops)


@pytest.fixture(scope="module")
def cells() -> list[EnumeratedCell]:
    return [_inception_cell(), *sample_cells(40)]


@pytest.fixture(scope="module")
def only108(tmp_path_factory, cells) -> Path:
    path = tmp_path_factory.mktemp("data") / "only108_synthetic.tfrecord"
    write_fixture(path, cells, ONLY_108)
    return path


@pytest.fixture(scope="module")
def full(tmp_path_factory, cells) -> Path:
    path = tmp_path_factory.mktemp("data") / "full_synthetic.tfrecord"
    write_fixture(path, cells[:12], FULL)
    return path


@pytest.fixture
def bench(only108, tmp_path) -> NASBench:
    return NASBench(only108, seed=3, cache_dir=tmp_path / "cache")


def _records(path: Path) -> list[Record]:
    return [parse_record(payload, index, offset) for index, (offset, payload) in enumerate(frames(path.read_bytes()))]


def _assert_tables_equal(a, b) -> None:
    for name in a.names():
        left, right = getattr(a, name), getattr(b, name)
        assert left.dtype == right.dtype and left.shape == right.shape, name
        assert np.array_equal(left, right, equal_nan=left.dtype.kind == "f"), name


# --- conversion ------------------------------------------------------------------------------------
@pytest.mark.parametrize("fixture_name", ["only108", "full"])
def test_conversion_equals_record_by_record_parsing(request, fixture_name) -> None:
    path = request.getfixturevalue(fixture_name)
    _assert_tables_equal(convert_file(path, workers=1), tables_from_records(_records(path)))


def test_tables_hold_what_the_records_say(full, cells) -> None:
    tables = convert_file(full, workers=1)
    records = _records(full)
    assert tables.num_cells == 12 and tables.num_records == len(records) == 12 * 4 * 3
    assert tables.epochs.tolist() == [4, 12, 36, 108] and tables.repeats.tolist() == [[3] * 4] * 12
    assert [h.decode() for h in tables.hashes] == [c.module_hash for c in cells[:12]]  # first-seen order
    row = 5
    cell = cells[row]
    size = len(cell.ops)
    assert tables.matrices[row, :size, :size].tolist() == [list(r) for r in cell.matrix]
    assert tables.cell_ops(row) == list(cell.ops) and tables.matrices[row, size:].sum() == 0
    # record (row 5, 36 epochs, repeat 1) is record number 5*12 + 2*3 + 1 in the file
    record = records[row * 12 + 2 * 3 + 1]
    halfway, final = record.metrics.evaluation_data[1:3]
    expected = [
        halfway.training_time,
        halfway.train_accuracy,
        halfway.validation_accuracy,
        halfway.test_accuracy,
        final.training_time,
        final.train_accuracy,
        final.validation_accuracy,
        final.test_accuracy,
    ]
    assert tables.metrics[row, 2, 1].tolist() == expected
    assert tables.parameters[0] == 2_694_282  # the Inception-like cell, reference §8


def test_chunks_and_workers_do_not_change_the_tables(only108, monkeypatch) -> None:
    reference = convert_file(only108, workers=1)
    monkeypatch.setattr(convert_module, "CHUNK_RECORDS", 7)  # a cell's repeats straddle chunks
    _assert_tables_equal(convert_file(only108, workers=2), reference)
    _assert_tables_equal(convert_file(only108, workers=1), reference)


def _write(path: Path, payloads: list[bytes]) -> Path:
    path.write_bytes(b"".join(frame(p) for p in payloads))
    return path


def test_every_fixture_layout_converts_to_the_same_tables(tmp_path, cells) -> None:
    """``nbcompile data fixture --layout``: other bytes, the same records."""
    reference = None
    for name in LAYOUTS:
        path = tmp_path / f"{name}_synthetic.tfrecord"
        write_fixture(path, cells[:4], FULL, layout=name)
        tables = convert_file(path, workers=1)
        _assert_tables_equal(tables, tables_from_records(_records(path)))
        if reference is None:
            reference = tables
        _assert_tables_equal(tables, reference)


def _bad_files(tmp_path: Path, cells) -> list[tuple[str, bytes, str]]:
    good = [LAYOUTS["empty-path"].payload(r) for r in fixture_records(cells[:2], ONLY_108)]
    framed = b"".join(frame(p) for p in good)
    second = len(frame(good[0]))  # byte offset of record 1

    def replace(payload: bytes) -> bytes:
        return frame(good[0]) + frame(payload) + b"".join(frame(p) for p in good[2:])

    fields = json.loads(good[1])

    def with_field(index: int, value) -> bytes:
        changed = list(fields)
        changed[index] = value
        return replace(json.dumps(changed).encode())

    corrupt_crc = bytearray(framed)
    corrupt_crc[second + 20] ^= 1  # a payload byte of record 1
    corrupt_length_crc = bytearray(framed)
    corrupt_length_crc[second + 9] ^= 1
    metrics = base64.b64decode(fields[4])
    return [
        ("truncated header", framed[: second + 5], f"record 1 at byte {second}: file ends inside the record header"),
        ("truncated payload", framed[:-10], "file ends inside the record"),
        ("bad payload crc", bytes(corrupt_crc), f"record 1 at byte {second}: bad CRC of the payload"),
        ("bad length crc", bytes(corrupt_length_crc), f"record 1 at byte {second}: bad CRC of the length field"),
        ("not json", replace(b"[not json"), f"record 1 at byte {second}: payload is not JSON"),
        ("four fields", replace(json.dumps(fields[:4]).encode()), "a JSON array of 5 fields, got 4"),
        ("bad base64", with_field(4, "@@@"), "metrics is not valid base64"),
        ("bad protobuf", with_field(4, base64.b64encode(metrics[:40]).decode()), "not a valid ModelMetrics protobuf"),
        ("unknown op", with_field(3, fields[3].replace("maxpool3x3", "avgpool3x3")), "unknown op 'avgpool3x3'"),
        ("matrix size", with_field(2, fields[2] + "0"), "does not match"),
        ("bad hash", with_field(0, "xyz"), "is not 32 lowercase hex digits"),
        ("bad epochs", with_field(1, "108"), "epochs '108' is not a positive integer"),
        (
            "inconsistent cell",
            replace(json.dumps([fields[0], *json.loads(good[3])[1:]]).encode()),
            "has a different adjacency",
        ),
        ("empty", b"", "the file is empty"),
    ]


def test_bad_files_name_the_record_and_offset_and_cache_nothing(tmp_path, cells) -> None:
    cache_dir = tmp_path / "cache"
    for name, data, message in _bad_files(tmp_path, cells):
        path = tmp_path / f"{name.replace(' ', '_')}.tfrecord"
        path.write_bytes(data)
        with pytest.raises(DatasetError) as caught:
            NASBench(path, cache_dir=cache_dir, workers=1)
        assert message in str(caught.value), name
        assert "\n" not in str(caught.value)
        assert not cache_dir.exists() or not any(cache_dir.iterdir()), name


# --- the cache -------------------------------------------------------------------------------------
def test_cache_is_written_once_then_memory_mapped(only108, tmp_path) -> None:
    first = NASBench(only108, cache_dir=tmp_path)
    assert first.converted and first.cache_folder.parent == tmp_path
    names = sorted(p.name for p in first.cache_folder.iterdir())
    assert names == sorted([f"{n}.npy" for n in first.tables.names()] + ["manifest.json"])
    second = NASBench(only108, cache_dir=tmp_path)
    assert not second.converted and second.cache_folder == first.cache_folder
    assert isinstance(second.tables.metrics.base, np.memmap) or isinstance(second.tables.metrics.base.base, np.memmap)
    _assert_tables_equal(second.tables, convert_file(only108, workers=1))
    assert len(list(tmp_path.iterdir())) == 1  # no temporary folder left
    direct = NASBench(first.cache_folder)  # a cache folder can be opened itself
    assert len(direct) == len(first)


def test_cache_key_follows_the_file(tmp_path, cells) -> None:
    path = tmp_path / "a_synthetic.tfrecord"
    write_fixture(path, cells[:3], ONLY_108)
    before = NASBench(path, cache_dir=tmp_path / "cache").cache_folder
    write_fixture(path, cells[3:6], ONLY_108)  # same size class, new content and mtime
    after = NASBench(path, cache_dir=tmp_path / "cache")
    assert after.converted and after.cache_folder != before
    assert set(after.hash_iterator()) == {c.module_hash for c in cells[3:6]}


def test_interrupted_cache_write_leaves_nothing_that_loads(only108, tmp_path, monkeypatch) -> None:
    calls = []
    real_save = np.save

    def failing_save(file, array, **kwargs):
        calls.append(file)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real_save(file, array, **kwargs)

    monkeypatch.setattr(np, "save", failing_save)
    with pytest.raises(KeyboardInterrupt):
        NASBench(only108, cache_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []
    monkeypatch.setattr(np, "save", real_save)
    assert NASBench(only108, cache_dir=tmp_path).converted


def test_default_cache_folder_is_xdg(only108, tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("NBCOMPILE_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert NASBench(only108).cache_folder.parent == tmp_path / "xdg" / "nbcompile"
    monkeypatch.setenv("NBCOMPILE_CACHE_DIR", str(tmp_path / "mine"))
    assert NASBench(only108).cache_folder.parent == tmp_path / "mine"


def test_no_cache_writes_nothing(only108, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("NBCOMPILE_CACHE_DIR", str(tmp_path / "cache"))
    bench = NASBench(only108, cache=False)
    assert bench.converted and bench.cache_folder is None and not (tmp_path / "cache").exists()


# --- the API ---------------------------------------------------------------------------------------
def test_query_returns_upstreams_keys_and_the_stored_cell(bench, cells) -> None:
    result = bench.query(INCEPTION_SPEC)
    assert list(result) == [
        "module_adjacency",
        "module_operations",
        "trainable_parameters",
        "training_time",
        "train_accuracy",
        "validation_accuracy",
        "test_accuracy",
    ]
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
    bench.get_metrics_from_hash(INCEPTION_SPEC.module_hash)  # free
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
    fixed, computed = bench.get_metrics_from_hash(INCEPTION_SPEC.module_hash)
    fixed["module_adjacency"][0, 1] = 7
    fixed["module_operations"].append("x")
    computed[108][0]["final_test_accuracy"] = -1.0
    again_fixed, again = bench.get_metrics_from_hash(INCEPTION_SPEC.module_hash)
    assert again_fixed["module_adjacency"][0, 1] != 7 and "x" not in again_fixed["module_operations"]
    assert again[108][0]["final_test_accuracy"] > 0
    assert bench.fixed_statistics[INCEPTION_SPEC.module_hash]["trainable_parameters"] == 2_694_282
    assert list(bench.computed_statistics) == list(bench.hash_iterator())


def test_hash_iterator_is_file_order(bench, only108) -> None:
    order = list(dict.fromkeys(r.module_hash for r in _records(only108)))
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
    row = frame[(frame.module_hash == INCEPTION_SPEC.module_hash) & (frame.repeat == 1)].iloc[0]
    runs = bench.get_metrics_from_spec(INCEPTION_SPEC)[1][108]
    assert row.final_test_accuracy == runs[1]["final_test_accuracy"] and row.trainable_parameters == 2_694_282


# --- the CLI ---------------------------------------------------------------------------------------
def _run(*args: str):
    from click.testing import CliRunner

    from nbcompile.cli import main

    return CliRunner().invoke(main, list(args))


def test_cli_convert_info_query(only108, tmp_path) -> None:
    cache = str(tmp_path / "cache")
    converted = _run("data", "convert", str(only108), "--cache-dir", cache)
    assert converted.exit_code == 0, converted.output
    assert "converted: 41 cells, 123 records" in converted.stderr
    again = _run("data", "convert", str(only108), "--cache-dir", cache)
    assert "found in the cache" in again.stderr and again.stdout == converted.stdout
    info = _run("data", "info", str(only108), "--cache-dir", cache, "--json")
    data = json.loads(info.stdout)
    assert data["cells"] == 41 and data["records"] == 123 and data["epochs"] == [108] and data["repeats"] == [3]
    bench = NASBench(only108, cache_dir=cache)
    valid = np.nanmean(bench.tables.metrics[:, 0, :, 6], axis=1)
    best = data["budgets"][0]["best_mean_validation"]
    assert best["validation_accuracy"] == pytest.approx(valid.max())
    assert best["module_hash"] == bench.tables.hashes[int(valid.argmax())].decode()
    assert "best mean test" in _run("data", "info", str(only108), "--cache-dir", cache).stdout
    spec_file = tmp_path / "inception.json"
    spec_file.write_text(json.dumps(INCEPTION))
    query = _run("data", "query", str(only108), str(spec_file), "--cache-dir", cache, "--json", "--mean")
    result = json.loads(query.stdout)
    assert result["trainable_parameters"] == 2_694_282 and result["module_hash"] == INCEPTION_SPEC.module_hash
    assert result["test_accuracy"] == pytest.approx(bench.query(INCEPTION_SPEC, reduce="mean")["test_accuracy"])
    by_hash = _run("data", "query", str(only108), INCEPTION_SPEC.module_hash, "--cache-dir", cache, "--seed", "1")
    assert by_hash.exit_code == 0 and "trainable_parameters  2,694,282" in by_hash.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["data", "query", "{data}", "0" * 32], "is not in"),
        (["data", "query", "{data}", "{spec}", "--epochs", "12"], "invalid number of epochs 12"),
        (["data", "info", "{missing}"], "no such file"),
        (["data", "info", "{bad}"], "bad CRC of the payload"),
    ],
)
def test_cli_bad_input(only108, tmp_path, args, message) -> None:
    bad = tmp_path / "bad.tfrecord"
    data = bytearray(only108.read_bytes())
    data[40] ^= 1
    bad.write_bytes(bytes(data))
    spec_file = tmp_path / "inception.json"
    spec_file.write_text(json.dumps(INCEPTION))
    names = {"data": str(only108), "spec": str(spec_file), "missing": str(tmp_path / "nope.tfrecord"), "bad": str(bad)}
    result = _run(*[a.format(**names) for a in args], "--cache-dir", str(tmp_path / "cache"))
    assert result.exit_code == 2, result.output
    # the first load's two progress lines may come first; the error is one line, the last
    assert message in result.stderr and not_loading_lines(result.stderr) == [result.stderr.strip().splitlines()[-1]]
    assert "Traceback" not in result.output


# --- the TensorFlow reader ---------------------------------------------------------------------------
@pytest.mark.parametrize("fixture_name", ["only108", "full"])
def test_tensorflow_reader_agrees(request, fixture_name) -> None:
    pytest.importorskip("tensorflow")
    from nbcompile.nasbench.tf_reader import convert_file_tf

    path = request.getfixturevalue(fixture_name)
    _assert_tables_equal(convert_file_tf(path), convert_file(path, workers=1))


def test_cells_with_fewer_runs_sample_only_those(tmp_path, cells) -> None:
    payloads = [LAYOUTS["empty-path"].payload(r) for r in fixture_records(cells[:2], ONLY_108)]
    path = _write(tmp_path / "missing_run.tfrecord", payloads[:5])  # cell 1 has 2 runs, not 3
    bench = NASBench(path, seed=0, cache_dir=tmp_path / "cache")
    assert bench.tables.repeats.ravel().tolist() == [3, 2]
    spec = bench.spec_of(cells[1].module_hash)
    runs = bench.get_metrics_from_spec(spec)[1][108]
    assert len(runs) == 2 and np.isnan(bench.tables.metrics[1, 0, 2]).all()
    seen = {bench.query(spec)["test_accuracy"] for _ in range(30)}
    assert seen == {r["final_test_accuracy"] for r in runs}
