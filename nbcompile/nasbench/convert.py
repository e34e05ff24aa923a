"""Convert a NAS-Bench-101 TFRecord file into :class:`DatasetTables`, on several cores.

One pass over the frame headers finds the record boundaries (and a truncated file); the records
are then split into chunks that worker processes read, verify (both CRCs) and decode, every record
the same way (:class:`nbcompile.nasbench.records.PayloadReader`: one regular expression or
``json.loads`` for the JSON, protobuf's C parser for the metrics), so that the cost does not depend
on the byte layout. Errors name the record index and byte offset; no result of a file that failed
is ever returned.

The chunks come back in file order and are folded into the tables as they arrive
(:class:`_TableBuilder`): each run goes straight to its (cell, budget, repeat) slot, so nothing
per record is kept and the peak memory is about the size of the metrics table, whatever the order
of the records in the file.
"""

from __future__ import annotations

import itertools
import math
import mmap
from array import array
from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields
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
#: Cells per block of the table that gathers the runs while the file is read.
BLOCK_CELLS = 1 << 14

Progress = Callable[[int, int], None]
#: What a chunk keeps of a cell: adjacency bytes, op codes, parameters, index and offset of first sight.
CellInfo = tuple[bytes, tuple[int, ...], int, int, int]


@dataclass
class _Cells:
    """Columns of cells, one row per cell (the tables' per-cell arrays, and where each was first seen)."""

    hashes: np.ndarray  # (n,) S32
    num_vertices: np.ndarray  # (n,) uint8
    matrices: np.ndarray  # (n, 7, 7) uint8
    ops: np.ndarray  # (n, 7) int8
    parameters: np.ndarray  # (n,) int64
    first_index: np.ndarray  # (n,) int64: record that first holds the cell
    first_offset: np.ndarray  # (n,) int64: its byte offset


@dataclass
class _Chunk:
    """What a worker returns for a run of consecutive records."""

    first_index: int
    cells: _Cells  # the chunk's distinct cells, in first-seen order
    cell_ids: np.ndarray  # (records,) int64: row in ``cells``
    budgets: dict[int, tuple[int, int]]  # epoch budget -> index and offset of first sight, first-seen order
    budget_ids: np.ndarray  # (records,) uint8: position in ``budgets``
    values: np.ndarray  # (records, 8) float64, METRIC_FIELDS

    @property
    def num_records(self) -> int:
        return len(self.cell_ids)


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
        self.cells: list[CellInfo] = []
        self.budget_of: dict[int, int] = {}
        self.budgets: dict[int, tuple[int, int]] = {}
        self.cell_ids = array("q")
        self.budget_ids = array("B")
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
            cell = self.cell_of[module_hash] = len(self.cells)
            self.cells.append((adjacency, codes, parameters, index, offset))
        else:
            first = self.cells[cell]
            if first[0] != adjacency or first[1] != codes or first[2] != parameters:
                raise DatasetError(_inconsistent(module_hash, index, offset, first[3], first[4]))
        budget = self.budget_of.get(epochs)
        if budget is None:
            budget = self.budget_of[epochs] = len(self.budgets)
            self.budgets[epochs] = (index, offset)
            _check_budget_count(self.budgets)
        self.cell_ids.append(cell)
        self.budget_ids.append(budget)
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
        budget_ids = np.frombuffer(self.budget_ids, dtype=np.uint8).copy()
        cells = _cell_columns(list(self.cell_of), self.cells)
        return _Chunk(self.first_index, cells, cell_ids, self.budgets, budget_ids, values)


