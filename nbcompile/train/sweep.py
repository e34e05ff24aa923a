"""Sweeps: many (cell, budget, repeat) jobs, run in this process, in one process per GPU, or as
Ray tasks of one GPU each. Every finished job's result is written atomically into the output
folder, so a restarted sweep skips finished jobs; a failing job (NaN loss, OOM, a lost worker)
is retried from scratch up to ``max_attempts`` times (upstream's 5) and then recorded as failed
without stopping the sweep."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import multiprocessing
import platform
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from nbcompile import tasks
from nbcompile._version import __version__
from nbcompile.compiler.config import NetworkConfig
from nbcompile.train.cifar10 import load_cifar10
from nbcompile.train.loop import DeviceData, RunResult, TrainConfig, train_run
from nbcompile.train.results import FORMAT, Job

#: Upstream's ``max_attempts``.
MAX_ATTEMPTS = 5
#: What a result's ``training_time`` counts, said in every result document.
TRAINING_TIME_COUNTS = (
    "upstream's timing (lib/training_time.py): in each training call, from the start of its first step to the "
    "start of its last; 0.0 at the first evaluation; no evaluation, and no compilation: a compiled step is "
    "compiled and warmed up before the clock starts (warmup_time)"
)

StepProgress = Callable[[Job, int, int], None]


@dataclass(frozen=True)
class SweepSettings:
    """What every job of a sweep shares."""

    data: str
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)
    network: NetworkConfig = dataclasses.field(default_factory=NetworkConfig)
    seed: int = 0
    device: str = "cpu"
    max_attempts: int = MAX_ATTEMPTS

    def with_budget(self, epochs: int) -> TrainConfig:
        return dataclasses.replace(self.train, epochs=epochs)


def attempt_seed(seed: int, job: Job, attempt: int) -> int:
    """A 63-bit seed per (sweep seed, job, attempt): repeats and retries differ, reruns agree."""
    text = f"{seed}/{job.module_hash}/{job.epochs}/{job.repeat}/{attempt}".encode()
    return int.from_bytes(hashlib.sha256(text).digest()[:8], "little") >> 1


@functools.lru_cache(maxsize=1)
def device_data(path: str, device: str) -> DeviceData:
    """CIFAR-10 on ``device``, loaded once per process (and reused by its later jobs)."""
    return DeviceData.of(load_cifar10(path), device)


def _job_fields(job: Job, status: str) -> dict[str, Any]:
    """What every result document says of its job, first."""
    return {
        "format": FORMAT,
        "status": status,
        "job": job.name,
        "module_hash": job.module_hash,
        "epochs": job.epochs,
        "repeat": job.repeat,
        "matrix": [list(row) for row in job.matrix],
        "ops": list(job.ops),
    }


def result_json(
    job: Job, settings: SweepSettings, run: RunResult, seed: int, attempt: int, device: str
) -> dict[str, Any]:
    """The JSON document of a successful run."""
    return {
        **_job_fields(job, "ok"),
        "attempt": attempt,
        "seed": seed,
        "sweep_seed": settings.seed,
        "device": device,
        "host": platform.node(),
        "nbcompile": __version__,
        "network": settings.network.as_dict(),
        "train": dataclasses.asdict(settings.with_budget(job.epochs)),
        "trainable_parameters": run.trainable_parameters,
        "training_time": run.training_time,
        "training_time_counts": TRAINING_TIME_COUNTS,
        "time_limit_reached": run.time_limit_reached,
        "warmup_time": run.warmup_time,
        "total_time": run.total_time,
        "steps": run.steps,
        "images_per_second": run.images_per_second,
        "evaluations": [dataclasses.asdict(e) for e in run.evaluations],
        "losses": [list(pair) for pair in run.losses],
    }


def failed_json(job: Job, settings: SweepSettings, errors: list[str]) -> dict[str, Any]:
    return {
        **_job_fields(job, "failed"),
        "network": settings.network.as_dict(),
        "train": dataclasses.asdict(settings.with_budget(job.epochs)),
        "errors": errors,
    }


def run_attempt(
    job: Job, settings: SweepSettings, attempt: int, device: str | None = None, progress: StepProgress | None = None
) -> dict[str, Any]:
    """Train ``job`` once (attempt number ``attempt``, from 1) and return its result JSON."""
    device = device or settings.device
    seed = attempt_seed(settings.seed, job, attempt)
    step_progress = None if progress is None else functools.partial(progress, job)
    with tempfile.TemporaryDirectory(prefix="nbcompile-train-") as model_dir:
        run = train_run(
            job.spec,
            device_data(settings.data, device),
            settings.with_budget(job.epochs),
            settings.network,
            seed,
            Path(model_dir),
            device,
            step_progress,
        )
    return result_json(job, settings, run, seed, attempt, device)


#: Runs one attempt of a job: ``(job, settings, attempt, device=..., progress=...)`` → its result document.
AttemptFunction = Callable[..., dict[str, Any]]


class InProcess(tasks.InProcess):
    """Attempts one after another in this process (the CPU, or a single GPU). ``attempt_function``
    is called as ``attempt_function(job, settings, attempt, progress=progress)``."""

    def __init__(
        self, settings: Any, progress: StepProgress | None = None, attempt_function: AttemptFunction = run_attempt
    ) -> None:
        super().__init__(functools.partial(attempt_function, progress=progress), settings)


_worker_device: list[str] = []  # the device a ProcessPerDevice worker claimed (one per process)


def _worker_attempt(attempt_function: AttemptFunction, job: Job, settings: SweepSettings, attempt: int) -> dict:
    return attempt_function(job, settings, attempt, device=_worker_device[0])


def _claim_device(devices: Any) -> None:
    _worker_device.append(devices.get())


class ProcessPerDevice(tasks.ProcessPool):
    """One spawned worker process per device (e.g. ``cuda:0``, ``cuda:1``), each with its own copy
    of the data, taking the next job when it finishes one; a worker that dies breaks the pool, and
    the jobs in flight are retried in a fresh one (see :class:`nbcompile.tasks.ProcessPool`)."""

    def __init__(
        self, settings: SweepSettings, devices: Sequence[str], attempt_function: AttemptFunction = run_attempt
    ) -> None:
        self._manager = multiprocessing.get_context("spawn").Manager()
        self.devices = list(devices)
        super().__init__(
            functools.partial(_worker_attempt, attempt_function),
            settings,
            len(self.devices),
            initializer=_claim_device,
            initargs=self._device_queue,
            start_method="spawn",
        )

    def _device_queue(self) -> tuple[Any]:
        queue = self._manager.Queue()
        for device in self.devices:
            queue.put(device)
        return (queue,)

    def close(self) -> None:
        super().close()
        self._manager.shutdown()


class RayExecutor(tasks.RayTasks):
    """Every attempt a Ray task asking for one GPU (none on the CPU). The data path must be
    readable on every worker, and nbcompile installed there."""

    def __init__(
        self,
        settings: SweepSettings,
        address: str | None = None,
        num_cpus: int | None = None,
        attempt_function: Callable[[Job, SweepSettings, int], dict[str, Any]] = run_attempt,
    ) -> None:
        gpus = 1 if settings.device.startswith("cuda") else 0
        super().__init__(attempt_function, settings, address, num_cpus, gpus)


#: What :func:`run_sweep` did.
SweepSummary = tasks.TaskSummary


class ResultStore(Protocol):
    """Where finished jobs are written, one document each (as :class:`ResultFolder` does)."""

    def is_finished(self, job: Any) -> bool: ...

    def remove_stale_temporaries(self) -> int: ...

    def write(self, job: Any, result: dict[str, Any]) -> Any: ...


def run_sweep(
    jobs: Sequence[Any],
    settings: Any,
    folder: ResultStore,
    executor: tasks.Executor,
    on_result: Callable[[Any, dict[str, Any]], None] | None = None,
    failed_result: Callable[[Any, Any, list[str]], dict[str, Any]] = failed_json,
) -> SweepSummary:
    """Run every job not already finished in ``folder``, retrying failures up to
    ``settings.max_attempts`` times, after which ``failed_result(job, settings, errors)`` is
    written; bad input (NbcompileError) stops the sweep at once. ``executor`` is closed at the
    end. A job is anything with a unique ``name`` that the executor's attempt function takes."""
    folder.remove_stale_temporaries()

    def record(job: Any, result: dict[str, Any] | None, errors: list[str]) -> None:
        if result is None:
            result = failed_result(job, settings, errors)
        else:
            result["failed_attempts"] = errors
        folder.write(job, result)
        if on_result is not None:
            on_result(job, result)

    return tasks.run_tasks(
        jobs,
        executor,
        record,
        key=lambda job: job.name,
        is_finished=folder.is_finished,
        max_attempts=settings.max_attempts,
    )
