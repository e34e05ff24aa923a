"""Files of many cells: JSON Lines and a compact numpy (.npz) form of the enumeration."""

from __future__ import annotations

import io
import json
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from nbcompile.enumeration import EnumeratedCell
from nbcompile.errors import SpecError
from nbcompile.files import write_atomic
from nbcompile.ops import AVAILABLE_OPS, HASH_LABEL

#: Width of the padded arrays in the .npz form (NAS-Bench-101 cells have at most 7 vertices).
PAD = 7
#: Op code of padding positions in the .npz ``ops`` array.
PAD_OP = -9


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
    ``ops`` (int8, N×7: -1 input, -2 output, 0/1/2 the op index, -9 padding), ``op_names``."""
    cells = list(cells)
    count = len(cells)
    hashes = np.empty(count, dtype="S32")
    sizes = np.empty(count, dtype=np.int8)
    matrices = np.zeros((count, PAD, PAD), dtype=np.uint8)
    ops = np.full((count, PAD), PAD_OP, dtype=np.int8)
    for i, cell in enumerate(cells):
        size = len(cell.matrix)
        if size > PAD:
            raise ValueError(f"the .npz form holds cells of at most {PAD} vertices, got {size}")
        hashes[i] = cell.module_hash.encode()
        sizes[i] = size
        matrices[i, :size, :size] = cell.matrix
        ops[i, :size] = [HASH_LABEL[op] for op in cell.ops]
    return {
        "module_hash": hashes,
        "num_vertices": sizes,
        "matrix": matrices,
        "ops": ops,
        "op_names": np.array(AVAILABLE_OPS),
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
    names = {value: key for key, value in HASH_LABEL.items()}
    try:
        with np.load(path, allow_pickle=False) as data:
            hashes, sizes, matrices, ops = (data[key] for key in ("module_hash", "num_vertices", "matrix", "ops"))
    except (OSError, KeyError, ValueError) as error:
        raise SpecError(f"{path}: not a cell file written by 'nbcompile enumerate' ({error})") from None
    cells = []
    for key, size, matrix, labels in zip(hashes, sizes.tolist(), matrices, ops):
        cells.append(
            EnumeratedCell(
                key.decode(),
                tuple(tuple(int(v) for v in row[:size]) for row in matrix[:size]),
                tuple(names.get(int(label), "?") for label in labels[:size]),
            )
        )
    return cells

