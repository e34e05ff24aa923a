"""Convert a NAS-Bench-101 TFRecord file into :class:`DatasetTables`, on several cores.

One pass over the frame headers finds the record boundaries (and a truncated file); the records
are then split into chunks that worker processes verify (both CRCs) and decode. Each worker takes a
fast path for the layout the official files use (one regular expression over the JSON payload,
one struct unpack per evaluation) and hands anything else to the general, checking decoder of
:mod:`nbcompile.nasbench.records`, which either decodes it or raises an error naming the record
index and byte offset. No result of a file that failed is ever returned.
"""

from __future__ import annotations

import binascii
import itertools
import mmap
import operator
import os
import re
import struct
from array import array
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nbcompile.errors import DatasetError
from nbcompile.nasbench.metrics import EVALUATION_LAYOUT, EVALUATION_TAGS, ModelMetrics
from nbcompile.nasbench.records import Record, parse_record
from nbcompile.nasbench.tables import METRIC_FIELDS, DatasetTables
from nbcompile.nasbench.tfrecord import masked_crc
from nbcompile.space.ops import MAX_VERTICES, OP_ALIASES, OP_CODE, PAD_CODE
from nbcompile.parallel import available_cpus, ordered_map

_HEADER = struct.Struct("<QI")
_LENGTH = struct.Struct("<Q")
_U32 = struct.Struct("<I")
_FRAME_OVERHEAD = 16
#: The payload as ``json.dumps`` writes it; anything else goes to the general decoder.
_PAYLOAD = re.compile(rb'\["([0-9a-f]{32})", ([1-9][0-9]{0,5}), "([01]+)", "([a-z0-9,\-]+)", "([A-Za-z0-9+/]*={0,2})"\]')
_DOUBLE_AT = struct.Struct("<d")
#: Records per chunk of work; small enough for a smooth progress bar, large enough to amortise.
CHUNK_RECORDS = 50_000

Progress = Callable[[int, int], None]


@dataclass
class _Chunk:
    """What a worker returns for a run of consecutive records."""

    first_index: int
    unique_hashes: list[str]  # in first-seen order within the chunk
    cell_ids: np.ndarray  # (records,) index into unique_hashes
    epochs: np.ndarray  # (records,) int64
    values: np.ndarray  # (records, 8) float64, METRIC_FIELDS
    # per unique hash: adjacency bytes, op codes, parameters, record index and offset of first sight
    cells: list[tuple[bytes, tuple[int, ...], int, int, int]]


def record_offsets(buffer: bytes | mmap.mmap) -> np.ndarray:
    """Byte offsets of every record, plus the end offset; DatasetError if a frame is truncated."""
    offsets = array("q")
    append = offsets.append
    unpack = _LENGTH.unpack_from
    size = len(buffer)
    position = 0
    try:
        while position < size:
            append(position)
            position += _FRAME_OVERHEAD + unpack(buffer, position)[0]
    except struct.error:  # fewer than 8 bytes left
        raise DatasetError(f"record {len(offsets) - 1} at byte {position}: file ends inside the record header") from None
    if position > size:
        start = offsets[-1]
        if start + _HEADER.size > size:
            raise DatasetError(f"record {len(offsets) - 1} at byte {start}: file ends inside the record header")
        raise DatasetError(
            f"record {len(offsets) - 1} at byte {start}: file ends inside the record "
            f"({position - start - _FRAME_OVERHEAD} bytes of payload announced, {size - start - _HEADER.size} left)"
        )
    append(position)
    return np.frombuffer(offsets, dtype=np.int64).copy()


#: ModelMetrics when every checkpoint path is empty (the usual case): three LEN-prefixed
#: EvaluationData of 47 bytes, then trainable_parameters' tag; one unpack reads it all.
_THREE = struct.Struct("<" + "BBBdBdBdBdBdBB" * 3 + "B")
_THREE_TAGS_OF = operator.itemgetter(*[14 * e + i for e in range(3) for i in (0, 1, 2, 4, 6, 8, 10, 12, 13)], 42)
_THREE_TAGS = tuple([0x0A, 47, 0x09, 0x11, 0x19, 0x21, 0x29, 0x32, 0] * 3 + [0x10])
_THREE_VALUES_OF = operator.itemgetter(*[14 * e + i for e in (1, 2) for i in (5, 7, 9, 11)])


def _fast_metrics(raw: bytes) -> tuple[int, tuple[float, ...]] | None:
    """(parameters, METRIC_FIELDS values) for the usual encoding of ModelMetrics, else None."""
    if len(raw) >= _THREE.size + 10:
        fields = _THREE.unpack_from(raw)
        if _THREE_TAGS_OF(fields) == _THREE_TAGS:
            return _parameters_and_time(raw, _THREE.size, _THREE_VALUES_OF(fields))
    return _general_fast_metrics(raw)


