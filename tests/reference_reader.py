"""An independent reader of NAS-Bench-101 files for tests: TFRecord framing, the JSON payload and
the ModelMetrics protobuf, written from the formats' public descriptions (TensorFlow's TFRecord
framing, the protobuf wire format, upstream's ``model_metrics.proto``), sharing no code with
nbcompile. It says what a file holds, or that the file is bad, or that the file lies where
readers may reasonably differ (``Ambiguous``)."""

from __future__ import annotations

import base64
import binascii
import json
import math
import struct
from dataclasses import dataclass, field

import crc32c

OPS = ("input", "output", "conv3x3-bn-relu", "conv1x1-bn-relu", "maxpool3x3")
METRICS = (
    "halfway_training_time",
    "halfway_train_accuracy",
    "halfway_validation_accuracy",
    "halfway_test_accuracy",
    "final_training_time",
    "final_train_accuracy",
    "final_validation_accuracy",
    "final_test_accuracy",
)
HEX = set("0123456789abcdef")


class Reject(Exception):
    """Every reader must refuse this file."""


class Ambiguous(Exception):
    """Readers may differ on this file (refuse it or read it); only a clean outcome is required."""


@dataclass
class Cell:
    adjacency: str
    ops: tuple[str, ...]
    parameters: int
    runs: dict[int, list[tuple[float, ...]]] = field(default_factory=dict)


def _mask(crc: int) -> int:
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def frame(payload: bytes) -> bytes:
    length = struct.pack("<Q", len(payload))
    return (
        length
        + struct.pack("<I", _mask(crc32c.crc32c(length)))
        + payload
        + struct.pack("<I", _mask(crc32c.crc32c(payload)))
    )


def payloads(data: bytes) -> list[bytes]:
    out, position = [], 0
    while position < len(data):
        if position + 12 > len(data):
            raise Reject("truncated header")
        (length,) = struct.unpack_from("<Q", data, position)
        (length_crc,) = struct.unpack_from("<I", data, position + 8)
        if _mask(crc32c.crc32c(data[position : position + 8])) != length_crc:
            raise Reject("length crc")
        end = position + 12 + length + 4
        if end > len(data):
            raise Reject("truncated record")
        payload = data[position + 12 : end - 4]
        if _mask(crc32c.crc32c(payload)) != struct.unpack_from("<I", data, end - 4)[0]:
            raise Reject("payload crc")
        out.append(payload)
        position = end
    if not out:
        raise Reject("empty")
    return out


def _varint(data: bytes, position: int) -> tuple[int, int]:
    value = shift = 0
    for _ in range(10):
        if position >= len(data):
            raise Reject("truncated varint")
        byte = data[position]
        position += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, position
        shift += 7
    raise Reject("varint too long")


def _fields(data: bytes) -> list[tuple[int, int, object]]:
    out, position = [], 0
    while position < len(data):
        key, position = _varint(data, position)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise Reject("field 0")
        if wire == 0:
            value, position = _varint(data, position)
        elif wire == 1 or wire == 5:
            size = 8 if wire == 1 else 4
            if position + size > len(data):
                raise Reject("truncated fixed")
            value, position = data[position : position + size], position + size
        elif wire == 2:
            size, position = _varint(data, position)
            if position + size > len(data):
                raise Reject("truncated bytes")
            value, position = data[position : position + size], position + size
        elif wire in (3, 4):
            raise Ambiguous("groups")
        else:
            raise Reject("wire type")
        out.append((number, wire, value))
    return out


def _evaluation(data: bytes) -> tuple[float, ...]:
    values = [0.0] * 5
    for number, wire, value in _fields(data):
        if 1 <= number <= 5:
            if wire != 1:
                raise Ambiguous("wire type of a known field")
            values[number - 1] = struct.unpack("<d", value)[0]
        elif number == 6:
            if wire != 2:
                raise Ambiguous("wire type of a known field")
            try:
                value.decode("utf-8")
            except UnicodeDecodeError:
                raise Ambiguous("checkpoint path not UTF-8") from None
    return tuple(values)


def _metrics(raw: bytes) -> tuple[int, tuple[float, ...]]:
    evaluations, parameters = [], 0
    for number, wire, value in _fields(raw):
        if number == 1:
            if wire != 2:
                raise Ambiguous("wire type of a known field")
            evaluations.append(_evaluation(value))
        elif number == 2:
            if wire != 0:
                raise Ambiguous("wire type of a known field")
            parameters = value
        elif number == 3 and wire != 1:
            raise Ambiguous("wire type of a known field")
    if len(evaluations) < 3:
        raise Reject("fewer than 3 evaluations")
    if not 0 <= parameters < 2**31:
        raise Ambiguous("parameters outside int32's positive range")
    halfway, final = evaluations[1], evaluations[2]
    return parameters, halfway[1:] + final[1:]


def read(data: bytes) -> dict[str, Cell]:
    """Cells by module hash, in first-seen order; Reject or Ambiguous."""
    cells: dict[str, Cell] = {}
    for payload in payloads(data):
        try:
            fields = json.loads(payload)
        except (ValueError, RecursionError):
            raise Reject("not JSON") from None
        if not isinstance(fields, list) or len(fields) != 5:
            raise Reject("not 5 fields")
        module_hash, epochs, adjacency, operations, metrics = fields
        if not (isinstance(module_hash, str) and len(module_hash) == 32 and set(module_hash) <= HEX):
            raise Reject("hash")
        if type(epochs) is not int or epochs <= 0 or epochs >= 2**63:
            raise Reject("epochs")
        if not isinstance(adjacency, str) or not isinstance(operations, str) or not isinstance(metrics, str):
            raise Reject("field types")
        ops = tuple(operations.split(","))
        if any(op not in OPS for op in ops):
            if all(op in OPS or op in ("conv3x3", "conv1x1") for op in ops):
                raise Ambiguous("op aliases")
            raise Reject("op")
        size = math.isqrt(len(adjacency))
        if size * size != len(adjacency) or size != len(ops) or set(adjacency) - {"0", "1"} or size > 7:
            raise Reject("adjacency")
        try:
            raw = base64.b64decode(metrics, validate=True)
        except (binascii.Error, ValueError):
            raise Reject("base64") from None
        parameters, values = _metrics(raw)
        cell = cells.setdefault(module_hash, Cell(adjacency, ops, parameters))
        if (cell.adjacency, cell.ops, cell.parameters) != (adjacency, ops, parameters):
            raise Reject("inconsistent cell")
        cell.runs.setdefault(epochs, []).append(values)
    if any(len(runs) > 255 for cell in cells.values() for runs in cell.runs.values()):
        raise Ambiguous("more than 255 runs")
    return cells
