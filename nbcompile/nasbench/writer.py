"""Writing records in the official format: one record's JSON payload, in any of the byte layouts
upstream's reader accepts.

``encode_record(record)`` writes what most tools write; the other :data:`LAYOUTS` (protobuf fields
in another order, no checkpoint path, compact JSON, line-broken base64, the unknown fields of
derived benchmarks) exist so that fixtures and load benchmarks can cover each of them.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass

from nbcompile.nasbench.metrics import (
    EVALUATION_FIELDS,
    I32,
    I64,
    LEN,
    VARINT,
    EvaluationData,
    ModelMetrics,
    encode_field,
)
from nbcompile.nasbench.records import Record


@dataclass(frozen=True)
class Layout:
    """How a writer lays out a record's bytes; every layout here is valid for upstream's reader."""

    name: str
    #: "" (present, empty: what this project wrote first), a path, or None (field absent).
    checkpoint_path: str | None = ""
    #: Protobuf fields in another order: scalars before the evaluations, EvaluationData backwards.
    reordered: bool = False
    #: A derived benchmark's extras: ModelMetrics fields 6-14 of every wire type, and
    #: EvaluationData field 6 as a double (where upstream has the string checkpoint_path).
    extra_fields: bool = False
    #: JSON without spaces (``separators=(",", ":")``).
    compact_json: bool = False
    #: base64 with a line break every 76 characters (``base64.encodebytes``).
    base64_lines: bool = False

    def metrics_bytes(self, metrics: ModelMetrics) -> bytes:
        evaluations = [encode_field(1, LEN, self._evaluation_bytes(e)) for e in metrics.evaluation_data]
        scalars = [encode_field(2, VARINT, metrics.trainable_parameters), encode_field(3, I64, metrics.total_time)]
        fields = scalars[::-1] + evaluations if self.reordered else evaluations + scalars
        if self.extra_fields:
            fields += [encode_field(number, wire, value) for number, wire, value in _EXTRA_FIELDS]
        return b"".join(fields)

    def _evaluation_bytes(self, evaluation: EvaluationData) -> bytes:
        fields = [encode_field(number, I64, getattr(evaluation, name)) for number, name in EVALUATION_FIELDS.items()]
        if self.checkpoint_path is not None:
            fields.append(encode_field(6, LEN, self.checkpoint_path.encode()))
        if self.extra_fields:
            fields.append(encode_field(6, I64, evaluation.current_epoch * 1.5))
        return b"".join(fields[::-1] if self.reordered else fields)

    def payload(self, record: Record) -> bytes:
        raw = self.metrics_bytes(record.metrics)
        metrics = (base64.encodebytes(raw) if self.base64_lines else base64.b64encode(raw)).decode("ascii")
        fields = [record.module_hash, record.epochs, record.adjacency, ",".join(record.operations), metrics]
        return json.dumps(fields, separators=(",", ":") if self.compact_json else None).encode("utf-8")


#: Unknown ModelMetrics fields of a derived benchmark (number, wire type, value).
_EXTRA_FIELDS = (
    (6, VARINT, 150),
    (7, I64, 0.25),
    (8, LEN, b"derived-benchmark"),
    (9, I32, 0.5),
    (10, VARINT, 1 << 40),
    (11, I64, 3.0),
    (12, LEN, b""),
    (13, I32, 7),
    (14, VARINT, 0),
)
LAYOUTS: dict[str, Layout] = {
    layout.name: layout
    for layout in (
        Layout("empty-path"),
        Layout("path", checkpoint_path="gs://nasbench-runs/cifar10/model_dir/repeat_1/model.ckpt-43200"),
        Layout("no-path", checkpoint_path=None),
        Layout("compact-json", compact_json=True),
        Layout("reordered", checkpoint_path=None, reordered=True),
        Layout("third-party", checkpoint_path=None, extra_fields=True, base64_lines=True),
    )
}
DEFAULT_LAYOUT = "empty-path"


def encode_record(record: Record, layout: str = DEFAULT_LAYOUT) -> bytes:
    """The JSON payload of ``record`` (frame it with :func:`nbcompile.nasbench.tfrecord.frame`)."""
    return LAYOUTS[layout].payload(record)
