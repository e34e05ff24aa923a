"""Shared hypothesis strategies (cells, relabelings) and helpers that build networks from them.

Imported by test modules as ``from strategies import ...`` (``tests/`` is on ``sys.path``
because it has no ``__init__.py``); the example cells are in example_cells.py.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import torch
from hypothesis import assume
from hypothesis import strategies as st
from torch import nn

import nbcompile
from nbcompile import ModelSpec
from nbcompile.compiler.channels import compute_vertex_channels

#: Interior ops of the NAS-Bench-101 space, in the benchmark's order.
INTERIOR_OPS: tuple[str, ...] = ("conv3x3-bn-relu", "conv1x1-bn-relu", "maxpool3x3")

#: Stem widths whose per-stack channel remainders (and so truncations) differ between stacks.
SMALL_STEMS: tuple[int, ...] = (5, 6, 7, 8, 9, 12)

#: Vertex counts drawn by ``cell_matrices`` (before pruning), weighted towards larger cells.
_SIZES: tuple[int, ...] = (2, 3, 4, 5, 5, 6, 6, 7, 7, 7)


# --------------------------------------------------------------------------------------------
# Strategies
# --------------------------------------------------------------------------------------------


@st.composite
def cell_matrices(draw: st.DrawFn, num_vertices: int | None = None) -> list[list[int]]:
    """An upper-triangular 0/1 matrix; most draws connect every vertex input -> output.

    Interior vertices are *anchored* (given a random predecessor and successor when they have
    none), so they lie on an input->output path; in about a quarter of the cells some are not,
    and may end up pruned. Extra random edges are added while the total stays within 9.
    """
    # Larger cells are the interesting ones (and pruning shrinks some), so weight them up.
    size = num_vertices if num_vertices is not None else draw(st.sampled_from(_SIZES))
    edges: set[tuple[int, int]] = set()
    if size == 2:
        edges.add((0, 1))
    interior = range(1, size - 1)
    # In about one cell in four, some vertices are left to chance (and so may be pruned).
    dangling = draw(st.integers(0, 3)) == 0
    anchored = [v for v in interior if not (dangling and draw(st.integers(0, 2)) == 0)]
    for v in anchored:  # a predecessor for every anchored vertex that has none yet
        if not any((u, v) in edges for u in range(v)):
            edges.add((draw(st.integers(0, v - 1)), v))
    for v in reversed(anchored):  # and a successor for every one that has none yet
        if not any((v, w) in edges for w in range(v + 1, size)):
            edges.add((v, draw(st.integers(v + 1, size - 1))))
    candidates = [(a, b) for b in range(size) for a in range(b) if (a, b) not in edges]
    if candidates and len(edges) < 9:
        extra = draw(st.lists(st.sampled_from(candidates), unique=True, max_size=9 - len(edges)))
        edges.update(extra)
    return [[int((a, b) in edges) for b in range(size)] for a in range(size)]


@st.composite
def valid_specs(draw: st.DrawFn, num_vertices: int | None = None) -> ModelSpec:
    """A ModelSpec inside the NAS-Bench-101 space (``is_valid()``), possibly with pruned vertices."""
    matrix = draw(cell_matrices(num_vertices))
    interior = draw(st.lists(st.sampled_from(INTERIOR_OPS), min_size=len(matrix) - 2, max_size=len(matrix) - 2))
    spec = ModelSpec(matrix, ["input", *interior, "output"])
    assume(spec.is_valid())
    return spec


@st.composite
def topological_orders(draw: st.DrawFn, matrix: Sequence[Sequence[int]]) -> tuple[int, ...]:
    """A vertex order ``order[new] = old`` that keeps ``matrix`` upper triangular.

    The input stays first and the output last; interior vertices are placed one at a time,
    each drawn among those whose predecessors are all placed already.
    """
    size = len(matrix)
    order = [0]
    remaining = list(range(1, size - 1))
    while remaining:
        ready = [v for v in remaining if all(not matrix[u][v] or u in order for u in range(v))]
        chosen = draw(st.sampled_from(ready))
        order.append(chosen)
        remaining.remove(chosen)
    if size > 1:
        order.append(size - 1)
    return tuple(order)


def relabel_spec(spec: ModelSpec, order: Sequence[int]) -> ModelSpec:
    """``spec`` (as given, unpruned) with its vertices renumbered so that new i is old ``order[i]``."""
    matrix = spec.original_matrix_tuple
    ops = spec.original_ops_tuple
    return ModelSpec(
        [[matrix[a][b] for b in order] for a in order],
        [ops[old] for old in order],
    )


@st.composite
def relabelings(draw: st.DrawFn, spec: ModelSpec) -> ModelSpec:
    """A random topological relabeling of ``spec`` (the same cell, isomorphically renumbered)."""
    order = draw(topological_orders(spec.original_matrix_tuple))
    return relabel_spec(spec, order)


@st.composite
def relabeled_spec_pairs(draw: st.DrawFn) -> tuple[ModelSpec, ModelSpec]:
    """``(spec, relabeled)``: a valid spec and a random topological relabeling of it."""
    spec = draw(valid_specs())
    return spec, draw(relabelings(spec))


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


def write_generated(spec: Any, out_dir: Path, file_name: str = "model.py", **config: Any) -> Path:
    """Generate the source for ``spec`` with ``config`` and write it to ``out_dir/file_name``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / file_name
    path.write_text(nbcompile.generate_source(spec, **config), encoding="utf-8")
    return path


