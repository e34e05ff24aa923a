"""A study: algorithms × trials on one dataset, resumable, on local processes or Ray.

Every trial is independent, seeded by :meth:`Experiment.run_seed` from the study seed, its
algorithm and its number, so results depend neither on the number of workers nor on the order
trials finish in. Trials run through :func:`nbcompile.tasks.run_tasks`: each finished trial is
written atomically as one Parquet file, ``OUT/trials/<algorithm>-<trial>.parquet`` (its rows, and
in the file's metadata its seed, status, errors and seconds), so a rerun computes only the trials
missing; a failing trial is retried, then recorded as failed (a file without rows) while the others
go on. ``OUT/study.json`` holds the settings; a rerun with other settings is refused, naming the
first that differs. :func:`write_report` gathers every row into ``OUT/evaluations.parquet``,
in (algorithm, trial, index) order, with the columns of :class:`~nbcompile.search.protocol.Evaluation`.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from nbcompile import tasks
from nbcompile.errors import ConfigError, DatasetError
from nbcompile.fileio import atomic_output, read_json_document, remove_stale_temporaries, write_atomic
from nbcompile.nasbench.api import NASBench
from nbcompile.search.analysis import SUMMARY_NOTES, TrialRegret, summarize_study, summary_markdown, trial_regrets
from nbcompile.search.experiment import Experiment, Trial, TrialRun, trials_of
from nbcompile.search.protocol import Evaluation, best_mean_test_accuracy

if TYPE_CHECKING:
    import pyarrow

STUDY_FORMAT = "nbcompile-search-study/1"
TRIAL_FORMAT = "nbcompile-search-trial/1"
#: The key of a trial file's own metadata in its Parquet schema metadata.
TRIAL_METADATA_KEY = b"nbcompile"
TRIALS = "trials"
STUDY_FILE = "study.json"
EVALUATIONS_FILE = "evaluations.parquet"
SUMMARY_JSON = "summary.json"
SUMMARY_MARKDOWN = "summary.md"
#: Attempts per trial before it is recorded as failed (a trial is deterministic: a failure that
#: is not the machine's will fail again).
MAX_ATTEMPTS = 3
#: The columns of ``evaluations.parquet``: Evaluation's fields, in order, and their Arrow types.
_ARROW_TYPES = {"str": "string", "int": "int64", "float": "float64", "bool": "bool_"}
COLUMNS: tuple[tuple[str, str], ...] = tuple(
    (field.name, _ARROW_TYPES[field.type if isinstance(field.type, str) else field.type.__name__])
    for field in dataclasses.fields(Evaluation)
)


# --- the study's settings ------------------------------------------------------------------------
def dataset_identity(dataset: NASBench) -> dict[str, Any]:
    """What tells one dataset from another (its path may change): the cells, the budgets, the
    regret's reference."""
    return {
        "file": Path(dataset.source_file).name,
        "cells": len(dataset),
        "budgets": [int(e) for e in dataset.tables.epochs.tolist()],
        "best_mean_test_accuracy": best_mean_test_accuracy(dataset),
    }


def study_settings(experiment: Experiment, dataset: NASBench) -> dict[str, Any]:
    """The settings that decide a study's results, as ``study.json`` stores them."""
    return {
        "format": STUDY_FORMAT,
        "dataset": dataset_identity(dataset),
        "algorithms": list(experiment.algorithms),
        "trials": experiment.repeats,
        "seed": experiment.seed,
        "budget": dataclasses.asdict(experiment.budget),
        "options": dataclasses.asdict(experiment.options),
    }


class StudyMismatch(ConfigError):
    """The output folder holds a study with other settings."""

    def __init__(self, folder: Path, setting: str, stored: Any, given: Any) -> None:
        self.setting, self.stored, self.given = setting, stored, given
        super().__init__(
            f"{folder} holds a study with {setting} = {stored!r}, not {given!r} ({folder / STUDY_FILE}): "
            "resume it with the same settings, or use another output folder"
        )


