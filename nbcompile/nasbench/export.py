"""A dataset file as one flat Parquet table: a row per run (cell, epoch budget, repeat), or per
(cell, budget) with the mean of its runs. The cell is in the dataset's own string form (the
adjacency as the 0/1 digits of the stored matrix row by row, the ops comma-separated), followed
by its trainable parameters and every metric the dataset stores. Needs pyarrow
(``pip install "nbcompile[parquet]"``)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from nbcompile.fileio import atomic_output
from nbcompile.nasbench.tables import METRIC_FIELDS, DatasetTables
from nbcompile.optional import require

#: The schema metadata key holding what the table is, as JSON.
METADATA_KEY = b"nbcompile.export"


def cell_strings(tables: DatasetTables) -> tuple[np.ndarray, np.ndarray]:
    """Every cell's adjacency and ops in the dataset's string form, by row."""
    adjacency = ["".join(map(str, tables.cell_matrix(row).ravel().tolist())) for row in range(tables.num_cells)]
    ops = [",".join(tables.cell_ops(row)) for row in range(tables.num_cells)]
    return np.array(adjacency, dtype=object), np.array(ops, dtype=object)


def run_columns(tables: DatasetTables, mean: bool = False) -> dict[str, np.ndarray]:
    """The table's columns: a row per stored run, in the file's cell order, then by budget and
    repeat; or with ``mean`` a row per (cell, budget) with runs, each metric the mean of its runs
    (NaN if one of them is) and ``repeats`` their number."""
    counts = tables.repeats.astype(np.int64)  # (N, E)
    if mean:
        cells, budgets = np.nonzero(counts > 0)
        runs = tables.metrics[cells, budgets]  # (n, R, 8)
        stored = np.arange(runs.shape[1]) < counts[cells, budgets, None]
        values = np.where(stored[:, :, None], runs, 0.0).sum(axis=1) / counts[cells, budgets, None]
        extra = {"repeats": counts[cells, budgets]}
    else:
        cells, budgets, repeats = np.nonzero(np.arange(tables.metrics.shape[2]) < counts[:, :, None])
        values = tables.metrics[cells, budgets, repeats]
        extra = {"repeat": repeats.astype(np.int64)}
    adjacency, ops = cell_strings(tables)
    columns: dict[str, np.ndarray] = {
        "module_hash": tables.hashes[cells].astype(str),
        "epochs": tables.epochs[budgets].astype(np.int64),
        **extra,
        "adjacency": adjacency[cells],
        "ops": ops[cells],
        "trainable_parameters": tables.parameters[cells].astype(np.int64),
    }
    columns.update({name: values[:, index] for index, name in enumerate(METRIC_FIELDS)})
    return columns


def write_export(path: str | os.PathLike[str], tables: DatasetTables, source: str, mean: bool = False) -> int:
    """Write the table of ``tables`` (read from ``source``) to a Parquet file at ``path``
    atomically; returns its number of rows."""
    require("pyarrow", "the Parquet export")
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns = run_columns(tables, mean)
    table = pa.table({name: pa.array(values) for name, values in columns.items()})
    about = {"source": source, "rows": "mean of each (cell, budget)'s runs" if mean else "one per run"}
    table = table.replace_schema_metadata({METADATA_KEY: json.dumps(about, sort_keys=True)})
    with atomic_output(Path(path)) as temporary:
        pq.write_table(table, temporary)
    return table.num_rows
