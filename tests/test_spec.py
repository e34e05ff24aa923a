"""ModelSpec: parsing, pruning, validity and error messages."""

from __future__ import annotations

import numpy as np
import pytest
from example_cells import INCEPTION, INCEPTION_HASH

from nbcompile import ModelSpec, OutOfDomainError, SpecError
from nbcompile.space.spec import as_model_spec

INCEPTION_MATRIX = INCEPTION["matrix"]
#: The ops by their short names ("conv1x1" for "conv1x1-bn-relu"), which a spec may use too.
INCEPTION_OPS = [op.removesuffix("-bn-relu") for op in INCEPTION["ops"]]


def chain(length: int) -> list[list[int]]:
    """A path 0→1→…→length-1."""
    return [[1 if c == r + 1 else 0 for c in range(length)] for r in range(length)]


def test_no_pruning_keeps_spec() -> None:
    spec = ModelSpec(INCEPTION_MATRIX, INCEPTION_OPS)
    assert spec.valid_spec
    assert spec.pruned_matrix == tuple(map(tuple, INCEPTION_MATRIX))
    assert spec.kept_vertices == tuple(range(7))
    assert spec.num_edges == 9


def test_island_is_pruned() -> None:
    # Vertex 2 → 3 is an island, not connected to input or output.
    matrix = [[0, 1, 0, 0, 0], [0, 0, 0, 0, 1], [0, 0, 0, 1, 0], [0, 0, 0, 0, 0], [0, 0, 0, 0, 0]]
    spec = ModelSpec(matrix, ["input", "conv3x3", "conv3x3", "conv1x1", "output"])
    assert spec.pruned_matrix == ((0, 1, 0), (0, 0, 1), (0, 0, 0))
    assert spec.pruned_ops == ("input", "conv3x3-bn-relu", "output")
    assert spec.kept_vertices == (0, 1, 4)


def test_dangling_vertices_are_pruned() -> None:
    # Vertex 2 has no out-edge, vertex 3 has no in-edge.
    matrix = [
        [0, 1, 1, 0, 0],
        [0, 0, 0, 0, 1],
        [0, 0, 0, 0, 0],
        [0, 0, 0, 0, 1],
        [0, 0, 0, 0, 0],
    ]
    spec = ModelSpec(matrix, ["input", "maxpool3x3", "conv3x3", "conv1x1", "output"])
    assert spec.pruned_ops == ("input", "maxpool3x3", "output")
    assert spec.num_edges == 2


def test_pruned_away_vertices_do_not_count_against_limits() -> None:
    # 8 vertices and 10 edges as given; vertex 6 has no in-edge, so 7 vertices and 9 edges remain.
    matrix = [
        [0, 1, 1, 1, 0, 0, 0, 0],
        [0, 0, 1, 0, 0, 0, 0, 0],
        [0, 0, 0, 1, 0, 0, 0, 0],
        [0, 0, 0, 0, 1, 0, 0, 0],
        [0, 0, 0, 0, 0, 1, 0, 1],
        [0, 0, 0, 0, 0, 0, 0, 1],
        [0, 0, 0, 0, 0, 0, 0, 1],
        [0, 0, 0, 0, 0, 0, 0, 0],
    ]
    spec = ModelSpec(matrix, ["input"] + ["conv3x3"] * 6 + ["output"])
    assert (spec.num_vertices, spec.num_edges) == (7, 9)
    assert spec.kept_vertices == (0, 1, 2, 3, 4, 5, 7)
    assert spec.is_valid()


def test_disconnected_spec_is_invalid_not_a_crash() -> None:
    spec = ModelSpec([[0, 0], [0, 0]], ["input", "output"])
    assert not spec.valid_spec
    assert spec.matrix is None and spec.ops is None
    assert not spec.is_valid()
    with pytest.raises(OutOfDomainError, match="not reachable"):
        spec.validate()
    with pytest.raises(OutOfDomainError):
        _ = spec.module_hash


