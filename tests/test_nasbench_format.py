"""The dataset file format: TFRecord framing, the ModelMetrics protobuf, record payloads."""

from __future__ import annotations

import base64
import json
import struct

import pytest
from example_cells import INCEPTION_HASH, INCEPTION_STORED_ADJACENCY, INCEPTION_STORED_OPS
from hypothesis import given, settings
from hypothesis import strategies as st
from nasbench_bytes import frame as hand_frame

from nbcompile.errors import DatasetError
from nbcompile.nasbench.metrics import EvaluationData, ModelMetrics, ProtobufError, parse_model_metrics
from nbcompile.nasbench.records import Record, parse_record
from nbcompile.nasbench.tfrecord import first_bad_crc, frame, masked_crc, record_offsets
from nbcompile.nasbench.writer import LAYOUTS

# The Inception-like cell's metrics as upstream's notebook prints them (one repeat at 108 epochs).
FINAL = EvaluationData(108.0, 1155.85302734375, 1.0, 0.9376001358032227, 0.9311898946762085, "")
METRICS = ModelMetrics((EvaluationData(), EvaluationData(54.0, 578.0, 0.9, 0.9, 0.9, ""), FINAL), 2694282, 1769.0)
#: The fixture writer's default layout: every field, in number order, empty checkpoint paths.
OFFICIAL = LAYOUTS["empty-path"]


def test_crc32c_and_mask_known_values() -> None:
    from crc32c import crc32c

    assert crc32c(b"123456789") == 0xE3069283  # the CRC-32C check value
    crc = 0xE3069283
    assert masked_crc(b"123456789") == (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def test_protobuf_bytes_are_protobufs_encoding() -> None:
    """Hand-checked wire bytes: field 2 varint 2694282 is 10 8a b9 a4 01; field 3 is tag 0x19."""
    encoded = OFFICIAL.metrics_bytes(ModelMetrics((), 2694282, 1.5))
    assert encoded == bytes([0x10, 0x8A, 0xB9, 0xA4, 0x01, 0x19]) + struct.pack("<d", 1.5)
    evaluation = OFFICIAL.metrics_bytes(ModelMetrics((EvaluationData(1.0, 2.0, 3.0, 4.0, 5.0),), 0, 0.0))
    assert evaluation[:2] == bytes([0x0A, 5 * 9 + 2])  # field 1, LEN 47: five doubles + an empty path
    assert evaluation[2] == 0x09 and evaluation[11] == 0x11 and evaluation[47:49] == b"\x32\x00"


def test_metrics_round_trip_in_every_fixture_layout() -> None:
    for layout in LAYOUTS.values():
        decoded = parse_model_metrics(layout.metrics_bytes(METRICS))
        assert decoded.trainable_parameters == METRICS.trainable_parameters and decoded.total_time == 1769.0
        values = [(e.current_epoch, e.training_time, e.validation_accuracy) for e in decoded.evaluation_data]
        assert values == [(e.current_epoch, e.training_time, e.validation_accuracy) for e in METRICS.evaluation_data]
        paths = {e.checkpoint_path for e in decoded.evaluation_data}
        assert paths == {layout.checkpoint_path or ""}, layout.name


def test_unknown_fields_are_skipped() -> None:
    extra = bytes([0x20, 0x07]) + bytes([0x2A, 0x02]) + b"hi" + bytes([0x35]) + b"\0\0\0\0"  # fields 4, 5, 6
    inner_extra = bytes([0x38, 0x01])  # field 7 varint inside EvaluationData
    body = OFFICIAL.metrics_bytes(ModelMetrics((), 5, 0.0))
    evaluation = bytes([0x09]) + struct.pack("<d", 3.0) + inner_extra
    data = bytes([0x0A, len(evaluation)]) + evaluation + extra + body
    decoded = parse_model_metrics(data)
    assert decoded.trainable_parameters == 5 and decoded.evaluation_data[0].current_epoch == 3.0


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (bytes([0x10]), "truncated varint"),
        (bytes([0x0A, 0x05, 0x01]), "runs past the end"),
        (bytes([0x10]) + b"\xff" * 11, "longer than 10 bytes"),
        (bytes([0x0B]), "unsupported wire type 3"),
        (bytes([0x19, 0x00]), "runs past the end"),
        (bytes([0x0A, 0x02, 0x09, 0x00]), "evaluation_data: field 1 runs past the end"),
        (bytes([0x00]), "field number 0"),
    ],
)
def test_corrupt_protobufs_say_why(data: bytes, message: str) -> None:
    with pytest.raises(ProtobufError, match=message):
        parse_model_metrics(data)


def test_a_known_field_with_another_wire_type_is_an_unknown_field() -> None:
    """As protobuf does: field 2 (int32) arriving as 64-bit is skipped, not an error."""
    assert parse_model_metrics(bytes([0x11]) + b"\0" * 8 + bytes([0x10, 0x07])).trainable_parameters == 7


