"""The faster truncated normal draws torch's own numbers, and leaves the generator where torch's
leaves it; networks built in memory use it and get the generated file's weights (see
test_proxies_builder)."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from nbcompile.runtime import sampling


@settings(max_examples=40, deadline=None)
@given(
    shape=st.lists(st.integers(1, 40), min_size=1, max_size=4),
    std=st.floats(1e-3, 10.0),
    width=st.floats(0.5, 4.0),
    seed=st.integers(0, 2**32 - 1),
)
def test_the_same_numbers_and_generator_state_as_torch(shape: list[int], std: float, width: float, seed: int) -> None:
    theirs, ours = torch.Generator().manual_seed(seed), torch.Generator().manual_seed(seed)
    expected, got = torch.empty(shape), torch.empty(shape)
    nn.init.trunc_normal_(expected, 0.0, std, -width * std, width * std, generator=theirs)
    sampling.trunc_normal_(got, 0.0, std, -width * std, width * std, generator=ours)
    assert torch.equal(expected, got)
    assert torch.equal(theirs.get_state(), ours.get_state())
    assert bool(((got >= -width * std * 1.0001) & (got <= width * std * 1.0001)).all())


def test_the_global_generator_too() -> None:
    expected, got = torch.empty(128, 64, 3, 3), torch.empty(128, 64, 3, 3)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(7)
        nn.init.trunc_normal_(expected, std=0.02, a=-0.04, b=0.04)
        after_theirs = torch.random.get_rng_state()
        torch.manual_seed(7)
        sampling.trunc_normal_(got, std=0.02, a=-0.04, b=0.04)
        assert torch.equal(torch.random.get_rng_state(), after_theirs)
    assert torch.equal(expected, got)


def test_cases_it_does_not_replicate_are_torchs_own(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    real = nn.init.trunc_normal_
    monkeypatch.setattr(nn.init, "trunc_normal_", lambda *a, **k: calls.append(a) or real(*a, **k))
    sampling.trunc_normal_(torch.empty(10, 10).t(), std=1.0)  # not contiguous
    sampling.trunc_normal_(torch.empty(10), 0.0, 1.0, 0.0, 0.1)  # little mass inside: torch samples otherwise
    assert len(calls) == 2


def test_generated_modules_see_torch_nn_but_for_the_sampler() -> None:
    shim = sampling.nn_with_fast_init()
    assert shim.Conv2d is nn.Conv2d and shim.Module is nn.Module and shim.init.zeros_ is nn.init.zeros_
    assert shim.init.trunc_normal_ is sampling.trunc_normal_ and nn.init.trunc_normal_ is not sampling.trunc_normal_
    assert sampling.matches_torch()
