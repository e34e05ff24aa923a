"""Encodings A, B and C (nbcompile.search.cell_encodings): hand-worked configurations decoded to known
cells, the reference's rules for more than 9 edges, B's duplicates and C's ties, and for any
configuration a valid cell of at most 9 edges or None."""

from __future__ import annotations

from typing import Any

import pytest
from example_cells import INCEPTION, INCEPTION_HASH
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import valid_specs

from nbcompile.search.cell_encodings import (
    B_POSITIONS,
    ENCODING,
    decode_a,
    decode_b,
    decode_c,
    encode_a,
    encoding,
)
from nbcompile.space.spec import ModelSpec

C1, C3, MP = "conv1x1-bn-relu", "conv3x3-bn-relu", "maxpool3x3"
#: The Inception-like cell's interior ops (vertices 1…5) as the notebook writes it.
INCEPTION_OPS = {"op_node_0": C1, "op_node_1": C3, "op_node_2": C3, "op_node_3": C3, "op_node_4": MP}
#: Its edges (0,1) (0,2) (0,3) (0,5) (1,6) (2,6) (3,4) (4,6) (5,6) as triu_indices(7, 1) positions,
#: counted by hand: row 0 holds 0…5, row 1 6…10, row 2 11…14, row 3 15…17, row 4 18…19, row 5 20.
INCEPTION_TRIU = (0, 1, 2, 4, 10, 14, 15, 19, 20)


def config_a(positions: Any, ops: dict[str, str] = INCEPTION_OPS) -> dict[str, Any]:
    return {**ops, **{f"edge_{i}": int(i in positions) for i in range(21)}}


def test_a_decodes_the_inception_cell() -> None:
    spec = decode_a(config_a(INCEPTION_TRIU))
    assert spec is not None and spec.module_hash == INCEPTION_HASH
    assert [list(row) for row in spec.original_matrix_tuple] == INCEPTION["matrix"]
    assert list(spec.original_ops_tuple) == INCEPTION["ops"]


def test_a_with_more_than_nine_edges_is_outside_even_if_pruning_would_cut_it() -> None:
    """The reference counts the edges before pruning: 10 edges are outside the space, even when
    vertex 5 (no way out) is pruned and the rest is a valid 5-edge chain."""
    chain = (0, 6, 11, 15, 19)  # (0,1) (1,2) (2,3) (3,4) (4,6)
    into_five = (4, 9, 13, 16, 18)  # (0,5) (1,5) (2,5) (3,5) (4,5)
    assert decode_a(config_a(chain)) is not None
    pruned = ModelSpec(decode_a(config_a(chain)).original_matrix_tuple, ["input", C1, C3, C3, C3, MP, "output"])
    assert pruned.is_valid()
    assert decode_a(config_a(chain + into_five)) is None
    assert decode_a(config_a(range(21))) is None


def test_a_outside_the_space_when_the_output_is_unreachable() -> None:
    assert decode_a(config_a((0, 6))) is None  # 0→1→2, nothing reaches 6
    assert decode_a(config_a(())) is None


def test_a_round_trips_the_inception_cell() -> None:
    spec = ModelSpec(INCEPTION["matrix"], INCEPTION["ops"])
    assert encode_a(spec) == config_a(INCEPTION_TRIU)


@settings(max_examples=60, deadline=None)
@given(valid_specs())
def test_a_round_trip_of_any_cell(spec: ModelSpec) -> None:
    decoded = decode_a(encode_a(spec))
    assert decoded is not None and decoded.module_hash == spec.module_hash


