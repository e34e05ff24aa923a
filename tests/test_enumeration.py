"""Enumeration of the whole space: counts, canonical form, hashes, order, files and CLI."""

from __future__ import annotations

import itertools
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from cli_runner import assert_one_line_error, invoke
from example_cells import INCEPTION_STORED_MATRIX, INCEPTION_STORED_OPS
from strategies import edge_bits

from nbcompile import ModelSpec
from nbcompile.space import graph
from nbcompile.space.cellfiles import read_npz, write_jsonl, write_npz
from nbcompile.space.enumeration import NASBENCH_COUNTS, cell_keys, enumerate_cells, full_dag_masks
from nbcompile.space.ops import AVAILABLE_OPS


def upstream_enumeration(max_vertices: int) -> list[tuple[str, tuple, tuple]]:
    """generate_graphs.py's algorithm, literally: every bitmask, every labeling, first per hash."""
    seen: dict[str, tuple] = {}
    for size in range(2, max_vertices + 1):
        pairs = [(x, y) for y in range(1, size) for x in range(y)]
        for bits in range(1 << len(pairs)):
            matrix = [[0] * size for _ in range(size)]
            for i, (x, y) in enumerate(pairs):
                matrix[x][y] = bits >> i & 1
            rows_ok = all(any(row) for row in matrix[:-1])
            cols_ok = all(any(matrix[r][c] for r in range(size)) for c in range(1, size))
            if sum(map(sum, matrix)) > 9 or not (rows_ok and cols_ok):
                continue
            for labeling in itertools.product(range(3), repeat=size - 2):
                key = graph.module_hash(matrix, (-1, *labeling, -2))
                if key not in seen:
                    ops = ("input", *(AVAILABLE_OPS[v] for v in labeling), "output")
                    seen[key] = (tuple(map(tuple, matrix)), ops)
    return [(key, matrix, ops) for key, (matrix, ops) in seen.items()]


def test_matches_upstream_enumeration_exactly_up_to_five_vertices() -> None:
    """Same cells, same stored representatives, same order as upstream's brute force."""
    ours = [(c.module_hash, c.matrix, c.ops) for c in enumerate_cells(max_vertices=5, workers=1)]
    assert ours == upstream_enumeration(5)


def test_counts_by_vertex_number_for_the_whole_space() -> None:
    """1, 6, 84, 2,441, 62,010 and 359,082 unique cells: 423,624 in all."""
    counts = Counter(size for size, _, _ in cell_keys())
    assert dict(counts) == NASBENCH_COUNTS
    assert sum(counts.values()) == 423_624


def test_every_cell_is_valid_pruned_canonical_and_unique() -> None:
    cells = list(enumerate_cells(max_vertices=5, workers=2))
    assert len({c.module_hash for c in cells}) == len(cells) == 2_532
    for cell in cells:
        spec = ModelSpec(cell.matrix, cell.ops)
        assert spec.is_valid()
        assert spec.pruned_matrix == cell.matrix  # already pruned
        assert spec.module_hash == cell.module_hash
        canonical = spec.canonical()
        assert (canonical.pruned_matrix, canonical.pruned_ops) == (cell.matrix, cell.ops)


def test_seven_vertex_sample_is_canonical_and_hashes_match() -> None:
    keys = [key for key in cell_keys() if key[0] == 7][::4000]
    for size, mask, labeling in keys:
        matrix = graph.matrix_from_bits(mask, size)
        spec = ModelSpec(matrix, ["input", *(AVAILABLE_OPS[v] for v in labeling), "output"])
        assert spec.is_valid() and spec.is_canonical() and spec.num_edges <= 9


def test_inception_cell_is_enumerated_in_its_stored_form() -> None:
    bits = edge_bits(INCEPTION_STORED_MATRIX)
    labels = tuple(AVAILABLE_OPS.index(op) for op in INCEPTION_STORED_OPS[1:-1])
    assert (7, bits, labels) in set(cell_keys())


def test_order_is_upstreams_first_seen_order() -> None:
    keys = list(cell_keys(max_vertices=6))
    assert keys == sorted(keys)  # by vertices, then bitmask, then labeling in product order


def test_full_dag_masks() -> None:
    assert full_dag_masks(2, 9).tolist() == [1]
    assert full_dag_masks(3, 9).tolist() == [5, 7]  # 0→1→2, and that plus 0→2


def test_files_round_trip(tmp_path: Path) -> None:
    cells = list(enumerate_cells(max_vertices=4, workers=1))
    assert write_npz(cells, tmp_path / "cells.npz") == 91
    assert read_npz(tmp_path / "cells.npz") == cells
    with np.load(tmp_path / "cells.npz") as data:
        assert data["matrix"].shape == (91, 7, 7) and data["module_hash"].dtype == np.dtype("S32")
    assert write_jsonl(cells, tmp_path / "cells.jsonl") == 91
    first = json.loads((tmp_path / "cells.jsonl").read_text().splitlines()[0])
    assert first == {"module_hash": cells[0].module_hash, "matrix": [[0, 1], [0, 0]], "ops": ["input", "output"]}


@pytest.mark.parametrize("suffix", [".jsonl", ".npz"])
def test_cli_enumerate_then_compile(tmp_path: Path, suffix: str) -> None:
    out = tmp_path / f"cells{suffix}"
    result = invoke(["enumerate", "--max-vertices", "3", "--out", str(out), "--workers", "1"])
    assert result.exit_code == 0, result.output
    assert "7 cells in" in result.stderr
    result = invoke(["compile", str(out), "-o", str(tmp_path / "models")])
    assert result.exit_code == 0, result.output
    assert len(list((tmp_path / "models").glob("nb101_*.py"))) == 7
    # every enumerated cell is canonical: the files get the plain name
    assert all(len(p.stem) == len("nb101_") + 12 for p in (tmp_path / "models").glob("nb101_*.py"))


def test_cli_enumerate_to_stdout_and_bad_out() -> None:
    result = invoke(["enumerate", "--max-vertices", "3", "--workers", "1"])
    assert result.exit_code == 0 and len(result.stdout.splitlines()) == 7
    assert_one_line_error(invoke(["enumerate", "--out", "cells.csv"]), "must end in .jsonl or .npz")


def test_compile_rejects_a_wrong_module_hash(tmp_path: Path) -> None:
    spec = tmp_path / "cells.jsonl"
    spec.write_text(
        json.dumps({"module_hash": "0" * 32, "matrix": [[0, 1], [0, 0]], "ops": ["input", "output"]}) + "\n"
    )
    result = invoke(["compile", str(spec), "-o", str(tmp_path / "out")])
    assert_one_line_error(result, "module_hash '00000000000000000000000000000000' does not match the cell")
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_whole_space_hashes_are_unique() -> None:
    """All 423,624 cells hashed (about a minute on 2 cores): every hash distinct."""
    sizes: Counter[int] = Counter()
    hashes = set()
    for cell in enumerate_cells():
        sizes[len(cell.matrix)] += 1
        hashes.add(cell.module_hash)
    assert dict(sizes) == NASBENCH_COUNTS and len(hashes) == 423_624
