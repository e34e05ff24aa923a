"""The ``nasbench.ModelMetrics`` protobuf (proto2), decoded and encoded by hand.

``ModelMetrics``: 1 evaluation_data (repeated message), 2 trainable_parameters (int32),
3 total_time (double). ``EvaluationData``: 1 current_epoch, 2 training_time, 3 train_accuracy,
4 validation_accuracy, 5 test_accuracy (doubles), 6 checkpoint_path (string). Unknown fields are
skipped, as protobuf does, since other producers of the format add fields.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

_DOUBLE = struct.Struct("<d")
_EVALUATION_FIELDS = {1: "current_epoch", 2: "training_time", 3: "train_accuracy", 4: "validation_accuracy", 5: "test_accuracy"}


class ProtobufError(ValueError):
    """Bytes that are not a valid encoding of the message."""


@dataclass(frozen=True)
class EvaluationData:
    current_epoch: float = 0.0
    training_time: float = 0.0
    train_accuracy: float = 0.0
    validation_accuracy: float = 0.0
    test_accuracy: float = 0.0
    checkpoint_path: str = ""


@dataclass(frozen=True)
class ModelMetrics:
    evaluation_data: tuple[EvaluationData, ...] = ()
    trainable_parameters: int = 0
    total_time: float = 0.0


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data):
            raise ProtobufError("truncated varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift >= 64:
            raise ProtobufError("varint longer than 10 bytes")


def _fields(data: bytes):
    """Yield ``(field number, wire type, value)``; value is an int, or bytes for LEN/I64/I32."""
    pos = 0
    end = len(data)
    while pos < end:
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise ProtobufError("field number 0")
        if wire == 0:
            value, pos = _varint(data, pos)
        elif wire == 1:
            value, pos = data[pos : pos + 8], pos + 8
        elif wire == 2:
            length, pos = _varint(data, pos)
            value, pos = data[pos : pos + length], pos + length
        elif wire == 5:
            value, pos = data[pos : pos + 4], pos + 4
        else:
            raise ProtobufError(f"unsupported wire type {wire} (field {number})")
        if pos > end:
            raise ProtobufError(f"field {number} runs past the end of the message")
        yield number, wire, value


def _double(value: object, wire: int, name: str) -> float:
    if wire != 1:
        raise ProtobufError(f"{name} has wire type {wire}, expected 1 (64-bit)")
    return _DOUBLE.unpack(value)[0]  # type: ignore[arg-type]


#: The layout protobuf writes for EvaluationData: five tagged doubles, then a short path
#: (its tag and one-byte length; the path bytes follow).
EVALUATION_LAYOUT = struct.Struct("<BdBdBdBdBdBB")
EVALUATION_TAGS = (0x09, 0x11, 0x19, 0x21, 0x29, 0x32)


def decode_evaluation(data: bytes) -> EvaluationData:
    """Decode one EvaluationData; the usual byte layout takes a single struct unpack."""
    if len(data) >= EVALUATION_LAYOUT.size:
        fields = EVALUATION_LAYOUT.unpack_from(data)
        tags = fields[0:10:2] + (fields[10],)
        if tags == EVALUATION_TAGS and fields[11] == len(data) - EVALUATION_LAYOUT.size < 0x80:
            try:
                path = bytes(data[EVALUATION_LAYOUT.size :]).decode("utf-8")
            except UnicodeDecodeError:
                raise ProtobufError("checkpoint_path is not UTF-8") from None
            return EvaluationData(*fields[1:10:2], path)
    return _decode_evaluation_fields(data)


def _decode_evaluation_fields(data: bytes) -> EvaluationData:
    values: dict[str, object] = {}
    for number, wire, value in _fields(data):
        if number in _EVALUATION_FIELDS:
            values[_EVALUATION_FIELDS[number]] = _double(value, wire, _EVALUATION_FIELDS[number])
        elif number == 6:
            if wire != 2:
                raise ProtobufError(f"checkpoint_path has wire type {wire}, expected 2")
            try:
                values["checkpoint_path"] = bytes(value).decode("utf-8")  # type: ignore[arg-type]
            except UnicodeDecodeError:
                raise ProtobufError("checkpoint_path is not UTF-8") from None
    return EvaluationData(**values)  # type: ignore[arg-type]


def decode_model_metrics(data: bytes) -> ModelMetrics:
    """Decode a serialized ModelMetrics; ProtobufError if it is malformed."""
    evaluations = []
    parameters = 0
    total_time = 0.0
    for number, wire, value in _fields(data):
        if number == 1:
            if wire != 2:
                raise ProtobufError(f"evaluation_data has wire type {wire}, expected 2")
            evaluations.append(decode_evaluation(value))  # type: ignore[arg-type]
        elif number == 2:
            if wire != 0:
                raise ProtobufError(f"trainable_parameters has wire type {wire}, expected 0")
            parameters = value - (1 << 64) if value >= 1 << 63 else value  # int32 sign extension
        elif number == 3:
            total_time = _double(value, wire, "total_time")
    return ModelMetrics(tuple(evaluations), parameters, total_time)


def _encode_varint(value: int) -> bytes:
    if value < 0:
        value += 1 << 64
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def encode_evaluation(evaluation: EvaluationData) -> bytes:
    out = bytearray()
    for number, name in _EVALUATION_FIELDS.items():
        out += bytes([number << 3 | 1]) + _DOUBLE.pack(getattr(evaluation, name))
    path = evaluation.checkpoint_path.encode("utf-8")
    out += bytes([6 << 3 | 2]) + _encode_varint(len(path)) + path
    return bytes(out)


def encode_model_metrics(metrics: ModelMetrics) -> bytes:
    """Serialize like protobuf does: fields in number order, every field present."""
    out = bytearray()
    for evaluation in metrics.evaluation_data:
        body = encode_evaluation(evaluation)
        out += bytes([1 << 3 | 2]) + _encode_varint(len(body)) + body
    out += bytes([2 << 3 | 0]) + _encode_varint(metrics.trainable_parameters)
    out += bytes([3 << 3 | 1]) + _DOUBLE.pack(metrics.total_time)
    return bytes(out)
