"""Cell files: reading specs (JSON, JSON arrays, JSON Lines, stdin, .npz) and writing many cells
(JSON Lines, and a compact .npz in the padded encoding of :mod:`nbcompile.space.ops`)."""

from __future__ import annotations

import io
import json
import zipfile
import zlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from nbcompile.errors import SpecError, first_line
from nbcompile.fileio import NPY_ERRORS, write_atomic
from nbcompile.space.enumeration import EnumeratedCell
from nbcompile.space.ops import MAX_VERTICES, OP_CODE, OP_CODES, PAD_CODE
from nbcompile.space.spec import ModelSpec


def cell_json(cell: EnumeratedCell) -> str:
    """One JSON Lines record: module_hash, matrix, ops."""
    return json.dumps(
        {"module_hash": cell.module_hash, "matrix": [list(r) for r in cell.matrix], "ops": list(cell.ops)},
        separators=(",", ":"),
    )


def write_jsonl(cells: Iterable[EnumeratedCell], path: Path) -> int:
    """Write cells as JSON Lines (atomically); returns how many."""
    lines = [cell_json(cell) for cell in cells]
    write_atomic(path, "".join(line + "\n" for line in lines))
    return len(lines)


def cells_to_arrays(cells: Iterable[EnumeratedCell]) -> dict[str, np.ndarray]:
    """``module_hash`` (S32), ``num_vertices`` (int8), ``matrix`` (uint8, N×7×7, zero padded),
    ``ops`` (int8, N×7, :data:`~nbcompile.space.ops.OP_CODES`, ``PAD_CODE`` padded), ``op_codes``."""
    cells = list(cells)
    count = len(cells)
    hashes = np.empty(count, dtype="S32")
    sizes = np.empty(count, dtype=np.int8)
    matrices = np.zeros((count, MAX_VERTICES, MAX_VERTICES), dtype=np.uint8)
    ops = np.full((count, MAX_VERTICES), PAD_CODE, dtype=np.int8)
    for i, cell in enumerate(cells):
        size = len(cell.matrix)
        if size > MAX_VERTICES:
            raise ValueError(f"the .npz form holds cells of at most {MAX_VERTICES} vertices, got {size}")
        hashes[i] = cell.module_hash.encode()
        sizes[i] = size
        matrices[i, :size, :size] = cell.matrix
        ops[i, :size] = [OP_CODE[op] for op in cell.ops]
    return {
        "module_hash": hashes,
        "num_vertices": sizes,
        "matrix": matrices,
        "ops": ops,
        "op_codes": np.array(OP_CODES),
    }


def write_npz(cells: Iterable[EnumeratedCell], path: Path) -> int:
    """Write cells in the compact numpy form (compressed, atomically); returns how many."""
    arrays = cells_to_arrays(cells)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    write_atomic(path, buffer.getvalue())
    return len(arrays["module_hash"])


def read_npz(path: Path) -> list[EnumeratedCell]:
    """Cells from a file written by :func:`write_npz`."""
    not_ours = f"{path}: not a cell file written by 'nbcompile enumerate'"
    try:
        loaded = np.load(path, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):
            raise SpecError(f"{not_ours} (a single .npy array, not an .npz archive)")
        with loaded as data:
            hashes, sizes, matrices, ops, codes = (
                data[key] for key in ("module_hash", "num_vertices", "matrix", "ops", "op_codes")
            )
    # zipfile: RuntimeError for a member flagged encrypted, NotImplementedError (one) for an unknown
    # compression method
    except (*NPY_ERRORS, KeyError, zipfile.BadZipFile, zlib.error, RuntimeError) as error:
        raise SpecError(f"{not_ours} ({first_line(error)})") from None
    count = len(hashes) if hashes.ndim == 1 else -1
    shapes_fit = (
        count >= 0
        and sizes.shape == (count,)
        and matrices.shape == (count, MAX_VERTICES, MAX_VERTICES)
        and ops.shape == (count, MAX_VERTICES)
        and hashes.dtype.kind == "S"
        and sizes.dtype.kind in "iu"
        and matrices.dtype.kind in "iub"
        and ops.dtype.kind in "iu"
    )
    if not shapes_fit:
        raise SpecError(f"{not_ours} (its arrays have other shapes or types)")
    if count and not (sizes.min() >= 1 and sizes.max() <= MAX_VERTICES):
        raise SpecError(f"{path}: num_vertices outside 1..{MAX_VERTICES}")
    if codes.tolist() != list(OP_CODES):
        raise SpecError(f"{path}: op codes {codes.tolist()} are not nbcompile's {list(OP_CODES)}")
    cells = []
    for key, size, matrix, labels in zip(hashes, sizes.tolist(), matrices, ops):
        cells.append(
            EnumeratedCell(
                key.decode("ascii", "replace"),
                tuple(tuple(int(v) for v in row[:size]) for row in matrix[:size]),
                tuple(OP_CODES[code] if 0 <= code < len(OP_CODES) else "?" for code in labels[:size].tolist()),
            )
        )
    return cells


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
        raise SpecError(
            f"{location}: module_hash {expected!r} does not match the cell, whose hash is {spec.module_hash}"
        )


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
    except ValueError as error:  # e.g. an integer of more digits than Python converts
        raise SpecError(f"{origin}: not usable JSON ({first_line(error)})") from None
    if isinstance(data, list):
        if not data:
            raise SpecError(f"{origin}: no spec: the JSON array is empty")
        return [_spec_at(item, f"{origin}[{i}]") for i, item in enumerate(data)]
    return [_spec_at(data, origin)]


def _is_json_object(line: str) -> bool:
    try:
        return isinstance(json.loads(line), dict)
    except (ValueError, RecursionError):
        return False


def _json_line(line: str, location: str) -> Any:
    try:
        return json.loads(line)
    except json.JSONDecodeError as error:
        raise SpecError(f"{location}: not valid JSON ({error.msg} at column {error.colno})") from None
    except RecursionError:
        raise SpecError(f"{location}: not valid JSON (nested too deeply)") from None
    except ValueError as error:
        raise SpecError(f"{location}: not usable JSON ({first_line(error)})") from None


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