def generated_module(network_class: type[nn.Module]) -> ModuleType:
    """The module a loaded generated ``Network`` class comes from."""
    return sys.modules[network_class.__module__]


@dataclass
class NetworkPair:
    """A generated Network and a DynamicNetwork of the same spec and config, sharing weights."""

    generated: nn.Module
    dynamic: nn.Module
    module: ModuleType

    @property
    def trainable_parameters(self) -> int:
        """The generated module's ``TRAINABLE_PARAMETERS`` constant."""
        return int(self.module.TRAINABLE_PARAMETERS)


def build_pair(spec: Any, out_dir: Path, *, seed: int = 0, **config: Any) -> NetworkPair:
    """Build both networks for ``spec``/``config``; the dynamic one gets the generated weights."""
    path = write_generated(spec, out_dir, **config)
    network_class = nbcompile.load_model_class(path)
    torch.manual_seed(seed)
    generated = network_class()
    torch.manual_seed(seed + 1)  # a different init, so that the weight copy is what matters
    dynamic = nbcompile.DynamicNetwork(spec, **config)
    dynamic.load_state_dict(generated.state_dict(), strict=True)
    return NetworkPair(generated, dynamic, generated_module(network_class))


def count_parameters(model: nn.Module) -> int:
    """Trainable parameter count of ``model``."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def stack_truncations(spec: ModelSpec, stem_channels: int, num_stacks: int) -> list[bool]:
    """Per stack: whether the stack's first cell truncates any interior edge."""
    matrix = spec.pruned_matrix
    result = []
    in_channels = stem_channels
    for stack in range(num_stacks):
        out_channels = stem_channels * 2**stack
        channels = compute_vertex_channels(spec.pruned_matrix, in_channels, out_channels)
        result.append(
            any(matrix[s][t] and channels[s] > channels[t] for t in range(1, len(matrix) - 1) for s in range(1, t))
        )
        in_channels = out_channels
    return result


def edge_bits(matrix: Sequence[Sequence[int]]) -> int:
    """Upstream's enumeration bitmask of a DAG, written independently of nbcompile's: edge x→y
    (x < y) is bit ``x + y*(y-1)/2`` (generate_graphs.py)."""
    size = len(matrix)
    return sum(1 << (x + y * (y - 1) // 2) for y in range(size) for x in range(y) if matrix[x][y])
