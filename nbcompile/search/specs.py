"""Random cells, mutations and neighbourhoods, as the NAS-Bench-101 notebook defines them.

``random_spec``: a 7×7 0/1 matrix kept upper triangular and random interior ops, drawn again until
the cell is valid. ``mutate_spec``: on the *unpruned* matrix and ops, flip each upper-triangular
entry with probability rate/7 and change each interior op with probability rate/5 to a different
op, drawn again until valid. ``mutate_one``: the NAS-Bench-101 paper's mutation, one edge flipped
or one op changed to a different op, the edge or op chosen uniformly, drawn again until valid.
All randomness comes from the ``numpy.random.Generator`` passed in.
"""

from __future__ import annotations

import numpy as np

from nbcompile.space.ops import AVAILABLE_OPS, INPUT, MAX_VERTICES, OUTPUT
from nbcompile.space.spec import ModelSpec

NUM_VERTICES = MAX_VERTICES
#: Interior vertices whose op can change.
OP_SPOTS = NUM_VERTICES - 2
#: Draws a mutation makes before it decides the cell has no valid mutation (a 2-vertex cell has none).
MUTATION_ATTEMPTS = 1000
_UPPER = np.triu(np.ones((NUM_VERTICES, NUM_VERTICES), dtype=bool), 1)


def random_spec(rng: np.random.Generator) -> ModelSpec:
    """A uniformly drawn valid cell (the notebook's ``random_spec``)."""
    while True:
        matrix = np.triu(rng.integers(0, 2, size=(NUM_VERTICES, NUM_VERTICES)), 1)
        ops = [AVAILABLE_OPS[i] for i in rng.integers(0, len(AVAILABLE_OPS), size=NUM_VERTICES).tolist()]
        ops[0], ops[-1] = INPUT, OUTPUT
        spec = ModelSpec(matrix.tolist(), ops)
        if spec.is_valid():
            return spec


def mutate_spec(spec: ModelSpec, rng: np.random.Generator, mutation_rate: float = 1.0) -> ModelSpec:
    """A valid child of ``spec``, mutated on its unpruned matrix and ops (the notebook's ``mutate_spec``)."""
    original = np.array(spec.original_matrix_tuple, dtype=np.int64)
    original_ops = spec.original_ops_tuple
    size = len(original_ops)
    upper = _UPPER if size == NUM_VERTICES else np.triu(np.ones((size, size), dtype=bool), 1)
    for _ in range(MUTATION_ATTEMPTS):
        flips = (rng.random((size, size)) < mutation_rate / NUM_VERTICES) & upper
        matrix = np.where(flips, 1 - original, original)
        ops = list(original_ops)
        changes = rng.random(size - 2) < mutation_rate / OP_SPOTS
        for position in np.flatnonzero(changes).tolist():
            vertex = position + 1
            choices = [op for op in AVAILABLE_OPS if op != ops[vertex]]
            ops[vertex] = choices[int(rng.integers(len(choices)))]
        child = ModelSpec(matrix.tolist(), ops)
        if child.is_valid():
            return child
    raise _no_valid_mutation(spec)


def _no_valid_mutation(spec: ModelSpec) -> ValueError:
    return ValueError(
        f"no valid mutation of cell {spec.module_hash} in {MUTATION_ATTEMPTS:,} attempts "
        f"(a cell of {len(spec.original_ops_tuple)} vertices may have none)"
    )


def mutate_one(spec: ModelSpec, rng: np.random.Generator) -> ModelSpec:
    """A valid child of ``spec`` with exactly one change to its unpruned form: one of the
    upper-triangular entries flipped, or one interior op replaced by a *different* op, the entry
    or op chosen uniformly among all of them (the paper's regularized evolution)."""
    matrix = np.array(spec.original_matrix_tuple, dtype=np.int64)
    original_ops = spec.original_ops_tuple
    size = len(original_ops)
    rows, cols = np.triu_indices(size, 1)
    for _ in range(MUTATION_ATTEMPTS):
        choice = int(rng.integers(len(rows) + size - 2))
        child_matrix, ops = matrix.copy(), list(original_ops)
        if choice < len(rows):
            child_matrix[rows[choice], cols[choice]] ^= 1
        else:
            vertex = choice - len(rows) + 1
            choices = [op for op in AVAILABLE_OPS if op != ops[vertex]]
            ops[vertex] = choices[int(rng.integers(len(choices)))]
        child = ModelSpec(child_matrix.tolist(), ops)
        if child.is_valid():
            return child
    raise _no_valid_mutation(spec)


def neighbours(spec: ModelSpec) -> list[ModelSpec]:
    """Every valid cell one edge flip or one op change away from ``spec``'s unpruned form, one per hash."""
    matrix = [list(row) for row in spec.original_matrix_tuple]
    ops = list(spec.original_ops_tuple)
    size = len(ops)
    seen = {spec.module_hash}
    found = []
    candidates = []
    for vertex in range(1, size - 1):
        for op in AVAILABLE_OPS:
            if op != ops[vertex]:
                candidates.append((matrix, [*ops[:vertex], op, *ops[vertex + 1 :]]))
    for src in range(size - 1):
        for dst in range(src + 1, size):
            flipped = [row[:] for row in matrix]
            flipped[src][dst] = 1 - flipped[src][dst]
            candidates.append((flipped, ops))
    for candidate_matrix, candidate_ops in candidates:
        child = ModelSpec(candidate_matrix, candidate_ops)
        if child.is_valid() and child.module_hash not in seen:
            seen.add(child.module_hash)
            found.append(child)
    return found
