"""Scoring cells as resumable work: chunks, retries, a failed chunk recorded without stopping, a
rerun that scores only what is missing (in process, after a SIGKILL, on Ray with a worker killed),
and every chunk scored exactly once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from cifar_files import one_thread
from cli_runner import invoke
from example_cells import REPO

from nbcompile.compiler.config import NetworkConfig
from nbcompile.errors import ConfigError
from nbcompile.proxies.runner import ProxyScorer, random_batch, sample_specs
from nbcompile.proxies.table import read_table
from nbcompile.proxies.work import (
    Chunk,
    ChunkFolder,
    ProxySettings,
    assemble,
    failed_chunk,
    plan_chunks,
    score_chunk,
)
from nbcompile.train.sweep import InProcess, run_sweep

TINY = NetworkConfig(stem_channels=8, num_stacks=1, cells_per_stack=1)
TINY_FLAGS = ["--stem-channels", "8", "--num-stacks", "1", "--cells-per-stack", "1"]
PROXIES = ("params", "synflow", "nwot")
SETTINGS = ProxySettings(PROXIES, TINY, seed=1, batch_size=4, max_attempts=3)
single_thread = pytest.fixture(scope="module", autouse=True)(one_thread)


@pytest.fixture(scope="module")
def specs() -> list:
    return sample_specs(5, seed=4)


@pytest.fixture(scope="module")
def specs_file(specs: list, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The five cells as JSON Lines (reading them is faster than drawing them again)."""
    path = tmp_path_factory.mktemp("cells") / "cells.jsonl"
    path.write_text("".join(json.dumps(spec.to_dict()) + "\n" for spec in specs))
    return path


@pytest.fixture(scope="module")
def expected(specs: list) -> dict[str, dict[str, Any]]:
    """Every cell's scores, from the scorer called directly (not through chunks)."""
    scorer = ProxyScorer(PROXIES, random_batch(4, 1, TINY), TINY, seed=1)
    return {spec.module_hash: scorer.score(spec) for spec in specs}


