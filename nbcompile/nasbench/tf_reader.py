"""A TensorFlow-backed reader (``pip install "nbcompile[tf]"``), to check the built-in one against.

TensorFlow reads the TFRecord framing (and checks its CRCs); the JSON and the base64 are decoded
as upstream decodes them (``json.loads``, non-validating ``base64.b64decode``), the ``ModelMetrics``
protobuf by the ``protobuf`` package, as upstream's generated ``model_metrics_pb2`` would.
Nothing in nbcompile needs this module; it exists so that a test can show that both readers give
identical tables.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

from nbcompile.nasbench.convert import tables_from_records
from nbcompile.nasbench.metrics import metrics_from_message, model_metrics_class
from nbcompile.nasbench.records import Record
from nbcompile.nasbench.tables import DatasetTables
from nbcompile.optional import require
from nbcompile.space.ops import OP_ALIASES


def iter_records_tf(path: str | Path) -> Iterator[Record]:
    """Every record of the file, read with TensorFlow, ``json`` and ``base64.b64decode`` as upstream does."""
    require("tensorflow", "the TensorFlow reader")
    import tensorflow as tf

    message_class = model_metrics_class()
    for payload in tf.data.TFRecordDataset(str(path)).as_numpy_iterator():
        module_hash, epochs, adjacency, operations, encoded = json.loads(payload.decode("utf-8"))
        metrics = metrics_from_message(message_class.FromString(base64.b64decode(encoded)))
        ops = tuple(OP_ALIASES[op] for op in operations.split(","))
        yield Record(module_hash, epochs, adjacency, ops, metrics)


def convert_file_tf(path: str | Path) -> DatasetTables:
    """The tables of the file, read through TensorFlow (compare with ``convert_file``)."""
    require("tensorflow", "the TensorFlow reader")
    return tables_from_records(iter_records_tf(path))
