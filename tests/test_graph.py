"""Module hash and canonical labeling (nbcompile.space.graph), checked against the dataset's known values
and invariants."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from example_cells import INCEPTION, INCEPTION_HASH, INCEPTION_STORED_MATRIX, INCEPTION_STORED_OPS
from hypothesis import given, settings
from strategies import edge_bits, relabeled_spec_pairs

from nbcompile import ModelSpec
from nbcompile.space import graph
from nbcompile.space.ops import AVAILABLE_OPS

INCEPTION_SPEC = ModelSpec.from_dict(INCEPTION)


def all_relabelings(spec: ModelSpec) -> list[ModelSpec]:
    """Every topological renumbering of the pruned cell's interior vertices."""
    matrix, ops = spec.pruned_matrix, spec.pruned_ops
    size = len(matrix)
    result = []
    for interior in itertools.permutations(range(1, size - 1)):
        order = (0, *interior, size - 1)
        relabeled = graph.relabel(matrix, order)
        if all(relabeled[a][b] == 0 for a in range(size) for b in range(a + 1)):
            result.append(ModelSpec(relabeled, [ops[v] for v in order]))
    return result


def test_inception_hash_is_the_dataset_key() -> None:
    assert INCEPTION_SPEC.module_hash == INCEPTION_HASH


def test_float_matrix_hashes_like_int() -> None:
    as_float = ModelSpec(np.array(INCEPTION_SPEC.original_matrix, dtype=np.float64), INCEPTION_SPEC.original_ops)
    assert as_float.module_hash == INCEPTION_HASH


def test_hash_sees_ops_and_edges() -> None:
    ops = list(INCEPTION_SPEC.original_ops)
    ops[1] = "maxpool3x3"
    assert ModelSpec(INCEPTION_SPEC.original_matrix, ops).module_hash != INCEPTION_HASH
    matrix = INCEPTION_SPEC.original_matrix.copy()
    matrix[1, 6], matrix[1, 4] = 0, 1
    assert ModelSpec(matrix, INCEPTION_SPEC.original_ops).module_hash != INCEPTION_HASH


def test_hash_spec_alias_matches_upstream_signature() -> None:
    assert INCEPTION_SPEC.hash_spec(list(AVAILABLE_OPS)) == INCEPTION_HASH
    with pytest.raises(ValueError):
        INCEPTION_SPEC.hash_spec(["maxpool3x3", "conv3x3-bn-relu", "conv1x1-bn-relu"])


def test_inception_canonical_is_what_the_dataset_stores() -> None:
    canonical = INCEPTION_SPEC.canonical()
    assert canonical.pruned_matrix == INCEPTION_STORED_MATRIX
    assert canonical.pruned_ops == INCEPTION_STORED_OPS
    assert canonical.module_hash == INCEPTION_HASH
    assert canonical.is_canonical() and not INCEPTION_SPEC.is_canonical()


def test_canonical_is_the_minimum_of_bits_then_labels() -> None:
    key = lambda s: (edge_bits(s.pruned_matrix), s.labels[1:-1])  # noqa: E731
    assert key(INCEPTION_SPEC.canonical()) == min(key(s) for s in all_relabelings(INCEPTION_SPEC))


@settings(max_examples=80, deadline=None, derandomize=True)
@given(relabeled_spec_pairs())
def test_hash_and_canonical_are_invariant_under_relabeling(pair: tuple[ModelSpec, ModelSpec]) -> None:
    spec, other = pair
    assert other.module_hash == spec.module_hash
    canonical = spec.canonical()
    assert other.canonical().pruned_matrix == canonical.pruned_matrix
    assert other.canonical().pruned_ops == canonical.pruned_ops
    again = canonical.canonical()
    assert (again.pruned_matrix, again.pruned_ops) == (canonical.pruned_matrix, canonical.pruned_ops)


def _full_dags(size: int):
    """Every DAG on ``size`` vertices whose vertices all lie on an input→output path."""
    pairs = [(a, b) for b in range(size) for a in range(b)]
    for bits in range(1 << len(pairs)):
        matrix = [[0] * size for _ in range(size)]
        for i, (a, b) in enumerate(pairs):
            if bits >> i & 1:
                matrix[a][b] = 1
        if len(graph.reachable_vertices(matrix)) == size and sum(map(sum, matrix)) <= 9:
            yield matrix


@pytest.mark.parametrize(("size", "expected"), [(2, 1), (3, 6), (4, 84), (5, 2441)])
def test_unique_cells_per_vertex_count_match_nasbench(size: int, expected: int) -> None:
    """NAS-Bench-101 has 1, 6, 84 and 2,441 unique cells with 2, 3, 4 and 5 vertices."""
    hashes = set()
    canonical_forms = set()
    for matrix in _full_dags(size):
        for labels in itertools.product(AVAILABLE_OPS, repeat=size - 2):
            spec = ModelSpec(matrix, ["input", *labels, "output"])
            hashes.add(spec.module_hash)
            if spec.is_canonical():
                canonical_forms.add((spec.pruned_matrix, spec.pruned_ops))
    assert len(hashes) == expected
    assert len(canonical_forms) == expected  # exactly one stored representative per hash


def test_is_module_hash() -> None:
    from nbcompile.space.graph import is_module_hash

    assert is_module_hash("0123456789abcdef0123456789abcdef")
    for text in ("0123456789ABCDEF0123456789abcdef", "0123456789abcdef0123456789abcde", "cell.json", "g" * 32):
        assert not is_module_hash(text)
