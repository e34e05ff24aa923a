"""The zero-cost proxies: each a function of a network and one batch, returning one float.

Every network proxy works on the network it is given and puts back what it changes (its mode,
BatchNorm statistics, gradients and ``requires_grad`` flags; ``synflow`` works on absolute
float64 copies of the parameters), so that scores do not depend on which proxies ran before,
without the cost of copying the network. Unless a proxy says otherwise:

* the layers that count are every ``nn.Conv2d`` and ``nn.Linear`` (their ``weight``; biases,
  BatchNorm parameters and everything else are not scored), as in the reference code of
  Abdelfattah et al. (``mohsaied/zero-cost-nas``);
* the network runs in training mode (BatchNorm normalises with the batch's statistics), as the
  reference code leaves the freshly built network;
* the loss is the mean cross-entropy of the logits against the batch's labels;
* the arithmetic is float32 (the network's dtype), and per-layer sums are added in float64.

A proxy's value is a Python float; a value the definition makes infinite or undefined (NaN) is
returned as it is, not replaced.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator

import torch
from torch import nn
from torch.nn import functional as F
from torch.overrides import TorchFunctionMode

from nbcompile.compiler.plan import NetworkPlan
from nbcompile.proxies.names import NETWORK_PROXY_NAMES, PLAN_PROXY_NAMES

#: The layers whose weights the gradient proxies score.
SCORED_LAYERS = (nn.Conv2d, nn.Linear)

#: jacob_cov's regulariser k in −Σ(log(λ + k) + 1/(λ + k)).
JACOB_COV_K = 1e-5


def scored_weights(network: nn.Module) -> list[nn.Parameter]:
    """The weight of every Conv2d and Linear layer of ``network``, in ``modules()`` order."""
    return [module.weight for module in network.modules() if isinstance(module, SCORED_LAYERS)]


@contextlib.contextmanager
def borrowed_for_scoring(network: nn.Module) -> Iterator[nn.Module]:
    """``network`` itself in training mode, every parameter requiring a gradient and holding none,
    with gradients enabled: for one proxy. Afterwards its modules' modes, its buffers (a
    training-mode forward pass updates BatchNorm's statistics), its parameters' gradients and
    ``requires_grad`` flags are put back as they were."""
    modes = [(module, module.training) for module in network.modules()]
    parameters = [(parameter, parameter.requires_grad, parameter.grad) for parameter in network.parameters()]
    buffers = [(buffer, buffer.clone()) for buffer in network.buffers()]
    try:
        network.train()
        for parameter, _, _ in parameters:
            parameter.grad = None
            parameter.requires_grad_(True)
        with torch.enable_grad():
            yield network
    finally:
        with torch.no_grad():
            for buffer, saved in buffers:
                buffer.copy_(saved)
        for parameter, requires_grad, gradient in parameters:
            parameter.requires_grad_(requires_grad)
            parameter.grad = gradient
        for module, training in modes:
            module.training = training


def _loss(network: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(network(images), labels)


def _total(values: Iterator[torch.Tensor]) -> float:
    """The sum of scalar tensors, added in float64 on the CPU."""
    return math.fsum(float(value.detach()) for value in values)


# --- data-free -------------------------------------------------------------------------------------
def params(plan: NetworkPlan) -> int:
    """Trainable parameters of the network (NAS-Bench-101's ``trainable_parameters``)."""
    return plan.trainable_parameters


def flops(plan: NetworkPlan) -> int:
    """FLOPs of one 32×32 image's forward pass as the compiler's plan counts them: 2 per
    multiply-add of the convolutions and the classifier (pooling, BatchNorm, sums not counted)."""
    return plan.flops


def synflow(network: nn.Module, images: torch.Tensor, labels: torch.Tensor | None = None) -> float:
    """SynFlow (Tanaka et al., "Pruning neural networks without any data by iteratively conserving
    synaptic flow", NeurIPS 2020; as a proxy: Abdelfattah et al., ICLR 2021):
    Σ |θ ⊙ ∂R/∂θ| over the scored weights, where R is the sum of the outputs of the network for
    one all-ones input image, computed with every parameter replaced by its absolute value.

    Choices: BatchNorm layers are removed (replaced by the identity), as the reference does with
    ``bn=False``; float64 throughout (the products of many absolute weights overflow float32's
    range less easily, and the reference uses float64); only the shape of ``images`` is used (one
    image of that shape), ``labels`` not at all.
    """
    with _without_batchnorm(network):
        names = [f"{name}.weight" for name, module in network.named_modules() if isinstance(module, SCORED_LAYERS)]
        parameters = {
            name: parameter.detach().abs().double().requires_grad_(True)
            for name, parameter in network.named_parameters()
        }
        weights = [parameters[name] for name in names]
        ones = torch.ones((1, *images.shape[1:]), dtype=torch.float64, device=images.device)
        with torch.enable_grad():
            output = torch.func.functional_call(network, parameters, (ones,))
            gradients = torch.autograd.grad(output.sum(), weights, allow_unused=True)
        return _total((w * g).abs().sum() for w, g in zip(weights, gradients) if g is not None)


@contextlib.contextmanager
def _without_batchnorm(network: nn.Module) -> Iterator[None]:
    """While the block runs, every BatchNorm layer of ``network`` is the identity; then put back."""
    replaced = [
        (module, name, child)
        for module in network.modules()
        for name, child in module.named_children()
        if isinstance(child, nn.modules.batchnorm._BatchNorm)
    ]
    for module, name, _ in replaced:
        setattr(module, name, nn.Identity())
    try:
        yield
    finally:
        for module, name, child in replaced:
            setattr(module, name, child)


# --- one batch -------------------------------------------------------------------------------------
def grad_norm(network: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    """Σ over the scored layers of ‖∂L/∂W‖ (each layer's Frobenius norm, then summed), the
    ``grad_norm`` of Abdelfattah et al., ICLR 2021."""
    with borrowed_for_scoring(network) as scratch:
        weights = scored_weights(scratch)
        gradients = torch.autograd.grad(_loss(scratch, images, labels), weights, allow_unused=True)
        return _total(g.norm() for g in gradients if g is not None)


def snip(network: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    """SNIP (Lee et al., "SNIP: single-shot network pruning based on connection sensitivity",
    ICLR 2019; as a proxy: Abdelfattah et al., ICLR 2021): Σ |W ⊙ ∂L/∂W|, which is the gradient of
    the loss with respect to a multiplicative all-ones mask on the weights, taken absolutely."""
    with borrowed_for_scoring(network) as scratch:
        weights = scored_weights(scratch)
        gradients = torch.autograd.grad(_loss(scratch, images, labels), weights, allow_unused=True)
        return _total((w * g).abs().sum() for w, g in zip(weights, gradients) if g is not None)


def grasp(network: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    """GraSP (Wang et al., "Picking winning tickets before training by preserving gradient flow",
    ICLR 2020; as a proxy: Abdelfattah et al., ICLR 2021): −Σ W ⊙ (H g), with g = ∂L/∂W over the
    scored weights and H the Hessian of L with respect to them.

    Choices: temperature 1 and one iteration (the reference defaults); H g is the gradient of
    gᵀ·stop_gradient(g) from one forward pass (the reference runs the forward pass twice; in
    training mode both passes give the same loss, so the value is the same).
    """
    with borrowed_for_scoring(network) as scratch:
        weights = scored_weights(scratch)
        gradients = torch.autograd.grad(_loss(scratch, images, labels), weights, create_graph=True, allow_unused=True)
        used = [(w, g) for w, g in zip(weights, gradients) if g is not None]
        dot = sum((g.detach() * g).sum() for _, g in used)
        hessian_gradients = torch.autograd.grad(dot, [w for w, _ in used], allow_unused=True)
        return -_total((w * hg).sum() for (w, _), hg in zip(used, hessian_gradients) if hg is not None)


def fisher(network: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    """Fisher (Theis et al., "Faster gaze prediction with dense networks and Fisher pruning", 2018;
    Turner et al., BlockSwap, ICLR 2020; as a proxy: Abdelfattah et al., ICLR 2021): for every
    output channel k of a scored layer, with z its output and n the sample,
    Δ_k = ½ · mean_n (Σ_hw z_nkhw · ∂L/∂z_nkhw)², summed over channels and layers.

    Choice: the sum is over channels. The reference code spreads each channel's Δ_k over the
    channel's weights before summing, which weights each channel by its fan-in (in_channels ×
    kernel area); this function does not.
    """
    terms: list[torch.Tensor] = []

    def on_output(_module: nn.Module, _inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        activation = output.detach()

        def on_gradient(gradient: torch.Tensor) -> None:
            product = activation * gradient.detach()
            per_channel = product.sum(dim=tuple(range(2, product.dim()))) if product.dim() > 2 else product
            terms.append(0.5 * per_channel.double().pow(2).mean(0).sum())

        output.register_hook(on_gradient)

    with borrowed_for_scoring(network) as scratch:
        handles = [m.register_forward_hook(on_output) for m in scratch.modules() if isinstance(m, SCORED_LAYERS)]
        try:  # every layer output lies on the way to the weights: its hook sees its gradient
            torch.autograd.grad(_loss(scratch, images, labels), scored_weights(scratch), allow_unused=True)
        finally:
            for handle in handles:
                handle.remove()
        return _total(iter(terms))


def jacob_cov(network: nn.Module, images: torch.Tensor, labels: torch.Tensor | None = None) -> float:
    """Jacobian covariance (Mellor et al., "Neural Architecture Search without Training", first
    version, arXiv:2006.04647; as a proxy: Abdelfattah et al., ICLR 2021): with J the gradient of
    the summed outputs with respect to each input image (one row per image) and λ the eigenvalues
    of J's row correlation matrix, −Σ(log(λ + k) + 1/(λ + k)) with k = 1e-5.

    Choices: correlation and eigenvalues in float64, with the symmetric solver (the reference
    uses a general one, whose tiny imaginary parts it would keep); ``labels`` unused. A batch of
    fewer than two images is refused; an image whose gradient is constant gives NaN.
    """
    if images.shape[0] < 2:
        raise ValueError("jacob_cov needs a batch of at least 2 images")
    with borrowed_for_scoring(network) as scratch:
        inputs = images.detach().clone().requires_grad_(True)
        outputs = scratch(inputs)
        (jacobian,) = torch.autograd.grad(outputs, inputs, grad_outputs=torch.ones_like(outputs))
    return jacob_cov_of(jacobian.reshape(jacobian.shape[0], -1))


def jacob_cov_of(jacobian: torch.Tensor) -> float:
    """jacob_cov's score of a ``[N, D]`` matrix of input gradients (see :func:`jacob_cov`)."""
    eigenvalues = torch.linalg.eigvalsh(torch.corrcoef(jacobian.double()))
    shifted = eigenvalues + JACOB_COV_K
    return -float((shifted.log() + shifted.reciprocal()).sum())


class _ReluCodes(TorchFunctionMode):
    """Adds the NASWOT kernel of every ReLU's input to ``kernel`` (see :func:`nwot`)."""

    FUNCTIONS = frozenset({F.relu, F.relu_, torch.relu, torch.relu_, torch.Tensor.relu, torch.Tensor.relu_})

    def __init__(self, kernel: torch.Tensor) -> None:
        super().__init__()
        self.kernel = kernel

    def __torch_function__(self, func: Callable, types: tuple, args: tuple = (), kwargs: dict | None = None):  # type: ignore[override]
        if func in self.FUNCTIONS:
            self.kernel += nwot_kernel(args[0].detach().reshape(args[0].shape[0], -1) > 0)
        return func(*args, **(kwargs or {}))


def nwot_kernel(codes: torch.Tensor) -> torch.Tensor:
    """K_ij = number of units on which the binary codes of images i and j agree, for a ``[N, D]``
    boolean matrix of codes: c·cᵀ + (1 − c)·(1 − c)ᵀ, as float64.

    Computed from the one product G = c·cᵀ as D − G_ii − G_jj + 2·G_ij (G_ii counts image i's
    active units); in float32 when every partial sum is an integer below 2²⁴ (exact), else float64.
    """
    units = codes.shape[1]
    c = codes.to(torch.float32 if units < 2**24 else torch.float64)
    gram = (c @ c.T).double()
    active = gram.diagonal()
    return units - active[:, None] - active[None, :] + 2 * gram


def nwot(network: nn.Module, images: torch.Tensor, labels: torch.Tensor | None = None) -> float:
    """NASWOT (Mellor et al., "Neural Architecture Search without Training", ICML 2021):
    log|K| (``slogdet``'s log-absolute-determinant), K = Σ over ReLUs of the Hamming-agreement
    kernel of the batch's binary activation codes (:func:`nwot_kernel`).

    Choices: the ReLUs that count are every call of ``relu`` during the forward pass (the
    generated networks call ``F.relu``, not ``nn.ReLU`` modules), with the code of a unit being
    its input > 0 (the reference code counts only the ReLUs a backward pass reached: in a pruned
    cell every ReLU lies on a path to the output, so that is all of them); training mode, no
    gradients; the kernel is summed in float64; ``labels`` unused.
    """
    kernel = torch.zeros((images.shape[0], images.shape[0]), dtype=torch.float64, device=images.device)
    with borrowed_for_scoring(network) as scratch, torch.no_grad(), _ReluCodes(kernel):
        scratch(images)
    return float(torch.linalg.slogdet(kernel).logabsdet)


# The registries take the functions above by their names, so that each name is written once (in names.py).
#: The proxies computed from the plan alone (no network is built), by name.
PLAN_PROXIES: dict[str, Callable[[NetworkPlan], int]] = {name: globals()[name] for name in PLAN_PROXY_NAMES}
#: The proxies computed from the network and one batch (``synflow`` uses only its shape), by name.
NETWORK_PROXIES: dict[str, Callable[[nn.Module, torch.Tensor, torch.Tensor], float]] = {
    name: globals()[name] for name in NETWORK_PROXY_NAMES
}
