"""Dataset files written by hand, independent of nbcompile's writers and readers.

TFRecord frames, protobuf fields and JSON payloads are built here from their specifications
(TFRecord: ``uint64 length, masked crc32c, payload, masked crc32c``; protobuf: varint keys
``number << 3 | wire type``), in every byte layout that upstream's reader accepts, so that the
converter is tested against bytes it did not write.
"""

from __future__ import annotations

import base64
import json
import struct
from dataclasses import dataclass
from pathlib import Path

from crc32c import crc32c
from example_cells import INCEPTION_HASH

VARINT, I64, LEN, I32 = 0, 1, 2, 5


# --- TFRecord ------------------------------------------------------------------------------------
def masked_crc(data: bytes) -> int:
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def frame(payload: bytes) -> bytes:
    length = struct.pack("<Q", len(payload))
    return length + struct.pack("<I", masked_crc(length)) + payload + struct.pack("<I", masked_crc(payload))


def frames(data: bytes) -> list[tuple[int, bytes]]:
    """``(byte offset, payload)`` of every record of a well-formed file."""
    out, position = [], 0
    while position < len(data):
        (length,) = struct.unpack_from("<Q", data, position)
        out.append((position, data[position + 12 : position + 12 + length]))
        position += 16 + length
    assert position == len(data)
    return out


def write_file(path: Path, payloads: list[bytes]) -> Path:
    path.write_bytes(b"".join(frame(p) for p in payloads))
    return path


# --- protobuf ------------------------------------------------------------------------------------
def varint(value: int) -> bytes:
    value &= (1 << 64) - 1  # negative int32: ten bytes of two's complement
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    return bytes(out + bytes([value]))


def pb(number: int, wire: int, value) -> bytes:
    key = varint(number << 3 | wire)
    if wire == VARINT:
        return key + varint(value)
    if wire == I64:
        return key + (struct.pack("<d", value) if isinstance(value, float) else struct.pack("<q", value))
    if wire == I32:
        return key + (struct.pack("<f", value) if isinstance(value, float) else struct.pack("<i", value))
    return key + varint(len(value)) + value


# --- the records -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Run:
    """One training run as a test states it: the values a reader must return."""

    module_hash: str
    epochs: int
    adjacency: str
    ops: tuple[str, ...]
    parameters: int
    #: (current_epoch, training_time, train, validation, test) of start, halfway and final.
    evaluations: tuple[tuple[float, float, float, float, float], ...]
    total_time: float = 1234.5


@dataclass(frozen=True)
class Layout:
    """How to lay out a record; every option is something upstream's reader accepts."""

    path: bytes | None = b""  # checkpoint_path: None leaves the field out
    reordered: bool = False  # scalars first, EvaluationData fields backwards
    unknown: bool = False  # unknown fields of every wire type in both messages
    derived: bool = False  # a derived benchmark: ModelMetrics 6-14, EvaluationData 6 as a double
    repeated_scalars: bool = False  # every scalar first written with a wrong value (last one wins)
    json_separators: tuple[str, str] | None = None
    json_indent: int | None = None
    json_escapes: bool = False  # every '/' of the base64 written as the JSON escape '\/'
    base64: str = "plain"  # "plain", "lines" (encodebytes), "spaces" (CRLF and blanks inside)


LAYOUTS: dict[str, Layout] = {
    "empty path": Layout(),
    "non-empty path": Layout(path=b"gs://bucket/nasbench/run-17/model.ckpt-43200"),
    "absent path": Layout(path=None),
    "long path": Layout(path=b"/" + b"x" * 300),  # a two-byte length varint
    "compact json": Layout(json_separators=(",", ":")),
    "pretty json": Layout(json_indent=2),
    "tabs and newlines": Layout(json_separators=("\t,\n", ":")),
    "json escapes": Layout(json_escapes=True),
    "reordered fields": Layout(path=None, reordered=True),
    "unknown fields": Layout(unknown=True),
    "repeated scalars": Layout(repeated_scalars=True),
    "line-broken base64": Layout(base64="lines"),
    "base64 with blanks": Layout(base64="spaces"),
    "third party": Layout(path=None, derived=True, base64="lines"),
}


