"""The ``nasbench.ModelMetrics`` protobuf (proto2).

``ModelMetrics``: 1 evaluation_data (repeated message), 2 trainable_parameters (int32),
3 total_time (double). ``EvaluationData``: 1 current_epoch, 2 training_time, 3 train_accuracy,
4 validation_accuracy, 5 test_accuracy (doubles), 6 checkpoint_path (string).

Messages are parsed by the ``protobuf`` package (its upb C parser) from a descriptor built here, as
upstream's generated ``model_metrics_pb2`` would: fields in any order, repeated scalars (last one
wins), unknown fields of every wire type, and known field numbers arriving with another wire type
(kept as unknown fields) are all read as protobuf reads them. The hand-written walker below is
only the error reporter (protobuf's own message names no cause) and the encoder of fixture files.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

_DOUBLE = struct.Struct("<d")
EVALUATION_FIELDS: dict[int, str] = {
    1: "current_epoch",
    2: "training_time",
    3: "train_accuracy",
    4: "validation_accuracy",
    5: "test_accuracy",
}
#: Wire types: varint, 64-bit, length-delimited, 32-bit (groups, 3 and 4, are not used by the format).
VARINT, I64, LEN, I32 = 0, 1, 2, 5


class ProtobufError(ValueError):
    """Bytes that are not a valid encoding of the message."""


@dataclass(frozen=True)
class EvaluationData:
    current_epoch: float = 0.0
    training_time: float = 0.0
    train_accuracy: float = 0.0
    validation_accuracy: float = 0.0
    test_accuracy: float = 0.0
    #: Non-UTF-8 bytes are kept, as ``surrogateescape`` characters (protobuf hands them over as bytes).
    checkpoint_path: str = ""


@dataclass(frozen=True)
class ModelMetrics:
    evaluation_data: tuple[EvaluationData, ...] = ()
    trainable_parameters: int = 0
    total_time: float = 0.0


# --- parsing (protobuf) -------------------------------------------------------------------------
@lru_cache(maxsize=1)
def model_metrics_class() -> Any:
    """The ``nasbench.ModelMetrics`` message class, from upstream's ``model_metrics.proto``."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    proto = descriptor_pb2.FileDescriptorProto(
        name="nbcompile_model_metrics.proto", package="nasbench", syntax="proto2"
    )
    field = descriptor_pb2.FieldDescriptorProto
    evaluation = proto.message_type.add(name="EvaluationData")
    for number, name in EVALUATION_FIELDS.items():
        evaluation.field.add(name=name, number=number, type=field.TYPE_DOUBLE, label=field.LABEL_OPTIONAL)
    evaluation.field.add(name="checkpoint_path", number=6, type=field.TYPE_STRING, label=field.LABEL_OPTIONAL)
    metrics = proto.message_type.add(name="ModelMetrics")
    metrics.field.add(
        name="evaluation_data",
        number=1,
        type=field.TYPE_MESSAGE,
        label=field.LABEL_REPEATED,
        type_name=".nasbench.EvaluationData",
    )
    metrics.field.add(name="trainable_parameters", number=2, type=field.TYPE_INT32, label=field.LABEL_OPTIONAL)
    metrics.field.add(name="total_time", number=3, type=field.TYPE_DOUBLE, label=field.LABEL_OPTIONAL)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("nasbench.ModelMetrics"))


def parse_model_metrics(raw: bytes) -> ModelMetrics:
    """Decode a serialized ModelMetrics; ProtobufError naming the cause if it is malformed."""
    from google.protobuf.message import DecodeError

    try:
        message = model_metrics_class().FromString(raw)
    except DecodeError:
        raise ProtobufError(explain_protobuf_error(raw)) from None
    return metrics_from_message(message)


def metrics_from_message(message: Any) -> ModelMetrics:
    """The dataclass form of a parsed ``ModelMetrics`` message."""
    evaluations = tuple(
        EvaluationData(
            e.current_epoch,
            e.training_time,
            e.train_accuracy,
            e.validation_accuracy,
            e.test_accuracy,
            _text(e.checkpoint_path),
        )
        for e in message.evaluation_data
    )
    return ModelMetrics(evaluations, message.trainable_parameters, message.total_time)


def _text(value: str | bytes) -> str:
    return value.decode("utf-8", "surrogateescape") if isinstance(value, bytes) else value


# --- the error reporter: a protobuf walker that says what is wrong ------------------------------
def read_varint(data: bytes, pos: int) -> tuple[int, int]:
    """``(value, next position)`` of the varint at ``pos``; ProtobufError if it is malformed."""
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
        if shift >= 70:
            raise ProtobufError("varint longer than 10 bytes")


def _fields(data: bytes):
    """Yield ``(field number, wire type, value)``; value is an int, or bytes for LEN/I64/I32."""
    pos = 0
    end = len(data)
    while pos < end:
        key, pos = read_varint(data, pos)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise ProtobufError("field number 0")
        if wire == VARINT:
            value, pos = read_varint(data, pos)
        elif wire == I64:
            value, pos = data[pos : pos + 8], pos + 8
        elif wire == LEN:
            length, pos = read_varint(data, pos)
            value, pos = data[pos : pos + length], pos + length
        elif wire == I32:
            value, pos = data[pos : pos + 4], pos + 4
        else:
            raise ProtobufError(f"unsupported wire type {wire} (field {number})")
        if pos > end:
            raise ProtobufError(f"field {number} runs past the end of the message")
        yield number, wire, value


def explain_protobuf_error(raw: bytes) -> str:
    """Why protobuf refused ``raw`` as a ModelMetrics message (the first field that is malformed)."""
    try:
        for number, wire, value in _fields(raw):
            if number == 1 and wire == LEN:
                try:
                    for _ in _fields(value):  # type: ignore[arg-type]
                        pass
                except ProtobufError as error:
                    return f"evaluation_data: {error}"
    except ProtobufError as error:
        return str(error)
    return "protobuf could not parse it"


# --- encoding (fixture files) -------------------------------------------------------------------
def encode_varint(value: int) -> bytes:
    """Protobuf's varint; negative values as their 64-bit two's complement (int32 does that)."""
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


def encode_field(number: int, wire: int, value: int | float | bytes) -> bytes:
    """One field: its key, then the value in the form ``wire`` says."""
    key = encode_varint(number << 3 | wire)
    if wire == VARINT:
        return key + encode_varint(int(value))  # type: ignore[arg-type]
    if wire == I64:
        return key + (_DOUBLE.pack(value) if isinstance(value, float) else struct.pack("<Q", value))
    if wire == I32:
        return key + (struct.pack("<f", value) if isinstance(value, float) else struct.pack("<I", value))
    return key + encode_varint(len(value)) + value  # type: ignore[arg-type, operator]
