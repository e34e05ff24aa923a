"""Writing generated files (atomically) and reading spec files (JSON, JSON Lines, stdin)."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from nbcompile.errors import SpecError
from nbcompile.spec import ModelSpec


@contextmanager
def atomic_output(path: Path) -> Iterator[Path]:
    """A temporary file beside ``path`` to write; renamed onto ``path`` if the block succeeds,
    removed if it fails, so that ``path`` is never left partly written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(name)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(name, 0o666 & ~umask)
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


def _spec_at(data: Any, location: str) -> tuple[str, ModelSpec]:
    if not isinstance(data, dict):
        raise SpecError(f"{location}: expected a JSON object with 'matrix' and 'ops', got {type(data).__name__}")
    try:
        spec = ModelSpec.from_dict(data)
    except SpecError as error:
        raise SpecError(f"{location}: {error}") from None
    _check_hash(spec, data.get("module_hash"), location)
    return location, spec


def _check_hash(spec: ModelSpec, expected: Any, location: str) -> None:
    """A spec that states its module_hash (as enumeration output does) must have that hash."""
    if expected is None or not spec.is_valid():
        return
    if expected != spec.module_hash:
        raise SpecError(f"{location}: module_hash {expected!r} does not match the cell, whose hash is {spec.module_hash}")


def parse_specs(text: str, origin: str) -> list[tuple[str, ModelSpec]]:
    """Specs in ``text``: one JSON object, a JSON array of objects, or JSON Lines.

    Each spec comes with its location (``origin``, ``origin[i]`` or ``origin:line``) for messages.
    """
    if not text.strip():
        raise SpecError(f"{origin}: no spec: the input is empty")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        lines = [(n, line) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
        if len(lines) > 1 and _is_json_object(lines[0][1]):
            return [_spec_at(_json_line(line, f"{origin}:{n}"), f"{origin}:{n}") for n, line in lines]
        raise SpecError(
            f"{origin}: not valid JSON ({error.msg} at line {error.lineno}, column {error.colno})"
        ) from None
    except RecursionError:
        raise SpecError(f"{origin}: not valid JSON (nested too deeply)") from None
    if isinstance(data, list):
        if not data:
            raise SpecError(f"{origin}: no spec: the JSON array is empty")
        return [_spec_at(item, f"{origin}[{i}]") for i, item in enumerate(data)]
    return [_spec_at(data, origin)]


def _is_json_object(line: str) -> bool:
    try:
        return isinstance(json.loads(line), dict)
    except (json.JSONDecodeError, RecursionError):
        return False


def _json_line(line: str, location: str) -> Any:
    try:
        return json.loads(line)
    except json.JSONDecodeError as error:
        raise SpecError(f"{location}: not valid JSON ({error.msg} at column {error.colno})") from None
    except RecursionError:
        raise SpecError(f"{location}: not valid JSON (nested too deeply)") from None


def read_specs(source: str, stdin_text: str | None = None) -> list[tuple[str, ModelSpec]]:
    """Specs from a file path, or from ``stdin_text`` when ``source`` is ``-``."""
    if source == "-":
        return parse_specs(stdin_text or "", "<stdin>")
    path = Path(source)
    if path.suffix == ".npz":
        return _read_npz_specs(path, source)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(f"{source}: no such file") from None
    except IsADirectoryError:
        raise SpecError(f"{source}: is a directory, not a spec file") from None
    except UnicodeDecodeError:
        raise SpecError(f"{source}: not a UTF-8 text file") from None
    return parse_specs(text, source)


def _read_npz_specs(path: Path, source: str) -> list[tuple[str, ModelSpec]]:
    """Specs of a cell file written by ``nbcompile enumerate --out FILE.npz``."""
    from nbcompile.cellstore import read_npz

    if not path.is_file():
        raise SpecError(f"{source}: no such file")
    located = []
    for index, cell in enumerate(read_npz(path)):
        location = f"{source}[{index}]"
        try:
            spec = ModelSpec(cell.matrix, cell.ops)
        except SpecError as error:
            raise SpecError(f"{location}: {error}") from None
        _check_hash(spec, cell.module_hash, location)
        located.append((location, spec))
    return located
