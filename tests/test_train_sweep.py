"""Sweeps and ``nbcompile train``: results in the dataset's format read back by NASBench,
retries, resume after SIGKILL, merging, bad input; the Ray runner behind the ``ray`` marker."""

from __future__ import annotations

import concurrent.futures
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from cifar_files import one_thread, write_folder
from cli_runner import invoke
from example_cells import EXAMPLES, INCEPTION, REPO
from nasbench_bytes import frames

from nbcompile.compiler.config import NetworkConfig
from nbcompile.errors import DatasetError
from nbcompile.nasbench import NASBench
from nbcompile.space.spec import ModelSpec
from nbcompile.train.loop import Evaluation, NonFiniteLoss, RunResult, TrainConfig
from nbcompile.train.results import Job, ResultFolder, plan_jobs
from nbcompile.train.sweep import (
    ProcessPerDevice,
    RayExecutor,
    SweepSettings,
    result_json,
    run_attempt,
    run_sweep,
)

CELLS = [INCEPTION, json.loads((EXAMPLES / "seven_vertex_nine_edge.json").read_text())]
TINY_FLAGS = [
    "--device",
    "cpu",
    "--batch-size",
    "32",
    "--stem-channels",
    "8",
    "--num-stacks",
    "1",
    "--cells-per-stack",
    "1",
    "--loss-every",
    "1",
]
TINY = NetworkConfig(stem_channels=8, num_stacks=1, cells_per_stack=1)
single_thread = pytest.fixture(scope="module", autouse=True)(one_thread)


@pytest.fixture(scope="module")
def cifar(tmp_path_factory) -> Path:
    return write_folder(tmp_path_factory.mktemp("cifar") / "cifar-10-batches-bin", 64)


def train_args(specs_file: Path, cifar: Path, out: Path, *extra: str, repeats: int = 1) -> list[str]:
    """``nbcompile train`` of the two cells for one epoch, the tiny network on the CPU."""
    return [
        "train",
        str(specs_file),
        "--data",
        str(cifar),
        "--epochs",
        "1",
        "--repeats",
        str(repeats),
        "--out",
        str(out),
        *TINY_FLAGS,
        *extra,
    ]


@pytest.fixture(scope="module")
def specs_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("specs") / "cells.jsonl"
    path.write_text("".join(json.dumps(cell) + "\n" for cell in CELLS))
    return path


def test_sweep_writes_the_datasets_format_and_nasbench_reads_it_back(cifar, specs_file, tmp_path):
    out = tmp_path / "out"
    args = train_args(specs_file, cifar, out, repeats=2)
    result = invoke(args)
    assert result.exit_code == 0, result.stderr
    assert "4 runs trained, 0 failed, 0 already done" in result.stderr
    runs = sorted((out / "runs").glob("*.json"))
    assert len(runs) == 4 and len(list((out / "runs").glob("*.tfrecord"))) == 4
    assert len(list((out / "plots").glob("*.png"))) == 4 and len(list((out / "models").glob("*.py"))) == 2
    results = [json.loads(path.read_text()) for path in runs]
    assert all(r["status"] == "ok" and r["steps"] == 8 and r["failed_attempts"] == [] for r in results)
    for r in results:  # what each result says of how it was trained
        assert (r["sweep_seed"], r["train"]["precision"], r["train"]["ghost_bn"]) == (0, "fp32", True)
        assert r["time_limit_reached"] is False and r["train"]["max_train_seconds"] is None
        assert r["evaluations"][0]["training_time"] == 0.0 and "start of its first step" in r["training_time_counts"]
    assert len({r["seed"] for r in results}) == 4

    bench = NASBench(out / "results.tfrecord", cache=False)
    assert len(bench) == 2 and bench.valid_epochs == {1}
    for r in results:
        fixed, computed = bench.get_metrics_from_hash(r["module_hash"])
        assert fixed["trainable_parameters"] == r["trainable_parameters"]
        runs_of_cell = computed[1]
        assert len(runs_of_cell) == 2
        final, halfway = r["evaluations"][2], r["evaluations"][1]
        stored = runs_of_cell[r["repeat"]]
        assert stored["final_validation_accuracy"] == final["validation_accuracy"]
        assert stored["final_test_accuracy"] == final["test_accuracy"]
        assert stored["final_training_time"] == pytest.approx(final["training_time"])
        assert stored["halfway_train_accuracy"] == halfway["train_accuracy"]
        assert ModelSpec(fixed["module_adjacency"], fixed["module_operations"]).module_hash == r["module_hash"]
    assert len(frames((out / "results.tfrecord").read_bytes())) == 4  # NASBench read it above, CRCs checked

    again = invoke(args)  # a finished sweep: nothing is trained again
    assert again.exit_code == 0 and "0 runs trained, 0 failed, 4 already done" in again.stderr
    assert [p.stat().st_mtime_ns for p in runs] == [p.stat().st_mtime_ns for p in sorted((out / "runs").glob("*.json"))]


