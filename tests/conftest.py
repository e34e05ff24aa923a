"""Shared test setup: every test must leave the process as it found it.

A test that changes process-wide state (torch's threads, default dtype, grad mode, backend flags,
environment variables, the working directory) would make later tests pass or fail
depending on the order they run in. (pytest restores warning filters after each test, and
pytest-randomly reseeds the global RNGs before each.) The autouse fixture
below fails the test that leaks, naming what it changed.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from typing import Any

import pytest

# Before any test compiles: keeps torch.jit.script from failing at random after torch.compile
# (see nbcompile.runtime.jit_registry).
import nbcompile.runtime  # noqa: F401

#: New environment variables that only a test would set (the rest come from libraries' imports).
_WATCHED_NEW_VARIABLES = ("NBCOMPILE_", "XDG_", "OMP_NUM_THREADS", "CUDA_VISIBLE_DEVICES")


def _process_state() -> dict[str, Any]:
    """What a test may change but must restore. torch entries only once torch is imported."""
    state: dict[str, Any] = {
        "cwd": os.getcwd(),
        "environ": {key: value for key, value in os.environ.items() if key != "PYTEST_CURRENT_TEST"},
    }
    torch = sys.modules.get("torch")
    if torch is not None:
        state.update(
            {
                "torch threads": torch.get_num_threads(),
                "torch default dtype": torch.get_default_dtype(),
                "torch grad enabled": torch.is_grad_enabled(),
                "torch deterministic algorithms": torch.are_deterministic_algorithms_enabled(),
                "cudnn.benchmark": torch.backends.cudnn.benchmark,
                "cudnn.allow_tf32": torch.backends.cudnn.allow_tf32,
                "float32 matmul precision": torch.get_float32_matmul_precision(),
            }
        )
    return state


@pytest.fixture(autouse=True)
def _leaves_process_state_unchanged() -> Iterator[None]:
    before = _process_state()
    yield
    after = _process_state()
    # Variables that a library sets once, on its first import (TensorFlow, inductor), are not a
    # test's doing; a variable that existed before must be as it was, and nbcompile's own too.
    after["environ"] = {
        key: value
        for key, value in after["environ"].items()
        if key in before["environ"] or key.startswith(_WATCHED_NEW_VARIABLES)
    }
    changed = [name for name in before if name in after and before[name] != after[name]]
    if changed:
        details = "; ".join(f"{name}: {_difference(before[name], after[name])}" for name in changed)
        pytest.fail(f"the test changed process-wide state: {details}", pytrace=False)


def _difference(before: Any, after: Any) -> str:
    if isinstance(before, dict) and isinstance(after, dict):
        keys = sorted({k for k in before.keys() | after.keys() if before.get(k) != after.get(k)})
        return ", ".join(f"{k} {before.get(k)!r} -> {after.get(k)!r}" for k in keys[:5])
    return f"{before!r} -> {after!r}"
