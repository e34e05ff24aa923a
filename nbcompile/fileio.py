"""Atomic file writes: a reader never sees a partly written file, a failure leaves none behind."""

from __future__ import annotations

import json
import os
import tempfile
import tokenize
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from nbcompile.errors import DatasetError

#: What ``np.load`` raises for a damaged ``.npy`` file or ``.npz`` member (its header is parsed
#: as a Python literal), for readers to turn into one-line errors.
NPY_ERRORS = (OSError, ValueError, EOFError, SyntaxError, TypeError, MemoryError, RecursionError, tokenize.TokenError)


def current_umask() -> int:
    """The process's umask (read by setting it and putting it back)."""
    umask = os.umask(0)
    os.umask(umask)
    return umask


@contextmanager
def atomic_output(path: Path) -> Iterator[Path]:
    """A temporary file beside ``path`` to write; renamed onto ``path`` if the block succeeds,
    removed if it fails, so that ``path`` is never left partly written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(name)
        os.chmod(name, 0o666 & ~current_umask())
        os.replace(name, path)
    except BaseException:
        with suppress(FileNotFoundError):
            os.unlink(name)
        raise


def write_atomic(path: Path, data: str | bytes) -> None:
    """Write text (UTF-8, ``\\n`` line ends) or bytes to ``path`` atomically."""
    with atomic_output(path) as temporary:
        if isinstance(data, bytes):
            temporary.write_bytes(data)
        else:
            with os.fdopen(os.open(temporary, os.O_WRONLY), "w", encoding="utf-8", newline="\n") as handle:
                handle.write(data)


def remove_stale_temporaries(folder: Path) -> int:
    """Delete the temporary files that :func:`atomic_output` left in ``folder`` when a process was
    killed mid-write; returns how many."""
    stale = list(folder.glob(".*.tmp")) if folder.is_dir() else []
    for path in stale:
        path.unlink(missing_ok=True)
    return len(stale)


def read_json_document(path: Path, what: str, format_name: str) -> dict[str, Any]:
    """The JSON object in ``path`` whose ``format`` field is ``format_name``; otherwise a one-line
    DatasetError: ``path: not <what> (why)``."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DatasetError(f"{path}: not {what} ({error})") from None
    if not isinstance(document, dict) or document.get("format") != format_name:
        raise DatasetError(f"{path}: not {what} (no format {format_name!r})")
    return document


def save_png(figure: Any, path: Path, dpi: int) -> Path:
    """Save a matplotlib ``figure`` as a PNG at ``path``, atomically; returns ``path``."""
    with atomic_output(path) as temporary:
        figure.savefig(temporary, format="png", dpi=dpi)
    return path