def reference_b_matrix(positions: list[int]) -> list[list[int]]:
    """The reference's construction, written out: a 21-bit list with the chosen positions set,
    read as a big-endian integer, and entry (x, y) set when bit y(y-1)/2 + x is."""
    bitlist = [0] * 21
    for position in positions:
        bitlist[position] = 1
    bits = 0
    for bit in bitlist:
        bits = (bits << 1) | bit
    return [[int(y > x and (bits >> (y * (y - 1) // 2 + x)) & 1) for y in range(7)] for x in range(7)]


def config_b(positions: list[int]) -> dict[str, Any]:
    return {**INCEPTION_OPS, **{f"edge_{i}": p for i, p in enumerate(positions)}}


#: The Inception-like cell's edges in B: column-major bit k (by hand: (0,1)=0, (0,2)=1, (0,3)=3,
#: (3,4)=9, (0,5)=10, (1,6)=16, (2,6)=17, (4,6)=19, (5,6)=20) is position 20 − k.
INCEPTION_B = [20, 19, 17, 11, 10, 4, 3, 1, 0]


def test_b_decodes_the_inception_cell() -> None:
    spec = decode_b(config_b(INCEPTION_B))
    assert spec is not None and spec.module_hash == INCEPTION_HASH
    assert [list(row) for row in spec.original_matrix_tuple] == INCEPTION["matrix"]


def test_b_positions_are_the_references_bit_string() -> None:
    assert B_POSITIONS[0] == (5, 6) and B_POSITIONS[5] == (0, 6) and B_POSITIONS[20] == (0, 1)
    for position in range(21):
        matrix = reference_b_matrix([position])
        row, col = B_POSITIONS[position]
        assert matrix[row][col] == 1 and sum(map(sum, matrix)) == 1


def test_b_duplicates_set_one_edge() -> None:
    spec = decode_b(config_b([5] * 9))  # nine times (0,6)
    assert spec is not None
    assert sum(map(sum, spec.original_matrix_tuple)) == 1
    assert spec.pruned_matrix == ((0, 1), (0, 0))
    twice = decode_b(config_b([5, 5, 20, 20, 17, 17, 17, 5, 20]))  # (0,6) (0,1) (2,3)
    assert twice is not None and sum(map(sum, twice.original_matrix_tuple)) == 3


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 20), min_size=9, max_size=9))
def test_b_matches_the_references_construction(positions: list[int]) -> None:
    spec = decode_b(config_b(positions))
    expected = ModelSpec(reference_b_matrix(positions), ["input", C1, C3, C3, C3, MP, "output"])
    if expected.is_valid():
        assert spec is not None and spec.original_matrix_tuple == expected.original_matrix_tuple
    else:
        assert spec is None


def config_c(weights: dict[int, float], num_edges: int, default: float = 0.0) -> dict[str, Any]:
    return {**INCEPTION_OPS, "num_edges": num_edges, **{f"edge_{i}": weights.get(i, default) for i in range(21)}}


def test_c_takes_the_largest_weights() -> None:
    weights = {p: 0.9 - 0.01 * k for k, p in enumerate(INCEPTION_TRIU)} | {3: 0.5, 7: 0.4}
    spec = decode_c(config_c(weights, 9))
    assert spec is not None and spec.module_hash == INCEPTION_HASH
    assert decode_c(config_c(weights, 8)) is not None  # without (5,6): vertex 5 is pruned
    assert decode_c(config_c(weights, 0)) is None


def test_c_ties_go_to_the_highest_position() -> None:
    """(0,6) is the largest; (0,1) (position 0) and (1,6) (position 10) tie for the second edge:
    the higher position, (1,6), wins; with three edges both are in."""
    spec = decode_c(config_c({5: 1.0, 0: 0.5, 10: 0.5}, 2))
    assert spec is not None
    edges = {(r, c) for r, row in enumerate(spec.original_matrix_tuple) for c, v in enumerate(row) if v}
    assert edges == {(0, 6), (1, 6)}
    spec = decode_c(config_c({}, 1, default=0.3))  # all equal: position 20, (5,6), alone
    assert spec is None
    spec = decode_c(config_c({5: 0.3}, 1, default=0.3))  # (0,6) ties with all, loses to (5,6)
    assert spec is None
    spec = decode_c(config_c({5: 0.3, 20: 0.2}, 1, default=0.2))
    assert spec is not None and spec.pruned_matrix == ((0, 1), (0, 0))


@pytest.mark.parametrize("bad", [{"op_node_0": "conv5x5"}, {"edge_3": 2}])
def test_a_rejects_values_outside_its_parameters(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=next(iter(bad))):
        decode_a({**config_a(INCEPTION_TRIU), **bad})


def test_unknown_encoding_names_the_choices() -> None:
    with pytest.raises(ValueError, match="A, B, C"):
        encoding("D")


def _configurations(name: str) -> st.SearchStrategy[dict[str, Any]]:
    fields = {}
    for p in ENCODING[name].parameters:
        if p.kind == "categorical":
            fields[p.name] = st.sampled_from(p.choices)
        elif p.kind == "float":
            fields[p.name] = st.floats(p.lower, p.upper)
        else:
            fields[p.name] = st.integers(int(p.lower), int(p.upper))
    return st.fixed_dictionaries(fields)


@pytest.mark.parametrize("name", ["A", "B", "C"])
@settings(max_examples=80, deadline=None)
@given(data=st.data())
def test_every_decoded_cell_is_valid_with_at_most_nine_edges(name: str, data: st.DataObject) -> None:
    spec = ENCODING[name].decode(data.draw(_configurations(name)))
    if spec is not None:
        assert spec.is_valid()
        assert sum(map(sum, spec.original_matrix_tuple)) <= 9 and spec.num_edges <= 9


@pytest.mark.parametrize("name", ["A", "B", "C"])
def test_the_configuration_space_holds_the_parameters(name: str) -> None:
    pytest.importorskip("ConfigSpace")
    space = ENCODING[name].configuration_space(seed=1)
    assert sorted(space.keys()) == sorted(p.name for p in ENCODING[name].parameters)
    assert len(space) == {"A": 26, "B": 14, "C": 27}[name]
    for configuration in space.sample_configuration(20):
        spec = ENCODING[name].decode(dict(configuration))
        assert spec is None or spec.is_valid()
