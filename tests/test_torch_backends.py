"""Generated networks work with TorchScript, TorchDynamo, torch.export and torch.compile.

Also checks the checked-in, default-config Inception-like network against the numbers and
TensorFlow conventions of NAS-Bench-101 (parameter count, BatchNorm settings, initialisation).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from example_cells import GENERATED, INCEPTION, INCEPTION_MODULE_NAME, PER_STACK_TRUNCATION, TWO_VERTEX
from strategies import write_generated
from torch import nn

import nbcompile
import nbcompile.runtime.loader

INCEPTION_FILE = GENERATED / f"{INCEPTION_MODULE_NAME}.py"
#: The cells the backends run on, by a readable id.
BACKEND_CELLS = {"inception": INCEPTION, "two_vertex": TWO_VERTEX, "per_stack_truncation": PER_STACK_TRUNCATION}

#: A small network: 3 stacks so that every cell kind (X->X, X->2X) and both downsamplings occur.
SMALL_CONFIG = {"stem_channels": 8, "num_stacks": 3, "cells_per_stack": 1}
#: The smallest config torch.compile is run on (inductor on CPU is slow).
TINY_CONFIG = {"stem_channels": 8, "num_stacks": 2, "cells_per_stack": 1}

ATOL = 1e-5
RTOL = 1e-4


def _small_model(tmp_path: Path, cell: str, config: dict[str, int] = SMALL_CONFIG) -> nn.Module:
    """The generated Network of ``cell`` under ``config``, in eval mode, seeded."""
    path = write_generated(BACKEND_CELLS[cell], tmp_path, **config)
    torch.manual_seed(0)
    return nbcompile.load_model(path).eval()


def _input(side: int = 8) -> torch.Tensor:
    return torch.randn(2, 3, side, side, generator=torch.Generator().manual_seed(0))


@pytest.fixture(autouse=True)
def _fresh_dynamo() -> Iterator[None]:
    """Every test starts and ends with an empty TorchDynamo cache."""
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


cells = pytest.mark.parametrize("cell", sorted(BACKEND_CELLS))


@cells
def test_torchscript_matches_eager(tmp_path: Path, cell: str) -> None:
    """torch.jit.script compiles the Network and computes the same output, eval and train."""
    model = _small_model(tmp_path, cell)
    scripted = torch.jit.script(model)
    x = _input()
    with torch.no_grad():
        torch.testing.assert_close(scripted(x), model(x), atol=ATOL, rtol=RTOL)
    # Train mode too (batch statistics): the scripted module shares the eager parameters.
    scripted.train()
    model.train()
    expected = model(x)
    torch.testing.assert_close(scripted(x), expected, atol=ATOL, rtol=RTOL)


@cells
def test_dynamo_captures_a_single_graph(tmp_path: Path, cell: str) -> None:
    """TorchDynamo traces the whole forward as one graph, without graph breaks."""
    model = _small_model(tmp_path, cell)
    explanation = torch._dynamo.explain(model)(_input())
    assert explanation.graph_break_count == 0, explanation.break_reasons
    assert explanation.graph_count == 1


@cells
def test_torch_export_matches_eager(tmp_path: Path, cell: str) -> None:
    """torch.export.export succeeds and its module computes the eager output."""
    model = _small_model(tmp_path, cell)
    x = _input()
    exported = torch.export.export(model, (x,))
    with torch.no_grad():
        torch.testing.assert_close(exported.module()(x), model(x), atol=ATOL, rtol=RTOL)
        other = torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(1))
        torch.testing.assert_close(exported.module()(other), model(other), atol=ATOL, rtol=RTOL)


def test_torch_compile_fullgraph_matches_eager(tmp_path: Path) -> None:
    """torch.compile(fullgraph=True) with inductor runs and matches eager (smallest config).

    Uses the per-stack truncation cell, so the compiled graph includes a channel slice. On two
    CPU cores this takes ~20 s, most of it inductor's one-off start-up.
    """
    path = write_generated(PER_STACK_TRUNCATION, tmp_path, **TINY_CONFIG)
    torch.manual_seed(0)
    model = nbcompile.load_model(path).eval()
    compiled = torch.compile(model, fullgraph=True)
    x = _input()
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), model(x), atol=ATOL, rtol=RTOL)


# --------------------------------------------------------------------------------------------
# The checked-in default-config Inception-like network
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def inception() -> nn.Module:
    """The generated default-config Inception-like Network (CIFAR-10), seeded."""
    torch.manual_seed(0)
    return nbcompile.load_model(INCEPTION_FILE)


def _convs(model: nn.Module) -> list[tuple[str, nn.Conv2d]]:
    return [(name, m) for name, m in model.named_modules() if isinstance(m, nn.Conv2d)]


def test_inception_parameter_count(inception: nn.Module) -> None:
    """2,694,282 trainable parameters, as NAS-Bench-101 reports for this cell."""
    count = sum(p.numel() for p in inception.parameters() if p.requires_grad)
    assert count == 2_694_282
    module = nbcompile.runtime.loader.import_generated(INCEPTION_FILE)
    assert module.TRAINABLE_PARAMETERS == 2_694_282


def test_inception_batchnorm_and_conv_conventions(inception: nn.Module) -> None:
    """TF BatchNorm (momentum 0.997 -> 0.003, eps 1e-5) everywhere; no conv has a bias."""
    batchnorms = [m for m in inception.modules() if isinstance(m, nn.BatchNorm2d)]
    convs = _convs(inception)
    assert batchnorms and len(batchnorms) == len(convs)
    for bn in batchnorms:
        assert bn.momentum == pytest.approx(0.003)
        assert bn.eps == pytest.approx(1e-5)
        assert bn.affine and bn.track_running_stats
    for name, conv in convs:
        assert conv.bias is None, name
        assert conv.padding == (conv.kernel_size[0] // 2,) * 2, name


def test_inception_has_no_unused_parameter(inception: nn.Module) -> None:
    """Every parameter gets a gradient from one training step on a CIFAR-sized batch."""
    model = inception.train()
    model.zero_grad(set_to_none=True)
    try:
        x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
        logits = model(x)
        assert logits.shape == (2, 10)
        nn.functional.cross_entropy(logits, torch.tensor([3, 7])).backward()
        unused = [name for name, p in model.named_parameters() if p.grad is None]
        assert unused == []
    finally:
        model.zero_grad(set_to_none=True)
        model.eval()


def test_inception_init_is_tf_faithful(inception: nn.Module) -> None:
    """Conv kernels: TF variance_scaling (truncated normal at 2 sigma, fan-in); dense: Glorot."""
    largest_fan_in, largest = 0, None
    for name, conv in _convs(inception):
        fan_in = conv.in_channels * conv.kernel_size[0] * conv.kernel_size[1]
        std = math.sqrt(1.0 / fan_in) / 0.87962566103423978
        weight = conv.weight.detach()
        assert weight.abs().max().item() <= 2.0 * std * (1 + 1e-6), name
        if weight.numel() > (largest.numel() if largest is not None else 0):
            largest_fan_in, largest = fan_in, weight
    # The truncated normal's own spread is the *untruncated* target sqrt(1 / fan_in).
    assert largest is not None and largest.numel() > 100_000
    target = math.sqrt(1.0 / largest_fan_in)
    assert largest.std().item() == pytest.approx(target, rel=0.02)
    assert abs(largest.mean().item()) < 0.02 * target

    classifier = inception.classifier
    assert isinstance(classifier, nn.Linear)
    assert (classifier.in_features, classifier.out_features) == (512, 10)
    assert torch.count_nonzero(classifier.bias).item() == 0
    bound = math.sqrt(6.0 / (classifier.in_features + classifier.out_features))
    assert classifier.weight.abs().max().item() <= bound
    # Glorot-uniform spreads over the whole bound, not a much narrower range.
    assert classifier.weight.abs().max().item() > 0.9 * bound


def test_downsampling_rounds_up_like_tf_same_padding(tmp_path: Path) -> None:
    """TF's 2x2/2 max-pool with 'same' padding maps 15 -> 8 (PyTorch's default gives 7)."""
    path = write_generated(PER_STACK_TRUNCATION, tmp_path, **SMALL_CONFIG)
    model = nbcompile.load_model(path).eval()
    sides: list[int] = []
    for name in ("stack1_cell0", "stack2_cell0"):
        getattr(model, name).register_forward_pre_hook(lambda _, args: sides.append(args[0].shape[-1]))
    with torch.no_grad():
        model(torch.randn(1, 3, 30, 30))
    assert sides == [15, 8]