def test_records_pass_tensorflows_own_reader(cifar, specs_file, tmp_path):
    tf = pytest.importorskip("tensorflow")
    out = tmp_path / "out"
    result = invoke(train_args(specs_file, cifar, out, "--no-plot"))
    assert result.exit_code == 0, result.stderr
    payloads = [bytes(r.numpy()) for r in tf.data.TFRecordDataset(str(out / "results.tfrecord"))]
    assert [json.loads(p)[1] for p in payloads] == [1, 1]


def _fake_result(job: Job, settings: SweepSettings) -> dict:
    evaluation = Evaluation(0.0, 0.0, 0.5, 0.25, 0.125, 64)
    run = RunResult([evaluation] * 3, 530, 1.0, 2.0, 8, 256.0, [(1, 2.3)])
    return result_json(job, settings, run, seed=1, attempt=1, device="cpu")


class Scripted:
    """An executor whose attempts fail as ``failures(job, attempt)`` says, else succeed."""

    slots = 2

    def __init__(self, settings: SweepSettings, failures) -> None:
        self.settings, self.failures, self.calls, self.closed = settings, failures, [], False

    def submit(self, job: Job, attempt: int) -> concurrent.futures.Future:
        self.calls.append((job.repeat, attempt))
        future: concurrent.futures.Future = concurrent.futures.Future()
        error = self.failures(job, attempt)
        future.set_exception(error) if error else future.set_result(_fake_result(job, self.settings))
        return future

    def close(self) -> None:
        self.closed = True


def test_failures_are_retried_five_times_then_recorded_without_stopping(tmp_path):
    jobs = plan_jobs([ModelSpec(**CELLS[0])], [1], 3)
    settings = SweepSettings(str(tmp_path), TrainConfig(epochs=1), TINY)

    def failures(job: Job, attempt: int):
        if job.repeat == 0:
            return RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        if job.repeat == 1 and attempt < 3:
            return NonFiniteLoss(f"loss is not finite at step {attempt}")
        return None

    executor = Scripted(settings, failures)
    summary = run_sweep(jobs, settings, ResultFolder(tmp_path / "out"), executor)
    assert (summary.succeeded, summary.failed, summary.retries) == (2, 1, 6)
    assert executor.closed and sorted(executor.calls) == sorted(
        [(0, a) for a in range(1, 6)] + [(1, 1), (1, 2), (1, 3), (2, 1)]
    )
    failed = json.loads((tmp_path / "out" / "runs" / f"{jobs[0].name}.json").read_text())
    assert failed["status"] == "failed" and len(failed["errors"]) == 5
    assert failed["errors"][0] == "attempt 1: RuntimeError: CUDA out of memory. Tried to allocate 2.00 GiB"
    assert not (tmp_path / "out" / "runs" / f"{jobs[0].name}.tfrecord").exists()
    retried = json.loads((tmp_path / "out" / "runs" / f"{jobs[1].name}.json").read_text())
    assert retried["status"] == "ok" and retried["failed_attempts"] == [
        "attempt 1: NonFiniteLoss: loss is not finite at step 1",
        "attempt 2: NonFiniteLoss: loss is not finite at step 2",
    ]


