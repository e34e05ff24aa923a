"""Kills and concurrent processes (marker ``stress``; .ci/run runs them): after a kill no process
of the command is left and no temporary stays; concurrent conversions all get the same, correct
cache, without warnings."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from dataset_files import write_many_cells
from example_cells import REPO

from nbcompile.nasbench import NASBench
from nbcompile.nasbench.cache import verify
from nbcompile.space.enumeration import enumerate_cells
from nbcompile.synthetic.fixture import ONLY_108, write_fixture

pytestmark = pytest.mark.stress


@pytest.fixture(scope="module")
def big(tmp_path_factory) -> Path:
    """60,000 cells, 180,000 records (54 MB): a conversion of a few seconds on 2 workers."""
    folder = tmp_path_factory.mktemp(f"stress-{uuid.uuid4().hex[:8]}")
    return write_many_cells(folder / "big.tfrecord", 60_000)


@pytest.fixture(scope="module")
def searchable(tmp_path_factory) -> Path:
    """Every cell of up to 4 vertices: random draws keep finding cells, so a search never ends
    before its (huge) time budget."""
    path = tmp_path_factory.mktemp(f"stress-{uuid.uuid4().hex[:8]}") / "small_space_synthetic.tfrecord"
    write_fixture(path, list(enumerate_cells(max_vertices=4, workers=1)), ONLY_108)
    return path


def _start(*args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        [sys.executable, "-m", "nbcompile", *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _processes_with(token: str) -> list[int]:
    """Live (not zombie) processes whose command line mentions ``token``."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            state = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if token.encode() in cmdline and state != "Z":
            found.append(int(entry))
    return found


def _children(pid: int) -> list[int]:
    children = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    children.append(int(entry))
            except (OSError, ValueError, IndexError):
                continue
    return children


def _wait_for_workers(process: subprocess.Popen, count: int = 2, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while len(_children(process.pid)) < count:
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the workers never started"
        time.sleep(0.02)


def _assert_none_left(token: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while _processes_with(token):
        assert time.monotonic() < deadline, f"processes left behind: {_processes_with(token)}"
        time.sleep(0.05)


def _temporaries(cache: Path) -> list[Path]:
    return [p for p in cache.iterdir() if p.name.endswith(".tmp")] if cache.exists() else []


@pytest.mark.parametrize("signal_number", [signal.SIGKILL, signal.SIGTERM])
def test_killed_conversion_leaves_no_process(big, tmp_path, signal_number) -> None:
    cache = tmp_path / "cache"
    process = _start("data", "convert", str(big), "--cache-dir", str(cache), "--workers", "2")
    _wait_for_workers(process)
    time.sleep(0.5)
    process.send_signal(signal_number)
    _, stderr = process.communicate(timeout=30)  # returns: no orphan holds stdout or stderr open
    _assert_none_left(str(big))
    if signal_number == signal.SIGTERM:
        assert process.returncode == 143 and "Traceback" not in stderr, stderr
        assert _temporaries(cache) == []  # cleaned up like Ctrl-C
    else:
        assert process.returncode == -signal.SIGKILL


@pytest.mark.parametrize("signal_number", [signal.SIGKILL, signal.SIGTERM])
def test_killed_search_leaves_no_process(searchable, tmp_path, signal_number) -> None:
    cache = tmp_path / "cache"
    NASBench(searchable, cache_dir=cache)  # converted before, so the search starts its workers at once
    token = f"stress-search-{uuid.uuid4().hex}"
    process = _start(
        "search",
        "--dataset",
        str(searchable),
        "--cache-dir",
        str(cache),
        "--out",
        str(tmp_path / token),
        "--budget",
        "1e15",
        "--repeats",
        "4",
        "--algo",
        "random",
        "--workers",
        "2",
    )
    _wait_for_workers(process)
    time.sleep(1.0)
    process.send_signal(signal_number)
    process.communicate(timeout=30)
    _assert_none_left(token)
    if signal_number == signal.SIGTERM:
        assert process.returncode == 143


def test_kills_at_random_moments_never_leave_a_cache_that_loads_wrong(big, tmp_path) -> None:
    """Kill -9 at random points of conversion and cache writing; afterwards the data is right and
    the next load removes every temporary the kills left."""
    cache = tmp_path / "cache"
    rng = random.Random(13)
    reference = NASBench(big, cache=False, workers=2, progress=False)
    for _ in range(6):
        process = _start("data", "convert", str(big), "--cache-dir", str(cache), "--workers", "2")
        time.sleep(rng.uniform(0.5, 6.0))
        process.kill()
        process.communicate(timeout=30)
        _assert_none_left(str(big))
        if cache.exists():
            for folder in cache.iterdir():
                if not folder.name.endswith(".tmp"):
                    verify(folder)  # a finished cache is a correct one
        if (cache.exists() and not _temporaries(cache)) and any(cache.iterdir()):
            break  # the conversion finished before the kill: nothing more to learn
    loaded = NASBench(big, cache_dir=cache, workers=2, progress=False)
    assert list(loaded.hash_iterator()) == list(reference.hash_iterator())
    assert (loaded.tables.metrics == reference.tables.metrics).all()
    assert _temporaries(cache) == []


def test_concurrent_conversions_agree_without_warnings(big, tmp_path) -> None:
    for round_number in range(2):
        cache = tmp_path / f"cache{round_number}"
        processes = [_start("data", "convert", str(big), "--cache-dir", str(cache), "--workers", "1") for _ in range(3)]
        outputs = [process.communicate(timeout=300) for process in processes]
        assert all(process.returncode == 0 for process in processes), outputs
        assert len({stdout for stdout, _ in outputs}) == 1
        assert not any("warning" in stderr or "could not" in stderr for _, stderr in outputs), outputs
        assert _temporaries(cache) == [] and len(list(cache.iterdir())) == 1
        verify(Path(outputs[0][0].strip()))
