"""The on-disk cache of converted dataset files: one folder of ``.npy`` arrays per source file.

The folder name is a digest of the source's size, modification time and the SHA-256 of its
first and last MiB, so an edited or replaced file is converted again. That key has one known
limit: a file edited in place *in its middle*, keeping its size, with its modification time set
back, still finds the old cache. Keying on a hash of the whole file would close it, but reading a
2 GB source on every load does not fit the warm-load goal (< 1 s); ``nbcompile data verify`` checks
the whole source against the CRC-32C the manifest records for it instead.

Arrays are loaded memory-mapped (no pickle anywhere). A conversion writes into a temporary folder
that is renamed into place only after ``manifest.json`` is written last, so an interrupted
conversion never leaves a cache that loads; temporaries of writers that died are removed later.
The manifest records every array's shape, dtype and CRC-32C; every load checks all three and the
arrays' consistency, so a cache changed after it was written is never read silently (a
:class:`StaleCacheError`; the API then converts again). Folders get the permissions the umask
gives, so that a shared cache folder serves every user.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import crc32c
import numpy as np

from nbcompile._version import __version__
from nbcompile.errors import DatasetError, first_line
from nbcompile.fileio import NPY_ERRORS, current_umask
from nbcompile.nasbench.tables import METRIC_FIELDS, DatasetTables
from nbcompile.space.ops import MAX_VERTICES, OP_CODES, PAD_CODE

#: Bump when the arrays change meaning or layout; older caches are then ignored.
FORMAT_VERSION = 2
MANIFEST = "manifest.json"
_SAMPLE = 1 << 20
#: A temporary folder of another machine (whose writer's pid cannot be checked) is stale after this.
STALE_SECONDS = 24 * 3600
#: Bytes read at a time when checksumming a source file.
_READ = 1 << 24

#: dtype and dimensions of every array (N cells, E epoch budgets, R repeats).
SCHEMA: dict[str, tuple[str, tuple[str | int, ...]]] = {
    "hashes": ("|S32", ("N",)),
    "num_vertices": ("|u1", ("N",)),
    "matrices": ("|u1", ("N", MAX_VERTICES, MAX_VERTICES)),
    "ops": ("|i1", ("N", MAX_VERTICES)),
    "parameters": ("<i8", ("N",)),
    "epochs": ("<i8", ("E",)),
    "repeats": ("|u1", ("N", "E")),
    "metrics": ("<f8", ("N", "E", "R", len(METRIC_FIELDS))),
}


class StaleCacheError(DatasetError):
    """A cache folder that exists but must not be used (changed, damaged, or of another source)."""


class CacheWarning(UserWarning):
    """The cache could not be used or written; the data is converted (again) instead."""


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

    def manifest_fields(self) -> dict[str, Any]:
        return {
            "source_size": self.size,
            "source_mtime_ns": self.mtime_ns,
            "source_head_tail_sha256": self.head_tail_sha256,
        }


def default_cache_root() -> Path:
    """``$NBCOMPILE_CACHE_DIR``, else ``$XDG_CACHE_HOME/nbcompile``, else ``~/.cache/nbcompile``."""
    if os.environ.get("NBCOMPILE_CACHE_DIR"):
        return Path(os.environ["NBCOMPILE_CACHE_DIR"])
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "nbcompile"


def checksum(array: np.ndarray) -> int:
    """CRC-32C of an array's bytes (C order): about 15 GB/s, so every load can afford it."""
    return crc32c.crc32c(memoryview(np.ascontiguousarray(array)).cast("B"))


def file_checksum(path: str | Path) -> int:
    """CRC-32C of a whole file."""
    value = 0
    with open(path, "rb") as handle:
        while block := handle.read(_READ):
            value = crc32c.crc32c(block, value)
    return value


def array_entry(array: np.ndarray) -> dict[str, Any]:
    """What the manifest records of one array."""
    return {"shape": list(array.shape), "dtype": array.dtype.str, "crc32c": checksum(array)}


def _read_manifest(folder: Path) -> dict[str, Any] | None:
    """The manifest, or None where there is none (nothing was ever finished here)."""
    try:
        text = (folder / MANIFEST).read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as error:
        raise StaleCacheError(f"{folder}: unreadable {MANIFEST} ({error})") from None
    try:
        manifest = json.loads(text)
    except (ValueError, RecursionError):
        raise StaleCacheError(f"{folder}: {MANIFEST} is not valid JSON") from None
    if not isinstance(manifest, dict):
        raise StaleCacheError(f"{folder}: {MANIFEST} is not a JSON object")
    return manifest