@pytest.mark.slow  # two spawned processes each import torch: about a minute on 2 busy cores
def test_one_process_per_device(cifar, tmp_path):
    jobs = plan_jobs([ModelSpec(**cell) for cell in CELLS], [1], 1)
    settings = SweepSettings(str(cifar), TrainConfig(epochs=1, batch_size=32), TINY)
    executor = ProcessPerDevice(settings, ["cpu", "cpu"])
    summary = run_sweep(jobs, settings, ResultFolder(tmp_path / "out"), executor)
    assert (summary.succeeded, summary.failed) == (2, 0)
    hosts = {json.loads(p.read_text())["device"] for p in (tmp_path / "out" / "runs").glob("*.json")}
    assert hosts == {"cpu"}


def dies_once(job: Job, settings: SweepSettings, attempt: int, device: str) -> dict:
    """A worker's attempt (module level, so spawned workers can unpickle it): the first attempt of
    the first cell's job kills its process, as an out-of-memory kill would; the others succeed.
    ``settings.data`` is a folder for the marker file."""
    marker = Path(settings.data) / "killed-once"
    if job.repeat == 0 and job.ops == tuple(CELLS[0]["ops"]) and not marker.exists():
        marker.write_text(str(os.getpid()))
        os._exit(1)
    time.sleep(0.5)  # long enough for the other worker's job to be in flight when the pool breaks
    return _fake_result(job, settings)


@pytest.mark.stress  # spawns two workers, then two more after the kill, each importing torch
def test_a_worker_that_dies_in_the_local_pool_is_retried_and_the_sweep_goes_on(tmp_path):
    jobs = plan_jobs([ModelSpec(**cell) for cell in CELLS], [1], 2)
    settings = SweepSettings(str(tmp_path), TrainConfig(epochs=1, batch_size=32), TINY)
    executor = ProcessPerDevice(settings, ["cpu", "cpu"], attempt_function=dies_once)
    summary = run_sweep(jobs, settings, ResultFolder(tmp_path / "out"), executor)
    assert (summary.succeeded, summary.failed) == (4, 0) and executor.restarts == 1
    results = {job.name: json.loads((tmp_path / "out" / "runs" / f"{job.name}.json").read_text()) for job in jobs}
    killed = results[jobs[0].name]
    assert killed["status"] == "ok" and killed["failed_attempts"][0].startswith("attempt 1: BrokenProcessPool")
    # the job in flight beside it failed with the pool and was retried too; nothing else was
    retried = [name for name, r in results.items() if r["failed_attempts"]]
    assert summary.retries == len(retried) and 1 <= len(retried) <= 2 and jobs[0].name in retried
    assert (tmp_path / "killed-once").is_file()


def test_bad_input_stops_the_sweep_at_once(tmp_path):
    jobs = plan_jobs([ModelSpec(**CELLS[0])], [1], 2)
    settings = SweepSettings(str(tmp_path), TrainConfig(epochs=1), TINY)
    executor = Scripted(settings, lambda job, attempt: DatasetError("data_batch_1.bin: missing"))
    with pytest.raises(DatasetError):
        run_sweep(jobs, settings, ResultFolder(tmp_path / "out"), executor)
    assert executor.closed and not list((tmp_path / "out").glob("runs/*.json"))