class CountingFolder(ChunkFolder):
    """A work folder that counts the documents written for each chunk, by status."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.writes: list[tuple[str, str]] = []

    def write(self, chunk: Chunk, result: dict[str, Any]) -> Path:
        self.writes.append((chunk.name, result["status"]))
        return super().write(chunk, result)


def test_chunks_hold_the_cells_in_order(specs: list) -> None:
    chunks = plan_chunks(specs, 2)
    assert [len(chunk.cells) for chunk in chunks] == [2, 2, 1]
    assert [h for chunk in chunks for h in chunk.module_hashes] == [spec.module_hash for spec in specs]
    assert [chunk.name for chunk in chunks] == ["chunk-000000", "chunk-000001", "chunk-000002"]
    assert [s.module_hash for s in chunks[1].specs] == [s.module_hash for s in specs[2:4]]
    with pytest.raises(ConfigError, match="--chunk-size"):
        plan_chunks(specs, 0)


def test_a_failing_chunk_is_retried_then_recorded_and_a_rerun_scores_only_it(tmp_path: Path, specs: list, expected):
    chunks = plan_chunks(specs, 2)
    calls: list[tuple[str, int]] = []

    def flaky(chunk: Chunk, settings: ProxySettings, attempt: int, **kwargs: Any) -> dict:
        calls.append((chunk.name, attempt))
        if chunk.index == 1 or (chunk.index == 2 and attempt == 1):
            raise RuntimeError(f"CUDA out of memory in {chunk.name}")
        return score_chunk(chunk, settings, attempt, **kwargs)

    folder = CountingFolder(tmp_path / "work")
    folder.claim(SETTINGS.identity(chunks), "--out")
    summary = run_sweep(chunks, SETTINGS, folder, InProcess(SETTINGS, attempt_function=flaky), None, failed_chunk)
    assert (summary.succeeded, summary.failed, summary.retries) == (2, 1, 3)
    tried = [("chunk-000000", 1), *(("chunk-000001", a) for a in (1, 2, 3)), ("chunk-000002", 1), ("chunk-000002", 2)]
    assert sorted(calls) == tried
    failed = json.loads(folder.failed_path(chunks[1]).read_text())
    assert failed["status"] == "failed" and failed["module_hashes"] == chunks[1].module_hashes
    assert failed["errors"] == [f"attempt {a}: RuntimeError: CUDA out of memory in chunk-000001" for a in (1, 2, 3)]
    retried = folder.read(chunks[2])
    assert retried["attempt"] == 2 and retried["failed_attempts"] == [
        "attempt 1: RuntimeError: CUDA out of memory in chunk-000002"
    ]
    partial = assemble(chunks, folder, PROXIES)
    assert partial.missing == chunks[1].module_hashes
    assert dict(partial.rows) == {h: expected[h] for h in chunks[0].module_hashes + chunks[2].module_hashes}

    calls.clear()  # the rerun: the failure has gone away, and only the failed chunk is scored
    again = run_sweep(chunks, SETTINGS, folder, InProcess(SETTINGS, attempt_function=score_chunk), None, failed_chunk)
    assert (again.finished_before, again.succeeded, again.failed) == (2, 1, 0)
    assert not folder.failed_path(chunks[1]).exists()
    oks = [name for name, status in folder.writes if status == "ok"]
    assert sorted(oks) == [chunk.name for chunk in chunks]  # every chunk scored exactly once
    whole = assemble(chunks, folder, PROXIES)
    assert whole.missing == [] and whole.rows == [(spec.module_hash, expected[spec.module_hash]) for spec in specs]
    assert set(whole.seconds) == {"build", "synflow", "nwot"}


def test_a_work_folder_of_other_settings_is_refused(tmp_path: Path, specs: list) -> None:
    chunks = plan_chunks(specs, 2)
    folder = ChunkFolder(tmp_path / "work")
    folder.claim(SETTINGS.identity(chunks), "--out")
    folder.claim(SETTINGS.identity(chunks), "--out")  # the same settings: fine
    other = ProxySettings(PROXIES, TINY, seed=2, batch_size=4)
    with pytest.raises(ConfigError, match=r"--out: .* other settings \(seed differs\)"):
        folder.claim(other.identity(chunks), "--out")
    with pytest.raises(ConfigError, match=r"\(cells differs\)"):
        folder.claim(SETTINGS.identity(plan_chunks(specs, 3)), "--out")


def _cli_args(cells: Path, out: Path, *extra: str) -> list[str]:
    return [
        "proxies",
        str(cells),
        "--seed",
        "1",
        "--proxies",
        "params,synflow",
        "--batch-size",
        "4",
        "--chunk-size",
        "2",
        "--out",
        str(out),
        *TINY_FLAGS,
        *extra,
    ]


def test_the_command_records_a_failed_chunk_and_a_rerun_completes_the_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, specs_file: Path, specs: list, expected
) -> None:
    from nbcompile.proxies import work

    real = work.score_chunk

    def broken_second_chunk(chunk: Chunk, settings: ProxySettings, attempt: int, **kwargs: Any) -> dict:
        if chunk.index == 1:
            raise MemoryError("out of host memory")
        return real(chunk, settings, attempt, **kwargs)

    out = tmp_path / "t.parquet"
    monkeypatch.setattr(work, "score_chunk", broken_second_chunk)
    first = invoke([*_cli_args(specs_file, out, "--workers", "1", "--max-attempts", "2")])
    assert first.exit_code == 0, first.stderr
    assert "3 cells" in first.stderr and "2 chunks scored, 0 already done, 1 failed, 1 retries" in first.stderr
    assert "warning: 2 cells of failed chunks" in first.stderr
    columns, settings = read_table(out)
    assert len(settings["missing"]) == 2 and not set(settings["missing"]) & set(columns["module_hash"])
    work_folder = tmp_path / "t.parquet.work"
    assert (work_folder / "chunk-000001.failed.json").is_file()

    monkeypatch.setattr(work, "score_chunk", real)
    second = invoke([*_cli_args(specs_file, out, "--workers", "1")])
    assert second.exit_code == 0, second.stderr
    assert "5 cells" in second.stderr and "1 chunks scored, 2 already done, 0 failed" in second.stderr
    columns, settings = read_table(out)
    assert columns["module_hash"] == [spec.module_hash for spec in specs] and settings["missing"] == []
    assert columns["synflow"] == [expected[spec.module_hash]["synflow"] for spec in specs]
    assert not work_folder.exists()  # every chunk is in the table
    fresh = invoke([*_cli_args(specs_file, out, "--workers", "1", "--seed", "5")])
    assert fresh.exit_code == 0  # no work folder left: a new table with other settings is fine


@pytest.mark.stress  # a subprocess killed mid-run and started again: two interpreters importing torch
def test_a_run_killed_with_sigkill_resumes_and_scores_every_chunk_exactly_once(
    tmp_path: Path, specs_file: Path, specs: list, expected
) -> None:
    out = tmp_path / "t.parquet"
    work_folder = tmp_path / "t.parquet.work"
    command = [sys.executable, "-m", "nbcompile", *_cli_args(specs_file, out, "--workers", "1", "--chunk-size", "1")]
    command[command.index("params,synflow")] = "params,synflow,nwot"
    path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": path}
    first = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not list(work_folder.glob("chunk-*.json")) and time.monotonic() < deadline and first.poll() is None:
        time.sleep(0.01)
    first.send_signal(signal.SIGKILL)
    first.wait()
    done_before = {path.name: path.stat().st_mtime_ns for path in work_folder.glob("chunk-*.json")}
    assert 1 <= len(done_before) < 5, "the run must be killed midway for this test to mean anything"
    assert not out.exists()
    second = subprocess.run(command, check=False, env=env, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stderr
    scored = 5 - len(done_before)
    assert f"{scored} chunks scored, {len(done_before)} already done, 0 failed" in second.stderr
    columns, _ = read_table(out)
    assert columns["module_hash"] == [spec.module_hash for spec in specs]
    for row, spec in enumerate(specs):  # one thread here and there: the same arithmetic
        assert {name: columns[name][row] for name in PROXIES} == expected[spec.module_hash]


@pytest.mark.ray
def test_on_ray_a_killed_worker_is_retried_and_every_chunk_finishes_exactly_once(
    ray_local, tmp_path: Path, specs: list, expected
) -> None:
    from nbcompile.train.sweep import RayExecutor

    chunks = plan_chunks(specs, 2)
    marker = tmp_path / "killed-once"

    def dies_once(chunk: Chunk, settings: ProxySettings, attempt: int) -> dict:
        import torch

        torch.set_num_threads(1)  # a Ray worker process of this test only: the same arithmetic as here
        if chunk.index == 1 and not marker.exists():
            marker.write_text(str(os.getpid()))
            os.kill(os.getpid(), signal.SIGKILL)  # the worker process dies mid-chunk
        return score_chunk(chunk, settings, attempt)

    folder = CountingFolder(tmp_path / "work")
    summary = run_sweep(chunks, SETTINGS, folder, RayExecutor(SETTINGS, attempt_function=dies_once), None, failed_chunk)
    assert (summary.succeeded, summary.failed, summary.retries) == (3, 0, 1) and marker.is_file()
    assert sorted(folder.writes) == [(chunk.name, "ok") for chunk in chunks]  # each exactly once
    killed = folder.read(chunks[1])
    assert killed["attempt"] == 2 and len(killed["failed_attempts"]) == 1
    assert any(word in killed["failed_attempts"][0] for word in ("Worker", "worker", "died", "crash"))
    table = assemble(chunks, folder, PROXIES)
    assert table.rows == [(spec.module_hash, expected[spec.module_hash]) for spec in specs]


@pytest.mark.slow  # spawned worker processes each import torch
def test_local_worker_processes(tmp_path: Path, specs_file: Path, specs: list, expected) -> None:
    out = tmp_path / "t.parquet"
    args = _cli_args(specs_file, out, "--workers", "2")
    args[args.index("params,synflow")] = "params,synflow,nwot"
    result = invoke(args)
    assert result.exit_code == 0, result.stderr
    columns, _ = read_table(out)
    assert columns["module_hash"] == [spec.module_hash for spec in specs]
    for row, spec in enumerate(specs):  # each worker on one thread, as here: the same arithmetic
        assert {name: columns[name][row] for name in PROXIES} == expected[spec.module_hash]
