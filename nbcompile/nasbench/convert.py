"""Convert a NAS-Bench-101 TFRecord file into :class:`DatasetTables`, on several cores.

One pass over the frame headers finds the record boundaries (and a truncated file); the records
are then split into chunks that worker processes read, verify (both CRCs) and decode, every record
the same way (:class:`nbcompile.nasbench.records.PayloadReader`: one regular expression or
``json.loads`` for the JSON, protobuf's C parser for the metrics), so that the cost does not depend
on the byte layout. Errors name the record index and byte offset; no result of a file that failed
is ever returned.
"""

from __future__ import annotations

import itertools
from array import array
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nbcompile.errors import DatasetError
from nbcompile.nasbench.records import PayloadReader, Record
from nbcompile.nasbench.tables import METRIC_FIELDS, DatasetTables
from nbcompile.nasbench.tfrecord import check_regular_file, first_bad_crc, read_span, record_offsets, where
from nbcompile.parallel import available_cpus, ordered_map
from nbcompile.space.ops import MAX_VERTICES, OP_CODE, PAD_CODE

#: Records per chunk of work; small enough for a smooth progress bar, large enough to amortise.
CHUNK_RECORDS = 50_000
#: Distinct epoch budgets a file may hold (the official files: 1 or 4); the tables grow with it.
MAX_EPOCH_BUDGETS = 16
#: Runs of one cell at one budget (the official files: 3).
MAX_REPEATS = 255
#: The dense metrics table may hold at most this many slots per record (missing runs are NaN).
MAX_SLOTS_PER_RECORD = 16

Progress = Callable[[int, int], None]
#: What the tables keep of a cell: adjacency bytes, op codes, parameters, index and offset of first sight.
CellInfo = tuple[bytes, tuple[int, ...], int, int, int]


@dataclass
class _Chunk:
    """What a worker returns for a run of consecutive records."""

    first_index: int
    unique_hashes: list[bytes]  # in first-seen order within the chunk
    cell_ids: np.ndarray  # (records,) index into unique_hashes
    epochs: np.ndarray  # (records,) int64
    values: np.ndarray  # (records, 8) float64, METRIC_FIELDS
    cells: list[CellInfo]  # per unique hash
    budgets: dict[int, tuple[int, int]]  # epoch budget -> index and offset of first sight


def metric_values(evaluations, where_: str) -> tuple[float, ...]:
    """METRIC_FIELDS of a cell's evaluations (upstream reads evaluation_data[1] and [2])."""
    if len(evaluations) < 3:
        raise DatasetError(f"{where_}: metrics has {len(evaluations)} evaluations, expected 3 (start, halfway, final)")
    return _metric_row(evaluations[1], evaluations[2])


def _metric_row(halfway, final) -> tuple[float, ...]:
    """METRIC_FIELDS, in their order, from the halfway and the final evaluation."""
    return (
        halfway.training_time,
        halfway.train_accuracy,
        halfway.validation_accuracy,
        halfway.test_accuracy,
        final.training_time,
        final.train_accuracy,
        final.validation_accuracy,
        final.test_accuracy,
    )


