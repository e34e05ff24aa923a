"""Enumerate every unique NAS-Bench-101 cell in the representative the dataset stores.

Upstream (``generate_graphs.py``) hashed every (graph, labeling) pair and kept the first of each
hash; that takes hours. Here the structure does the work:

1. For each vertex count V, all "full DAG" bitmasks with at most ``max_edges`` edges, in numpy.
2. Each bitmask's unlabeled canonical form: the smallest bitmask over topological relabelings
   (the input stays first, the output last), vectorised over all bitmasks at once, one
   relabeling at a time. The distinct minima are the unlabeled graphs, in their stored form.
3. For each such graph G, its automorphisms A. A cell is (G, labeling); the dataset stores the
   labeling that is the smallest (in ``itertools.product`` order) over its orbit under A, so the
   unique cells on G are exactly the labelings that no automorphism makes smaller.
4. The module hash of each cell, in worker processes.

Cells come out in upstream's first-seen order: by V, then bitmask, then labeling.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from nbcompile.parallel import available_cpus, ordered_map
from nbcompile.space.graph import edge_bit, edge_pairs, interior_orders, matrix_from_bits, module_hash, positions
from nbcompile.space.ops import AVAILABLE_OPS, INPUT, OUTPUT

#: Unique cells by vertex count in NAS-Bench-101 (V = 2..7); 423,624 in all.
NASBENCH_COUNTS = {2: 1, 3: 6, 4: 84, 5: 2441, 6: 62010, 7: 359082}


@dataclass(frozen=True)
class EnumeratedCell:
    """One unique cell: its dataset key and the matrix and ops the dataset stores for it."""

    module_hash: str
    matrix: tuple[tuple[int, ...], ...]
    ops: tuple[str, ...]


def full_dag_masks(size: int, max_edges: int) -> np.ndarray:
    """Ascending bitmasks of DAGs whose vertices all lie on an input→output path.

    Like upstream's ``is_full_dag``: every vertex but the last has an out-edge and every vertex
    but the first has an in-edge.
    """
    pairs = edge_pairs(size)
    masks = np.arange(1 << len(pairs), dtype=np.int64)
    popcount = np.zeros(masks.shape, dtype=np.int64)
    for i in range(len(pairs)):
        popcount += (masks >> i) & 1
    keep = popcount <= max_edges
    for v in range(size):
        out_bits = sum(1 << edge_bit(v, w) for w in range(v + 1, size))
        in_bits = sum(1 << edge_bit(u, v) for u in range(v))
        if v < size - 1:
            keep &= (masks & out_bits) != 0
        if v > 0:
            keep &= (masks & in_bits) != 0
    return masks[keep]


def _relabel_masks(masks: np.ndarray, size: int, order: tuple[int, ...]) -> np.ndarray:
    """Bitmasks after renumbering by ``order``; -1 where the renumbering is not topological."""
    position = positions(order)
    relabeled = np.zeros_like(masks)
    backwards = 0
    for x, y in edge_pairs(size):
        a, b = position[x], position[y]
        if a < b:
            relabeled |= ((masks >> edge_bit(x, y)) & 1) << edge_bit(a, b)
        else:
            backwards |= 1 << edge_bit(x, y)
    return np.where((masks & backwards) != 0, -1, relabeled)


def canonical_graphs(size: int, max_edges: int) -> np.ndarray:
    """The distinct unlabeled graphs with ``size`` vertices, as their smallest bitmask."""
    masks = full_dag_masks(size, max_edges)
    if size <= 3:
        return masks
    best = masks.copy()
    for order in interior_orders(size)[1:]:
        relabeled = _relabel_masks(masks, size, order)
        valid = relabeled >= 0
        best = np.where(valid & (relabeled < best), relabeled, best)
    return np.unique(best)


def _labeling_codes(size: int) -> np.ndarray:
    """All interior labelings in ``itertools.product`` order, shape (3**(V-2), V-2)."""
    labelings = itertools.product(range(len(AVAILABLE_OPS)), repeat=size - 2)
    return np.array(list(labelings), dtype=np.int64).reshape(len(AVAILABLE_OPS) ** (size - 2), size - 2)


def automorphisms(masks: np.ndarray, size: int) -> list[list[tuple[int, ...]]]:
    """For each graph (bitmask), the non-identity vertex orders that map it onto itself."""
    result: list[list[tuple[int, ...]]] = [[] for _ in range(len(masks))]
    for order in interior_orders(size)[1:]:
        for index in np.flatnonzero(_relabel_masks(masks, size, order) == masks):
            result[index].append(order)
    return result


def canonical_labelings(size: int, automorphism_orders: list[tuple[int, ...]]) -> np.ndarray:
    """Labelings of a graph (in canonical form) that are the stored representative.

    A labeling is kept when no automorphism of the graph turns it into a smaller one.
    """
    labelings = _labeling_codes(size)
    if size <= 2 or not automorphism_orders:
        return labelings
    weights = len(AVAILABLE_OPS) ** np.arange(size - 3, -1, -1)
    codes = labelings @ weights
    keep = np.ones(len(labelings), dtype=bool)
    for order in automorphism_orders:
        keep &= codes <= labelings[:, [old - 1 for old in order[1:-1]]] @ weights
    return labelings[keep]


def _cell(size: int, mask: int, labeling: tuple[int, ...]) -> tuple[tuple[tuple[int, ...], ...], tuple[int, ...]]:
    """The matrix and hash labels of a (V, bitmask, labeling) key."""
    return matrix_from_bits(mask, size), (-1, *labeling, -2)


def _hash_chunk(chunk: list[tuple[int, int, tuple[int, ...]]]) -> list[str]:
    """Module hashes of a list of (V, bitmask, labeling) keys (runs in a worker process)."""
    return [module_hash(*_cell(*key)) for key in chunk]


def cell_keys(max_vertices: int = 7, max_edges: int = 9) -> Iterator[tuple[int, int, tuple[int, ...]]]:
    """(V, bitmask, labeling) of every unique cell, in upstream's first-seen order."""
    for size in range(2, max_vertices + 1):
        graphs = canonical_graphs(size, max_edges)
        for mask, orders in zip(graphs.tolist(), automorphisms(graphs, size)):
            for labeling in canonical_labelings(size, orders).tolist():
                yield size, mask, tuple(labeling)