def _cell_columns(hashes: list[bytes], cells: list[CellInfo]) -> _Cells:
    """The cells as columns: adjacency strings become zero-padded 0/1 matrices, op codes padded rows."""
    count = len(cells)
    num_vertices = np.array([len(cell[1]) for cell in cells], dtype=np.uint8)
    matrices = np.zeros((count, MAX_VERTICES, MAX_VERTICES), dtype=np.uint8)
    ops = np.full((count, MAX_VERTICES), PAD_CODE, dtype=np.int8)
    for size in np.unique(num_vertices).tolist():
        members = np.flatnonzero(num_vertices == size)
        joined = b"".join(cells[row][0] for row in members.tolist())
        matrices[members, :size, :size] = (np.frombuffer(joined, dtype=np.uint8) - ord("0")).reshape(-1, size, size)
        ops[members, :size] = np.array([cells[row][1] for row in members.tolist()], dtype=np.int8)
    return _Cells(
        np.array(hashes, dtype="S32"),
        num_vertices,
        matrices,
        ops,
        np.array([cell[2] for cell in cells], dtype=np.int64),
        np.array([cell[3] for cell in cells], dtype=np.int64),
        np.array([cell[4] for cell in cells], dtype=np.int64),
    )


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
    chunk = builder.chunk()
    tables = _TableBuilder(chunk.num_records)
    tables.add(chunk)
    return tables.finish()


def _inconsistent(module_hash: bytes, index: int, offset: int, first_index: int, first_offset: int) -> str:
    return (
        f"record {index} at byte {offset}: cell {module_hash.decode()} has a different adjacency, ops or "
        f"parameter count than in record {first_index} at byte {first_offset}"
    )


def _released_when_freed(shape: tuple[int, ...]) -> np.ndarray:
    """A NaN-filled float64 array in a memory map of its own, so that freeing it gives its memory
    back to the system at once (a block of the process heap may stay resident after it is freed)."""
    count = math.prod(shape)
    private = {"flags": mmap.MAP_PRIVATE} if hasattr(mmap, "MAP_PRIVATE") else {}
    buffer = mmap.mmap(-1, max(count, 1) * 8, **private)
    block = np.frombuffer(buffer, dtype=np.float64, count=count).reshape(shape)
    block.fill(np.nan)
    return block


class _RunTable:
    """The metrics of every run read so far, indexed ``[cell, budget slot, repeat, field]`` with the
    budgets in first-seen order, in blocks of :data:`BLOCK_CELLS` cells; NaN where no run is.

    Blocks are added as cells appear and laid out again when a new budget or a higher repeat
    count appears (once each, in the official files), so no step holds two copies of the table."""

    def __init__(self) -> None:
        self.blocks: list[np.ndarray] = []
        self.slots = 0
        self.repeats = 0

    def _block(self) -> np.ndarray:
        return _released_when_freed((BLOCK_CELLS, self.slots, self.repeats, len(METRIC_FIELDS)))

    def write(self, rows: np.ndarray, slots: np.ndarray, repeats: np.ndarray, values: np.ndarray, shape) -> None:
        """Store ``values[i]`` at ``(rows[i], slots[i], repeats[i])`` in a table of at least
        ``shape`` = (cells, slots, repeats)."""
        cells, slot_count, repeat_count = shape
        if slot_count > self.slots or repeat_count > self.repeats:
            old_slots, old_repeats = self.slots, self.repeats
            self.slots, self.repeats = max(slot_count, self.slots), max(repeat_count, self.repeats)
            for number, old in enumerate(self.blocks):
                grown = self._block()
                grown[:, :old_slots, :old_repeats] = old
                self.blocks[number] = grown
                del old
        while len(self.blocks) * BLOCK_CELLS < cells:
            self.blocks.append(self._block())
        block_of = rows // BLOCK_CELLS
        order = np.argsort(block_of, kind="stable")
        ends = np.searchsorted(block_of[order], np.arange(len(self.blocks)), side="right")
        start = 0
        for number, end in enumerate(ends.tolist()):
            if end > start:
                chosen = order[start:end]
                local = rows[chosen] - number * BLOCK_CELLS
                self.blocks[number][local, slots[chosen], repeats[chosen]] = values[chosen]
            start = end

    def take(self, cells: int, slot_order: np.ndarray, repeats: int) -> np.ndarray:
        """The table as one ``(cells, slots, repeats, 8)`` array, slots in ``slot_order``; the
        blocks are released one by one as they are copied, and the table is empty after."""
        assert len(slot_order) == self.slots and repeats == self.repeats
        table = np.empty((cells, self.slots, repeats, len(METRIC_FIELDS)))
        in_order = bool((slot_order == np.arange(self.slots)).all())
        for number in range(len(self.blocks)):
            block, self.blocks[number] = self.blocks[number], None  # type: ignore[call-overload]
            start = number * BLOCK_CELLS
            part = block[: min(cells - start, BLOCK_CELLS)]
            table[start : start + len(part)] = part if in_order else part[:, slot_order]
            del block, part
        self.blocks = []
        return table


