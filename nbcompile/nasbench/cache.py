"""The on-disk cache of converted dataset files: one folder of ``.npy`` arrays per source file.

The folder name is a digest of the source's size, modification time and the SHA-256 of its
first and last MiB, so an edited or replaced file is converted again. Arrays are loaded
memory-mapped (no pickle anywhere). A conversion writes into a temporary folder that is renamed
into place only after ``manifest.json`` is written last, so an interrupted conversion never
leaves a cache that loads.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nbcompile._version import __version__
from nbcompile.nasbench.tables import METRIC_FIELDS, DatasetTables
from nbcompile.space.ops import OP_CODES

#: Bump when the arrays change meaning or layout; older caches are then ignored.
FORMAT_VERSION = 1
_MANIFEST = "manifest.json"
_SAMPLE = 1 << 20


@dataclass(frozen=True)
class SourceKey:
    """What identifies a source file's content, cheaply."""

    size: int
    mtime_ns: int
    head_tail_sha256: str

    @classmethod
    def of(cls, path: str | Path) -> SourceKey:
        stat = os.stat(path)
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            digest.update(handle.read(_SAMPLE))
            if stat.st_size > _SAMPLE:
                handle.seek(max(_SAMPLE, stat.st_size - _SAMPLE))
                digest.update(handle.read())
        return cls(stat.st_size, stat.st_mtime_ns, digest.hexdigest())

    def folder_name(self) -> str:
        text = f"v{FORMAT_VERSION}/{self.size}/{self.mtime_ns}/{self.head_tail_sha256}"
        return "nasbench-" + hashlib.sha256(text.encode()).hexdigest()[:24]


def default_cache_root() -> Path:
    """``$NBCOMPILE_CACHE_DIR``, else ``$XDG_CACHE_HOME/nbcompile``, else ``~/.cache/nbcompile``."""
    if os.environ.get("NBCOMPILE_CACHE_DIR"):
        return Path(os.environ["NBCOMPILE_CACHE_DIR"])
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "nbcompile"


def load_tables(folder: Path) -> tuple[DatasetTables, dict[str, Any]] | None:
    """The cached tables in ``folder`` (memory-mapped) and its manifest; None if absent or stale."""
    try:
        manifest = json.loads((folder / _MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if manifest.get("format_version") != FORMAT_VERSION or manifest.get("op_codes") != list(OP_CODES):
        return None
    if manifest.get("metric_fields") != list(METRIC_FIELDS):
        return None
    try:
        arrays = {name: np.load(folder / f"{name}.npy", mmap_mode="r", allow_pickle=False) for name in DatasetTables.names()}
    except (OSError, ValueError):
        return None
    return DatasetTables(**arrays), manifest


def save_tables(tables: DatasetTables, folder: Path, source: str | Path, key: SourceKey, extra: dict[str, Any]) -> None:
    """Write ``tables`` to ``folder`` atomically (temporary folder, manifest last, rename)."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    temporary = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.", suffix=".tmp"))
    try:
        for name, array in tables.arrays().items():
            np.save(temporary / f"{name}.npy", np.ascontiguousarray(array), allow_pickle=False)
        manifest = {
            "format_version": FORMAT_VERSION,
            "nbcompile_version": __version__,
            "source": str(Path(source).resolve()),
            "source_size": key.size,
            "source_mtime_ns": key.mtime_ns,
            "source_head_tail_sha256": key.head_tail_sha256,
            "op_codes": list(OP_CODES),
            "metric_fields": list(METRIC_FIELDS),
            "cells": tables.num_cells,
            "records": tables.num_records,
            "epochs": tables.epochs.tolist(),
            **extra,
        }
        (temporary / _MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        try:
            os.rename(temporary, folder)
        except OSError:
            if load_tables(folder) is None:  # not a finished cache written by someone else meanwhile
                shutil.rmtree(folder, ignore_errors=True)
                os.rename(temporary, folder)
    finally:
        shutil.rmtree(temporary, ignore_errors=True)

