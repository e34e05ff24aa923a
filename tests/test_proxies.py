"""The zero-cost proxies against hand computations on tiny networks, and their invariants."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from example_cells import INCEPTION
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.nn import functional as F

from nbcompile.compiler.config import NetworkConfig
from nbcompile.errors import ConfigError
from nbcompile.proxies import scores
from nbcompile.proxies.names import DATA_FREE, PROXY_NAMES, parse_proxy_names
from nbcompile.proxies.runner import ProxyScorer, random_batch
from nbcompile.runtime.inmemory import canonical_plan

TINY = NetworkConfig(stem_channels=8, num_stacks=1, cells_per_stack=1)


def _linear_problem(seed: int = 0, n: int = 5, d: int = 4, k: int = 3):
    """A one-layer linear classifier, a batch and labels, and the same in float64 numpy."""
    generator = torch.Generator().manual_seed(seed)
    layer = nn.Linear(d, k)
    with torch.no_grad():
        layer.weight.copy_(torch.randn((k, d), generator=generator))
        layer.bias.copy_(torch.randn((k,), generator=generator))
    x = torch.randn((n, d), generator=generator)
    y = torch.randint(0, k, (n,), generator=generator)
    W, b = layer.weight.detach().double().numpy(), layer.bias.detach().double().numpy()
    return layer, x, y, W, b, x.double().numpy(), y.numpy()


def _softmax_gradient(W, b, X, Y):
    """Logits z, probabilities p and ∂L/∂z (mean cross-entropy) by hand."""
    z = X @ W.T + b
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    onehot = np.eye(W.shape[0])[Y]
    return z, p, (p - onehot) / len(Y)


def test_grad_norm_and_snip_of_a_linear_classifier_by_hand() -> None:
    layer, x, y, W, b, X, Y = _linear_problem()
    _, _, dz = _softmax_gradient(W, b, X, Y)
    G = dz.T @ X  # ∂L/∂W
    assert scores.grad_norm(layer, x, y) == pytest.approx(np.sqrt((G**2).sum()), rel=1e-5)
    assert scores.snip(layer, x, y) == pytest.approx(np.abs(W * G).sum(), rel=1e-5)


def test_grasp_of_a_linear_classifier_by_hand() -> None:
    layer, x, y, W, b, X, Y = _linear_problem(seed=1)
    _, p, dz = _softmax_gradient(W, b, X, Y)
    G = dz.T @ X
    # The Hessian of the mean cross-entropy in W, applied to G: (1/N) Σ_n A_n G x_n x_nᵀ,
    # with A_n = diag(p_n) − p_n p_nᵀ.
    HG = sum((np.diag(pn) - np.outer(pn, pn)) @ G @ np.outer(xn, xn) for pn, xn in zip(p, X)) / len(X)
    assert scores.grasp(layer, x, y) == pytest.approx(-(W * HG).sum(), rel=1e-4)


def test_fisher_of_a_linear_classifier_by_hand() -> None:
    layer, x, y, W, b, X, Y = _linear_problem(seed=2)
    z, _, dz = _softmax_gradient(W, b, X, Y)
    expected = (0.5 * ((z * dz) ** 2).mean(axis=0)).sum()
    assert scores.fisher(layer, x, y) == pytest.approx(expected, rel=1e-4)


def test_fisher_of_a_conv_sums_each_channel_over_its_pixels() -> None:
    """Checked against the gradients of the conv's output, kept by autograd."""
    torch.manual_seed(0)
    network = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(3, 4))
    x, y = torch.randn(6, 2, 5, 5), torch.tensor([0, 1, 2, 3, 0, 1])
    conv_out = network[0](x)
    conv_out.retain_grad()
    logits = network[3](network[2](network[1](conv_out)))
    logits.retain_grad()
    F.cross_entropy(logits, y).backward()
    conv_term = 0.5 * ((conv_out * conv_out.grad).sum(dim=(2, 3)) ** 2).mean(0).sum()
    linear_term = 0.5 * ((logits * logits.grad) ** 2).mean(0).sum()
    network.zero_grad()
    assert scores.fisher(network, x, y) == pytest.approx(float((conv_term + linear_term).detach()), rel=1e-4)


