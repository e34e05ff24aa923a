"""TFRecord framing: ``uint64 length | masked crc32c(length) | payload | masked crc32c(payload)``.

Written once here: the frame writer (fixture files), the scan that finds every record's offset,
the reader of a run of records and the CRC check. Files are read with plain reads, never
memory-mapped, so that a file truncated while it is read gives an error, not a bus error.
"""

from __future__ import annotations

import os
import stat
import struct
from array import array
from pathlib import Path

import numpy as np
from crc32c import crc32c

from nbcompile.errors import DatasetError

_MASK_DELTA = 0xA282EAD8
_LENGTH = struct.Struct("<Q")
_U32 = struct.Struct("<I")
#: Bytes around each payload: length, its CRC, and the payload's CRC.
FRAME_OVERHEAD = 16
_HEADER_SIZE = 12
_SCAN_BLOCK = 1 << 22


def masked_crc(data: bytes) -> int:
    """TFRecord's masked CRC32C (Castagnoli) of ``data``."""
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


def frame(payload: bytes) -> bytes:
    """One framed record."""
    length = _LENGTH.pack(len(payload))
    return length + _U32.pack(masked_crc(length)) + payload + _U32.pack(masked_crc(payload))


def where(index: int, offset: int) -> str:
    """How errors name a record."""
    return f"record {index} at byte {offset}"


def check_regular_file(path: str | Path) -> int:
    """The size of the dataset file at ``path``; DatasetError if it is missing, empty or not a
    regular file (a FIFO or a device would block or never end)."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise DatasetError(f"{path}: no such file") from None
    if not stat.S_ISREG(info.st_mode):
        raise DatasetError(f"{path}: not a regular file (dataset files are read in several passes)")
    if info.st_size == 0:
        raise DatasetError(f"{path}: the file is empty")
    return info.st_size


def record_offsets(path: str | Path) -> np.ndarray:
    """Byte offsets of every record, plus the end offset; DatasetError if a frame is cut short."""
    offsets = array("q")
    append = offsets.append
    unpack = _LENGTH.unpack_from
    with open(path, "rb", buffering=0) as handle:
        size = handle.seek(0, os.SEEK_END)
        position = 0
        while position < size:  # a corrupt length past the end stops the scan (and is named below)
            handle.seek(position)
            block = handle.read(_SCAN_BLOCK)
            if len(block) < 8:
                break
            limit = len(block) - 8
            relative = 0
            while relative <= limit and position + relative < size:
                append(position + relative)
                relative += FRAME_OVERHEAD + unpack(block, relative)[0]
            position += relative
        if position != size:
            _raise_framing_error(handle, offsets, position, size)
    append(position)
    return np.frombuffer(offsets, dtype=np.int64).copy()


def _raise_framing_error(handle, offsets: array, position: int, size: int) -> None:
    """The file does not end where its last frame does: name the first bad frame."""
    if position < size:  # fewer than 8 bytes left after the last frame
        raise DatasetError(f"{where(len(offsets), position)}: file ends inside the record header")
    for index, start in enumerate(offsets):  # a corrupt length sends the scan astray: find it
        handle.seek(start)
        header = handle.read(_HEADER_SIZE)
        if len(header) < _HEADER_SIZE:
            raise DatasetError(f"{where(index, start)}: file ends inside the record header")
        if masked_crc(header[:8]) != _U32.unpack_from(header, 8)[0]:
            raise DatasetError(f"{where(index, start)}: bad CRC of the length field")
    start = offsets[-1]
    raise DatasetError(
        f"{where(len(offsets) - 1, start)}: file ends inside the record "
        f"({position - start - FRAME_OVERHEAD} bytes of payload announced, {size - start - _HEADER_SIZE} left)"
    )


def read_span(path: str | Path, offsets: np.ndarray, first_index: int) -> bytes:
    """The bytes of the records starting at ``offsets[:-1]`` (``offsets[-1]`` is where the last
    ends); DatasetError if the file has become shorter since it was scanned."""
    start, end = int(offsets[0]), int(offsets[-1])
    with open(path, "rb", buffering=0) as handle:
        handle.seek(start)
        data = handle.read(end - start)
        while len(data) < end - start:
            more = handle.read(end - start - len(data))
            if not more:
                cut = int(np.searchsorted(offsets, start + len(data), side="right")) - 1
                raise DatasetError(
                    f"{where(first_index + cut, int(offsets[cut]))}: file ends inside the record "
                    "(the file became shorter while it was read)"
                )
            data += more
    return data


def first_bad_crc(data: bytes, starts: list[int], ends: list[int]) -> tuple[int, str] | None:
    """``(position in the run, what is wrong)`` of the first record whose CRCs do not match."""
    length_crcs = [crc32c(data[s : s + 8]) for s in starts]
    payload_crcs = [crc32c(data[s + _HEADER_SIZE : e - 4]) for s, e in zip(starts, ends)]
    view = np.frombuffer(data, dtype=np.uint8)
    starts_array = np.asarray(starts, dtype=np.int64)
    stored_length = _u32_at(view, starts_array + 8)
    stored_payload = _u32_at(view, np.asarray(ends, dtype=np.int64) - 4)
    bad_length = _mask(np.asarray(length_crcs, dtype=np.uint64)) != stored_length
    bad_payload = _mask(np.asarray(payload_crcs, dtype=np.uint64)) != stored_payload
    bad = np.flatnonzero(bad_length | bad_payload)
    if not len(bad):
        return None
    first = int(bad[0])
    return first, "bad CRC of the length field" if bad_length[first] else "bad CRC of the payload"


def _u32_at(view: np.ndarray, positions: np.ndarray) -> np.ndarray:
    parts = [view[positions + i].astype(np.uint64) << (8 * i) for i in range(4)]
    return parts[0] | parts[1] | parts[2] | parts[3]


def _mask(crcs: np.ndarray) -> np.ndarray:
    rotated = ((crcs >> 15) | (crcs << 17)) & 0xFFFFFFFF
    return (rotated + _MASK_DELTA) & 0xFFFFFFFF
