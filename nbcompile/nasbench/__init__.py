"""The NAS-Bench-101 dataset without TensorFlow.

``tfrecord`` (framing and CRCs), ``metrics`` (the ModelMetrics protobuf), ``records`` (one
record's JSON payload). The cache and the query API build on these.
"""