def enumerate_cells(
    max_vertices: int = 7, max_edges: int = 9, workers: int | None = None, chunk_size: int = 4096
) -> Iterator[EnumeratedCell]:
    """Every unique cell with at most ``max_vertices`` vertices and ``max_edges`` edges.

    Yields each cell's module hash and its stored (canonical) matrix and ops, in upstream's
    order. ``workers`` processes hash the cells (default: the CPUs available, at most 8).
    """
    if not 2 <= max_vertices <= 9:
        raise ValueError(f"max_vertices must be between 2 and 9, got {max_vertices}")
    if max_edges < 1:
        raise ValueError(f"max_edges must be positive, got {max_edges}")
    keys = cell_keys(max_vertices, max_edges)
    chunks = list(iter(lambda: list(itertools.islice(keys, chunk_size)), []))
    if workers is None:
        workers = min(8, available_cpus())
    for chunk, hashes in zip(chunks, ordered_map(_hash_chunk, [(chunk,) for chunk in chunks], workers)):
        yield from _cells(chunk, hashes)


def _cells(chunk: list[tuple[int, int, tuple[int, ...]]], hashes: list[str]) -> Iterator[EnumeratedCell]:
    for (size, mask, labeling), key in zip(chunk, hashes):
        ops = (INPUT, *(AVAILABLE_OPS[label] for label in labeling), OUTPUT)
        yield EnumeratedCell(key, matrix_from_bits(mask, size), ops)


def sample_cells(count: int, max_vertices: int = 7, max_edges: int = 9) -> list[EnumeratedCell]:
    """``count`` cells spread evenly over the enumeration order (all vertex counts), hashed."""
    keys = list(cell_keys(max_vertices, max_edges))
    if count < len(keys):
        step = len(keys) / count
        keys = [keys[int(i * step)] for i in range(count)]
    return list(_cells(keys, _hash_chunk(keys)))
