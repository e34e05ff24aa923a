"""The NAS-Bench-101 dataset without TensorFlow.

``tfrecord`` (framing and CRCs), ``metrics`` (the ModelMetrics protobuf), ``records`` (one
record's JSON payload), ``convert`` (file → columnar tables, on several cores), ``cache``
(memory-mapped ``.npy`` folders), ``api`` (the upstream query API), ``fixture`` (synthetic files in
the official format).
"""

from nbcompile.errors import DatasetError, UnknownCellError
from nbcompile.nasbench.api import NASBench

__all__ = ["DatasetError", "NASBench", "UnknownCellError"]
