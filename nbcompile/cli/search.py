"""``nbcompile search``."""

from __future__ import annotations

import click

from nbcompile.cli._common import (
    LazyDataset,
    cache_dir_option,
    check_output_folder,
    counting_columns,
    dataset_option,
    progress_bar,
    workers_option,
)
from nbcompile.errors import ConfigError, OutOfDomainError
from nbcompile.space.ops import TRAIN_EPOCHS


@click.command("search")
@dataset_option("to search", required=True)
@click.option(
    "--algo",
    "algorithms",
    default="random,evolution",
    show_default=True,
    help="Comma-separated: random, evolution, local.",
)
@click.option("--repeats", type=click.IntRange(1), default=10, show_default=True, help="Runs of each algorithm.")
@click.option("--budget", type=float, default=5e6, show_default=True, help="Budget of each run.")
@click.option(
    "--budget-kind",
    type=click.Choice(["time", "queries"]),
    default="time",
    show_default=True,
    help="Simulated training seconds, or queries.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Experiment seed; each run derives its own.")
@click.option(
    "--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Folder for results.json (and plots)."
)
@click.option("--plot", is_flag=True, help="Also write trajectories.png and mean_iqr.png.")
@click.option(
    "--emit-best",
    "emit_dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Compile the best cell found (by validation) into this folder.",
)
@click.option("--dedupe", is_flag=True, help="Never query a cell twice in a run.")
@click.option(
    "--mean", "mean_of_repeats", is_flag=True, help="Score on the mean of the 3 repeats, not one sampled repeat."
)
@click.option("--epochs", type=int, default=TRAIN_EPOCHS, show_default=True, help="Epoch budget of every query.")
@click.option(
    "--population-size", type=click.IntRange(1), default=50, show_default=True, help="Evolution's population."
)
@click.option(
    "--tournament-size", type=click.IntRange(1), default=10, show_default=True, help="Evolution's tournament."
)
@click.option(
    "--mutation-rate", type=click.FloatRange(0, 7), default=1.0, show_default=True, help="Evolution's mutation rate."
)
@workers_option("Processes running the searches (and converting the dataset)")
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
    population_size: int,
    tournament_size: int,
    mutation_rate: float,
    workers: int | None,
    cache_dir: str | None,
) -> None:
    """Run dataset-backed searches (repeats × algorithms) and summarise them.

    Prints the mean and interquartile range of the final test accuracy of the best cell by
    validation, per algorithm; writes every trajectory to OUT/results.json.
    """
    import math
    import time
    from pathlib import Path

    from nbcompile.nasbench.report import SYNTHETIC_NOTE
    from nbcompile.optional import require
    from nbcompile.parallel import available_cpus
    from nbcompile.search import Budget, SearchOptions
    from nbcompile.search.experiment import Experiment, format_summary, run_experiment, summarize, write_results
    from nbcompile.synthetic.naming import is_synthetic_dataset

    # everything that can be refused is refused here, before the dataset is opened
    if not (budget > 0 and math.isfinite(budget)):
        raise ConfigError(f"--budget {budget} must be a positive, finite number")
    check_output_folder(out_dir, "--out")
    check_output_folder(emit_dir, "--emit-best")
    if plot:
        require("matplotlib", "--plot")
    names = tuple(name.strip() for name in algorithms.split(",") if name.strip())
    options = SearchOptions(dedupe, mean_of_repeats, epochs, population_size, tournament_size, mutation_rate)
    try:
        experiment = Experiment(dataset, names, repeats, Budget(budget, budget_kind), seed, options, cache_dir)
    except ValueError as error:
        raise ConfigError(f"--algo {algorithms}: {error}") from None
    opened = LazyDataset(dataset, cache_dir, workers=workers).open()  # convert once, before any run
    if epochs not in opened.valid_epochs:
        raise OutOfDomainError(
            f"--epochs: invalid number of epochs {epochs}, must be one of {sorted(opened.valid_epochs)}"
        )
    if dedupe and budget_kind == "queries":
        column = sorted(opened.valid_epochs).index(epochs)
        queryable = int((opened.tables.repeats[:, column] > 0).sum())
        if budget >= queryable:  # a run makes floor(budget) + 1 queries
            raise ConfigError(
                f"--budget {budget:g} queries with --dedupe: the dataset has only {queryable:,} cells "
                f"with runs at {epochs} epochs"
            )
    out = Path(out_dir)
    started = time.perf_counter()
    with progress_bar(*counting_columns("searching")) as progress:
        task = progress.add_task("runs", total=len(experiment.runs()))
        results = run_experiment(experiment, workers or available_cpus(), lambda _: progress.advance(task), opened)
    seconds = time.perf_counter() - started
    click.echo(format_summary(summarize(results)))
    synthetic = is_synthetic_dataset(opened)
    if synthetic:
        click.echo(SYNTHETIC_NOTE)
    ended = [r for r in results if r.note]
    if ended:
        click.echo(f"note: {len(ended)} of {len(results)} runs ended before their budget was spent: {ended[0].note}")
    click.echo(f"{len(results)} runs in {seconds:.1f} s", err=True)
    click.echo(f"wrote {write_results(out, experiment, results, seconds)}", err=True)
    if plot:
        from nbcompile.search.plots import plot_results

        for path in plot_results(
            results, out, budget if budget_kind == "time" else max(r.times[-1] for r in results), synthetic
        ):
            click.echo(f"wrote {path}", err=True)
    if emit_dir:
        from nbcompile.compiler.driver import compile_to_file

        best = max(results, key=lambda r: r.best_valids[-1])
        if best.best_hash is None:
            raise ConfigError("no cell was queried: nothing to emit")
        path = compile_to_file(opened.spec_of(best.best_hash), emit_dir)
        click.echo(
            f"best cell {best.best_hash} (validation {best.best_valids[-1]:.4f}, "
            f"{best.algorithm} run seed {best.seed})",
            err=True,
        )
        click.echo(str(path))