def _flattened(settings: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in settings.items():
        if isinstance(value, dict) and key != "dataset":
            flat.update(_flattened(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


class StudyFolder:
    """``OUT/study.json``, ``OUT/trials/<trial>.parquet`` (every finished trial, ok or failed, each
    written atomically), ``OUT/evaluations.parquet``."""

    def __init__(self, out_dir: str | Path) -> None:
        self.root = Path(out_dir)
        self.trials = self.root / TRIALS

    def trial_path(self, trial: Trial) -> Path:
        return self.trials / f"{trial.name}.parquet"

    def is_finished(self, trial: Trial) -> bool:
        return self.trial_path(trial).is_file()

    def claim(self, settings: dict[str, Any]) -> bool:
        """Write ``study.json``, or check that the one there holds the same settings (StudyMismatch
        naming the first that differs); True if the folder held the study already."""
        path = self.root / STUDY_FILE
        if not path.is_file():
            write_atomic(path, json.dumps(settings, indent=1) + "\n")
            return False
        stored = read_json_document(path, "a study's settings", STUDY_FORMAT)
        old, new = _flattened(stored), _flattened(settings)
        for key in dict.fromkeys([*new, *old]):
            if old.get(key) != new.get(key):
                raise StudyMismatch(self.root, key, old.get(key), new.get(key))
        return True

    def remove_stale_temporaries(self) -> int:
        """Delete temporary files a killed study left behind; returns how many."""
        return remove_stale_temporaries(self.trials)

    def write_trial(self, trial: Trial, run: TrialRun | None, errors: Sequence[str]) -> Path:
        """The trial's rows (none if it failed) and what happened to it, in one Parquet file."""
        import pyarrow.parquet as parquet

        metadata = {
            "format": TRIAL_FORMAT,
            "algorithm": trial.algorithm,
            "trial": trial.number,
            "seed": trial.seed,
            "status": "failed" if run is None else "ok",
            "note": None if run is None else run.result.note,
            "seconds": None if run is None else run.seconds,
            "errors": list(errors),
        }
        table = evaluations_table([] if run is None else run.result.evaluations)
        table = table.replace_schema_metadata({TRIAL_METADATA_KEY: json.dumps(metadata).encode()})
        path = self.trial_path(trial)
        with atomic_output(path) as temporary:
            parquet.write_table(table, temporary)
        return path

    def read_trial(self, trial: Trial) -> tuple[pyarrow.Table, dict[str, Any]]:
        """A finished trial's rows and metadata."""
        import pyarrow.parquet as parquet

        path = self.trial_path(trial)
        try:
            table = parquet.read_table(path)
            metadata = json.loads((table.schema.metadata or {}).get(TRIAL_METADATA_KEY, b"{}"))
        except Exception as error:  # pyarrow's errors have no common base
            raise DatasetError(f"{path}: not a trial's file ({error})") from None
        if metadata.get("format") != TRIAL_FORMAT or table.schema.remove_metadata() != evaluations_schema():
            raise DatasetError(f"{path}: not a trial's file (no format {TRIAL_FORMAT!r} or other columns)")
        return table.replace_schema_metadata(None), metadata


def evaluations_schema() -> pyarrow.Schema:
    """The columns of ``evaluations.parquet``, with their types."""
    import pyarrow

    return pyarrow.schema([(name, getattr(pyarrow, kind)()) for name, kind in COLUMNS])


def evaluations_table(evaluations: Sequence[Evaluation]) -> pyarrow.Table:
    """``evaluations`` as a table of :data:`COLUMNS`."""
    import pyarrow

    schema = evaluations_schema()
    columns = [[getattr(e, name) for e in evaluations] for name in schema.names]
    return pyarrow.Table.from_arrays(
        [pyarrow.array(values, type=field.type) for values, field in zip(columns, schema)], schema=schema
    )


# --- running a study -------------------------------------------------------------------------------
def run_study(
    experiment: Experiment,
    out_dir: str | Path,
    executor: tasks.Executor,
    dataset: NASBench,
    on_trial: Callable[[Trial, dict[str, Any]], None] | None = None,
    max_attempts: int = MAX_ATTEMPTS,
) -> tasks.TaskSummary:
    """Run every trial of ``experiment`` not finished in ``out_dir`` on ``executor`` (closed at the
    end), writing each as it finishes; ``on_trial(trial, metadata)`` after each. ``out_dir`` must
    hold no study, or this one (StudyMismatch otherwise, before any trial runs)."""
    folder = StudyFolder(out_dir)
    try:
        folder.claim(study_settings(experiment, dataset))
    except BaseException:
        executor.close()
        raise
    folder.remove_stale_temporaries()

    def record(trial: Trial, run: TrialRun | None, errors: list[str]) -> None:
        folder.write_trial(trial, run, errors)
        if on_trial is not None:
            on_trial(trial, folder.read_trial(trial)[1])

    return tasks.run_tasks(
        trials_of(experiment),
        executor,
        record,
        key=lambda trial: trial.name,
        is_finished=folder.is_finished,
        max_attempts=max_attempts,
    )


def trial_outcomes(experiment: Experiment, out_dir: str | Path) -> list[tuple[Trial, pyarrow.Table, dict[str, Any]]]:
    """Every trial of ``experiment`` in ``out_dir``, in order: its rows and metadata. DatasetError
    if one has not finished."""
    folder = StudyFolder(out_dir)
    outcomes = []
    for trial in trials_of(experiment):
        if not folder.is_finished(trial):
            raise DatasetError(f"{folder.trial_path(trial)}: trial not finished")
        outcomes.append((trial, *folder.read_trial(trial)))
    return outcomes


@dataclass
class StudyReport:
    """What a study found: the summary rows, every trial's regret curve, and the trials that
    failed or ended before their budget was spent."""

    rows: list[dict[str, Any]]
    curves: list[TrialRegret]
    reference: float
    #: (trial name, its errors) of every failed trial.
    failed: list[tuple[str, list[str]]]
    #: (trial name, why it ended early) of every trial that did.
    ended_early: list[tuple[str, str]]


def write_report(experiment: Experiment, out_dir: str | Path, reference: float) -> StudyReport:
    """From the finished trials in ``out_dir``: ``evaluations.parquet`` (every row, in
    (algorithm, trial, index) order; its bytes depend on the study's settings and results
    alone), ``summary.json`` and ``summary.md``. ``reference``: the regret's reference."""
    import pyarrow
    import pyarrow.parquet as parquet

    out = Path(out_dir)
    outcomes = trial_outcomes(experiment, out)
    tables = [table for _, table, _ in outcomes]
    table = pyarrow.concat_tables(tables) if tables else evaluations_table([])
    with atomic_output(out / EVALUATIONS_FILE) as temporary:
        parquet.write_table(table, temporary)
    curves = trial_regrets(evaluation_columns(table), reference)
    failed: dict[str, int] = {}
    seconds: dict[str, list[float]] = {}
    for trial, _, metadata in outcomes:
        if metadata["status"] == "failed":
            failed[trial.algorithm] = failed.get(trial.algorithm, 0) + 1
        else:
            seconds.setdefault(trial.algorithm, []).append(metadata["seconds"])
    rows = summarize_study(curves, experiment.algorithms, failed, seconds)
    report = StudyReport(
        rows,
        curves,
        reference,
        [(trial.name, m["errors"]) for trial, _, m in outcomes if m["status"] == "failed"],
        [(trial.name, m["note"]) for trial, _, m in outcomes if m["status"] == "ok" and m["note"]],
    )
    summary = {
        "regret_reference": reference,
        "budget": dataclasses.asdict(experiment.budget),
        "algorithms": rows,
        "notes": list(SUMMARY_NOTES),
        "failed_trials": dict(report.failed),
        "ended_early": dict(report.ended_early),
    }
    write_atomic(out / SUMMARY_JSON, json.dumps(summary, indent=1) + "\n")
    write_atomic(out / SUMMARY_MARKDOWN, summary_markdown(rows, f"Search study: {', '.join(experiment.algorithms)}"))
    return report


def evaluation_columns(table: pyarrow.Table) -> dict[str, np.ndarray]:
    """The columns of an evaluations table as numpy arrays."""
    return {name: table.column(name).to_numpy(zero_copy_only=False) for name in table.column_names}