def test_sweep_killed_with_sigkill_resumes_every_job_exactly_once(cifar, specs_file, tmp_path):
    out = tmp_path / "out"
    command = [sys.executable, "-m", "nbcompile", *train_args(specs_file, cifar, out, "--no-plot", repeats=2)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    first = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not list(out.glob("runs/*.json")) and time.monotonic() < deadline and first.poll() is None:
        time.sleep(0.02)
    first.send_signal(signal.SIGKILL)
    first.wait()
    done_before = len(list(out.glob("runs/*.json")))
    assert 1 <= done_before < 4, "the sweep must be killed midway for this test to mean anything"
    second = subprocess.run(command, check=False, env=env, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stderr
    assert f"{4 - done_before} runs trained, 0 failed, {done_before} already done" in second.stderr
    names = sorted(path.stem for path in out.glob("runs/*.json"))
    assert len(names) == len(set(names)) == 4
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]
    records = [json.loads(payload) for _, payload in frames((out / "results.tfrecord").read_bytes())]
    assert sorted((r[0], r[1]) for r in records) == sorted(
        (json.loads(p.read_text())["module_hash"], 1) for p in out.glob("runs/*.json")
    )


def test_train_merge_joins_folders_as_more_repeats_and_refuses_the_same_seed_twice(cifar, specs_file, tmp_path):
    for name, seed in (("a", 0), ("b", 1)):
        result = invoke(train_args(specs_file, cifar, tmp_path / name, "--no-plot", "--seed", str(seed)))
        assert result.exit_code == 0, result.stderr
    merged = invoke(["train-merge", str(tmp_path / "all.tfrecord"), str(tmp_path / "a"), str(tmp_path / "b")])
    assert merged.exit_code == 0 and "wrote 4 records" in merged.stderr
    bench = NASBench(tmp_path / "all.tfrecord", cache=False)
    assert all(len(bench.get_metrics_from_hash(h)[1][1]) == 2 for h in bench.hash_iterator())
    seeds = {f: {json.loads(p.read_text())["sweep_seed"] for p in (tmp_path / f / "runs").glob("*.json")} for f in "ab"}
    assert seeds == {"a": {0}, "b": {1}}

    shutil.copytree(tmp_path / "a", tmp_path / "c")  # the same sweep again with the same --seed
    for folders in (["a", "c"], ["b", "a", "b"]):
        out = tmp_path / "twice.tfrecord"
        refused = invoke(["train-merge", str(out), *(str(tmp_path / f) for f in folders)])
        assert refused.exit_code == 2 and refused.stderr.count("\n") == 1, refused.stderr
        assert "were trained from the same seed" in refused.stderr and not out.exists()
        named = [f for f in folders if f"{tmp_path / f}" in refused.stderr]
        assert named == (["a", "c"] if folders[0] == "a" else ["b", "b"])  # the folder given twice


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--batch-size", "100"], "--batch-size 100 is more than the 64 images"),
        (["--stem-channels", "0"], "--stem-channels"),
        (["--max-attempts", "0"], "--max-attempts"),
        (["--batch-size", "33"], "--batch-size 33 does not split into 2 halves for --ghost-bn"),
        (["--max-train-seconds", "0"], "--max-train-seconds"),
        (["--precision", "fp16"], "--precision"),
        (["--num-labels", "5"], "--num-labels of at least 10"),
        (["--ray", "x.json"], "put --ray after the SPECs"),
    ],
)
def test_bad_options_are_one_line_errors(cifar, specs_file, tmp_path, extra, message):
    result = invoke(
        ["train", str(specs_file), "--data", str(cifar), "--out", str(tmp_path / "o"), "--device", "cpu", *extra]
    )
    assert result.exit_code == 2 and result.stderr.count("\n") == 1 and message in result.stderr, result.stderr
    assert not (tmp_path / "o").exists()


def test_bad_data_and_hashes_without_dataset(tmp_path, specs_file, cifar):
    broken = write_folder(tmp_path / "broken", 4)
    (broken / "data_batch_2.bin").write_bytes(b"\0" * 3000)
    result = invoke(
        ["train", str(specs_file), "--data", str(broken), "--out", str(tmp_path / "o"), "--no-plot", "--device", "cpu"]
    )
    assert result.exit_code == 2 and "data_batch_2.bin: 3000 bytes is not a whole number" in result.stderr
    module_hash = ModelSpec(**CELLS[0]).module_hash
    result = invoke(["train", module_hash, "--data", str(cifar), "--out", str(tmp_path / "o"), "--device", "cpu"])
    assert result.exit_code == 2 and "to train a module hash, name the dataset with --dataset FILE" in result.stderr
    assert not (tmp_path / "o").exists()


