"""The NAS-Bench-101 dataset without TensorFlow.

``tfrecord`` (framing and CRCs), ``metrics`` (the ModelMetrics protobuf, parsed by protobuf's C
parser), ``records`` (one record's JSON payload: the one decoding path, for every byte layout),
``convert`` (file → columnar tables, on several cores), ``cache``
(memory-mapped ``.npy`` folders), ``api`` (the upstream query API), ``fixture`` (synthetic files in
the official format).
"""

from nbcompile.errors import DatasetError, UnknownCellError
from nbcompile.nasbench.api import NASBench

__all__ = ["DatasetError", "NASBench", "UnknownCellError"]
