"""nbcompile.optimize: the compiled inference network and training step give the eager network's
outputs, loss and gradients. The fast tests compile with dynamo's eager and aot_eager backends
(the same graph capture, functionalisation and autograd as inductor, without C++ code
generation); the ``slow`` ones compile with inductor."""

from __future__ import annotations

import copy

import pytest
import torch
from example_cells import INCEPTION
from torch._dynamo.utils import counters
from torch.nn import functional as F

import nbcompile
from nbcompile import ConfigError, DynamicNetwork
from nbcompile.runtime.device import float32_math
from nbcompile.runtime.optimize import OptimizedNetwork, TrainingStep

TINY = {"stem_channels": 8, "num_stacks": 2, "cells_per_stack": 2}
#: A small cell with a conv, a max-pool and a projected skip: BN, pooling and sums to get right.
SMALL_CELL = {
    "matrix": [[0, 1, 1, 0], [0, 0, 0, 1], [0, 0, 0, 1], [0, 0, 0, 0]],
    "ops": ["input", "conv3x3-bn-relu", "maxpool3x3", "output"],
}


def network_with_running_statistics(tmp_path, spec=SMALL_CELL):
    """A generated network whose BatchNorms hold non-trivial running statistics and affine terms."""
    path = nbcompile.compile_to_file(spec, tmp_path, **TINY)
    generator = torch.Generator().manual_seed(7)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(3)
        model = nbcompile.load_model(path)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.weight.copy_(torch.rand(module.num_features, generator=generator) + 0.5)
                module.bias.copy_(torch.randn(module.num_features, generator=generator) * 0.1)
                module.running_mean.copy_(torch.randn(module.num_features, generator=generator) * 0.1)
                module.running_var.copy_(torch.rand(module.num_features, generator=generator) + 0.5)
    return model


def images(batch: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(batch, 3, 16, 16, generator=torch.Generator().manual_seed(seed))


def test_inference_matches_the_eager_network_and_leaves_it_alone(tmp_path, backend="aot_eager") -> None:
    model = network_with_running_statistics(tmp_path)
    keys = list(model.state_dict())
    x = images(3)
    optimized = optimize_quietly(model, x, backend=backend)
    assert isinstance(optimized, OptimizedNetwork)
    model.eval()
    with torch.no_grad():
        expected = model(x)
    actual = optimized(x)
    assert actual.dtype == torch.float32 and actual.shape == expected.shape
    torch.testing.assert_close(actual, expected, rtol=1e-4, atol=1e-5)
    assert list(model.state_dict()) == keys  # the caller's model is not fused
    other = images(3, seed=1)  # a second input: the result is not a stale buffer
    with torch.no_grad():
        torch.testing.assert_close(optimized(other), model(other), rtol=1e-4, atol=1e-5)
    assert optimized.summary == (
        "optimize: eval, cpu, fp32, channels_last, BN folded by fuse(), "
        f"torch.compile: whole network ({backend} backend), no CUDA graphs"
    )
    assert "\n" not in optimized.summary


def test_bf16_inference_is_close_to_fp32(tmp_path) -> None:
    model = network_with_running_statistics(tmp_path).eval()
    x = images(2)
    optimized = optimize_quietly(model, x, dtype="bf16", backend="eager")
    assert optimized.prepared.network.classifier.weight.dtype == torch.bfloat16
    assert optimized.prepared.network.stem.conv.weight.is_contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        expected = model(x)
    actual = optimized(x)
    assert actual.dtype == torch.float32
    torch.testing.assert_close(actual, expected, rtol=0.1, atol=0.1 * expected.abs().max().item())
    assert "bf16 weights" in optimized.summary


def test_a_network_without_fuse_is_still_optimised(tmp_path) -> None:
    """DynamicNetwork has no fuse() (BN is left to inductor's freezing, none with other backends)
    and does not compile into one graph (optimize falls back to graph breaks)."""
    dynamic = DynamicNetwork(nbcompile.ModelSpec.from_dict(SMALL_CELL), **TINY)
    dynamic.load_state_dict(network_with_running_statistics(tmp_path).state_dict())
    x = images(2)
    optimized = optimize_quietly(dynamic, x, backend="eager")
    assert (
        "BN folded" not in optimized.summary and "whole network (eager backend) with graph breaks" in optimized.summary
    )
    with torch.no_grad():
        torch.testing.assert_close(optimized(x), dynamic.eval()(x), rtol=1e-4, atol=1e-5)


def eager_reference_steps(model, x, labels, steps: int):
    """Eager training: the losses and the last step's gradients, with plain SGD."""
    model = copy.deepcopy(model).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, foreach=False)
    losses = []
    for _ in range(steps):
        optimizer.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), labels)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses, [p.grad.clone() for p in model.parameters()], model


