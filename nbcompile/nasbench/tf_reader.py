"""A TensorFlow-backed reader (``pip install "nbcompile[tf]"``), to check the built-in one against.

TensorFlow reads the TFRecord framing (and checks its CRCs); the ``ModelMetrics`` protobuf is
decoded by the ``protobuf`` package from a descriptor built here, as upstream's generated
``model_metrics_pb2`` would. Nothing in nbcompile needs this module; it exists so that a test can
show that both readers give identical tables.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path

from nbcompile.nasbench.convert import tables_from_records
from nbcompile.nasbench.metrics import EvaluationData, ModelMetrics
from nbcompile.nasbench.records import Record
from nbcompile.nasbench.tables import DatasetTables
from nbcompile.optional import require
from nbcompile.space.ops import OP_ALIASES


@lru_cache(maxsize=1)
def _model_metrics_class():
    """The ``nasbench.ModelMetrics`` message class, from upstream's .proto definition."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    proto = descriptor_pb2.FileDescriptorProto(name="nbcompile_model_metrics.proto", package="nasbench", syntax="proto2")
    evaluation = proto.message_type.add(name="EvaluationData")
    field = descriptor_pb2.FieldDescriptorProto
    for number, name in enumerate(
        ("current_epoch", "training_time", "train_accuracy", "validation_accuracy", "test_accuracy"), 1
    ):
        evaluation.field.add(name=name, number=number, type=field.TYPE_DOUBLE, label=field.LABEL_OPTIONAL)
    evaluation.field.add(name="checkpoint_path", number=6, type=field.TYPE_STRING, label=field.LABEL_OPTIONAL)
    metrics = proto.message_type.add(name="ModelMetrics")
    metrics.field.add(
        name="evaluation_data", number=1, type=field.TYPE_MESSAGE, label=field.LABEL_REPEATED,
        type_name=".nasbench.EvaluationData",
    )  # fmt: skip
    metrics.field.add(name="trainable_parameters", number=2, type=field.TYPE_INT32, label=field.LABEL_OPTIONAL)
    metrics.field.add(name="total_time", number=3, type=field.TYPE_DOUBLE, label=field.LABEL_OPTIONAL)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("nasbench.ModelMetrics"))


def iter_records_tf(path: str | Path) -> Iterator[Record]:
    """Every record of the file, read with TensorFlow and protobuf."""
    require("tensorflow", "the TensorFlow reader")
    import tensorflow as tf

    message_class = _model_metrics_class()
    for payload in tf.data.TFRecordDataset(str(path)).as_numpy_iterator():
        module_hash, epochs, adjacency, operations, encoded = json.loads(payload.decode("utf-8"))
        message = message_class()
        message.ParseFromString(base64.b64decode(encoded))
        evaluations = tuple(
            EvaluationData(e.current_epoch, e.training_time, e.train_accuracy, e.validation_accuracy, e.test_accuracy, e.checkpoint_path)
            for e in message.evaluation_data
        )
        metrics = ModelMetrics(evaluations, message.trainable_parameters, message.total_time)
        ops = tuple(OP_ALIASES[op] for op in operations.split(","))
        yield Record(module_hash, epochs, adjacency, ops, metrics)


def convert_file_tf(path: str | Path) -> DatasetTables:
    """The tables of the file, read through TensorFlow (compare with ``convert_file``)."""
    require("tensorflow", "the TensorFlow reader")
    return tables_from_records(iter_records_tf(path))
