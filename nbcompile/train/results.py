"""Results of training runs: one JSON file and one TFRecord record per run, in the dataset's
own format (``[hash, epochs, adjacency, ops, base64(ModelMetrics)]``), and merged files that
``NASBench(path)`` reads like the official ones."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nbcompile.errors import DatasetError
from nbcompile.fileio import atomic_output, read_json_document, remove_stale_temporaries, write_atomic
from nbcompile.nasbench.metrics import EvaluationData, ModelMetrics
from nbcompile.nasbench.records import Record
from nbcompile.nasbench.tfrecord import frame
from nbcompile.nasbench.writer import encode_record
from nbcompile.space.spec import ModelSpec

FORMAT = "nbcompile-train-run/1"
RUNS = "runs"
MERGED = "results.tfrecord"


@dataclass(frozen=True)
class Job:
    """One training run to do: a cell (as trained), an epoch budget and a repeat index."""

    matrix: tuple[tuple[int, ...], ...]
    ops: tuple[str, ...]
    module_hash: str
    epochs: int
    repeat: int

    @classmethod
    def of(cls, spec: ModelSpec, epochs: int, repeat: int) -> Job:
        return cls(spec.pruned_matrix, spec.pruned_ops, spec.module_hash, epochs, repeat)

    @property
    def name(self) -> str:
        return f"{self.module_hash}_e{self.epochs}_r{self.repeat}"

    @property
    def spec(self) -> ModelSpec:
        return ModelSpec([list(row) for row in self.matrix], list(self.ops))


def plan_jobs(specs: Iterable[ModelSpec], budgets: Iterable[int], repeats: int) -> list[Job]:
    """Every (cell, budget, repeat); a cell given twice is trained once."""
    jobs: dict[str, Job] = {}
    for spec in specs:
        for epochs in budgets:
            for repeat in range(repeats):
                job = Job.of(spec, epochs, repeat)
                jobs.setdefault(job.name, job)
    return list(jobs.values())


def record_of(result: dict[str, Any]) -> Record:
    """The dataset record of a successful run's result (as :func:`result_json` makes it)."""
    evaluations = tuple(
        EvaluationData(
            current_epoch=float(e["current_epoch"]),
            training_time=float(e["training_time"]),
            train_accuracy=float(e["train_accuracy"]),
            validation_accuracy=float(e["validation_accuracy"]),
            test_accuracy=float(e["test_accuracy"]),
            checkpoint_path="",
        )
        for e in result["evaluations"]
    )
    metrics = ModelMetrics(evaluations, int(result["trainable_parameters"]), float(result["total_time"]))
    adjacency = "".join(str(v) for row in result["matrix"] for v in row)
    return Record(result["module_hash"], int(result["epochs"]), adjacency, tuple(result["ops"]), metrics)


class ResultFolder:
    """``OUT/runs/<job>.json`` (every finished job, ok or failed) and ``<job>.tfrecord`` (ok
    runs), each written atomically, so that a restarted sweep skips exactly the finished jobs."""

    def __init__(self, out_dir: str | os.PathLike[str]) -> None:
        self.root = Path(out_dir)
        self.runs = self.root / RUNS

    def json_path(self, job: Job) -> Path:
        return self.runs / f"{job.name}.json"

    def is_finished(self, job: Job) -> bool:
        return self.json_path(job).is_file()

    def remove_stale_temporaries(self) -> int:
        """Delete temporary files a killed sweep left behind; returns how many."""
        return remove_stale_temporaries(self.runs)

    def write(self, job: Job, result: dict[str, Any]) -> Path:
        """Write the job's record first, then its JSON: the JSON marks the job finished."""
        if result["status"] == "ok":
            write_atomic(self.runs / f"{job.name}.tfrecord", frame(encode_record(record_of(result))))
        path = self.json_path(job)
        write_atomic(path, json.dumps(result, indent=1) + "\n")
        return path

    def results(self) -> list[dict[str, Any]]:
        return [result for _, result in self.located_results()]

    def located_results(self) -> list[tuple[Path, dict[str, Any]]]:
        """``(path, result)`` of every finished job, in name order."""
        return [(path, read_result(path)) for path in sorted(self.runs.glob("*.json"))] if self.runs.is_dir() else []


def read_result(path: Path) -> dict[str, Any]:
    """A finished job's JSON document."""
    return read_json_document(path, "a training result", FORMAT)


def merge_results(out_file: str | os.PathLike[str], folders: Iterable[str | os.PathLike[str]]) -> int:
    """Write every successful run of ``folders`` (sweep output folders) into one TFRecord file,
    sorted by cell, budget and repeat; returns the number of records. Runs of the same job in
    several folders are all kept (they are more repeats), but two runs trained from the same seed
    are the same run twice (folders swept with the same ``--seed``): DatasetError naming both."""
    located = [
        (path, result)
        for folder in folders
        for path, result in ResultFolder(folder).located_results()
        if result["status"] == "ok"
    ]
    seen: dict[int, Path] = {}
    for path, result in located:
        if "seed" not in result:
            raise DatasetError(f"{path}: a training result without its seed")
        other = seen.setdefault(result["seed"], path)
        if other is not path:
            raise DatasetError(
                f"{other} and {path} were trained from the same seed {result['seed']}, so they are not independent "
                "repeats: train one of the folders again with another --seed"
            )
    results = [result for _, result in located]
    results.sort(key=lambda r: (r["module_hash"], r["epochs"], r["repeat"]))
    with atomic_output(Path(out_file)) as temporary, open(temporary, "wb") as stream:
        stream.writelines(frame(encode_record(record_of(result))) for result in results)
    return len(results)
