"""Graph algorithms on cell adjacency matrices: pruning, the module hash, the canonical labeling.

Matrices here are tuples of tuples of Python ints (0/1), upper triangular. The semantics follow
google-research/nasbench (``model_spec._prune``, ``graph_util.hash_module`` and the enumeration
order of ``generate_graphs.py``).
"""

from __future__ import annotations

import functools
import hashlib
import itertools
from collections.abc import Sequence

Matrix = tuple[tuple[int, ...], ...]


def reachable_vertices(matrix: Sequence[Sequence[int]]) -> list[int]:
    """Vertices on some path from the input (vertex 0) to the output (the last vertex), ascending."""
    size = len(matrix)
    forward = {0}
    stack = [0]
    while stack:
        u = stack.pop()
        for v in range(u + 1, size):
            if matrix[u][v] and v not in forward:
                forward.add(v)
                stack.append(v)
    backward = {size - 1}
    stack = [size - 1]
    while stack:
        u = stack.pop()
        for v in range(u):
            if matrix[v][u] and v not in backward:
                backward.add(v)
                stack.append(v)
    return sorted(forward & backward)


try:  # CPython's own MD5 is about twice as fast as OpenSSL's for short inputs; same digests
    from _md5 import md5 as _md5
except ImportError:  # pragma: no cover - other interpreters
    _md5 = hashlib.md5


@functools.cache
def _initial_hash(out_degree: int, in_degree: int, label: int) -> str:
    return _md5(str((out_degree, in_degree, label)).encode()).hexdigest()


def module_hash(matrix: Sequence[Sequence[int]], labels: Sequence[int]) -> str:
    """The NAS-Bench-101 module hash (upstream's ``graph_util.hash_module``): bit-exact with the dataset's keys.

    ``matrix`` is the pruned 0/1 int matrix; ``labels`` is -1 for input, -2 for output and the
    op's index in AVAILABLE_OPS otherwise. Recent results are memoised (searches re-query cells).
    """
    return _cached_module_hash(tuple(map(tuple, matrix)), tuple(labels))


def is_module_hash(text: str) -> bool:
    """True if ``text`` has the form of a module hash: 32 lowercase hexadecimal digits (an MD5)."""
    return len(text) == 32 and all(char in "0123456789abcdef" for char in text)


@functools.lru_cache(maxsize=1 << 16)
def _cached_module_hash(matrix: Matrix, labels: tuple[int, ...]) -> str:
    size = len(matrix)
    predecessors = [[w for w in range(v) if matrix[w][v]] for v in range(size)]
    successors = [[w for w in range(v + 1, size) if matrix[v][w]] for v in range(size)]
    hashes = [_initial_hash(len(successors[v]), len(predecessors[v]), labels[v]) for v in range(size)]
    neighbours = list(zip(predecessors, successors))
    for _ in range(size):
        get = hashes.__getitem__
        hashes = [
            _md5(
                ("".join(sorted(map(get, into))) + "|" + "".join(sorted(map(get, out))) + "|" + own).encode()
            ).hexdigest()
            for (into, out), own in zip(neighbours, hashes)
        ]
    return _md5(str(sorted(hashes)).encode()).hexdigest()


def edge_bit(x: int, y: int) -> int:
    """The bit of edge x→y (x < y) in upstream's enumeration bitmask: ``x + y*(y-1)/2``."""
    return x + y * (y - 1) // 2


def edge_pairs(size: int) -> list[tuple[int, int]]:
    """Every possible edge x→y of a ``size``-vertex DAG, in bit order."""
    return [(x, y) for y in range(1, size) for x in range(y)]


def matrix_from_bits(bits: int, size: int) -> Matrix:
    """The adjacency matrix of an enumeration bitmask."""
    rows = [[0] * size for _ in range(size)]
    for x, y in edge_pairs(size):
        if bits >> edge_bit(x, y) & 1:
            rows[x][y] = 1
    return tuple(tuple(row) for row in rows)


def interior_orders(size: int) -> list[tuple[int, ...]]:
    """Every vertex order that keeps the input first and the output last (``order[new] = old``),
    the identity first: the relabelings that upstream's enumeration and hash range over."""
    return [(0, *interior, size - 1) for interior in itertools.permutations(range(1, size - 1))]


def positions(order: Sequence[int]) -> list[int]:
    """The inverse of ``order``: ``positions(order)[old] = new``."""
    position = [0] * len(order)
    for new, old in enumerate(order):
        position[old] = new
    return position


def canonical_order(matrix: Sequence[Sequence[int]], labels: Sequence[int]) -> tuple[int, ...]:
    """The vertex order of the representative that NAS-Bench-101 stored for this cell.

    Upstream enumerated graphs by bitmask, then op labels in ``itertools.product`` order, and kept
    the first graph of each hash, so the stored representative is the minimum of
    (bitmask, interior labels) over all topological relabelings. Returns ``order``
    with ``order[new] = old``; input and output stay first and last.
    """
    size = len(matrix)
    if size <= 3:
        return tuple(range(size))
    edges = [(a, b) for a in range(size) for b in range(a + 1, size) if matrix[a][b]]
    best_key: tuple[int, tuple[int, ...]] | None = None
    best_order: tuple[int, ...] = tuple(range(size))
    for order in interior_orders(size):
        position = positions(order)
        if any(position[a] > position[b] for a, b in edges):
            continue
        bits = sum(1 << edge_bit(position[a], position[b]) for a, b in edges)
        key = (bits, tuple(labels[old] for old in order[1:-1]))
        if best_key is None or key < best_key:
            best_key, best_order = key, order
    return best_order


def relabel(matrix: Sequence[Sequence[int]], order: Sequence[int]) -> Matrix:
    """The subgraph on the vertices ``order``, renumbered so that new vertex i is ``order[i]``."""
    return tuple(tuple(matrix[a][b] for b in order) for a in order)
