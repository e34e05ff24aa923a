"""The NAS-Bench-101 dataset without TensorFlow.

``tfrecord`` (framing and CRCs), ``metrics`` (the ModelMetrics protobuf, parsed by protobuf's C
parser), ``records`` (one record's JSON payload: the one decoding path, for every byte layout),
``convert`` (file → columnar tables, on several cores), ``cache``
(memory-mapped ``.npy`` folders), ``api`` (the upstream query API), ``report`` (what the CLI
prints about a dataset), ``writer`` (the byte layouts of records). Synthetic files in the official
format are written above this layer, by :mod:`nbcompile.synthetic`.

A drop-in for upstream's module: ``from nasbench import api`` becomes
``from nbcompile.nasbench import api``; ``api.NASBench``, ``api.ModelSpec`` and
``api.OutOfDomainError`` are here too, as ``NASBench``, ``ModelSpec`` and ``OutOfDomainError``.
"""

from nbcompile.errors import DatasetError, OutOfDomainError, UnknownCellError
from nbcompile.nasbench import api
from nbcompile.nasbench.api import ModelSpec, NASBench

__all__ = ["DatasetError", "ModelSpec", "NASBench", "OutOfDomainError", "UnknownCellError", "api"]