class _CellColumns:
    """The per-cell columns and run counts of the cells seen so far, with room for one cell per
    record of the file (the most it can hold). ``np.zeros`` maps its pages only when they are
    first written, so the unused room costs address space, not memory, and nothing is ever copied
    to grow."""

    def __init__(self, capacity: int) -> None:
        self.size = 0
        self.cells = _Cells(
            np.zeros(capacity, dtype="S32"),
            np.zeros(capacity, dtype=np.uint8),
            np.zeros((capacity, MAX_VERTICES, MAX_VERTICES), dtype=np.uint8),
            np.zeros((capacity, MAX_VERTICES), dtype=np.int8),
            np.zeros(capacity, dtype=np.int64),
            np.zeros(capacity, dtype=np.int64),
            np.zeros(capacity, dtype=np.int64),
        )
        #: Runs read so far per (cell, budget slot).
        self.counts = np.zeros((capacity, MAX_EPOCH_BUDGETS), dtype=np.int32)

    def append(self, cells: _Cells) -> None:
        end = self.size + len(cells.hashes)
        for field in fields(_Cells):
            getattr(self.cells, field.name)[self.size : end] = getattr(cells, field.name)
        self.size = end

    def used(self, name: str) -> np.ndarray:
        """A copy of the rows in use of column ``name``."""
        return getattr(self.cells, name)[: self.size].copy()