def _two_layer(seed: int, d: int, h: int, k: int, batchnorm: bool) -> nn.Sequential:
    generator = torch.Generator().manual_seed(seed)
    layers: list[nn.Module] = [nn.Linear(d, h, bias=False)]
    if batchnorm:
        norm = nn.BatchNorm1d(h)
        with torch.no_grad():  # a BatchNorm far from the identity: synflow must ignore it
            norm.weight.fill_(-3.0)
            norm.bias.fill_(5.0)
        layers.append(norm)
    layers += [nn.ReLU(), nn.Linear(h, k, bias=False)]
    network = nn.Sequential(*layers)
    with torch.no_grad():
        for module in network:
            if isinstance(module, nn.Linear):
                module.weight.copy_(torch.randn(module.weight.shape, generator=generator))
    return network


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**16), d=st.integers(1, 6), h=st.integers(1, 6), k=st.integers(1, 4), batchnorm=st.booleans()
)
def test_synflow_of_a_two_layer_network_in_closed_form(seed: int, d: int, h: int, k: int, batchnorm: bool) -> None:
    """With |W| and an all-ones input, R = 1ᵀ|W2||W1|1, and each layer contributes Σ|θ ⊙ ∂R/∂θ| = R."""
    network = _two_layer(seed, d, h, k, batchnorm)
    linears = [m for m in network if isinstance(m, nn.Linear)]
    W1, W2 = (np.abs(m.weight.detach().double().numpy()) for m in linears)
    R = np.ones(k) @ W2 @ W1 @ np.ones(d)
    images = torch.zeros((3, d))  # only the shape counts
    assert scores.synflow(network, images) == pytest.approx(2 * R, rel=1e-12)


def test_synflow_is_float64() -> None:
    """A chain whose synaptic flow overflows float32 still has a finite score."""
    network = nn.Sequential(*[nn.Linear(64, 64, bias=False) for _ in range(16)])
    for layer in network:
        nn.init.constant_(layer.weight, 10.0)
    value = scores.synflow(network, torch.zeros((1, 64)))
    assert math.isfinite(value) and value > float(np.finfo(np.float32).max)


def test_jacob_cov_of_hand_made_gradients() -> None:
    """Uncorrelated rows: the correlation matrix is I, both eigenvalues are 1."""
    jacobian = torch.tensor([[1.0, 0.0, 0.0, -1.0], [0.0, 1.0, -1.0, 0.0]])
    k = scores.JACOB_COV_K
    assert scores.jacob_cov_of(jacobian) == pytest.approx(-2 * (math.log(1 + k) + 1 / (1 + k)), rel=1e-12)


def test_jacob_cov_of_a_linear_network() -> None:
    """f(x) = Wx has the same input gradient Wᵀ1 for every image: the correlation matrix is all
    ones, with eigenvalues N and 0 (N − 1 times)."""
    torch.manual_seed(3)
    network, n, k = nn.Linear(5, 3), 4, scores.JACOB_COV_K
    expected = -(math.log(n + k) + 1 / (n + k) + (n - 1) * (math.log(k) + 1 / k))
    assert scores.jacob_cov(network, torch.randn(n, 5)) == pytest.approx(expected, rel=1e-6)
    with pytest.raises(ValueError, match="at least 2"):
        scores.jacob_cov(network, torch.randn(1, 5))


class _TwoRelus(nn.Module):
    """Two ReLUs of the same input, called as a module and as a tensor method."""

    def __init__(self) -> None:
        super().__init__()
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(x) + x.relu()


