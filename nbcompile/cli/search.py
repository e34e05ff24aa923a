"""``nbcompile search``: a study (algorithms × trials) under the benchmark protocol of the
NAS-Bench-101 paper, resumable, on local processes or Ray."""

from __future__ import annotations

import math
from typing import Any

import click

from nbcompile.cli._common import (
    LazyDataset,
    cache_dir_option,
    check_output_folder,
    counting_columns,
    dataset_option,
    max_attempts_option,
    progress_bar,
    ray_options,
    workers_option,
)
from nbcompile.errors import ConfigError, DatasetError, OutOfDomainError
from nbcompile.space.ops import TRAIN_EPOCHS

#: The flag of each setting a study stores (``study.json``), for the error of a mismatched rerun.
SETTING_FLAGS = {
    "dataset": "--dataset",
    "algorithms": "--algo",
    "trials": "--repeats",
    "seed": "--seed",
    "budget.amount": "--budget",
    "budget.kind": "--budget-kind",
    "options.deduplicate": "--dedupe",
    "options.mean_of_repeats": "--mean",
    "options.epochs": "--epochs",
    "options.population_size": "--population-size",
    "options.tournament_size": "--tournament-size",
    "options.mutation_rate": "--mutation-rate",
    "options.mutation": "--evolution-settings",
    "options.encoding": "--encoding",
}


@click.command("search")
@dataset_option("to search", required=True)
@click.option(
    "--algo",
    "algorithms",
    default="random,evolution",
    show_default=True,
    help="Comma-separated: random, evolution, local, reinforce, tpe, smac, hyperband, bohb.",
)
@click.option("--repeats", type=click.IntRange(1), default=10, show_default=True, help="Trials of each algorithm.")
@click.option(
    "--budget", type=float, default=1e7, show_default=True, help="Budget of each trial (the paper's: 1e7 seconds)."
)
@click.option(
    "--budget-kind",
    type=click.Choice(["time", "queries"]),
    default="time",
    show_default=True,
    help="Simulated training seconds, or valid queries.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Study seed; each trial derives its own.")
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False),
    help="Study folder: trials/, evaluations.parquet, summary.json/.md (a rerun resumes it).",
)
@click.option("--plot", is_flag=True, help="Also write regret_time.png, regret_ecdf.png and regret_queries.png.")
@click.option(
    "--emit-best",
    "emit_dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Compile the best cell found (by validation) into this folder.",
)
@click.option("--dedupe", is_flag=True, help="Never query a cell twice in a trial.")
@click.option(
    "--mean",
    "mean_of_repeats",
    is_flag=True,
    help="Score on the mean of the 3 runs, not one sampled run (naszilla's variant).",
)
@click.option(
    "--epochs", type=int, default=TRAIN_EPOCHS, show_default=True, help="Epoch budget of single-fidelity queries."
)
@click.option(
    "--encoding",
    type=click.Choice(["A", "B", "C"]),
    default="A",
    show_default=True,
    help="Encoding of a cell for the model-based algorithms.",
)
@click.option(
    "--evolution-settings",
    type=click.Choice(["colab", "paper"]),
    default="colab",
    show_default=True,
    help="Regularized evolution's: the colab's (population 50, rate-1 mutation) or the paper's "
    "(population 100, one change); the options below override.",
)
@click.option("--population-size", type=click.IntRange(1), default=None, help="Evolution's population.")
@click.option("--tournament-size", type=click.IntRange(1), default=None, help="Evolution's tournament.")
@click.option("--mutation-rate", type=click.FloatRange(0, 7), default=None, help="Evolution's mutation rate.")
@max_attempts_option("trial", default=3)
@ray_options("trial as a Ray task", after_specs=False)
@workers_option("Processes running the trials (and converting the dataset)")
@cache_dir_option
def search_command(
    dataset: str,
    algorithms: str,
    repeats: int,
    budget: float,
    budget_kind: str,
    seed: int,
    out_dir: str,
    plot: bool,
    emit_dir: str | None,
    dedupe: bool,
    mean_of_repeats: bool,
    epochs: int,
    encoding: str,
    evolution_settings: str,
    population_size: int | None,
    tournament_size: int | None,
    mutation_rate: float | None,
    max_attempts: int,
    ray_address: str | None,
    ray_cpus: int | None,
    workers: int | None,
    cache_dir: str | None,
) -> None:
    """Run a study: --repeats independent trials of each algorithm, each until its budget is spent.

    Every query is a row of OUT/evaluations.parquet; the summary (final test regret, and how soon
    each algorithm reaches random search's final regret) is printed and written to
    OUT/summary.json and OUT/summary.md. Finished trials are kept in OUT/trials/: run the same
    command again to resume an interrupted study.
    """
    import math
    import time
    from pathlib import Path

    from nbcompile.optional import require

    # everything that can be refused is refused here, before the dataset is opened
    if not (budget > 0 and math.isfinite(budget)):
        raise ConfigError(f"--budget {budget} must be a positive, finite number")
    check_output_folder(out_dir, "--out")
    check_output_folder(emit_dir, "--emit-best")
    require("pyarrow", "nbcompile search (evaluations.parquet)", extra="search")
    if plot:
        require("matplotlib", "--plot")
    if ray_address is not None:
        require("ray", "--ray")
    from nbcompile.search import ALGORITHMS, Budget, SearchOptions
    from nbcompile.search.experiment import Experiment
    from nbcompile.search.optimizer import EVOLUTION_SETTINGS

    names = tuple(name.strip() for name in algorithms.split(",") if name.strip())
    for name in names:
        if name in ALGORITHMS:
            for module in ALGORITHMS[name].modules:
                require(module, f"--algo {name}", extra=ALGORITHMS[name].extra)
    evolution = dict(EVOLUTION_SETTINGS[evolution_settings])
    overrides = {"population_size": population_size, "tournament_size": tournament_size, "mutation_rate": mutation_rate}
    evolution.update({key: value for key, value in overrides.items() if value is not None})
    options = SearchOptions(
        deduplicate=dedupe, mean_of_repeats=mean_of_repeats, epochs=epochs, encoding=encoding, **evolution
    )
    try:
        experiment = Experiment(dataset, names, repeats, Budget(budget, budget_kind), seed, options, cache_dir)
    except ValueError as error:
        raise ConfigError(f"--algo {algorithms}: {error}") from None
    opened = LazyDataset(dataset, cache_dir, workers=workers).open()  # convert once, before any trial
    _check_dataset(opened, experiment, dataset)
    out = Path(out_dir)
    _claim(out, experiment, opened)
    started = time.perf_counter()
    summary = _run_with_progress(experiment, out, opened, workers, ray_address, ray_cpus, max_attempts)
    seconds = time.perf_counter() - started
    _report(experiment, out, opened, summary, seconds, plot, emit_dir)


