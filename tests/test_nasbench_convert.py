"""Converting a dataset file to tables: the same tables as parsing record by record, whatever the
chunks, workers, byte layout and order of the records (checked against an independent reader);
bad files refused naming the record and its offset; memory that grows with the metrics table only;
TensorFlow's own reader agrees."""

from __future__ import annotations

import base64
import json
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import reference_reader as reference
from dataset_files import assert_tables_equal, records_in, write_many_cells
from nasbench_bytes import frame, frames

from nbcompile.errors import DatasetError
from nbcompile.nasbench import NASBench
from nbcompile.nasbench import convert as convert_module
from nbcompile.nasbench.cache import table_problem
from nbcompile.nasbench.convert import convert_file, tables_from_records
from nbcompile.nasbench.writer import LAYOUTS
from nbcompile.synthetic.fixture import FULL, ONLY_108, fixture_records, write_fixture


@pytest.mark.parametrize("fixture_name", ["only108", "full"])
def test_conversion_equals_record_by_record_parsing(request, fixture_name) -> None:
    path = request.getfixturevalue(fixture_name)
    assert_tables_equal(convert_file(path, workers=1), tables_from_records(records_in(path)))


def test_tables_hold_what_the_records_say(full, cells) -> None:
    tables = convert_file(full, workers=1)
    records = records_in(full)
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
    assert tables.parameters[0] == 2_694_282  # the Inception-like cell, as in the notebook


def test_chunks_and_workers_do_not_change_the_tables(only108, monkeypatch) -> None:
    reference = convert_file(only108, workers=1)
    monkeypatch.setattr(convert_module, "CHUNK_RECORDS", 7)  # a cell's repeats straddle chunks
    assert_tables_equal(convert_file(only108, workers=2), reference)
    assert_tables_equal(convert_file(only108, workers=1), reference)


def test_every_fixture_layout_converts_to_the_same_tables(tmp_path, cells) -> None:
    """``nbcompile data fixture --layout``: other bytes, the same records."""
    reference = None
    for name in LAYOUTS:
        path = tmp_path / f"{name}_synthetic.tfrecord"
        write_fixture(path, cells[:4], FULL, layout=name)
        tables = convert_file(path, workers=1)
        assert_tables_equal(tables, tables_from_records(records_in(path)))
        if reference is None:
            reference = tables
        assert_tables_equal(tables, reference)


def _assert_reads_like_the_reference(tables, data: bytes) -> None:
    """The tables hold what tests/reference_reader.py (no code shared with nbcompile) finds in ``data``:
    cells in first-seen order, budgets ascending, runs in file order, NaN where a run is missing."""
    cells = reference.read(data)
    epochs = sorted({budget for cell in cells.values() for budget in cell.runs})
    most = max(len(runs) for cell in cells.values() for runs in cell.runs.values())
    metrics = np.full((len(cells), len(epochs), most, len(reference.METRICS)), np.nan)
    repeats = np.zeros((len(cells), len(epochs)), dtype=np.uint8)
    for row, cell in enumerate(cells.values()):
        for column, budget in enumerate(epochs):
            runs = cell.runs.get(budget, [])
            repeats[row, column] = len(runs)
            metrics[row, column, : len(runs)] = runs
    assert table_problem(tables) is None
    assert [h.decode() for h in tables.hashes] == list(cells)
    assert tables.epochs.tolist() == epochs
    assert np.array_equal(tables.repeats, repeats)
    assert tables.metrics.shape == metrics.shape and np.array_equal(tables.metrics, metrics, equal_nan=True)
    for row, cell in enumerate(cells.values()):
        size = len(cell.ops)
        assert tables.cell_ops(row) == list(cell.ops) and tables.parameters[row] == cell.parameters
        assert "".join(map(str, tables.matrices[row, :size, :size].ravel().tolist())) == cell.adjacency
        assert tables.matrices[row].sum() == cell.adjacency.count("1")  # zero padding


def _reordered(payloads: list[bytes], order: str) -> list[bytes]:
    """The records of the 4-budget fixture (cell by cell) in another order, or with runs missing and added."""
    if order == "shuffled":
        return random.Random(0).sample(payloads, len(payloads))
    if order == "108 first, then budget by budget":  # slots first seen in another order than ascending
        rank = {108: 0, 4: 1, 12: 2, 36: 3}
        return sorted(payloads, key=lambda payload: rank[json.loads(payload)[1]])
    # runs dropped (NaN in the table) and, at the very end, two more runs of the first cell at 4 epochs
    return [p for i, p in enumerate(payloads) if i % 5 != 1] + [payloads[0], payloads[2]]