def test_training_step_gives_the_eager_loss_and_gradients(tmp_path, backend="aot_eager") -> None:
    model = network_with_running_statistics(tmp_path)
    x, labels = images(4), torch.tensor([0, 3, 9, 3])
    expected_losses, expected_grads, expected_model = eager_reference_steps(model, x, labels, steps=2)
    graphs_before = counters["stats"]["unique_graphs"]
    step = optimize_quietly(model, x, train=True, backend=backend)
    # Regional compilation: 4 cells of 3 classes, one graph per class (cells of a class share it).
    assert counters["stats"]["unique_graphs"] - graphs_before == 3
    assert isinstance(step, TrainingStep)
    losses = [step(x, labels).item() for _ in range(2)]  # the warm-up left the weights as they were
    assert counters["stats"]["unique_graphs"] - graphs_before == 3  # and no recompilation
    assert losses == pytest.approx(expected_losses, rel=1e-5)
    for grad, expected in zip((p.grad for p in model.parameters()), expected_grads):
        torch.testing.assert_close(grad, expected, rtol=1e-4, atol=1e-6)
    for name, value in model.state_dict().items():  # momentum, running statistics, step counts
        torch.testing.assert_close(value, expected_model.state_dict()[name], rtol=1e-4, atol=1e-6)
    assert step.summary.startswith(
        "optimize: train, cpu, fp32, channels_last, torch.compile: per cell (4 cells, 3 distinct classes"
    )
    assert "SGD(momentum=0.9, foreach)" in step.summary


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA graphs need a CUDA device")
def test_cuda_training_step_is_one_cuda_graph_that_gives_the_eager_steps(tmp_path) -> None:
    """On CUDA the whole step (forward, backward, fused SGD) is replayed from one CUDA graph: 3
    steps give the eager steps' losses, gradients, weights and BatchNorm statistics. An optimizer
    that creates its state in its first step (Adam) cannot be captured, and is told so."""
    model = network_with_running_statistics(tmp_path).cuda()
    x, labels = images(4).cuda(), torch.tensor([0, 3, 9, 3], device="cuda")
    with float32_math("fp32"):
        expected_losses, expected_grads, expected_model = eager_reference_steps(model, x, labels, steps=3)
        step = optimize_quietly(model, x, train=True, dtype="fp32", backend="aot_eager")
        losses = [step(x, labels).item() for _ in range(3)]
    assert step.graph is not None
    assert "one CUDA graph of the whole step" in step.summary and "SGD(momentum=0.9, fused)" in step.summary
    assert losses == pytest.approx(expected_losses, rel=1e-4)
    for grad, expected in zip((p.grad for p in model.parameters()), expected_grads):
        torch.testing.assert_close(grad, expected, rtol=1e-3, atol=1e-5)
    for name, value in model.state_dict().items():
        torch.testing.assert_close(value, expected_model.state_dict()[name], rtol=1e-4, atol=1e-6)
    with pytest.raises(ConfigError, match="CUDA graphs need the optimizer's state before the first step: Adam"):
        optimize_quietly(model, x, train=True, dtype="fp32", backend="eager", optimizer=torch.optim.Adam)


def test_bad_options_are_config_errors(tmp_path) -> None:
    model = network_with_running_statistics(tmp_path)
    with pytest.raises(ConfigError, match="dtype must be one of auto, fp32, bf16, got 'fp16'"):
        nbcompile.optimize(model, images(1), dtype="fp16")
    with pytest.raises(ConfigError, match="CUDA graphs need a CUDA device"):
        nbcompile.optimize(model, images(1), cuda_graphs=True)
    with pytest.raises(ConfigError, match="CUDA graphs need a CUDA device"):
        nbcompile.optimize(model, images(1), train=True, cuda_graphs=True)


def test_verbose_prints_the_summary_in_one_line(tmp_path, capsys) -> None:
    model = network_with_running_statistics(tmp_path)
    optimized = nbcompile.optimize(model, images(1), backend="eager", verbose=True)
    assert capsys.readouterr().err == optimized.summary + "\n"


def optimize_quietly(model, x, **options):
    torch._dynamo.reset()
    return nbcompile.optimize(model, x, **options)


@pytest.mark.slow
def test_inductor_inference_and_training_match_eager(tmp_path) -> None:
    model = network_with_running_statistics(tmp_path, INCEPTION)
    x, labels = images(2), torch.tensor([1, 5])
    with torch.no_grad():
        expected = copy.deepcopy(model).eval()(x)
    torch._dynamo.reset()
    for freeze, fold in ((None, "BN folded by fuse(),"), (True, "BN folded by fuse() and inductor freezing,")):
        graphs_before = counters["stats"]["unique_graphs"]
        optimized = nbcompile.optimize(model, x, freeze=freeze)
        assert counters["stats"]["unique_graphs"] == graphs_before + 1  # compiled anew, not the other's graph
        assert fold in optimized.summary
        torch.testing.assert_close(optimized(x), expected, rtol=1e-4, atol=1e-5)
    expected_losses, expected_grads, _ = eager_reference_steps(model, x, labels, steps=1)
    step = optimize_quietly(model, x, train=True)
    assert step(x, labels).item() == pytest.approx(expected_losses[0], rel=1e-5)
    for grad, expected in zip((p.grad for p in model.parameters()), expected_grads):
        torch.testing.assert_close(grad, expected, rtol=1e-3, atol=1e-5)