def _parameters_and_time(raw: bytes, position: int, values: tuple[float, ...]) -> tuple[int, tuple[float, ...]] | None:
    """Read trainable_parameters' varint at ``position``, then expect total_time and the end."""
    parameters = shift = 0
    end = len(raw)
    while position < end and shift < 35:
        byte = raw[position]
        position += 1
        parameters |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            break
    else:
        return None
    if end != position + 9 or raw[position] != 0x19 or parameters >= 1 << 31:
        return None
    return parameters, values


def _general_fast_metrics(raw: bytes) -> tuple[int, tuple[float, ...]] | None:
    """Like :func:`_fast_metrics` for any checkpoint paths shorter than 128 bytes."""
    position = 0
    evaluations = []
    for _ in range(3):
        if len(raw) < position + 2 + EVALUATION_LAYOUT.size or raw[position] != 0x0A or raw[position + 1] >= 0x80:
            return None
        length = raw[position + 1]
        fields = EVALUATION_LAYOUT.unpack_from(raw, position + 2)
        if fields[0:10:2] + (fields[10],) != EVALUATION_TAGS or fields[11] != length - EVALUATION_LAYOUT.size:
            return None
        evaluations.append(fields)
        position += 2 + length
    if position >= len(raw) or raw[position] != 0x10:
        return None
    halfway, final = evaluations[1], evaluations[2]
    values = (halfway[3], halfway[5], halfway[7], halfway[9], final[3], final[5], final[7], final[9])
    return _parameters_and_time(raw, position + 1, values)


def metric_values(metrics: ModelMetrics, where: str) -> tuple[float, ...]:
    """METRIC_FIELDS of a decoded ModelMetrics (upstream reads evaluation_data[1] and [2])."""
    if len(metrics.evaluation_data) < 3:
        raise DatasetError(
            f"{where}: metrics has {len(metrics.evaluation_data)} evaluations, "
            "expected 3 (start, halfway, final)"
        )
    halfway, final = metrics.evaluation_data[1], metrics.evaluation_data[2]
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


def _op_codes(operations: bytes) -> tuple[int, ...] | None:
    codes = []
    for name in operations.decode("ascii").split(","):
        full = OP_ALIASES.get(name)
        if full is None:
            return None
        codes.append(OP_CODE[full])
    return tuple(codes)


def _scan(path: str, offsets: np.ndarray, first_index: int, verify: bool) -> _Chunk:
    """Decode the records starting at ``offsets[:-1]`` (``offsets[-1]`` is where the last ends)."""
    with open(path, "rb") as handle:
        buffer = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
    try:
        return _scan_buffer(buffer, offsets, first_index, verify)
    finally:
        buffer.close()


class _ChunkBuilder:
    """Collects consecutive records into a :class:`_Chunk`, checking that every record of a
    module hash stores the same graph and parameter count."""

    def __init__(self, first_index: int) -> None:
        self.first_index = first_index
        self.cell_of: dict[str, int] = {}
        self.unique: list[str] = []
        self.cells: list[tuple[bytes, tuple[int, ...], int, int, int]] = []
        self.cell_ids = array("q")
        self.epochs = array("q")
        self.values = array("d")

    def add(self, index: int, offset: int, module_hash: str, epochs: int, adjacency: bytes,
            codes: tuple[int, ...], parameters: int, metric_row: tuple[float, ...]) -> None:  # fmt: skip
        cell = self.cell_of.get(module_hash)
        if cell is None:
            cell = self.cell_of[module_hash] = len(self.unique)
            self.unique.append(module_hash)
            self.cells.append((adjacency, codes, parameters, index, offset))
        else:
            first = self.cells[cell]
            if first[0] != adjacency or first[1] != codes or first[2] != parameters:
                raise DatasetError(_inconsistent(module_hash, index, offset, first))
        self.cell_ids.append(cell)
        self.epochs.append(epochs)
        self.values.extend(metric_row)

    def add_record(self, record: Record, index: int, offset: int, where: str) -> None:
        if record.num_vertices > MAX_VERTICES:
            raise DatasetError(f"{where}: {record.num_vertices} vertices, NAS-Bench-101 cells have at most {MAX_VERTICES}")
        codes = tuple(OP_CODE[op] for op in record.operations)
        self.add(index, offset, record.module_hash, record.epochs, record.adjacency.encode("ascii"), codes,
                 record.metrics.trainable_parameters, metric_values(record.metrics, where))  # fmt: skip

    def chunk(self) -> _Chunk:
        values = np.frombuffer(self.values, dtype=np.float64).reshape(-1, len(METRIC_FIELDS)).copy()
        cell_ids = np.frombuffer(self.cell_ids, dtype=np.int64).copy()
        epochs = np.frombuffer(self.epochs, dtype=np.int64).copy()
        return _Chunk(self.first_index, self.unique, cell_ids, epochs, values, self.cells)


