"""TFRecord framing: ``uint64 length | masked crc32c(length) | payload | masked crc32c(payload)``."""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

from crc32c import crc32c

from nbcompile.errors import DatasetError

_MASK_DELTA = 0xA282EAD8
_HEADER = struct.Struct("<QI")
_FOOTER = struct.Struct("<I")


def masked_crc(data: bytes) -> int:
    """TFRecord's masked CRC32C (Castagnoli) of ``data``."""
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


def iter_records(stream: BinaryIO, verify: bool = True, start: int = 0) -> Iterator[tuple[int, int, bytes]]:
    """Yield ``(index, byte offset, payload)`` of every record; DatasetError on a bad frame."""
    offset = start
    index = 0
    while True:
        header = stream.read(_HEADER.size)
        if not header:
            return
        if len(header) < _HEADER.size:
            raise DatasetError(f"record {index} at byte {offset}: file ends inside the record header")
        length, length_crc = _HEADER.unpack(header)
        if verify and masked_crc(header[:8]) != length_crc:
            raise DatasetError(f"record {index} at byte {offset}: bad CRC of the length field")
        payload = stream.read(length)
        footer = stream.read(_FOOTER.size)
        if len(payload) < length or len(footer) < _FOOTER.size:
            raise DatasetError(f"record {index} at byte {offset}: file ends inside the record ({length} bytes expected)")
        if verify and masked_crc(payload) != _FOOTER.unpack(footer)[0]:
            raise DatasetError(f"record {index} at byte {offset}: bad CRC of the payload")
        yield index, offset, payload
        offset += _HEADER.size + length + _FOOTER.size
        index += 1


def read_records(path: str | Path, verify: bool = True) -> Iterator[tuple[int, int, bytes]]:
    """Records of the file at ``path`` (see :func:`iter_records`)."""
    with open(path, "rb", buffering=1 << 20) as stream:
        yield from iter_records(stream, verify)


def frame(payload: bytes) -> bytes:
    """One framed record."""
    length = struct.pack("<Q", len(payload))
    return length + struct.pack("<I", masked_crc(length)) + payload + struct.pack("<I", masked_crc(payload))


def write_records(stream: BinaryIO, payloads: Iterable[bytes]) -> int:
    """Write framed records to ``stream``; returns how many."""
    count = 0
    for payload in payloads:
        stream.write(frame(payload))
        count += 1
    return count
