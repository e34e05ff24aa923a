"""Shared test setup: every test must leave the process as it found it, gets a default cache
folder of its own, and reads the data sets that several test files share, written once.

A test that changes process-wide state (torch's threads, default dtype, grad mode, backend flags,
environment variables, the working directory) would make later tests pass or fail
depending on the order they run in. (pytest restores warning filters after each test, and
pytest-randomly reseeds the global RNGs before each.) The autouse fixture
below fails the test that leaks, naming what it changed; another fails a test that changes a
shared data file.
"""

from __future__ import annotations

import itertools
import os
import sys
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

# Before any test compiles: keeps torch.jit.script from failing at random after torch.compile
# (see nbcompile.runtime.jit_registry).
import nbcompile.runtime  # noqa: F401
from nbcompile.synthetic.fixture import FULL, ONLY_108, write_fixture

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


#: Tests run so far: each gets its own default cache folder.
_TESTS_RUN = itertools.count()


@pytest.fixture(autouse=True)
def _own_default_cache_folder(
    _leaves_process_state_unchanged: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[None]:
    """nbcompile's default cache folder (``NBCOMPILE_CACHE_DIR``), for a test that names none: one of
    its own under the session's temporary folder, created only if used. Never the user's
    ~/.cache/nbcompile, where a cache another test or an earlier run left would decide whether a
    dataset is converted again. A test that sets the variable and leaves it set is still reported."""
    previous = os.environ.get("NBCOMPILE_CACHE_DIR")
    own = str(tmp_path_factory.getbasetemp() / "default-caches" / str(next(_TESTS_RUN)))
    os.environ["NBCOMPILE_CACHE_DIR"] = own
    yield
    if os.environ.get("NBCOMPILE_CACHE_DIR") == own:
        if previous is None:
            del os.environ["NBCOMPILE_CACHE_DIR"]
        else:
            os.environ["NBCOMPILE_CACHE_DIR"] = previous


def _difference(before: Any, after: Any) -> str:
    if isinstance(before, dict) and isinstance(after, dict):
        keys = sorted({k for k in before.keys() | after.keys() if before.get(k) != after.get(k)})
        return ", ".join(f"{k} {before.get(k)!r} -> {after.get(k)!r}" for k in keys[:5])
    return f"{before!r} -> {after!r}"


# --- data sets shared by several test files ---------------------------------------------------------
# Written once per session under tmp_path_factory. Tests read them and write elsewhere (their own
# tmp_path); a test that changes one fails, named (the tests run as root, where file permissions
# would not stop it). The suite's helper modules are imported inside the fixtures, so that this
# file loads without them (test_conftest.py runs it alone).

#: The shared files written so far, and their CRC-32.
_SHARED_FILES: dict[Path, int] = {}


def _shared(path: Path) -> Path:
    _SHARED_FILES[path] = zlib.crc32(path.read_bytes())
    return path


@pytest.fixture(autouse=True)
def _leaves_shared_files_unchanged() -> Iterator[None]:
    yield
    changed = []
    for path, checksum in _SHARED_FILES.items():
        now = zlib.crc32(path.read_bytes()) if path.exists() else None
        if now != checksum:
            changed.append(str(path))
            _SHARED_FILES[path] = now  # reported once, by the test that changed it
    if changed:
        pytest.fail(f"the test changed shared data files: {', '.join(changed)}", pytrace=False)


@pytest.fixture(scope="session")
def cells() -> tuple:
    """The Inception-like cell (first, as the dataset stores it) and 40 cells spread over the space."""
    from dataset_files import INCEPTION_CELL

    from nbcompile.space.enumeration import sample_cells

    return (INCEPTION_CELL, *sample_cells(40))


def _fixture_file(
    factory: pytest.TempPathFactory, name: str, cells: Any, epochs: tuple[int, ...], landscape: str = "hashed"
) -> Path:
    """A fixture file of ``cells`` at the epoch budgets ``epochs``, 3 repeats each, accuracies from ``landscape``."""
    path = factory.mktemp("data") / name
    write_fixture(path, cells, epochs, landscape=landscape)
    return _shared(path)


@pytest.fixture(scope="session")
def only108(tmp_path_factory: pytest.TempPathFactory, cells: tuple) -> Path:
    """Every one of ``cells`` at 108 epochs, 3 repeats each: 41 cells, 123 records."""
    return _fixture_file(tmp_path_factory, "only108_synthetic.tfrecord", cells, ONLY_108)


@pytest.fixture(scope="session")
def small_only108(tmp_path_factory: pytest.TempPathFactory, cells: tuple) -> Path:
    """The first 12 of ``cells`` (the Inception-like cell first) at 108 epochs: 36 records."""
    return _fixture_file(tmp_path_factory, "small_synthetic.tfrecord", cells[:12], ONLY_108)


@pytest.fixture(scope="session")
def other_only108(tmp_path_factory: pytest.TempPathFactory, cells: tuple) -> Path:
    """As ``small_only108`` with the next 12 cells: arrays of the same shapes, other values."""
    return _fixture_file(tmp_path_factory, "other_synthetic.tfrecord", cells[12:24], ONLY_108)


@pytest.fixture(scope="session")
def full(tmp_path_factory: pytest.TempPathFactory, cells: tuple) -> Path:
    """The cells of ``small_only108`` at all four budgets (4, 12, 36, 108 epochs): 144 records."""
    return _fixture_file(tmp_path_factory, "full_synthetic.tfrecord", cells[:12], FULL)


@pytest.fixture(scope="session")
def small_space_cells() -> tuple:
    """Every cell of up to 5 vertices (2,532): most of what random cells and mutations draw."""
    from nbcompile.space.enumeration import enumerate_cells

    return tuple(enumerate_cells(max_vertices=5, workers=1))


@pytest.fixture(scope="session")
def small_space(tmp_path_factory: pytest.TempPathFactory, small_space_cells: tuple) -> Path:
    """``small_space_cells`` at 108 epochs, accuracies from the hashed landscape: 7,596 records."""
    return _fixture_file(tmp_path_factory, "small_space_synthetic.tfrecord", small_space_cells, ONLY_108)


@pytest.fixture(scope="session")
def small_space_structured(tmp_path_factory: pytest.TempPathFactory, small_space_cells: tuple) -> Path:
    """``small_space_cells`` at 108 epochs, accuracies from the structured landscape."""
    return _fixture_file(
        tmp_path_factory, "small_space_structured_synthetic.tfrecord", small_space_cells, ONLY_108, "structured"
    )


@pytest.fixture
def nasbench(small_only108: Path, tmp_path: Path) -> Any:
    """``small_only108`` opened as upstream's code does, through ``nasbench.api``: a fresh object
    (budget counters at zero) for each test, its cache in the test's own folder."""
    from nbcompile.nasbench import api

    return api.NASBench(str(small_only108), seed=5, cache_dir=tmp_path / "cache", progress=False)


@pytest.fixture(scope="session")
def missing_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, tuple]:
    """Every cell of up to 4 vertices at 4 and 108 epochs, except that the first cell has no run at
    4 epochs and the second one's 4-epoch accuracies are all NaN."""
    from dataset_files import write_missing_runs

    path = tmp_path_factory.mktemp("data") / "missing_runs_synthetic.tfrecord"
    cells = tuple(write_missing_runs(path))
    return _shared(path), cells


@pytest.fixture(scope="session")
def cells_npz(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every cell of up to 3 vertices in the .npz form that ``nbcompile enumerate`` writes."""
    from nbcompile.space.cellfiles import write_npz
    from nbcompile.space.enumeration import enumerate_cells

    path = tmp_path_factory.mktemp("npz") / "cells.npz"
    write_npz(enumerate_cells(max_vertices=3, workers=1), path)
    return _shared(path)


@pytest.fixture(scope="module")
def ray_local():
    """A local Ray instance of 2 CPUs, for the tests of one module (marker ``ray``)."""
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()
