"""A faster ``torch.nn.init.trunc_normal_`` that draws exactly the same numbers.

torch's version (2.13's, for bounds that keep more than 30 % of the mass, as the networks'
±2σ do) draws the whole tensor from the normal distribution, then, while any value lies
outside the bounds, draws a whole new tensor and takes its values where they do; each round
compares, tests and merges every element. :func:`trunc_normal_` makes the same draws from the
same generator (so the same numbers and the same generator state after) but follows only the
values still out of bounds, by index: at stem 128 most of a network's initialisation time.

Whether it matches the installed torch is checked once per process on a probe tensor
(:func:`matches_torch`); where it does not (a torch that samples otherwise), torch's own
function is used. The generated files call torch's function; networks built in memory use
this one, with the same weights.
"""

from __future__ import annotations

import functools
import math
import types

import torch
from torch import nn

#: Below this share of the normal's mass inside the bounds, torch samples otherwise: not replicated.
_MASS_DRAWN_BY_REJECTION = 0.3


def _normal_cdf(x: float) -> float:
    return (1.0 + math.erf(x / math.sqrt(2.0))) / 2.0


def _replicable(tensor: torch.Tensor, mean: float, std: float, a: float, b: float) -> bool:
    """True where torch's own function redraws whole tensors (and the tensor is plain)."""
    inside = _normal_cdf((b - mean) / std) - _normal_cdf((a - mean) / std)
    return inside > _MASS_DRAWN_BY_REJECTION and tensor.is_contiguous() and not tensor.is_meta


def _redraw_by_index(
    tensor: torch.Tensor, mean: float, std: float, a: float, b: float, generator: torch.Generator | None
) -> torch.Tensor:
    """torch's rejection rounds, following only the out-of-bounds values."""
    with torch.no_grad():
        low = tensor.new_tensor(a, device="cpu").item()  # the bounds as the tensor's dtype holds them
        high = tensor.new_tensor(b, device="cpu").item()
        tensor.normal_(mean, std, generator=generator)
        flat = tensor.view(-1)
        pending = torch.nonzero((flat < low) | (flat > high)).squeeze(1)
        while pending.numel():
            fresh = torch.empty_like(tensor).normal_(mean, std, generator=generator).view(-1)  # a whole round's draws
            values = fresh[pending]
            flat[pending] = values
            pending = pending[(values < low) | (values > high)]
    return tensor


@functools.cache
def matches_torch() -> bool:
    """Whether :func:`_redraw_by_index` gives torch's numbers and generator state (checked once,
    on a probe large enough to need several rounds)."""
    expected, got = torch.empty(64, 9, 9), torch.empty(64, 9, 9)
    ours, theirs = torch.Generator().manual_seed(2024), torch.Generator().manual_seed(2024)
    nn.init.trunc_normal_(expected, 0.0, 0.05, -0.1, 0.1, generator=theirs)
    _redraw_by_index(got, 0.0, 0.05, -0.1, 0.1, ours)
    return torch.equal(expected, got) and torch.equal(ours.get_state(), theirs.get_state())


def trunc_normal_(
    tensor: torch.Tensor,
    mean: float = 0.0,
    std: float = 1.0,
    a: float = -2.0,
    b: float = 2.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """``torch.nn.init.trunc_normal_``, the same numbers from the same generator, faster."""
    if _replicable(tensor, mean, std, a, b) and matches_torch():
        return _redraw_by_index(tensor, mean, std, a, b, generator)
    return nn.init.trunc_normal_(tensor, mean, std, a, b, generator=generator)


@functools.cache
def nn_with_fast_init() -> types.ModuleType:
    """``torch.nn`` as a generated module sees it, with ``init.trunc_normal_`` this module's: put
    in place of ``nn`` in the namespace of a network built in memory."""
    init = types.ModuleType(nn.init.__name__, nn.init.__doc__)
    init.__dict__.update({key: value for key, value in vars(nn.init).items() if not key.startswith("__")})
    init.trunc_normal_ = trunc_normal_  # type: ignore[attr-defined]
    shim = types.ModuleType(nn.__name__, nn.__doc__)
    shim.__dict__.update({key: value for key, value in vars(nn).items() if not key.startswith("__")})
    shim.init = init  # type: ignore[attr-defined]
    return shim