def load_tables(
    folder: Path, key: SourceKey | None = None, verify_content: bool = True
) -> tuple[DatasetTables, dict[str, Any]] | None:
    """The cached tables in ``folder`` (memory-mapped) and its manifest; None if there is no cache
    there (no folder, or no manifest). StaleCacheError if there is one that must not be used: of
    another format, another source than ``key``, or arrays that do not match their manifest entry
    (shape, dtype, and with ``verify_content`` the CRC-32C) or one another."""
    if not folder.is_dir():
        return None
    manifest = _read_manifest(folder)
    if manifest is None:
        return None
    if manifest.get("format_version") != FORMAT_VERSION:
        raise StaleCacheError(
            f"{folder}: cache format {manifest.get('format_version')!r}, this nbcompile writes {FORMAT_VERSION}"
        )
    if manifest.get("op_codes") != list(OP_CODES) or manifest.get("metric_fields") != list(METRIC_FIELDS):
        raise StaleCacheError(f"{folder}: the cache's op codes or metric fields are not this nbcompile's")
    if key is not None and any(manifest.get(name) != value for name, value in key.manifest_fields().items()):
        raise StaleCacheError(f"{folder}: the cache was written for another source file")
    entries = manifest.get("arrays")
    if not isinstance(entries, dict):
        raise StaleCacheError(f"{folder}: {MANIFEST} lists no arrays")
    arrays = {}
    for name in DatasetTables.names():
        entry = entries.get(name)
        if not isinstance(entry, dict):
            raise StaleCacheError(f"{folder}: {MANIFEST} has no entry for {name}.npy")
        try:
            array = np.load(folder / f"{name}.npy", mmap_mode="r", allow_pickle=False)
        except NPY_ERRORS as error:
            raise StaleCacheError(f"{folder}: {name}.npy cannot be read ({first_line(error)})") from None
        if list(array.shape) != entry.get("shape") or array.dtype.str != entry.get("dtype"):
            raise StaleCacheError(
                f"{folder}: {name}.npy is {array.dtype.str} {list(array.shape)}, the manifest says "
                f"{entry.get('dtype')} {entry.get('shape')}"
            )
        if verify_content and checksum(array) != entry.get("crc32c"):
            raise StaleCacheError(f"{folder}: {name}.npy does not match its checksum: it changed after it was written")
        arrays[name] = array
    tables = DatasetTables(**arrays)
    problem = table_problem(tables)
    if problem:
        raise StaleCacheError(f"{folder}: {problem}")
    return tables, manifest


def table_problem(tables: DatasetTables) -> str | None:
    """What is inconsistent in ``tables`` (dtypes, shapes, and the value ranges every converted
    file has), or None."""
    sizes: dict[str, int] = {}
    for name, (dtype, dims) in SCHEMA.items():
        array = getattr(tables, name)
        if array.dtype.str != dtype:
            return f"{name} has dtype {array.dtype.str}, expected {dtype}"
        if array.ndim != len(dims):
            return f"{name} has {array.ndim} dimensions, expected {len(dims)}"
        for axis, (size, dim) in enumerate(zip(array.shape, dims)):
            expected = dim if isinstance(dim, int) else sizes.setdefault(dim, size)
            if size != expected:
                return f"{name} has {size} entries on axis {axis}, the other arrays {expected}"
    if tables.num_cells == 0:
        return "the cache holds no cells"
    if not (1 <= tables.num_vertices.min() and tables.num_vertices.max() <= MAX_VERTICES):
        return f"num_vertices outside 1..{MAX_VERTICES}"
    if tables.matrices.max() > 1:
        return "matrices hold entries other than 0 and 1"
    padding = np.arange(MAX_VERTICES) >= tables.num_vertices[:, None]
    if not np.array_equal(tables.ops == PAD_CODE, padding) or not (tables.ops < len(OP_CODES)).all():
        return "ops hold unknown op codes, or padding that does not match num_vertices"
    epochs = tables.epochs
    if (epochs <= 0).any() or (np.diff(epochs) <= 0).any():
        return "epochs are not positive and ascending"
    if tables.repeats.size and int(tables.repeats.max()) > tables.metrics.shape[2]:
        return "repeats exceed the runs stored in metrics"
    return None