def evaluation_bytes(values: tuple[float, ...], layout: Layout) -> bytes:
    fields = [pb(number, I64, float(value)) for number, value in enumerate(values, 1)]
    if layout.repeated_scalars:
        fields = [pb(number, I64, -1.0) for number in range(1, 6)] + fields
    if layout.path is not None:
        fields.append(pb(6, LEN, layout.path))
    if layout.derived:
        fields.append(pb(6, I64, 2.5))  # upstream's string field 6 arrives as a double
    if layout.unknown:
        fields += [pb(7, VARINT, 300), pb(8, I64, 7), pb(9, LEN, b"\x01\x02"), pb(10, I32, 9), pb(2, VARINT, 5)]
    if layout.reordered:
        fields.reverse()
    return b"".join(fields)


def metrics_bytes(run: Run, layout: Layout) -> bytes:
    evaluations = [pb(1, LEN, evaluation_bytes(values, layout)) for values in run.evaluations]
    scalars = [pb(2, VARINT, run.parameters), pb(3, I64, float(run.total_time))]
    if layout.repeated_scalars:
        scalars = [pb(2, VARINT, 1), pb(3, I64, -1.0), *scalars]
    fields = scalars + evaluations if layout.reordered else evaluations + scalars
    if layout.unknown:  # wire types 0, 1, 2, 5; a known number with the wrong wire type (2 as I64)
        fields[1:1] = [pb(20, VARINT, 1 << 63), pb(21, I64, 1.5), pb(22, LEN, b"abc"), pb(23, I32, 3), pb(2, I64, 9)]
    if layout.derived:
        extras = [
            (6, VARINT, 7),
            (7, I64, 0.5),
            (8, LEN, b"derived"),
            (9, I32, 1.5),
            (10, VARINT, 1 << 35),
            (11, I64, 2.0),
            (12, LEN, b""),
            (13, I32, 4),
            (14, VARINT, 0),
        ]
        fields += [pb(*extra) for extra in extras]
    return b"".join(fields)


def encode_base64(raw: bytes, style: str) -> str:
    if style == "lines":
        return base64.encodebytes(raw).decode()
    text = base64.b64encode(raw).decode()
    if style == "spaces":
        return " ".join(text[i : i + 50] for i in range(0, len(text), 50)).replace(" ", "\r\n ", 1)
    return text


def payload(run: Run, layout: Layout) -> bytes:
    metrics = encode_base64(metrics_bytes(run, layout), layout.base64)
    fields = [run.module_hash, run.epochs, run.adjacency, ",".join(run.ops), metrics]
    text = json.dumps(fields, separators=layout.json_separators, indent=layout.json_indent)
    if layout.json_escapes:
        text = text.replace("/", "\\/")
    return text.encode()


# --- a small data set with known values ----------------------------------------------------------------
CELLS = (
    ("4f3d0b2a9c8e7f6a5b4c3d2e1f0a9b8c", "0100", ("input", "output"), 882_570),
    ("0123456789abcdef0123456789abcdef", "011001000", ("input", "conv3x3-bn-relu", "output"), 10_177_674),
    (
        INCEPTION_HASH,  # under one of its other labelings
        "0111010000000100000010000100000000100000010000000",
        ("input", "conv3x3-bn-relu", "conv3x3-bn-relu", "conv1x1-bn-relu", "conv3x3-bn-relu", "maxpool3x3", "output"),
        2_694_282,
    ),
)


def known_runs(epochs: tuple[int, ...] = (108,), repeats: int = 3) -> list[Run]:
    """Runs with distinct, exactly representable values, cell by cell, budget by budget."""
    runs = []
    for c, (module_hash, adjacency, ops, parameters) in enumerate(CELLS):
        for e, budget in enumerate(epochs):
            for r in range(repeats):
                base = 0.5 + c / 8 + e / 64 + r / 512
                evaluations = tuple(
                    (budget * k / 2, 100.0 * k + c + r / 4, base + k / 1024, base + k / 2048, base + k / 4096)
                    for k in range(3)
                )
                runs.append(Run(module_hash, budget, adjacency, ops, parameters, evaluations, 10.0 + c + r))
    return runs