def test_single_vertex_is_invalid() -> None:
    spec = ModelSpec([[0]], ["input"])
    assert not spec.is_valid()
    assert spec.domain_error() == "a cell needs an input and an output vertex, this one has 1 vertex"


@pytest.mark.parametrize("size", [8, 9, 12])
def test_more_than_seven_vertices_is_false_not_type_error(size: int) -> None:
    spec = ModelSpec(chain(size), ["input"] + ["conv3x3"] * (size - 2) + ["output"])
    assert spec.is_valid() is False
    with pytest.raises(OutOfDomainError, match=f"{size} vertices after pruning"):
        spec.validate()


def test_ten_edges_is_out_of_domain() -> None:
    matrix = np.triu(np.ones((7, 7), dtype=int), 1)
    matrix[0, 2:] = 0  # 21 - 5 = 16 edges, still too many
    spec = ModelSpec(matrix, ["input"] + ["conv3x3"] * 5 + ["output"])
    assert spec.num_edges == 16
    with pytest.raises(OutOfDomainError, match="16 edges after pruning"):
        spec.validate()


def test_nine_edges_is_fine() -> None:
    matrix = [
        [0, 1, 1, 0, 0, 0, 0],
        [0, 0, 1, 1, 1, 0, 0],
        [0, 0, 0, 1, 0, 0, 0],
        [0, 0, 0, 0, 1, 0, 0],
        [0, 0, 0, 0, 0, 1, 0],
        [0, 0, 0, 0, 0, 0, 1],
        [0, 0, 0, 0, 0, 0, 0],
    ]
    assert ModelSpec(matrix, ["input"] + ["conv3x3"] * 5 + ["output"]).is_valid()


@pytest.mark.parametrize(
    ("matrix", "ops", "message"),
    [
        (
            [[0, 1, 0], [0, 0, 1]],
            ["input", "conv3x3", "output"],
            "matrix must be square: it has 2 rows but row 0 has 3",
        ),
        ([[0, 1], [0, 0]], ["input", "conv3x3", "output"], "ops has 3 entries but the matrix has 2 vertices"),
        (
            [[0, 1, 0], [0, 0, 1], [0, 1, 0]],
            ["input", "conv3x3", "output"],
            r"matrix\[2\]\[1\] = 1 is below the diagonal",
        ),
        ([[0, 1, 0], [0, 1, 1], [0, 0, 0]], ["input", "conv3x3", "output"], r"matrix\[1\]\[1\] = 1 is on the diagonal"),
        ([[0, 2], [0, 0]], ["input", "output"], r"matrix\[0\]\[1\] = 2 is not 0 or 1"),
        ([[0, 0.5], [0, 0]], ["input", "output"], r"matrix\[0\]\[1\] = 0.5 is not 0 or 1"),
        ([[0, "1"], [0, 0]], ["input", "output"], r"matrix\[0\]\[1\] = '1' is not 0 or 1"),
        (
            [[0, 1, 0], [0, 0, 1], [0, 0, 0]],
            ["input", "conv5x5", "output"],
            r"ops\[1\] = 'conv5x5' is not a NAS-Bench-101 op",
        ),
        ([[0, 1], [0, 0]], ["input", 3], r"ops\[1\] = 3 is not a string"),
        ([], [], "matrix is empty"),
        (np.zeros((2, 2, 2)), ["input", "output"], "matrix must be 2-D"),
        ("0110", ["input", "output"], r"matrix\[1\]\[0\] = 1 is below the diagonal"),
        ("011", ["input", "output"], "not a square number"),
        (5, ["input", "output"], "matrix must be a list of lists"),
    ],
)
def test_malformed_specs_raise_precise_spec_errors(matrix: object, ops: list, message: str) -> None:
    with pytest.raises(SpecError, match=message):
        ModelSpec(matrix, ops)