def _temporary_prefix(folder: Path) -> str:
    return f".{folder.name}.{socket.gethostname()}.{os.getpid()}."


def clean_stale_temporaries(root: Path) -> list[Path]:
    """Remove temporary folders under ``root`` left by conversions that died (killed mid-write):
    those of this machine whose writer is no longer running, and any older than a day."""
    removed = []
    try:
        candidates = [
            entry for entry in os.scandir(root) if entry.name.startswith(".nasbench-") and entry.name.endswith(".tmp")
        ]
    except OSError:
        return removed
    host = socket.gethostname()
    for entry in candidates:
        parts = entry.name.split(".")  # "", folder name, host, pid, random, "tmp"
        try:
            old = time.time() - entry.stat(follow_symlinks=False).st_mtime > STALE_SECONDS
        except OSError:
            continue
        dead = len(parts) == 6 and parts[2] == host and parts[3].isdigit() and not _running(int(parts[3]))
        if old or dead:
            shutil.rmtree(entry.path, ignore_errors=True)
            removed.append(Path(entry.path))
    return removed


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def _is_usable(folder: Path, key: SourceKey) -> bool:
    try:
        return load_tables(folder, key) is not None
    except StaleCacheError:
        return False


def save_tables(tables: DatasetTables, folder: Path, source: str | Path, key: SourceKey, extra: dict[str, Any]) -> None:
    """Write ``tables`` to ``folder`` atomically (temporary folder, manifest last, rename).

    A usable cache that another process finished first is kept (losing that race is success);
    a stale one is replaced.
    """
    folder.parent.mkdir(parents=True, exist_ok=True)
    clean_stale_temporaries(folder.parent)
    temporary = Path(tempfile.mkdtemp(dir=folder.parent, prefix=_temporary_prefix(folder), suffix=".tmp"))
    try:
        os.chmod(temporary, 0o777 & ~current_umask())
        entries = {}
        for name, array in tables.arrays().items():
            array = np.ascontiguousarray(array)
            np.save(temporary / f"{name}.npy", array, allow_pickle=False)
            entries[name] = array_entry(array)
        manifest = {
            "format_version": FORMAT_VERSION,
            "nbcompile_version": __version__,
            "source": str(Path(source).resolve()),
            **key.manifest_fields(),
            "source_crc32c": file_checksum(source),
            "op_codes": list(OP_CODES),
            "metric_fields": list(METRIC_FIELDS),
            "cells": tables.num_cells,
            "records": tables.num_records,
            "epochs": tables.epochs.tolist(),
            "arrays": entries,
            **extra,
        }
        (temporary / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        _move_into_place(temporary, folder, key)
    finally:
        shutil.rmtree(temporary, ignore_errors=True)


def _move_into_place(temporary: Path, folder: Path, key: SourceKey) -> None:
    for _ in range(3):
        try:
            os.rename(temporary, folder)
            return
        except OSError:
            if _is_usable(folder, key):  # another process finished the same cache first
                return
        # a stale or damaged folder is in the way: move it aside (atomically), then remove it
        aside = Path(tempfile.mkdtemp(dir=folder.parent, prefix=_temporary_prefix(folder), suffix=".tmp"))
        try:
            os.rename(folder, aside / "old")
        except OSError:
            pass  # gone meanwhile, or replaced by another process: look again
        shutil.rmtree(aside, ignore_errors=True)
    if not _is_usable(folder, key):
        os.rename(temporary, folder)  # raises the OSError that keeps happening


def verify(folder: Path) -> dict[str, Any]:
    """Check every array of the cache in ``folder`` (StaleCacheError on a mismatch) and, if the
    source file is still where it was, that its content is the one converted.

    Returns the manifest with ``source_checked`` added: True, or False where the source is gone.
    StaleCacheError for a source whose content changed."""
    loaded = load_tables(folder, verify_content=True)
    if loaded is None:
        raise DatasetError(f"{folder}: not an nbcompile dataset cache (no {MANIFEST})")
    manifest = dict(loaded[1])
    source = Path(str(manifest.get("source", "")))
    manifest["source_checked"] = False
    if source.is_file() and "source_crc32c" in manifest:
        if file_checksum(source) != manifest["source_crc32c"]:
            raise StaleCacheError(f"{folder}: {source} changed since it was converted (its CRC-32C differs)")
        manifest["source_checked"] = True
    return manifest
