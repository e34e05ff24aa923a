"""The channel split, against upstream's hand-checked vectors and its invariants."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import valid_specs

from nbcompile import ConfigError, ModelSpec, compute_vertex_channels


@pytest.mark.parametrize(
    ("matrix", "in_channels", "out_channels", "expected"),
    [
        # two parallel vertices
        ([[0, 1, 1, 0], [0, 0, 0, 1], [0, 0, 0, 1], [0, 0, 0, 0]], 8, 15, (8, 8, 7, 15)),
        # three parallel vertices
        ([[0, 1, 1, 1, 0], [0, 0, 0, 0, 1], [0, 0, 0, 0, 1], [0, 0, 0, 0, 1], [0] * 5], 8, 8, (8, 3, 3, 2, 8)),
        (
            [[0, 1, 1, 1, 0], [0, 0, 0, 0, 1], [0, 0, 0, 0, 1], [0, 0, 0, 0, 1], [0] * 5],
            128,
            128,
            (128, 43, 43, 42, 128),
        ),
        # 1 → {2, 3}, both feeding the output: vertex 1 takes the max of its successors
        ([[0, 1, 0, 0, 0], [0, 0, 1, 1, 0], [0, 0, 0, 0, 1], [0, 0, 0, 0, 1], [0] * 5], 8, 9, (8, 5, 5, 4, 9)),
        # a chain: every vertex gets all output channels
        ([[0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1], [0, 0, 0, 0]], 8, 16, (8, 16, 16, 16)),
        # the input→output edge does not take a share
        ([[0, 1, 1], [0, 0, 1], [0, 0, 0]], 4, 6, (4, 6, 6)),
        # only input → output
        ([[0, 1], [0, 0]], 128, 256, (128, 256)),
    ],
)
def test_reference_vectors(matrix, in_channels: int, out_channels: int, expected: tuple[int, ...]) -> None:
    assert compute_vertex_channels(matrix, in_channels, out_channels) == expected


def test_too_few_output_channels_is_a_config_error() -> None:
    matrix = [[0, 1, 1, 1, 0], [0, 0, 0, 0, 1], [0, 0, 0, 0, 1], [0, 0, 0, 0, 1], [0] * 5]
    with pytest.raises(ConfigError, match="2 output channels cannot be split among the 3 vertices"):
        compute_vertex_channels(matrix, 2, 2)


@settings(max_examples=150, deadline=None, derandomize=True)
@given(valid_specs(), st.sampled_from([(128, 128), (128, 256), (256, 512), (5, 10), (7, 7)]))
def test_split_invariants(spec: ModelSpec, pair: tuple[int, int]) -> None:
    in_channels, out_channels = pair
    matrix = spec.pruned_matrix
    size = len(matrix)
    channels = compute_vertex_channels(spec.pruned_matrix, in_channels, out_channels)
    assert channels[0] == in_channels and channels[-1] == out_channels
    feeders = [v for v in range(1, size - 1) if matrix[v][size - 1]]
    if feeders:
        assert sum(channels[v] for v in feeders) == out_channels
        base = out_channels // len(feeders)
        assert all(channels[v] in (base, base + 1) for v in range(1, size - 1))
        # +1s go to the lowest-indexed feeders
        assert [channels[v] for v in feeders] == sorted((channels[v] for v in feeders), reverse=True)
    for a in range(1, size - 1):
        for b in range(a + 1, size - 1):
            if matrix[a][b]:  # channels never grow along an interior edge (truncation drops ≤ 1)
                assert 0 <= channels[a] - channels[b] <= 1
