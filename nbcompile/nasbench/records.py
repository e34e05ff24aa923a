"""One dataset record: the JSON payload ``[module_hash, epochs, adjacency, operations, metrics]``."""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from dataclasses import dataclass

from nbcompile.errors import DatasetError
from nbcompile.nasbench.metrics import ModelMetrics, ProtobufError, decode_model_metrics, encode_model_metrics
from nbcompile.space.ops import OP_ALIASES

_HASH = re.compile(r"[0-9a-f]{32}")


@dataclass(frozen=True)
class Record:
    """A trained model: the cell (as stored), the epoch budget, and its metrics."""

    module_hash: str
    epochs: int
    adjacency: str
    operations: tuple[str, ...]
    metrics: ModelMetrics

    @property
    def num_vertices(self) -> int:
        return len(self.operations)


def parse_record(payload: bytes, index: int = 0, offset: int = 0) -> Record:
    """Decode and check one payload; DatasetError names the record and byte offset."""
    where = f"record {index} at byte {offset}"
    try:
        fields = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DatasetError(f"{where}: payload is not JSON ({error})") from None
    if not isinstance(fields, list) or len(fields) != 5:
        count = len(fields) if isinstance(fields, list) else type(fields).__name__
        raise DatasetError(f"{where}: payload must be a JSON array of 5 fields, got {count}")
    module_hash, epochs, adjacency, operations, metrics = fields
    if not isinstance(module_hash, str) or not _HASH.fullmatch(module_hash):
        raise DatasetError(f"{where}: module_hash {module_hash!r} is not 32 lowercase hex digits")
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs <= 0:
        raise DatasetError(f"{where}: epochs {epochs!r} is not a positive integer")
    if not isinstance(operations, str) or not isinstance(adjacency, str):
        raise DatasetError(f"{where}: adjacency and operations must be strings")
    ops = tuple(operations.split(","))
    unknown = [op for op in ops if op not in OP_ALIASES]
    if unknown:
        raise DatasetError(f"{where}: unknown op {unknown[0]!r}")
    size = math.isqrt(len(adjacency))
    if size * size != len(adjacency) or size != len(ops) or set(adjacency) - {"0", "1"}:
        raise DatasetError(
            f"{where}: adjacency of {len(adjacency)} characters does not match {len(ops)} ops "
            "(expected a flattened square 0/1 matrix)"
        )
    if not isinstance(metrics, str):
        raise DatasetError(f"{where}: metrics must be a base64 string")
    try:
        raw = base64.b64decode(metrics, validate=True)
    except (binascii.Error, ValueError) as error:
        raise DatasetError(f"{where}: metrics is not valid base64 ({error})") from None
    try:
        decoded = decode_model_metrics(raw)
    except ProtobufError as error:
        raise DatasetError(f"{where}: metrics is not a valid ModelMetrics protobuf ({error})") from None
    return Record(module_hash, epochs, adjacency, tuple(OP_ALIASES[op] for op in ops), decoded)


def encode_record(record: Record) -> bytes:
    """The JSON payload of ``record``, as the official files have it."""
    metrics = base64.b64encode(encode_model_metrics(record.metrics)).decode("ascii")
    fields = [record.module_hash, record.epochs, record.adjacency, ",".join(record.operations), metrics]
    return json.dumps(fields).encode("utf-8")