def test_hash_specs_are_looked_up_in_a_dataset(tmp_path):
    from nbcompile.cli._common import LazyDataset, located_specs
    from nbcompile.space.enumeration import sample_cells
    from nbcompile.synthetic.fixture import write_fixture

    cells = sample_cells(3)
    write_fixture(tmp_path / "synthetic.tfrecord", cells)
    located = located_specs((cells[1].module_hash,), "train", LazyDataset(str(tmp_path / "synthetic.tfrecord")))
    assert [spec.module_hash for _, spec in located] == [cells[1].module_hash]


@pytest.mark.parametrize("no_cache", [False, True])
def test_train_opens_the_dataset_with_the_cache_options(tmp_path, no_cache):
    dataset, cache = tmp_path / "synthetic.tfrecord", tmp_path / "cache"
    assert invoke(["data", "fixture", str(dataset), "--cells", "3", "--workers", "1"]).exit_code == 0
    module_hash = next(iter(NASBench(str(dataset), cache=False, progress=False).hash_iterator()))
    broken = write_folder(tmp_path / "broken", 4)
    (broken / "data_batch_2.bin").write_bytes(b"\0" * 3000)
    options = ["--dataset", str(dataset), "--cache-dir", str(cache), "--workers", "1"] + ["--no-cache"] * no_cache
    rest = ["--data", str(broken), "--out", str(tmp_path / "o"), "--device", "cpu"]
    result = invoke(["train", module_hash, *options, *rest])
    # the hash was looked up (in the cache, or in memory): the command went on to the data, which is bad
    assert result.exit_code == 2 and "data_batch_2.bin: 3000 bytes" in result.stderr, result.stderr
    assert cache.is_dir() != no_cache and not (tmp_path / "o").exists()


# --- Ray ----------------------------------------------------------------------------------------


@pytest.mark.ray
def test_ray_sweep_and_a_killed_worker_is_retried(ray_local, cifar, tmp_path):
    jobs = plan_jobs([ModelSpec(**cell) for cell in CELLS], [1], 1)
    settings = SweepSettings(str(cifar), TrainConfig(epochs=1, batch_size=32), TINY)
    marker = tmp_path / "killed-once"

    def dies_once(job: Job, settings: SweepSettings, attempt: int) -> dict:
        if job.ops == jobs[0].ops and not marker.exists():
            marker.write_text(str(os.getpid()))
            os.kill(os.getpid(), signal.SIGKILL)  # the worker process dies mid-job
        return run_attempt(job, settings, attempt)

    summary = run_sweep(
        jobs, settings, ResultFolder(tmp_path / "out"), RayExecutor(settings, attempt_function=dies_once)
    )
    assert (summary.succeeded, summary.failed, summary.retries) == (2, 0, 1)
    first = json.loads((tmp_path / "out" / "runs" / f"{jobs[0].name}.json").read_text())
    assert first["attempt"] == 2 and len(first["failed_attempts"]) == 1
    assert first["failed_attempts"][0].startswith("attempt 1: ")
    assert any(word in first["failed_attempts"][0] for word in ("Worker", "worker", "died", "crash")), first[
        "failed_attempts"
    ]
    assert np.isfinite(first["evaluations"][-1]["validation_accuracy"])


@pytest.mark.ray
def test_cli_runs_on_ray(ray_local, cifar, specs_file, tmp_path):
    out = tmp_path / "out"
    result = invoke(train_args(specs_file, cifar, out, "--no-plot", "--ray"))
    assert result.exit_code == 0, result.stderr
    assert "2 runs trained" in result.stderr and len(NASBench(out / "results.tfrecord", cache=False)) == 2