class _ChunkBuilder:
    """Collects consecutive records into a :class:`_Chunk`, checking that every record of a
    module hash stores the same graph and parameter count."""

    def __init__(self, first_index: int) -> None:
        self.first_index = first_index
        self.cell_of: dict[bytes, int] = {}
        self.unique: list[bytes] = []
        self.cells: list[CellInfo] = []
        self.budgets: dict[int, tuple[int, int]] = {}
        self.cell_ids = array("q")
        self.epochs = array("q")
        self.values = array("d")

    def add(
        self,
        index: int,
        offset: int,
        module_hash: bytes,
        epochs: int,
        adjacency: bytes,
        codes: tuple[int, ...],
        parameters: int,
        metric_row: tuple[float, ...],
    ) -> None:
        cell = self.cell_of.get(module_hash)
        if cell is None:
            cell = self.cell_of[module_hash] = len(self.unique)
            self.unique.append(module_hash)
            self.cells.append((adjacency, codes, parameters, index, offset))
        else:
            first = self.cells[cell]
            if first[0] != adjacency or first[1] != codes or first[2] != parameters:
                raise DatasetError(_inconsistent(module_hash, index, offset, first))
        if epochs not in self.budgets:
            self.budgets[epochs] = (index, offset)
            _check_budget_count(self.budgets)
        self.cell_ids.append(cell)
        self.epochs.append(epochs)
        self.values.extend(metric_row)

    def add_record(self, record: Record, index: int, offset: int, where_: str) -> None:
        if record.num_vertices > MAX_VERTICES:
            raise DatasetError(
                f"{where_}: {record.num_vertices} vertices, NAS-Bench-101 cells have at most {MAX_VERTICES}"
            )
        codes = tuple(OP_CODE[op] for op in record.operations)
        self.add(
            index,
            offset,
            record.module_hash.encode(),
            record.epochs,
            record.adjacency.encode("ascii"),
            codes,
            record.metrics.trainable_parameters,
            metric_values(record.metrics.evaluation_data, where_),
        )

    def chunk(self) -> _Chunk:
        values = np.frombuffer(self.values, dtype=np.float64).reshape(-1, len(METRIC_FIELDS)).copy()
        cell_ids = np.frombuffer(self.cell_ids, dtype=np.int64).copy()
        epochs = np.frombuffer(self.epochs, dtype=np.int64).copy()
        return _Chunk(self.first_index, self.unique, cell_ids, epochs, values, self.cells, self.budgets)


def _check_budget_count(budgets: dict[int, tuple[int, int]]) -> None:
    if len(budgets) > MAX_EPOCH_BUDGETS:
        epochs, (index, offset) = max(budgets.items(), key=lambda item: item[1])
        raise DatasetError(
            f"{where(index, offset)}: epoch budget {epochs} is the file's {len(budgets)}th distinct budget; "
            f"at most {MAX_EPOCH_BUDGETS} are supported"
        )


def _scan(path: str, offsets: np.ndarray, first_index: int, verify: bool) -> _Chunk:
    """Read and decode the records starting at ``offsets[:-1]`` (``offsets[-1]`` is where the last ends)."""
    data = read_span(path, offsets, first_index)
    base = int(offsets[0])
    starts = (offsets[:-1] - base).tolist()
    ends = (offsets[1:] - base).tolist()
    bad = first_bad_crc(data, starts, ends) if verify else None
    stop = bad[0] if bad else len(starts)
    builder = _ChunkBuilder(first_index)
    add = builder.add
    split = PayloadReader().split
    for position in range(stop):
        start = starts[position]
        index, offset = first_index + position, base + start
        module_hash, epochs, adjacency, codes, message = split(data[start + 12 : ends[position] - 4], index, offset)
        evaluations = message.evaluation_data
        if len(evaluations) < 3:  # checked here, so that the place is formatted only for an error
            metric_values(evaluations, where(index, offset))  # raises
        row = _metric_row(evaluations[1], evaluations[2])
        add(index, offset, module_hash, epochs, adjacency, codes, message.trainable_parameters, row)
    if bad:
        raise DatasetError(f"{where(first_index + bad[0], base + starts[bad[0]])}: {bad[1]}")
    return builder.chunk()


def tables_from_records(records: Iterable[Record]) -> DatasetTables:
    """Tables from decoded records, in order (for other readers, e.g. the TensorFlow one)."""
    builder = _ChunkBuilder(0)
    for index, record in enumerate(records):
        builder.add_record(record, index, 0, f"record {index}")
    return _merge([builder.chunk()])


def _inconsistent(module_hash: bytes, index: int, offset: int, first: tuple) -> str:
    return (
        f"record {index} at byte {offset}: cell {module_hash.decode()} has a different adjacency, ops or "
        f"parameter count than in record {first[3]} at byte {first[4]}"
    )


