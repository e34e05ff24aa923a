"""The columnar form of a NAS-Bench-101 file: plain numpy arrays, one row per cell.

This is what the converter produces, what the cache stores (one ``.npy`` file per array) and what
the query API reads. Rows are cells in the file's first-seen order (upstream's ``hash_iterator``
order); repeats are in file order within each (cell, epoch budget), as upstream counts them.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from nbcompile.space.ops import OP_CODES

#: The last axis of ``metrics``: upstream's data point keys, in this order.
METRIC_FIELDS: tuple[str, ...] = (
    "halfway_training_time",
    "halfway_train_accuracy",
    "halfway_validation_accuracy",
    "halfway_test_accuracy",
    "final_training_time",
    "final_train_accuracy",
    "final_validation_accuracy",
    "final_test_accuracy",
)
#: The keys ``query`` returns from a data point, by position within the halfway/final group.
QUERY_FIELDS: tuple[str, ...] = ("training_time", "train_accuracy", "validation_accuracy", "test_accuracy")


@dataclass(frozen=True)
class DatasetTables:
    """All of a dataset file, as arrays (``N`` cells, ``E`` epoch budgets, ``R`` repeats)."""

    #: (N,) ``S32``: module hashes, ASCII.
    hashes: np.ndarray
    #: (N,) uint8: vertices of the stored cell.
    num_vertices: np.ndarray
    #: (N, 7, 7) uint8: the stored (canonical) adjacency, zero-padded.
    matrices: np.ndarray
    #: (N, 7) int8: op codes (:data:`nbcompile.space.ops.OP_CODES`), ``PAD_CODE`` padded.
    ops: np.ndarray
    #: (N,) int64: trainable parameters of the cell's network.
    parameters: np.ndarray
    #: (E,) int64: the epoch budgets in the file, ascending.
    epochs: np.ndarray
    #: (N, E) uint8: runs stored for each (cell, budget); upstream files have 3 everywhere.
    repeats: np.ndarray
    #: (N, E, R, 8) float64: :data:`METRIC_FIELDS` of each run; NaN where a run is missing.
    metrics: np.ndarray

    @property
    def num_cells(self) -> int:
        return int(self.hashes.shape[0])

    @property
    def num_records(self) -> int:
        return int(self.repeats.astype(np.int64).sum())

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(field.name for field in fields(cls))

    def arrays(self) -> dict[str, np.ndarray]:
        return {name: getattr(self, name) for name in self.names()}

    def cell_ops(self, row: int) -> list[str]:
        """The stored op names of the cell in ``row``."""
        return [OP_CODES[code] for code in self.ops[row, : self.num_vertices[row]].tolist()]

    def cell_matrix(self, row: int) -> np.ndarray:
        """The stored adjacency of the cell in ``row``, as upstream returns it (int8, V×V)."""
        size = int(self.num_vertices[row])
        return self.matrices[row, :size, :size].astype(np.int8)
