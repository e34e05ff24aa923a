"""Dataset files for the tests, written through nbcompile's fixture writer (the Inception-like cell
as the dataset stores it, big files made fast, a file with holes in it), and the comparison of the
tables read from them."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
from example_cells import INCEPTION_HASH, INCEPTION_STORED_MATRIX, INCEPTION_STORED_OPS
from nasbench_bytes import frames
from reference_reader import frame

from nbcompile.nasbench.records import Record, parse_record
from nbcompile.nasbench.writer import encode_record
from nbcompile.space.enumeration import EnumeratedCell, enumerate_cells, sample_cells
from nbcompile.synthetic.fixture import ONLY_108, fixture_records

#: The Inception-like cell as the dataset stores it (the fixture writer takes stored cells).
INCEPTION_CELL = EnumeratedCell(INCEPTION_HASH, INCEPTION_STORED_MATRIX, INCEPTION_STORED_OPS)


def records_in(path: Path) -> list[Record]:
    """The records of a dataset file, parsed one by one from frames cut by hand."""
    return [parse_record(payload, index, offset) for index, (offset, payload) in enumerate(frames(path.read_bytes()))]


def write_many_cells(path: Path, cells: int, repeats: int = 3, epochs: tuple[int, ...] = ONLY_108) -> Path:
    """A valid file of ``cells`` cells × ``epochs`` budgets × ``repeats`` runs (at most 3), cell by
    cell, fast: one real cell's graph and metrics under many made-up module hashes (the converter
    does not recompute hashes)."""
    records = list(fixture_records(sample_cells(1), epochs))  # budget by budget, 3 runs each
    chosen = [records[budget * 3 + run] for budget in range(len(epochs)) for run in range(repeats)]
    placeholder = "0" * 32
    templates = [json.dumps([placeholder, *json.loads(encode_record(record))[1:]]) for record in chosen]
    with open(path, "wb") as stream:
        for number in range(cells):
            module_hash = hashlib.md5(str(number).encode()).hexdigest()
            stream.writelines(frame(text.replace(placeholder, module_hash, 1).encode()) for text in templates)
    return path


def write_missing_runs(path: Path) -> list[EnumeratedCell]:
    """Every cell of up to 4 vertices at 4 and 108 epochs, except that the first cell has no run
    at 4 epochs, and every 4-epoch accuracy of the second cell is NaN; returns the cells."""
    cells = list(enumerate_cells(max_vertices=4, workers=1))
    payloads = []
    nan = float("nan")
    for record in fixture_records(cells, (4, 108)):
        if record.module_hash == cells[0].module_hash and record.epochs == 4:
            continue
        if record.module_hash == cells[1].module_hash and record.epochs == 4:
            evaluations = tuple(
                dataclasses.replace(e, train_accuracy=nan, validation_accuracy=nan, test_accuracy=nan)
                for e in record.metrics.evaluation_data
            )
            record = dataclasses.replace(
                record, metrics=dataclasses.replace(record.metrics, evaluation_data=evaluations)
            )
        payloads.append(encode_record(record))
    path.write_bytes(b"".join(frame(p) for p in payloads))
    return cells


def assert_tables_equal(a: Any, b: Any) -> None:
    """Two datasets' tables hold the same arrays: dtypes, shapes and values (NaN equal to NaN)."""
    assert a.names() == b.names()
    for name in a.names():
        left, right = getattr(a, name), getattr(b, name)
        assert left.dtype == right.dtype and left.shape == right.shape, name
        assert np.array_equal(left, right, equal_nan=left.dtype.kind == "f"), name
