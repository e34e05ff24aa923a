"""The proxies table: a Parquet file keyed by module hash, one column per proxy, the settings
that produced it as JSON in the schema's metadata (key ``nbcompile.proxies``). Needs pyarrow
(``pip install "nbcompile[parquet]"``, or ``nbcompile[proxies]``)."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from nbcompile.fileio import atomic_output
from nbcompile.optional import require
from nbcompile.proxies.names import PLAN_PROXY_NAMES

#: The schema metadata key holding the settings, as JSON.
METADATA_KEY = b"nbcompile.proxies"
#: The key column.
KEY_COLUMN = "module_hash"


def write_table(
    path: str | os.PathLike[str],
    rows: Sequence[tuple[str, Mapping[str, float | int]]],
    proxies: Sequence[str],
    settings: Mapping[str, Any],
) -> Path:
    """Write ``(module_hash, scores)`` rows to a Parquet file at ``path`` atomically (nothing is
    left at ``path`` if writing fails); ``params`` and ``flops`` are int64, other proxies float64."""
    require("pyarrow", "the proxies table")
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns: dict[str, Any] = {KEY_COLUMN: pa.array([key for key, _ in rows], pa.string())}
    for name in proxies:
        kind = pa.int64() if name in PLAN_PROXY_NAMES else pa.float64()
        columns[name] = pa.array([scores[name] for _, scores in rows], kind)
    table = pa.table(columns).replace_schema_metadata({METADATA_KEY: json.dumps(dict(settings), sort_keys=True)})
    target = Path(path)
    with atomic_output(target) as temporary:
        pq.write_table(table, temporary)
    return target


def read_table(path: str | os.PathLike[str]) -> tuple[dict[str, list[Any]], dict[str, Any]]:
    """The columns (by name, as lists) and the settings of a proxies table."""
    require("pyarrow", "reading the proxies table")
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    metadata = table.schema.metadata or {}
    if METADATA_KEY not in metadata:
        raise ValueError(f"{path}: not an nbcompile proxies table (no {METADATA_KEY.decode()} metadata)")
    return table.to_pydict(), json.loads(metadata[METADATA_KEY])
