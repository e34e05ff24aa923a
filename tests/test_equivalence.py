"""Differential tests: the generated Network computes exactly what DynamicNetwork computes.

DynamicNetwork walks the adjacency matrix at run time (the way existing ports do); the generated
file hard-codes the same graph. With shared weights both must agree on parameters, outputs (eval
and train mode), BatchNorm running statistics and gradients.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from example_cells import PER_STACK_TRUNCATION, TWO_VERTEX
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st
from strategies import (
    SMALL_STEMS,
    NetworkPair,
    build_pair,
    count_parameters,
    stack_truncations,
    valid_specs,
)
from torch import nn

import nbcompile
from nbcompile import ModelSpec
from nbcompile.compiler.channels import compute_vertex_channels

ATOL = 1e-5
RTOL = 1e-4


def assert_same_structure(pair: NetworkPair) -> None:
    """Same state_dict keys and shapes, and parameter counts equal to TRAINABLE_PARAMETERS."""
    generated = {k: tuple(v.shape) for k, v in pair.generated.state_dict().items()}
    dynamic = {k: tuple(v.shape) for k, v in pair.dynamic.state_dict().items()}
    assert generated.keys() == dynamic.keys()
    assert generated == dynamic
    assert count_parameters(pair.generated) == pair.trainable_parameters
    assert count_parameters(pair.dynamic) == pair.trainable_parameters


def assert_same_outputs(a: nn.Module, b: nn.Module, x: torch.Tensor) -> None:
    """Equal outputs of ``a`` and ``b`` on ``x`` in their current modes."""
    torch.testing.assert_close(a(x), b(x), atol=ATOL, rtol=RTOL)


def assert_same_buffers(a: nn.Module, b: nn.Module) -> None:
    """Equal buffers (BatchNorm running statistics and batch counters), by name."""
    buffers_a, buffers_b = dict(a.named_buffers()), dict(b.named_buffers())
    assert buffers_a.keys() == buffers_b.keys()
    for name, value in buffers_a.items():
        torch.testing.assert_close(value, buffers_b[name], atol=ATOL, rtol=RTOL, msg=name)


def assert_same_training_step(pair: NetworkPair, x: torch.Tensor) -> None:
    """Train mode: equal outputs, equal running-stat updates and equal gradients."""
    pair.generated.train()
    pair.dynamic.train()
    out_generated = pair.generated(x)
    out_dynamic = pair.dynamic(x)
    torch.testing.assert_close(out_generated, out_dynamic, atol=ATOL, rtol=RTOL)
    assert_same_buffers(pair.generated, pair.dynamic)
    # A loss that weighs every logit differently, so that no gradient cancels by symmetry.
    weights = torch.linspace(-1.0, 1.0, out_generated.numel()).reshape(out_generated.shape)
    (out_generated * weights).sum().backward()
    (out_dynamic * weights).sum().backward()
    grads_dynamic = {name: p.grad for name, p in pair.dynamic.named_parameters()}
    for name, parameter in pair.generated.named_parameters():
        assert parameter.grad is not None, f"{name} got no gradient in the generated network"
        assert grads_dynamic[name] is not None, f"{name} got no gradient in the dynamic network"
        torch.testing.assert_close(parameter.grad, grads_dynamic[name], atol=ATOL, rtol=RTOL, msg=name)


def check_equivalence(spec: Any, out_dir: Path, x: torch.Tensor, **config: Any) -> NetworkPair:
    """Run every generated-vs-dynamic check for ``spec`` under ``config`` on input ``x``."""
    pair = build_pair(spec, out_dir, **config)
    assert_same_structure(pair)

    # generated -> dynamic weights (done by build_pair); eval mode uses the running statistics.
    pair.generated.eval()
    pair.dynamic.eval()
    with torch.no_grad():
        assert_same_outputs(pair.generated, pair.dynamic, x)
    assert_same_buffers(pair.generated, pair.dynamic)  # eval mode must not touch them

    # train mode from the same state: batch statistics, running-stat updates, gradients.
    assert_same_training_step(pair, x)

    # dynamic -> generated: a freshly initialised generated network takes the dynamic weights
    # (including the running statistics just updated) and then agrees in eval mode.
    torch.manual_seed(1234)
    fresh = type(pair.generated)()
    fresh.load_state_dict(pair.dynamic.state_dict(), strict=True)
    fresh.eval()
    pair.dynamic.eval()
    with torch.no_grad():
        assert_same_outputs(fresh, pair.dynamic, x)
    return pair


def _input(batch: int, in_channels: int, side: int, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(batch, in_channels, side, side, generator=generator)


@settings(
    max_examples=50,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    spec=valid_specs(),
    stem_channels=st.sampled_from(SMALL_STEMS),
    cells_per_stack=st.integers(1, 2),
    in_channels=st.sampled_from([3, 1]),
    num_labels=st.sampled_from([10, 3]),
)
# Always run the cell whose truncation differs per stack at a small stem:
# stem 5 gives vertex channels [5, 2, 2, 1, 5], [5, 4, 3, 3, 10], [10, 7, 7, 6, 20].
@example(
    spec=ModelSpec(**PER_STACK_TRUNCATION),
    stem_channels=5,
    cells_per_stack=1,
    in_channels=3,
    num_labels=10,
)
@example(spec=ModelSpec(**TWO_VERTEX), stem_channels=6, cells_per_stack=2, in_channels=3, num_labels=10)
def test_generated_matches_dynamic_on_random_specs(
    tmp_path_factory: pytest.TempPathFactory,
    spec: ModelSpec,
    stem_channels: int,
    cells_per_stack: int,
    in_channels: int,
    num_labels: int,
) -> None:
    """Random valid cells: generated and dynamic networks agree in every respect."""
    num_stacks = 3
    truncations = stack_truncations(spec, stem_channels, num_stacks)
    event(f"{spec.num_vertices} vertices after pruning")
    if len(set(truncations)) > 1:
        event("truncation differs between stacks")
    if spec.num_vertices < len(spec.original_matrix_tuple):
        event("spec has pruned vertices")
    check_equivalence(
        spec,
        tmp_path_factory.mktemp("equivalence"),
        _input(2, in_channels, 12),
        stem_channels=stem_channels,
        num_stacks=num_stacks,
        cells_per_stack=cells_per_stack,
        in_channels=in_channels,
        num_labels=num_labels,
    )


def test_per_stack_truncation_cell_default_config(tmp_path: Path) -> None:
    """At the default config the 1->2 edge is truncated (86->85) in the 256-channel stacks only."""
    spec = ModelSpec(**PER_STACK_TRUNCATION)
    assert compute_vertex_channels(spec.pruned_matrix, 128, 128) == (128, 43, 43, 42, 128)
    assert compute_vertex_channels(spec.pruned_matrix, 128, 256) == (128, 86, 85, 85, 256)
    assert compute_vertex_channels(spec.pruned_matrix, 256, 512) == (256, 171, 171, 170, 512)
    assert stack_truncations(spec, 128, 3) == [False, True, False]

    pair = check_equivalence(spec, tmp_path, _input(2, 3, 8))
    source = Path(pair.module.__file__).read_text(encoding="utf-8")
    assert source.count("v1[:, :85]") == 2  # Cell128To256 and Cell256To256, nowhere else
    assert "v1[:, :" not in source.split("class Cell128To128")[1].split("class Cell128To256")[0]
    assert "v1[:, :" not in source.split("class Cell256To512")[1]


def test_two_vertex_cell_default_config(tmp_path: Path) -> None:
    """The input->output cell: every cell is a single 1x1 projection."""
    pair = check_equivalence(ModelSpec(**TWO_VERTEX), tmp_path, _input(2, 3, 8))
    cell = pair.generated.stack1_cell0
    assert [name for name, _ in cell.named_children()] == ["proj1"]
    assert cell.proj1.conv.in_channels == 128 and cell.proj1.conv.out_channels == 256


def test_pruned_vertices_are_not_built(tmp_path: Path) -> None:
    """A dangling vertex is pruned: both networks equal the network of the pruned cell."""
    matrix = [
        [0, 1, 0, 1],
        [0, 0, 0, 1],
        [0, 0, 0, 0],  # vertex 2 has no successor: pruned
        [0, 0, 0, 0],
    ]
    spec = ModelSpec(matrix, ["input", "conv3x3", "conv1x1", "output"])
    pair = check_equivalence(spec, tmp_path / "given", _input(2, 3, 8), stem_channels=6, num_stacks=2)
    pruned = build_pair(
        ModelSpec(spec.pruned_matrix, spec.pruned_ops),
        tmp_path / "pruned",
        stem_channels=6,
        num_stacks=2,
    )
    assert pair.generated.state_dict().keys() == pruned.generated.state_dict().keys()
    assert pair.trainable_parameters == pruned.trainable_parameters


def test_generate_source_is_deterministic() -> None:
    """The same spec and config give byte-identical source (the diff oracle relies on it)."""
    config = {"stem_channels": 8, "num_stacks": 2, "cells_per_stack": 1}
    first = nbcompile.generate_source(PER_STACK_TRUNCATION, **config)
    assert first == nbcompile.generate_source(ModelSpec(**PER_STACK_TRUNCATION), **config)