def test_spec_error_is_a_value_error() -> None:
    assert issubclass(SpecError, ValueError) and issubclass(OutOfDomainError, ValueError)


@pytest.mark.parametrize(
    ("ops", "message"),
    [
        (["conv3x3", "conv3x3", "output"], r"ops\[0\] = 'conv3x3-bn-relu': the first vertex must be 'input'"),
        (["input", "conv3x3", "conv1x1"], r"ops\[2\] = 'conv1x1-bn-relu': the last vertex must be 'output'"),
        (["input", "output", "output"], r"ops\[1\] = 'output': only the first vertex"),
    ],
)
def test_misplaced_input_or_output_is_out_of_domain(ops: list[str], message: str) -> None:
    spec = ModelSpec(chain(3), ops)
    assert not spec.is_valid()
    with pytest.raises(OutOfDomainError, match=message):
        spec.validate()


@pytest.mark.parametrize("dtype", [int, np.int8, bool, float, np.float32])
def test_matrix_dtypes_are_equivalent(dtype: type) -> None:
    spec = ModelSpec(np.array(INCEPTION_MATRIX, dtype=dtype), INCEPTION_OPS)
    assert spec.module_hash == INCEPTION_HASH
    assert spec.matrix.dtype == np.int64


def test_short_and_full_op_names_are_the_same_spec() -> None:
    full = INCEPTION["ops"]
    short = ModelSpec(INCEPTION_MATRIX, INCEPTION_OPS)
    assert short.original_ops == full
    assert ModelSpec(INCEPTION_MATRIX, full).module_hash == short.module_hash


def test_dataset_string_forms_are_accepted() -> None:
    flat = "".join(str(v) for row in INCEPTION_MATRIX for v in row)
    spec = ModelSpec(flat, ",".join(INCEPTION_OPS))
    assert spec.pruned_matrix == ModelSpec(INCEPTION_MATRIX, INCEPTION_OPS).pruned_matrix


def test_arrays_are_read_only_copies() -> None:
    source = np.array(INCEPTION_MATRIX)
    spec = ModelSpec(source, INCEPTION_OPS)
    source[0, 6] = 1
    assert spec.original_matrix[0, 6] == 0
    with pytest.raises(ValueError):
        spec.matrix[0, 1] = 0


def test_from_dict_accepts_query_keys_and_reports_missing_ones() -> None:
    spec = ModelSpec.from_dict({"module_adjacency": INCEPTION_MATRIX, "module_operations": INCEPTION_OPS})
    assert spec.module_hash == INCEPTION_HASH
    with pytest.raises(SpecError, match=r"it has 'matrix'$"):
        ModelSpec.from_dict({"matrix": INCEPTION_MATRIX})
    with pytest.raises(SpecError, match="needs the keys"):
        ModelSpec.from_dict({"adjacency": INCEPTION_MATRIX})
    with pytest.raises(SpecError, match="it has 'ops', 'module_adjacency'"):
        ModelSpec.from_dict({"module_adjacency": INCEPTION_MATRIX, "ops": INCEPTION_OPS})


def test_as_model_spec_reads_upstream_style_objects() -> None:
    class UpstreamSpec:  # the attributes of nasbench.api.ModelSpec
        def __init__(self) -> None:
            self.original_matrix = np.array(INCEPTION_MATRIX)
            self.original_ops = list(INCEPTION_OPS)
            self.matrix, self.ops = None, None

    assert as_model_spec(UpstreamSpec()).module_hash == INCEPTION_HASH
    with pytest.raises(SpecError, match="needs matrix and ops"):
        as_model_spec(object())


def test_round_trip_through_dict() -> None:
    spec = ModelSpec(INCEPTION_MATRIX, INCEPTION_OPS)
    again = ModelSpec.from_dict(spec.to_dict())
    assert again.original_matrix_tuple == spec.original_matrix_tuple
    assert again.original_ops_tuple == spec.original_ops_tuple
    assert "ModelSpec(matrix=" in repr(spec)