@pytest.mark.parametrize(
    ("order", "workers"),
    [("shuffled", 1), ("shuffled", 2), ("108 first, then budget by budget", 1), ("missing and late runs", 1)],
)
def test_any_record_order_reads_like_the_independent_reader(full, tmp_path, monkeypatch, order, workers) -> None:
    """The tables are gathered as the chunks arrive: budgets and higher repeat counts that appear
    late, cells spread over several blocks and chunks cut inside cells change nothing."""
    monkeypatch.setattr(convert_module, "CHUNK_RECORDS", 7)
    monkeypatch.setattr(convert_module, "BLOCK_CELLS", 5)  # 12 cells: three blocks
    payloads = _reordered([payload for _, payload in frames(full.read_bytes())], order)
    data = b"".join(frame(payload) for payload in payloads)
    path = tmp_path / "reordered.tfrecord"
    path.write_bytes(data)
    _assert_reads_like_the_reference(convert_file(path, workers=workers), data)


def test_the_four_budget_fixture_reads_like_the_independent_reader(full) -> None:
    _assert_reads_like_the_reference(convert_file(full, workers=1), full.read_bytes())


@pytest.mark.parametrize("chunk_records", [1, 50_000])
def test_a_cell_that_changes_is_named_within_and_across_chunks(tmp_path, cells, monkeypatch, chunk_records) -> None:
    monkeypatch.setattr(convert_module, "CHUNK_RECORDS", chunk_records)
    good = [LAYOUTS["empty-path"].payload(r) for r in fixture_records(cells[:2], ONLY_108)]
    first, other = json.loads(good[0]), json.loads(good[3])
    changed = json.dumps([first[0], *other[1:]]).encode()  # cell 0's hash, cell 1's graph
    payloads = [good[0], good[3], changed]
    path = tmp_path / "changed.tfrecord"
    path.write_bytes(b"".join(frame(p) for p in payloads))
    offset = len(frame(good[0])) + len(frame(good[3]))
    with pytest.raises(DatasetError) as caught:
        convert_file(path, workers=1)
    assert str(caught.value) == (
        f"record 2 at byte {offset}: cell {first[0]} has a different adjacency, ops or parameter count "
        "than in record 0 at byte 0"
    )


_PEAK = """
import resource, sys
from nbcompile.nasbench.convert import convert_file
tables = convert_file(sys.argv[1], workers=1)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, tables.metrics.nbytes)
"""


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="ru_maxrss in kB is Linux's")
def test_conversion_memory_grows_with_the_metrics_table_only(tmp_path) -> None:
    """Peak memory of a conversion, in a fresh process, at two sizes of a 4-budget file: what the
    larger file adds is below 2.5 times what its metrics table adds (runs go straight to the table;
    the converter that kept every record's values, then concatenated and scattered them, added 5.4
    times). The difference cancels the interpreter's own memory."""
    larger = write_many_cells(tmp_path / "larger.tfrecord", 40_000, epochs=FULL)
    smaller = tmp_path / "smaller.tfrecord"  # its first 10,000 cells: every cell takes the same bytes
    smaller.write_bytes(larger.read_bytes()[: larger.stat().st_size // 4])
    peaks, tables = [], []
    for path in (smaller, larger):
        run = subprocess.run([sys.executable, "-c", _PEAK, str(path)], capture_output=True, text=True, check=True)
        peak, table = map(int, run.stdout.split())
        peaks.append(peak)
        tables.append(table)
    assert tables == [10_000 * 4 * 3 * 8 * 8, 40_000 * 4 * 3 * 8 * 8]
    assert peaks[1] - peaks[0] < 2.5 * (tables[1] - tables[0]), (peaks, tables)


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


# --- the TensorFlow reader ------------------------------------------------------------------------


@pytest.mark.parametrize("fixture_name", ["only108", "full"])
def test_tensorflow_reader_agrees(request, fixture_name) -> None:
    pytest.importorskip("tensorflow")
    from nbcompile.nasbench.tf_reader import convert_file_tf

    path = request.getfixturevalue(fixture_name)
    assert_tables_equal(convert_file_tf(path), convert_file(path, workers=1))