def _check_dataset(opened: Any, experiment: Any, dataset: str) -> None:
    """What the opened dataset must allow: the epoch budget, the fidelities, a dedupe budget."""
    from nbcompile.search.algorithms import check_budgets

    options, budget = experiment.options, experiment.budget
    if options.epochs not in opened.valid_epochs:
        raise OutOfDomainError(
            f"--epochs: invalid number of epochs {options.epochs}, must be one of {sorted(opened.valid_epochs)}"
        )
    for name in experiment.algorithms:
        try:
            check_budgets(name, opened, options.epochs)
        except DatasetError as error:
            raise ConfigError(f"--algo {error}") from None
    if options.deduplicate and budget.kind == "queries":
        column = sorted(opened.valid_epochs).index(options.epochs)
        queryable = int((opened.tables.repeats[:, column] > 0).sum())
        if math.ceil(budget.amount) > queryable:  # a trial makes ceil(budget) queries
            raise ConfigError(
                f"--budget {budget.amount:g} queries with --dedupe: the dataset has only {queryable:,} cells "
                f"with runs at {options.epochs} epochs"
            )


def _claim(out: Any, experiment: Any, opened: Any) -> None:
    """Start the study in ``out``, or check that it holds this one (one line naming the flag)."""
    from nbcompile.search.study import StudyFolder, StudyMismatch, study_settings

    try:
        StudyFolder(out).claim(study_settings(experiment, opened))
    except StudyMismatch as error:
        flag = SETTING_FLAGS.get(error.setting, error.setting)
        raise ConfigError(
            f"--out {out} holds a study with {flag} {_shown(error.stored)}, not {_shown(error.given)} "
            f"(see {out / 'study.json'}): resume it with the same settings, or use another --out"
        ) from None