def _scan_buffer(buffer: mmap.mmap, offsets: np.ndarray, first_index: int, verify: bool) -> _Chunk:
    builder = _ChunkBuilder(first_index)
    add = builder.add
    ops_cache: dict[bytes, tuple[int, ...] | None] = {}
    match_payload = _PAYLOAD.fullmatch
    a2b = binascii.a2b_base64
    for index, start, end in zip(itertools.count(first_index), offsets[:-1].tolist(), offsets[1:].tolist()):
        payload = buffer[start + 12 : end - 4]
        if verify:
            if masked_crc(buffer[start : start + 8]) != _U32.unpack_from(buffer, start + 8)[0]:
                raise DatasetError(f"record {index} at byte {start}: bad CRC of the length field")
            if masked_crc(payload) != _U32.unpack_from(buffer, end - 4)[0]:
                raise DatasetError(f"record {index} at byte {start}: bad CRC of the payload")
        decoded = None
        match = match_payload(payload)
        if match is not None:
            module_hash, epochs, adjacency, operations, encoded = match.groups()
            codes = ops_cache.get(operations, ())
            if codes == ():
                codes = ops_cache[operations] = _op_codes(operations)
            if codes is not None and len(adjacency) == len(codes) ** 2 and len(codes) <= MAX_VERTICES:
                try:
                    decoded = _fast_metrics(a2b(encoded, strict_mode=True))
                except binascii.Error:
                    decoded = None
        if decoded is not None:
            add(index, start, module_hash.decode("ascii"), int(epochs), adjacency, codes, *decoded)
        else:  # anything unusual: the checking decoder names the problem, or decodes it
            builder.add_record(parse_record(payload, index, start), index, start, f"record {index} at byte {start}")
    return builder.chunk()


def tables_from_records(records: Iterable[Record]) -> DatasetTables:
    """Tables from decoded records, in order (for other readers, e.g. the TensorFlow one)."""
    builder = _ChunkBuilder(0)
    for index, record in enumerate(records):
        builder.add_record(record, index, 0, f"record {index}")
    return _merge([builder.chunk()])


def _inconsistent(module_hash: str, index: int, offset: int, first: tuple) -> str:
    return (
        f"record {index} at byte {offset}: cell {module_hash} has a different adjacency, ops or "
        f"parameter count than in record {first[3]} at byte {first[4]}"
    )


def _merge(chunks: list[_Chunk]) -> DatasetTables:
    row_of: dict[str, int] = {}
    first_seen: list[tuple[bytes, tuple[int, ...], int, int, int]] = []
    record_rows = []
    for chunk in chunks:
        mapping = np.empty(len(chunk.unique_hashes), dtype=np.int64)
        for local, module_hash in enumerate(chunk.unique_hashes):
            row = row_of.get(module_hash)
            cell = chunk.cells[local]
            if row is None:
                row = row_of[module_hash] = len(first_seen)
                first_seen.append(cell)
            elif first_seen[row][:3] != cell[:3]:
                raise DatasetError(_inconsistent(module_hash, cell[3], cell[4], first_seen[row]))
            mapping[local] = row
        record_rows.append(mapping[chunk.cell_ids])
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
    if counts.max() > 255:
        raise DatasetError(f"a cell has {counts.max()} runs for one epoch budget; at most 255 are supported")
    metrics = np.full((num_cells, num_epochs, int(counts.max()), len(METRIC_FIELDS)), np.nan)
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
    return DatasetTables(hashes, num_vertices, matrices, ops, parameters, epochs.astype(np.int64),
                         counts.astype(np.uint8), metrics)


def convert_file(
    path: str | Path,
    workers: int | None = None,
    verify: bool = True,
    progress: Progress | None = None,
) -> DatasetTables:
    """Read and check the whole file at ``path``; ``progress(done, total)`` counts records."""
    path = str(path)
    with open(path, "rb") as handle:
        if os.fstat(handle.fileno()).st_size == 0:
            raise DatasetError(f"{path}: the file is empty")
        buffer = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
    try:
        offsets = record_offsets(buffer)
    finally:
        buffer.close()
    total = len(offsets) - 1
    bounds = list(range(0, total, CHUNK_RECORDS)) + [total]
    pieces = [(offsets[a : b + 1], a) for a, b in zip(bounds[:-1], bounds[1:])]
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