class _TableBuilder:
    """Folds chunks, in file order, into :class:`DatasetTables`: rows are cells in first-seen order,
    budgets ascending, repeats in file order within each (cell, budget), as upstream counts them."""

    def __init__(self, total_records: int) -> None:
        self.total_records = total_records
        self.row_of: dict[bytes, int] = {}
        self.cells = _CellColumns(total_records)
        self.budgets: dict[int, tuple[int, int]] = {}  # first-seen order: the slots of the run table
        self.slot_of: dict[int, int] = {}
        self.runs: _RunTable | None = _RunTable()  # None once the table would be too large (refused at the end)

    def add(self, chunk: _Chunk) -> None:
        if not chunk.num_records:
            return
        rows = self._rows(chunk.cells)
        chunk_slots = np.array([self._slot(epochs, seen) for epochs, seen in chunk.budgets.items()], dtype=np.int64)
        slots = chunk_slots[chunk.budget_ids]
        record_rows = rows[chunk.cell_ids]
        repeats = self._count_runs(record_rows * MAX_EPOCH_BUDGETS + slots)
        if self.runs is None:
            return
        shape = (self.cells.size, len(self.budgets), max(self.runs.repeats, int(repeats.max()) + 1))
        if shape[2] > MAX_REPEATS or math.prod(shape) > MAX_SLOTS_PER_RECORD * self.total_records:
            self.runs = None  # refused in finish(), once every record has been read and checked
            return
        self.runs.write(record_rows, slots, repeats, chunk.values, shape)

    def _rows(self, cells: _Cells) -> np.ndarray:
        """The table rows of a chunk's cells (new ones appended), checked against earlier sightings."""
        rows = np.empty(len(cells.hashes), dtype=np.int64)
        fresh = []
        row_of = self.row_of
        for position, module_hash in enumerate(cells.hashes.tolist()):
            row = row_of.get(module_hash)
            if row is None:
                row = row_of[module_hash] = len(row_of)
                fresh.append(position)
            rows[position] = row
        seen = np.ones(len(rows), dtype=bool)
        seen[fresh] = False
        seen = np.flatnonzero(seen)
        if len(seen):
            self._check_same(cells, seen, rows[seen])
        if fresh:
            self.cells.append(_Cells(*(getattr(cells, field.name)[fresh] for field in fields(_Cells))))
        return rows

    def _check_same(self, cells: _Cells, positions: np.ndarray, rows: np.ndarray) -> None:
        known = self.cells.cells
        differs = (
            (known.num_vertices[rows] != cells.num_vertices[positions])
            | (known.parameters[rows] != cells.parameters[positions])
            | (known.matrices[rows] != cells.matrices[positions]).any(axis=(1, 2))
            | (known.ops[rows] != cells.ops[positions]).any(axis=1)
        )
        if differs.any():
            first = int(np.argmax(differs))
            position, row = int(positions[first]), int(rows[first])
            raise DatasetError(
                _inconsistent(
                    bytes(cells.hashes[position]),
                    int(cells.first_index[position]),
                    int(cells.first_offset[position]),
                    int(known.first_index[row]),
                    int(known.first_offset[row]),
                )
            )

    def _slot(self, epochs: int, seen: tuple[int, int]) -> int:
        slot = self.slot_of.get(epochs)
        if slot is None:
            self.budgets[epochs] = seen
            _check_budget_count(self.budgets)
            slot = self.slot_of[epochs] = len(self.slot_of)
        return slot

    def _count_runs(self, keys: np.ndarray) -> np.ndarray:
        """The repeat number of each run (``keys``: cell row x MAX_EPOCH_BUDGETS + slot, in file
        order): the runs of the same cell and budget seen before, in earlier chunks and in this one."""
        order = np.argsort(keys, kind="stable")
        sorted_keys = keys[order]
        group_start = np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]])
        group_sizes = np.diff(np.r_[group_start, len(sorted_keys)])
        rank = np.empty_like(order)
        rank[order] = np.arange(len(order)) - np.repeat(group_start, group_sizes)
        counts = self.cells.counts.reshape(-1)
        repeats = counts[keys] + rank
        counts[sorted_keys[group_start]] += group_sizes.astype(np.int32)
        return repeats

    def finish(self) -> DatasetTables:
        """The tables; DatasetError if the file holds no records or would need too large a table."""
        num_cells = self.cells.size
        if not num_cells:
            raise DatasetError("the file holds no records")
        first_seen = np.array(list(self.budgets), dtype=np.int64)
        slot_order = np.argsort(first_seen)
        counts = self.cells.counts[:num_cells, : len(first_seen)][:, slot_order]
        num_epochs, most = len(first_seen), int(counts.max())
        if most > MAX_REPEATS:
            raise DatasetError(f"a cell has {most} runs for one epoch budget; at most {MAX_REPEATS} are supported")
        if num_cells * num_epochs * most > MAX_SLOTS_PER_RECORD * self.total_records:
            raise DatasetError(
                f"{num_cells} cells x {num_epochs} budgets x {most} runs would need a table "
                f"{num_cells * num_epochs * most // self.total_records} times the {self.total_records} records; "
                f"at most {MAX_SLOTS_PER_RECORD} times is supported"
            )
        assert self.runs is not None  # dropped only where the checks above refuse the file
        metrics = self.runs.take(num_cells, slot_order, most)
        used = self.cells.used
        return DatasetTables(
            used("hashes"),
            used("num_vertices"),
            used("matrices"),
            used("ops"),
            used("parameters"),
            first_seen[slot_order],
            counts.astype(np.uint8),
            metrics,
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
    tables = _TableBuilder(total)
    if progress:
        progress(0, total)
    # in file order, so that the first bad record is the one reported
    for chunk in ordered_map(_scan, [(path, piece, first, verify) for piece, first in pieces], workers):
        tables.add(chunk)
        if progress:
            progress(chunk.first_index + chunk.num_records, total)
    return tables.finish()