@settings(max_examples=100, derandomize=True, deadline=None)
@given(st.lists(st.binary(min_size=0, max_size=300), min_size=1, max_size=6))
def test_framing_against_a_hand_written_writer(tmp_path_factory, payloads: list[bytes]) -> None:
    data = b"".join(hand_frame(p) for p in payloads)
    assert b"".join(frame(p) for p in payloads) == data
    path = tmp_path_factory.mktemp("frames") / "f.tfrecord"
    path.write_bytes(data)
    offsets = record_offsets(path).tolist()
    assert offsets == [sum(16 + len(p) for p in payloads[:i]) for i in range(len(payloads) + 1)]
    assert first_bad_crc(data, offsets[:-1], offsets[1:]) is None


def _file(*payloads: bytes) -> bytearray:
    return bytearray(b"".join(hand_frame(p) for p in payloads))


@pytest.mark.parametrize(
    ("corrupt", "message"),
    [
        (
            lambda b: b[: len(b) - 3],
            r"record 1 at byte 21: file ends inside the record \(6 bytes of payload announced, 7 left\)",
        ),
        (lambda b: b[:25], r"record 1 at byte 21: file ends inside the record header"),
        (lambda b: b[:21] + bytes([b[21] ^ 1]) + b[22:], r"record 1 at byte 21: bad CRC of the length field"),
        (lambda b: b[:21] + bytes([b[21] ^ 64]) + b[22:], r"record 1 at byte 21: bad CRC of the length field"),
    ],
)
def test_bad_frames_name_record_and_offset(tmp_path, corrupt, message: str) -> None:
    path = tmp_path / "bad.tfrecord"
    path.write_bytes(bytes(corrupt(_file(b"first", b"second"))))
    with pytest.raises(DatasetError, match=message):
        record_offsets(path)


def test_crc_check_names_the_first_bad_record() -> None:
    data = _file(b"first", b"second", b"third")
    assert first_bad_crc(bytes(data), [0, 21, 43], [21, 43, 64]) is None
    data[34] ^= 1  # a payload byte of record 1
    data[50] ^= 1  # and of record 2
    assert first_bad_crc(bytes(data), [0, 21, 43], [21, 43, 64]) == (1, "bad CRC of the payload")
    data[29] ^= 1  # record 1's length CRC
    assert first_bad_crc(bytes(data), [0, 21, 43], [21, 43, 64]) == (1, "bad CRC of the length field")


def _payload(**overrides) -> bytes:
    fields = {
        "module_hash": INCEPTION_HASH,
        "epochs": 108,
        "adjacency": INCEPTION_STORED_ADJACENCY,
        "operations": ",".join(INCEPTION_STORED_OPS),
        "metrics": base64.b64encode(OFFICIAL.metrics_bytes(METRICS)).decode(),
    }
    fields.update(overrides)
    return json.dumps(list(fields.values())).encode()


def test_record_round_trip() -> None:
    record = parse_record(_payload(), 3, 99)
    assert record == Record(INCEPTION_HASH, 108, INCEPTION_STORED_ADJACENCY, INCEPTION_STORED_OPS, METRICS)
    assert parse_record(OFFICIAL.payload(record)) == record
    for layout in LAYOUTS.values():  # other layouts: the same record, but for the checkpoint paths
        again = parse_record(layout.payload(record))
        assert (
            again.metrics.evaluation_data[2].test_accuracy == FINAL.test_accuracy
            and again.module_hash == record.module_hash
        )
    assert record.metrics.evaluation_data[2].validation_accuracy == 0.9376001358032227


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"not json", "payload is not JSON"),
        (b"[1, 2, 3]", "a JSON array of 5 fields, got 3"),
        (_payload(module_hash="XYZ"), "module_hash 'XYZ' is not 32 lowercase hex digits"),
        (_payload(epochs=0), "epochs 0 is not a positive integer"),
        (_payload(operations="input,conv5x5,output"), "unknown op 'conv5x5'"),
        (_payload(adjacency="0110"), "adjacency of 4 characters does not match 7 ops"),
        (_payload(metrics="@@@"), "metrics is not valid base64"),
        (_payload(metrics=base64.b64encode(b"\x0b").decode()), "not a valid ModelMetrics protobuf"),
        (_payload(metrics="CQ==*"), "metrics is not valid base64"),
        (_payload(epochs=2**63), "epochs 9223372036854775808 is not a positive integer below 2\\*\\*63"),
    ],
)
def test_bad_payloads_name_the_record(payload: bytes, message: str) -> None:
    with pytest.raises(DatasetError, match=f"record 7 at byte 1234: .*{message}"):
        parse_record(payload, 7, 1234)