def _shown(value: Any) -> str:
    if isinstance(value, list):
        return ",".join(map(str, value))
    if isinstance(value, dict):
        return f"{value.get('file')} ({value.get('cells'):,} cells)"
    return f"{value:g}" if isinstance(value, float) else str(value)


def _run_with_progress(
    experiment: Any,
    out: Any,
    opened: Any,
    workers: int | None,
    ray_address: str | None,
    ray_cpus: int | None,
    max_attempts: int,
) -> Any:
    from rich.progress import TimeRemainingColumn

    from nbcompile.parallel import available_cpus
    from nbcompile.search.experiment import local_executor, ray_executor, trials_of
    from nbcompile.search.study import StudyFolder, run_study

    folder = StudyFolder(out)
    remaining = sum(not folder.is_finished(trial) for trial in trials_of(experiment))
    if ray_address is not None:
        executor = ray_executor(experiment, opened, ray_address or None, ray_cpus)
    else:
        executor = local_executor(experiment, opened, min(workers or available_cpus(), max(remaining, 1)))
    with progress_bar(*counting_columns("trials"), TimeRemainingColumn()) as progress:
        task = progress.add_task("trials", total=remaining)

        def on_trial(trial: Any, metadata: dict) -> None:
            progress.advance(task)
            if metadata["status"] == "failed":
                errors = metadata["errors"]
                progress.console.print(
                    f"{trial.name}: FAILED after {len(errors)} attempts ({errors[-1]})", highlight=False
                )

        return run_study(experiment, out, executor, opened, on_trial, max_attempts)


def _report(
    experiment: Any, out: Any, opened: Any, summary: Any, seconds: float, plot: bool, emit_dir: str | None
) -> None:
    from nbcompile.nasbench.report import SYNTHETIC_NOTE
    from nbcompile.search.analysis import format_summary
    from nbcompile.search.protocol import best_mean_test_accuracy
    from nbcompile.search.study import EVALUATIONS_FILE, SUMMARY_JSON, SUMMARY_MARKDOWN, write_report
    from nbcompile.synthetic.naming import is_synthetic_dataset

    report = write_report(experiment, out, best_mean_test_accuracy(opened))
    click.echo(format_summary(report.rows))
    synthetic = is_synthetic_dataset(opened)
    if synthetic:
        click.echo(SYNTHETIC_NOTE)
    if report.ended_early:
        click.echo(
            f"note: {len(report.ended_early)} trials ended before their budget was spent: {report.ended_early[0][1]}"
        )
    if report.failed:
        name, errors = report.failed[0]
        click.echo(f"note: {len(report.failed)} trials failed: {name}: {errors[-1] if errors else '?'}")
    click.echo(
        f"{summary.succeeded} trials run, {summary.finished_before} already done, {summary.failed} failed, "
        f"{summary.retries} retries in {seconds:.1f} s",
        err=True,
    )
    for name in (EVALUATIONS_FILE, SUMMARY_JSON, SUMMARY_MARKDOWN):
        click.echo(f"wrote {out / name}", err=True)
    if plot:
        from nbcompile.search.plots import plot_study

        for path in plot_study(report.curves, out, synthetic):
            click.echo(f"wrote {path}", err=True)
    if emit_dir:
        _emit_best(out, opened, emit_dir)


def _emit_best(out: Any, opened: Any, emit_dir: str) -> None:
    """Compile the cell with the best validation accuracy of any valid query of the study."""
    import numpy as np
    import pyarrow.parquet as parquet

    from nbcompile.compiler.driver import compile_to_file
    from nbcompile.search.study import EVALUATIONS_FILE

    table = parquet.read_table(
        out / EVALUATIONS_FILE, columns=["algorithm", "trial", "module_hash", "validation_accuracy", "valid"]
    )
    valid = table.column("valid").to_numpy(zero_copy_only=False)
    if not valid.any():
        raise ConfigError("no cell was queried: nothing to emit")
    validation = table.column("validation_accuracy").to_numpy()
    validation = np.where(valid & np.isfinite(validation), validation, -np.inf)
    best = int(np.argmax(validation))  # the first of ties
    module_hash = table.column("module_hash")[best].as_py()
    path = compile_to_file(opened.spec_of(module_hash), emit_dir)
    click.echo(
        f"best cell {module_hash} (validation {validation[best]:.4f}, "
        f"{table.column('algorithm')[best].as_py()} trial {table.column('trial')[best].as_py()})",
        err=True,
    )
    click.echo(str(path))
