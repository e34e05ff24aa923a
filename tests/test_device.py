"""The device helpers that optimize, training and the benchmarks share (CPU; CUDA and MPS by
monkeypatching what torch reports)."""

from __future__ import annotations

import pytest
import torch

from nbcompile.errors import ConfigError
from nbcompile.runtime.device import DTYPES, autocast, check_dtype, resolve_dtype, seeded, synchronize

CPU = torch.device("cpu")


def test_check_dtype_names_the_field_and_the_choices() -> None:
    assert check_dtype("bf16") == "bf16" and check_dtype("auto", allow_auto=True) == "auto"
    with pytest.raises(ConfigError, match="precision must be one of fp32, bf16, got 'auto'") as info:
        check_dtype("auto", "precision")
    assert info.value.field == "precision"
    with pytest.raises(ConfigError, match="dtype must be one of auto, fp32, bf16, got 'fp16'"):
        check_dtype("fp16", allow_auto=True)


def test_auto_is_bf16_only_on_a_cuda_device_that_supports_it(monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve_dtype(CPU, "auto") == "fp32" and resolve_dtype(CPU, "bf16") == "bf16"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)
    assert resolve_dtype(torch.device("cuda"), "auto") == "bf16" and resolve_dtype(CPU, "auto") == "fp32"
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: False)
    assert resolve_dtype(torch.device("cuda"), "auto") == "fp32"
    assert resolve_dtype(torch.device("cuda"), "fp32") == "fp32"
    with pytest.raises(ConfigError, match="got 'fp16'"):
        resolve_dtype(CPU, "fp16")


def test_autocast_is_bf16_or_leaves_the_callers_setting() -> None:
    a, b = torch.ones(4, 4), torch.ones(4, 4)
    with autocast(CPU, "bf16"):
        assert (a @ b).dtype == DTYPES["bf16"]
    with autocast(CPU, "fp32"):
        assert (a @ b).dtype == torch.float32 and not torch.is_autocast_enabled("cpu")
    with torch.autocast("cpu", dtype=torch.bfloat16), autocast(CPU, "fp32"):
        assert (a @ b).dtype == torch.bfloat16  # fp32 adds no autocast of its own


def test_synchronize_waits_on_cuda_and_mps_only(monkeypatch: pytest.MonkeyPatch) -> None:
    waited: list[object] = []
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: waited.append(device))
    monkeypatch.setattr(torch.mps, "synchronize", lambda: waited.append("mps"))
    synchronize(CPU)
    assert waited == []
    synchronize(torch.device("cuda:1"))
    synchronize(torch.device("mps"))
    assert waited == [torch.device("cuda:1"), "mps"]


def test_seeded_repeats_the_weights_and_restores_the_global_generators(monkeypatch: pytest.MonkeyPatch) -> None:
    seeded_cuda: list[int] = []
    monkeypatch.setattr(torch.cuda, "manual_seed_all", seeded_cuda.append)
    torch.manual_seed(99)
    seeded_cuda.clear()
    state = torch.random.get_rng_state()
    with seeded(3):
        first = torch.nn.Linear(4, 4).weight.detach().clone()
    with seeded(3):
        second = torch.nn.Linear(4, 4).weight.detach().clone()
    assert torch.equal(first, second)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert seeded_cuda == []  # other devices' generators are left alone