def _merge(chunks: list[_Chunk]) -> DatasetTables:
    row_of: dict[bytes, int] = {}
    first_seen: list[CellInfo] = []
    record_rows = []
    budgets: dict[int, tuple[int, int]] = {}
    for chunk in chunks:
        mapping = []
        for module_hash, cell in zip(chunk.unique_hashes, chunk.cells):
            row = row_of.get(module_hash)
            if row is None:
                row = row_of[module_hash] = len(first_seen)
                first_seen.append(cell)
            elif first_seen[row][:3] != cell[:3]:
                raise DatasetError(_inconsistent(module_hash, cell[3], cell[4], first_seen[row]))
            mapping.append(row)
        record_rows.append(np.array(mapping, dtype=np.int64)[chunk.cell_ids])
        for epochs, seen in chunk.budgets.items():
            if epochs not in budgets:
                budgets[epochs] = seen
                _check_budget_count(budgets)
    if not first_seen:
        raise DatasetError("the file holds no records")
    rows = np.concatenate(record_rows)
    epochs_of_record = np.concatenate([chunk.epochs for chunk in chunks])
    values = np.concatenate([chunk.values for chunk in chunks])
    epochs, epoch_index = np.unique(epochs_of_record, return_inverse=True)
    num_cells, num_epochs = len(first_seen), len(epochs)

    # repeat number = order in the file within each (cell, budget), as upstream appends them
    key = rows * num_epochs + epoch_index
    order = np.argsort(key, kind="stable")
    sorted_key = key[order]
    group_start = np.flatnonzero(np.r_[True, sorted_key[1:] != sorted_key[:-1]])
    group_sizes = np.diff(np.r_[group_start, len(sorted_key)])
    repeat = np.empty_like(order)
    repeat[order] = np.arange(len(order)) - np.repeat(group_start, group_sizes)
    counts = np.bincount(key, minlength=num_cells * num_epochs).reshape(num_cells, num_epochs)
    most = int(counts.max())
    if most > MAX_REPEATS:
        raise DatasetError(f"a cell has {most} runs for one epoch budget; at most {MAX_REPEATS} are supported")
    if num_cells * num_epochs * most > MAX_SLOTS_PER_RECORD * len(rows):
        raise DatasetError(
            f"{num_cells} cells x {num_epochs} budgets x {most} runs would need a table "
            f"{num_cells * num_epochs * most // len(rows)} times the {len(rows)} records; "
            f"at most {MAX_SLOTS_PER_RECORD} times is supported"
        )
    metrics = np.full((num_cells, num_epochs, most, len(METRIC_FIELDS)), np.nan)
    metrics[rows, epoch_index, repeat] = values

    num_vertices = np.array([len(cell[1]) for cell in first_seen], dtype=np.uint8)
    matrices = np.zeros((num_cells, MAX_VERTICES, MAX_VERTICES), dtype=np.uint8)
    ops = np.full((num_cells, MAX_VERTICES), PAD_CODE, dtype=np.int8)
    for size in np.unique(num_vertices).tolist():
        members = np.flatnonzero(num_vertices == size)
        joined = b"".join(first_seen[row][0] for row in members.tolist())
        matrices[members, :size, :size] = (np.frombuffer(joined, dtype=np.uint8) - ord("0")).reshape(-1, size, size)
        ops[members, :size] = np.array([first_seen[row][1] for row in members.tolist()], dtype=np.int8)
    hashes = np.array(list(row_of), dtype="S32")
    parameters = np.array([cell[2] for cell in first_seen], dtype=np.int64)
    return DatasetTables(
        hashes, num_vertices, matrices, ops, parameters, epochs.astype(np.int64), counts.astype(np.uint8), metrics
    )


def convert_file(
    path: str | Path,
    workers: int | None = None,
    verify: bool = True,
    progress: Progress | None = None,
) -> DatasetTables:
    """Read and check the whole file at ``path``; ``progress(done, total)`` counts records."""
    path = str(path)
    check_regular_file(path)
    offsets = record_offsets(path)
    total = len(offsets) - 1
    bounds = [*list(range(0, total, CHUNK_RECORDS)), total]
    pieces = [(offsets[a : b + 1], a) for a, b in itertools.pairwise(bounds)]
    workers = min(workers or available_cpus(), len(pieces))
    chunks: list[_Chunk] = []
    if progress:
        progress(0, total)
    # in file order, so that the first bad record is the one reported
    for chunk in ordered_map(_scan, [(path, piece, first, verify) for piece, first in pieces], workers):
        chunks.append(chunk)
        if progress:
            progress(chunk.first_index + len(chunk.cell_ids), total)
    return _merge(chunks)