def test_nwot_of_hand_made_codes() -> None:
    """Codes 101, 110, 000 agree on K = [[3,1,1],[1,3,1],[1,1,3]], det 20; two ReLUs give 2K."""
    images = torch.tensor([[1.0, -1.0, 2.0], [3.0, 4.0, -5.0], [-1.0, -2.0, -3.0]])
    expected = torch.tensor([[3.0, 1.0, 1.0], [1.0, 3.0, 1.0], [1.0, 1.0, 3.0]], dtype=torch.float64)
    assert torch.equal(scores.nwot_kernel(images > 0), expected)
    assert scores.nwot(nn.ReLU(), images) == pytest.approx(math.log(20), rel=1e-12)
    assert scores.nwot(_TwoRelus(), images) == pytest.approx(math.log(8 * 20), rel=1e-12)


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 6).flatmap(lambda n: st.lists(st.lists(st.booleans(), min_size=n, max_size=n), min_size=1)))
def test_nwot_kernel_is_the_agreement_count(rows: list[list[bool]]) -> None:
    codes = torch.tensor(rows).T  # [N images, D units]
    c = codes.double()
    assert torch.equal(scores.nwot_kernel(codes), c @ c.T + (1 - c) @ (1 - c).T)


@pytest.fixture(scope="module")
def tiny_network() -> nn.Module:
    from nbcompile.runtime.inmemory import NetworkBuilder

    return NetworkBuilder(TINY).build(INCEPTION, seed=0)


@pytest.mark.parametrize("name", sorted(scores.NETWORK_PROXIES))
def test_proxies_leave_the_network_as_it_was(name: str, tiny_network: nn.Module) -> None:
    batch = random_batch(4, 0, TINY)
    before = {key: value.clone() for key, value in tiny_network.state_dict().items()}
    modules = list(tiny_network.modules())
    frozen = next(tiny_network.parameters())
    tiny_network.eval()
    frozen.requires_grad_(False)
    try:
        value = scores.NETWORK_PROXIES[name](tiny_network, batch.images, batch.labels)
        assert isinstance(value, float) and math.isfinite(value)
        assert not any(module.training for module in tiny_network.modules())
        assert all(p.grad is None and p.dtype == torch.float32 for p in tiny_network.parameters())
        assert not frozen.requires_grad and all(p.requires_grad for p in list(tiny_network.parameters())[1:])
        assert list(tiny_network.modules()) == modules  # BatchNorm layers in place again (synflow)
        after = tiny_network.state_dict()
        assert all(torch.equal(before[key], after[key]) for key in before)
    finally:
        frozen.requires_grad_(True)
        tiny_network.train()


def test_a_proxys_score_does_not_depend_on_the_proxies_run_before_it() -> None:
    from nbcompile.runtime.inmemory import NetworkBuilder

    batch = random_batch(4, 0, TINY)
    used = NetworkBuilder(TINY).build(INCEPTION, seed=0)
    for name, proxy in scores.NETWORK_PROXIES.items():
        fresh = NetworkBuilder(TINY).build(INCEPTION, seed=0)
        assert proxy(used, batch.images, batch.labels) == proxy(fresh, batch.images, batch.labels), name


def test_params_and_flops_come_from_the_plan() -> None:
    plan = canonical_plan(INCEPTION)
    assert scores.params(plan) == 2_694_282  # the dataset's trainable_parameters
    assert scores.flops(plan) == plan.flops == 804_005_888


def test_one_cell_scores_the_same_in_two_runs_with_one_seed() -> None:
    def run(seed: int) -> dict[str, float | int]:
        return ProxyScorer(PROXY_NAMES, random_batch(8, seed, TINY), TINY, seed=seed).score(INCEPTION)

    first = run(7)
    assert first == run(7)
    changed = run(8)
    assert all(first[name] != changed[name] for name in PROXY_NAMES if name not in ("params", "flops"))


def test_proxy_names_are_parsed_in_table_order() -> None:
    assert parse_proxy_names(" nwot,params ,synflow") == ("params", "synflow", "nwot")
    assert tuple(scores.PLAN_PROXIES) + tuple(scores.NETWORK_PROXIES) == PROXY_NAMES
    assert DATA_FREE < set(PROXY_NAMES)
    with pytest.raises(ConfigError, match="unknown proxy 'naswot'"):
        parse_proxy_names("snip,naswot")
    with pytest.raises(ConfigError, match="at least one"):
        parse_proxy_names(" , ")
