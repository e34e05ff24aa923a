"""Converting a dataset file to tables: the same tables as parsing record by record, whatever the
chunks, workers and byte layout; bad files refused naming the record and its offset; TensorFlow's
own reader agrees."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from dataset_files import assert_tables_equal, records_in
from nasbench_bytes import frame

from nbcompile.errors import DatasetError
from nbcompile.nasbench import NASBench
from nbcompile.nasbench import convert as convert_module
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
