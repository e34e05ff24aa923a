"""One dataset record: the JSON payload ``[module_hash, epochs, adjacency, operations, metrics]``.

:class:`PayloadReader` is the one decoding path, for the converter and for single records. The
payload is split by one regular expression when it has no escapes in its strings (any JSON
whitespace between the fields; base64 with escaped line breaks, as ``base64.encodebytes``
writes it), else by ``json.loads``: both give the same fields. The base64 may carry whitespace
(upstream's ``b64decode`` ignores it); any other character outside the alphabet is an error. The
metrics are parsed by protobuf (:mod:`nbcompile.nasbench.metrics`).
"""

from __future__ import annotations

import binascii
import json
import re
from binascii import a2b_base64
from dataclasses import dataclass
from typing import Any

from google.protobuf.message import DecodeError

from nbcompile.errors import DatasetError, first_line
from nbcompile.nasbench.metrics import ModelMetrics, explain_protobuf_error, metrics_from_message, model_metrics_class
from nbcompile.nasbench.tfrecord import where
from nbcompile.space.graph import is_module_hash
from nbcompile.space.ops import MAX_VERTICES, OP_ALIASES, OP_CODE, OP_CODES

_WS = rb"[ \t\n\r]*"  # JSON's whitespace
#: The payload when no string holds an escape other than ``\n`` in the base64; else json.loads.
_PAYLOAD = re.compile(
    _WS
    + rb"\["
    + _WS
    + rb'"([0-9a-f]{32})"'
    + _WS
    + rb","
    + _WS
    + rb"([1-9][0-9]{0,17})"
    + _WS
    + rb","
    + _WS
    + rb'"([01]*)"'
    + _WS
    + rb","
    + _WS
    + rb'"([a-z0-9,\-]*)"'
    + _WS
    + rb","
    + _WS
    + rb'"([A-Za-z0-9+/=]*(?:\\n[A-Za-z0-9+/=]*)*)"'
    + _WS
    + rb"\]"
    + _WS
)
_BASE64_WHITESPACE = b" \t\n\r\f\v"
#: Largest epoch budget (it must fit the tables' int64).
MAX_EPOCHS = (1 << 63) - 1


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


class PayloadReader:
    """Splits and checks payloads; remembers the op lists it has seen (a file has few)."""

    def __init__(self) -> None:
        self._ops: dict[bytes, tuple[int, ...] | str] = {}
        self._from_string = model_metrics_class().FromString

    def split(self, payload: bytes, index: int, offset: int) -> tuple[bytes, int, bytes, tuple[int, ...], Any]:
        """``(module_hash, epochs, adjacency as b"0"/b"1", op codes, parsed ModelMetrics message)``
        of the payload of record ``index`` at byte ``offset``; DatasetError naming them."""
        match = _PAYLOAD.fullmatch(payload)
        if match is not None:
            module_hash, epochs, adjacency, operations, encoded = match.groups()
            epochs = int(epochs)
            if b"\\" in encoded:
                encoded = encoded.replace(b"\\n", b"")  # base64.encodebytes' line breaks
        else:
            module_hash, epochs, adjacency, operations, encoded = _json_fields(payload, where(index, offset))
        codes = self._ops.get(operations)
        if codes is None:
            codes = self._ops[operations] = _op_codes(operations)
        if type(codes) is str:
            raise DatasetError(f"{where(index, offset)}: {codes}")
        if len(adjacency) != len(codes) ** 2:
            raise DatasetError(
                f"{where(index, offset)}: adjacency of {len(adjacency)} characters does not match {len(codes)} ops "
                "(expected a flattened square 0/1 matrix)"
            )
        try:
            raw = a2b_base64(encoded, strict_mode=True)
        except binascii.Error:
            raw = _base64_with_whitespace(encoded, index, offset)
        try:
            message = self._from_string(raw)
        except DecodeError:
            reason = explain_protobuf_error(raw)
            raise DatasetError(
                f"{where(index, offset)}: metrics is not a valid ModelMetrics protobuf ({reason})"
            ) from None
        return module_hash, epochs, adjacency, codes, message  # type: ignore[return-value]

    def record(self, payload: bytes, index: int = 0, offset: int = 0) -> Record:
        """The whole record (every evaluation, the checkpoint paths)."""
        module_hash, epochs, adjacency, codes, message = self.split(payload, index, offset)
        ops = tuple(OP_CODES[code] for code in codes)
        return Record(module_hash.decode(), epochs, adjacency.decode(), ops, metrics_from_message(message))


def _json_fields(payload: bytes, place: str) -> tuple[bytes, int, bytes, bytes, bytes]:
    """The five fields through ``json.loads`` (any escapes, any spacing), checked."""
    try:
        fields = json.loads(payload)
    except (UnicodeDecodeError, ValueError) as error:  # JSONDecodeError, or too many digits
        raise DatasetError(f"{place}: payload is not JSON ({first_line(error, max_chars=100)})") from None
    except RecursionError:
        raise DatasetError(f"{place}: payload is not JSON (nested too deeply)") from None
    if not isinstance(fields, list) or len(fields) != 5:
        count = len(fields) if isinstance(fields, list) else type(fields).__name__
        raise DatasetError(f"{place}: payload must be a JSON array of 5 fields, got {count}")
    module_hash, epochs, adjacency, operations, metrics = fields
    if not isinstance(module_hash, str) or not is_module_hash(module_hash):
        raise DatasetError(f"{place}: module_hash {_short(module_hash)} is not 32 lowercase hex digits")
    if type(epochs) is not int or not 0 < epochs <= MAX_EPOCHS:
        raise DatasetError(f"{place}: epochs {_short(epochs)} is not a positive integer below 2**63")
    if not isinstance(operations, str) or not isinstance(adjacency, str):
        raise DatasetError(f"{place}: adjacency and operations must be strings")
    if adjacency.strip("01"):
        raise DatasetError(f"{place}: adjacency {_short(adjacency)} is not a flattened square 0/1 matrix")
    if not isinstance(metrics, str):
        raise DatasetError(f"{place}: metrics must be a base64 string")
    text = (module_hash, adjacency, operations, metrics)
    module_hash, adjacency, operations, metrics = (s.encode("utf-8", "surrogatepass") for s in text)
    return module_hash, epochs, adjacency, operations, metrics


def _op_codes(operations: bytes) -> tuple[int, ...] | str:
    """The op codes of a stored op list, or what is wrong with it."""
    names = operations.decode("utf-8", "replace").split(",")
    unknown = [name for name in names if name not in OP_ALIASES]
    if unknown:
        return f"unknown op {_short(unknown[0])}"
    if len(names) > MAX_VERTICES:
        return f"{len(names)} vertices, NAS-Bench-101 cells have at most {MAX_VERTICES}"
    return tuple(OP_CODE[OP_ALIASES[name]] for name in names)


def _base64_with_whitespace(encoded: bytes, index: int, offset: int) -> bytes:
    """Strict base64 after removing whitespace (which upstream's decoder ignores too)."""
    try:
        return a2b_base64(encoded.translate(None, _BASE64_WHITESPACE), strict_mode=True)
    except binascii.Error as error:
        raise DatasetError(f"{where(index, offset)}: metrics is not valid base64 ({error})") from None


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:40]}... ({len(text)} characters)"


def parse_record(payload: bytes, index: int = 0, offset: int = 0) -> Record:
    """Decode and check one payload; DatasetError names the record and byte offset."""
    return PayloadReader().record(payload, index, offset)
