"""The ``nbcompile`` command line."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from typing import Any

import click
from rich.console import Console
from rich.progress import track

from nbcompile._version import __version__
from nbcompile.bench.modes import MODES
from nbcompile.compiler.driver import plan_job
from nbcompile.compiler.config import NetworkConfig
from nbcompile.errors import ConfigError, OutOfDomainError, SpecError
from nbcompile.space.cellfiles import read_specs
from nbcompile.compiler.naming import validate_module_name
from nbcompile.errors import DatasetError
from nbcompile.nasbench.api import UnknownCellError
from nbcompile.compiler.report import format_info, info_json, spec_info
from nbcompile.space.spec import ModelSpec

#: Exit code for bad input (specs, options, files), as click uses for usage errors.
EXIT_BAD_INPUT = 2
_BAD_INPUT = (SpecError, OutOfDomainError, ConfigError, OSError, DatasetError, UnknownCellError)


def _fail(message: str) -> None:
    click.echo(f"nbcompile: error: {message}", err=True)
    sys.exit(EXIT_BAD_INPUT)


def _reports_bad_input(command: Callable[..., None]) -> Callable[..., None]:
    """Turn bad-input exceptions into one line on stderr and exit code 2, without a traceback."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        try:
            command(*args, **kwargs)
        except BrokenPipeError:  # the reader went away (e.g. `| head`): stop quietly
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            sys.exit(1)
        except _BAD_INPUT as error:
            message = str(error).splitlines()[0] if str(error) else type(error).__name__
            _fail(message)

    return wrapper


def _config_options(command: Callable[..., None]) -> Callable[..., None]:
    defaults = NetworkConfig()
    for field, help_text in reversed(
        [
            ("stem_channels", "channels after the stem (doubled at each later stack)"),
            ("num_stacks", "stacks of cells"),
            ("cells_per_stack", "cells in each stack"),
            ("num_labels", "classifier outputs"),
            ("in_channels", "image channels"),
        ]
    ):
        flag = "--" + field.replace("_", "-")
        command = click.option(
            flag, field, type=int, default=None, help=f"{help_text.capitalize()} [default: {getattr(defaults, field)}]."
        )(command)
    return command


def _config(options: dict[str, int | None]) -> NetworkConfig:
    """The config from the flags given; errors name the flag, not the field."""
    try:
        return NetworkConfig.from_kwargs(**{k: v for k, v in options.items() if v is not None})
    except ConfigError as error:
        message = str(error)
        field = message.split(" ", 1)[0]
        if field in options:
            message = "--" + field.replace("_", "-") + message[len(field) :]
        raise ConfigError(message) from None


def _stdin_text(sources: tuple[str, ...]) -> str | None:
    return sys.stdin.read() if "-" in sources else None


class _OneLineErrorGroup(click.Group):
    """A click group whose usage errors are one line on stderr (exit 2), like nbcompile's own."""

    def main(self, *args: Any, **kwargs: Any) -> Any:
        kwargs["standalone_mode"] = False
        try:
            result = super().main(*args, **kwargs)
        except click.ClickException as error:
            hint = ""
            if isinstance(error, click.UsageError) and error.ctx is not None:
                hint = f" (see '{error.ctx.command_path} --help')"
            _fail(error.format_message().replace("\n", " ") + hint)
        except click.Abort:
            click.echo("nbcompile: aborted", err=True)
            sys.exit(1)
        sys.exit(result if isinstance(result, int) else 0)


@click.group("nbcompile", cls=_OneLineErrorGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="nbcompile")
def main() -> None:
    """Compile NAS-Bench-101 cell specs into static PyTorch modules."""


@main.command("compile")
@click.argument("specs", nargs=-1, required=True)
@click.option("-o", "--out-dir", default=".", show_default=True, type=click.Path(file_okay=False), help="Folder for the generated files.")
@click.option("--name", default=None, help="Module name of the generated file (one spec only).")
@click.option("--canonical", is_flag=True, help="Build the cell in the labeling NAS-Bench-101 stored and trained.")
@_config_options
@_reports_bad_input
def compile_command(specs: tuple[str, ...], out_dir: str, name: str | None, canonical: bool, **options: int | None) -> None:
    """Generate a model file for every spec in SPECS (JSON, JSON Lines, or - for stdin)."""
    config = _config(options)
    if name is not None:
        validate_module_name(name)
    stdin_text = _stdin_text(specs)
    located = [item for source in specs for item in read_specs(source, stdin_text)]
    if name is not None and len(located) != 1:
        raise ConfigError(f"--name needs exactly one spec, got {len(located)}")
    # Check every spec before writing anything; keep specs, not plans, so that the whole space
    # (423,624 cells) fits in memory. Specs that build the same file are written once.
    unique: dict[str, ModelSpec] = {}
    for location, spec in located:
        try:
            job = plan_job(spec, name=name, canonical=canonical, config=config)
        except (OutOfDomainError, ConfigError) as error:
            raise type(error)(f"{location}: {error}") from None
        unique.setdefault(job.module_name, spec)
    console = Console(stderr=True)
    quiet = len(unique) < 2 or not console.is_terminal
    for spec in track(unique.values(), description="compiling", console=console, disable=quiet):
        job = plan_job(spec, name=name, canonical=canonical, config=config)
        click.echo(str(job.write(out_dir)))


@main.command("info")
@click.argument("spec")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--canonical", is_flag=True, help="Report the network built in the canonical labeling.")
@_config_options
@_reports_bad_input
def info_command(spec: str, as_json: bool, canonical: bool, **options: int | None) -> None:
    """Report on one SPEC: pruned spec, hash, validity, channels, parameters, FLOPs.

    Exits with 1 when the spec is well formed but outside the NAS-Bench-101 space.
    """
    config = _config(options)
    located = read_specs(spec, _stdin_text((spec,)))
    if len(located) != 1:
        raise SpecError(f"{spec}: info takes one spec, the input holds {len(located)}")
    location, model_spec = located[0]
    try:
        info = spec_info(model_spec, config, canonical)
    except ConfigError as error:
        raise ConfigError(f"{location}: {error}") from None
    click.echo(info_json(info) if as_json else format_info(info))
    if not info["valid"]:
        sys.exit(1)


def _cell_label(location: str) -> str:
    """``examples/inception.json`` → ``inception``; ``cells.jsonl:3`` → ``cells:3``."""
    name = location.rsplit("/", 1)[-1]
    stem, _, rest = name.partition(".")
    suffix = "".join(char for char in rest if char in ":[]0123456789")
    return stem + suffix


def _batch_sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise ConfigError(f"--batch-sizes {text!r} must be comma-separated integers") from None
    if not sizes or min(sizes) < 1:
        raise ConfigError(f"--batch-sizes {text!r} must be positive integers")
    return sizes


@main.command("bench")
@click.argument("specs", nargs=-1, required=True)
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda or cuda:N.")
@click.option("--batch-sizes", default="1,64,256", show_default=True, help="Comma-separated batch sizes.")
@click.option("--modes", default="all", show_default=True, help="Comma-separated modes, or all: " + ", ".join(MODES) + ".")
@click.option("--dtype", type=click.Choice(["fp32", "bf16"]), default="fp32", show_default=True, help="bf16 runs under autocast.")
@click.option("--channels-last", is_flag=True, help="Use channels_last inputs and weights.")
@click.option("--train", is_flag=True, help="Time a training step (forward, backward, SGD step) instead of inference.")
@click.option("--warmup", type=int, default=5, show_default=True, help="Untimed calls before timing.")
@click.option("--iters", type=int, default=50, show_default=True, help="Timed calls (at most).")
@click.option("--max-seconds", type=float, default=10.0, show_default=True, help="Time limit for the timed calls of one mode.")
@click.option("--compile-backend", default="inductor", show_default=True, help="torch.compile backend.")
@click.option("--image-size", type=int, default=32, show_default=True, help="Input height and width.")
@click.option("--canonical", is_flag=True, help="Build the cell in the labeling NAS-Bench-101 trained.")
@click.option("--no-peak", is_flag=True, help="Skip the matmul peak measurement.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Write the full results as JSON.")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False), help="Write a PNG of latency against batch size.")
@_config_options
@_reports_bad_input
def bench_command(
    specs: tuple[str, ...],
    device: str,
    batch_sizes: str,
    modes: str,
    dtype: str,
    channels_last: bool,
    train: bool,
    warmup: int,
    iters: int,
    max_seconds: float,
    compile_backend: str,
    image_size: int,
    canonical: bool,
    no_peak: bool,
    json_path: str | None,
    plot_path: str | None,
    **options: int | None,
) -> None:
    """Time generated models against graph walking for every spec in SPECS.

    Every mode runs in this process on the same weights; a mode that fails or does not
    apply is reported in the table and the JSON, not raised.
    """
    import torch

    from nbcompile.bench.report import plot_latency, results_table, write_json
    from nbcompile.bench.runner import BenchSettings, iter_modes, run_benchmark

    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"--device {device}: CUDA is not available on this machine")
    if plot_path is not None:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise ConfigError("--plot needs matplotlib: pip install 'nbcompile[plot]'") from None
    try:
        settings = BenchSettings(
            device=device,
            batch_sizes=_batch_sizes(batch_sizes),
            modes=tuple(iter_modes(modes)),
            dtype=dtype,
            channels_last=channels_last,
            train=train,
            warmup=warmup,
            iters=iters,
            max_seconds=max_seconds,
            compile_backend=compile_backend,
            image_size=image_size,
            canonical=canonical,
            measure_peak=not no_peak,
            config=_config(options),
        )
    except ValueError as error:
        raise ConfigError(str(error)) from None
    cells = []
    stdin_text = _stdin_text(specs)
    for source in specs:
        for location, spec in read_specs(source, stdin_text):
            try:
                spec.validate()
            except OutOfDomainError as error:
                raise OutOfDomainError(f"{location}: {error}") from None
            cells.append((_cell_label(location), spec))
    console = Console(stderr=True)
    total = len(cells) * len(settings.batch_sizes) * len(settings.modes)
    with console.status("benchmarking", spinner="dots") as status:
        done = 0

        def show(result: dict) -> None:
            nonlocal done
            done += 1
            status.update(f"benchmarking: {done}/{total} ({result['cell']}, batch {result['batch_size']}, {result['mode']})")

        report = run_benchmark(cells, settings, on_result=show)
    output = Console()
    if not output.is_terminal:
        output = Console(width=200)
    output.print(results_table(report))
    if json_path:
        write_json(report, json_path)
        click.echo(f"wrote {json_path}", err=True)
    if plot_path:
        plot_latency(report, plot_path)
        click.echo(f"wrote {plot_path}", err=True)


@main.command("enumerate")
@click.option("--max-vertices", type=click.IntRange(2, 7), default=7, show_default=True, help="Largest cell, input and output included.")
@click.option("--max-edges", type=click.IntRange(1, 21), default=9, show_default=True, help="Most edges in a cell.")
@click.option("--out", "out_path", type=click.Path(dir_okay=False), default=None, help="FILE.jsonl or FILE.npz [default: JSON Lines on stdout].")
@click.option("--workers", type=click.IntRange(1, 64), default=None, help="Hashing processes [default: the CPUs available, at most 8].")
@_reports_bad_input
def enumerate_command(max_vertices: int, max_edges: int, out_path: str | None, workers: int | None) -> None:
    """Write every unique NAS-Bench-101 cell: module_hash and the matrix and ops the dataset stores.

    Cells come in the order upstream's enumeration first met them (vertices, edge bitmask, ops).
    """
    import time
    from pathlib import Path

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from nbcompile.space.cellfiles import cell_json, write_jsonl, write_npz
    from nbcompile.space.enumeration import NASBENCH_COUNTS, enumerate_cells

    path = Path(out_path) if out_path else None
    if path is not None and path.suffix not in (".jsonl", ".npz"):
        raise ConfigError(f"--out {out_path}: the file name must end in .jsonl or .npz")
    total = sum(NASBENCH_COUNTS[v] for v in range(2, max_vertices + 1)) if max_edges == 9 else None
    started = time.perf_counter()
    progress = Progress(
        TextColumn("enumerating"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=Console(stderr=True), disable=not Console(stderr=True).is_terminal,
    )  # fmt: skip
    with progress:
        task = progress.add_task("cells", total=total)

        def counted(cells):
            for count, cell in enumerate(cells, 1):
                if count % 4096 == 0:
                    progress.update(task, completed=count)
                yield cell

        cells = counted(enumerate_cells(max_vertices, max_edges, workers))
        if path is None:
            count = 0
            for cell in cells:
                click.echo(cell_json(cell))
                count += 1
        else:
            count = (write_npz if path.suffix == ".npz" else write_jsonl)(cells, path)
    click.echo(f"{count:,} cells in {time.perf_counter() - started:.1f} s", err=True)


@main.group("data")
def data_group() -> None:
    """Work with NAS-Bench-101 dataset files (no TensorFlow needed)."""


@data_group.command("fixture")
@click.argument("out", type=click.Path(dir_okay=False))
@click.option("--cells", "cell_count", type=click.IntRange(1), default=100, show_default=True, help="Cells, spread over the whole space.")
@click.option("--all", "all_cells", is_flag=True, help="Every one of the 423,624 cells.")
@click.option("--full", is_flag=True, help="Epoch budgets 4, 12, 36 and 108 (like nasbench_full); default 108 only.")
@click.option("--workers", type=click.IntRange(1, 64), default=None, help="Processes [default: the CPUs available].")
@_reports_bad_input
def fixture_command(out: str, cell_count: int, all_cells: bool, full: bool, workers: int | None) -> None:
    """Write OUT in the official TFRecord format with SYNTHETIC metrics.

    Parameter counts are the real ones of each cell's canonical network; accuracies and times
    are made up (deterministically). OUT's name must contain "synthetic".
    """
    from nbcompile.space.enumeration import enumerate_cells, sample_cells
    from nbcompile.parallel import available_cpus
    from nbcompile.fixture import FULL, ONLY_108, write_fixture

    cells = enumerate_cells() if all_cells else sample_cells(cell_count)
    count = write_fixture(out, cells, FULL if full else ONLY_108, workers or available_cpus())
    click.echo(f"wrote {count:,} records to {out}", err=True)


def _cache_options(command: Callable[..., None]) -> Callable[..., None]:
    command = click.option("--workers", type=click.IntRange(1, 64), default=None, help="Conversion processes [default: the CPUs available].")(command)
    command = click.option("--no-cache", is_flag=True, help="Convert in memory; read and write no cache.")(command)
    command = click.option(
        "--cache-dir", type=click.Path(file_okay=False), default=None,
        help="Cache folder [default: $NBCOMPILE_CACHE_DIR, else $XDG_CACHE_HOME/nbcompile, else ~/.cache/nbcompile].",
    )(command)  # fmt: skip
    return command


def _open_dataset(path: str, cache_dir: str | None, no_cache: bool, workers: int | None, seed: int | None = None):
    from nbcompile.nasbench.api import NASBench

    return NASBench(path, seed, cache_dir=cache_dir, cache=not no_cache, workers=workers)


@data_group.command("convert")
@click.argument("path", type=click.Path(dir_okay=False))
@_cache_options
@_reports_bad_input
def convert_command(path: str, cache_dir: str | None, no_cache: bool, workers: int | None) -> None:
    """Convert the dataset file PATH into the cache (or find it there) and say where it is."""
    bench = _open_dataset(path, cache_dir, no_cache, workers)
    action = "converted" if bench.converted else "found in the cache"
    click.echo(f"{action}: {len(bench):,} cells, {bench.tables.num_records:,} records in {bench.load_seconds:.2f} s", err=True)
    click.echo(str(bench.cache_folder) if bench.cache_folder else "(not cached)")


@data_group.command("info")
@click.argument("path", type=click.Path())
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@_cache_options
@_reports_bad_input
def data_info_command(path: str, as_json: bool, cache_dir: str | None, no_cache: bool, workers: int | None) -> None:
    """Summarise the dataset PATH (a .tfrecord or a cache folder): cells, epochs, repeats,
    parameter range, and the best cells by mean validation and mean test accuracy."""
    import json

    from nbcompile.nasbench.report import dataset_info, format_dataset_info

    info = dataset_info(_open_dataset(path, cache_dir, no_cache, workers))
    click.echo(json.dumps(info, indent=2) if as_json else format_dataset_info(info))


@data_group.command("query")
@click.argument("path", type=click.Path())
@click.argument("spec")
@click.option("--epochs", type=int, default=108, show_default=True, help="Epoch budget.")
@click.option("--halfway", is_flag=True, help="Metrics at half the budget (stop_halfway).")
@click.option("--mean", is_flag=True, help="Mean over the repeats instead of one sampled repeat.")
@click.option("--seed", type=int, default=None, help="Seed of the repeat sampling.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@_cache_options
@_reports_bad_input
def data_query_command(
    path: str, spec: str, epochs: int, halfway: bool, mean: bool, seed: int | None, as_json: bool,
    cache_dir: str | None, no_cache: bool, workers: int | None,
) -> None:  # fmt: skip
    """Query the dataset PATH for SPEC: a spec file (as compile reads), - for stdin, or a
    32-digit module hash."""
    import re

    from nbcompile.nasbench.report import format_query, query_json

    bench = _open_dataset(path, cache_dir, no_cache, workers, seed)
    if re.fullmatch(r"[0-9a-f]{32}", spec):
        model_spec = bench.spec_of(spec)
    else:
        located = read_specs(spec, _stdin_text((spec,)))
        if len(located) != 1:
            raise SpecError(f"{spec}: query takes one spec, the input holds {len(located)}")
        location, model_spec = located[0]
        try:
            model_spec.validate()
        except OutOfDomainError as error:
            raise OutOfDomainError(f"{location}: {error}") from None
    result = bench.query(model_spec, epochs, stop_halfway=halfway, reduce="mean" if mean else None)
    module_hash = model_spec.module_hash
    click.echo(query_json(result, module_hash) if as_json else format_query(result, module_hash))


@main.command("search")
@click.option("--dataset", "dataset", required=True, type=click.Path(), help="NAS-Bench-101 .tfrecord (or its cache folder).")
@click.option("--algo", "algorithms", default="random,evolution", show_default=True, help="Comma-separated: random, evolution, local.")
@click.option("--repeats", type=click.IntRange(1), default=10, show_default=True, help="Runs of each algorithm.")
@click.option("--budget", type=float, default=5e6, show_default=True, help="Budget of each run.")
@click.option("--budget-kind", type=click.Choice(["time", "queries"]), default="time", show_default=True, help="Simulated training seconds, or queries.")
@click.option("--seed", type=int, default=0, show_default=True, help="Experiment seed; each run derives its own.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Folder for results.json (and plots).")
@click.option("--plot", is_flag=True, help="Also write trajectories.png and mean_iqr.png.")
@click.option("--emit-best", "emit_dir", type=click.Path(file_okay=False), default=None, help="Compile the best cell found (by validation) into this folder.")
@click.option("--dedupe", is_flag=True, help="Never query a cell twice in a run.")
@click.option("--mean", "mean_of_repeats", is_flag=True, help="Score on the mean of the 3 repeats, not one sampled repeat.")
@click.option("--epochs", type=int, default=108, show_default=True, help="Epoch budget of every query.")
@click.option("--population-size", type=click.IntRange(1), default=50, show_default=True, help="Evolution's population.")
@click.option("--tournament-size", type=click.IntRange(1), default=10, show_default=True, help="Evolution's tournament.")
@click.option("--mutation-rate", type=click.FloatRange(0, 7), default=1.0, show_default=True, help="Evolution's mutation rate.")
@click.option("--workers", type=click.IntRange(1, 64), default=None, help="Processes [default: the CPUs available].")
@click.option("--cache-dir", type=click.Path(file_okay=False), default=None, help="Dataset cache folder (see 'data convert').")
@_reports_bad_input
def search_command(
    dataset: str, algorithms: str, repeats: int, budget: float, budget_kind: str, seed: int, out_dir: str,
    plot: bool, emit_dir: str | None, dedupe: bool, mean_of_repeats: bool, epochs: int, population_size: int,
    tournament_size: int, mutation_rate: float, workers: int | None, cache_dir: str | None,
) -> None:  # fmt: skip
    """Run dataset-backed searches (repeats × algorithms) and summarise them.

    Prints the mean and interquartile range of the final test accuracy of the best cell by
    validation, per algorithm; writes every trajectory to OUT/results.json.
    """
    import time
    from pathlib import Path

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from nbcompile.parallel import available_cpus
    from nbcompile.search.algorithms import Budget, SearchOptions
    from nbcompile.search.experiment import Experiment, format_summary, run_experiment, summarize, write_results

    if not budget > 0:
        raise ConfigError(f"--budget {budget} must be positive")
    names = tuple(name.strip() for name in algorithms.split(",") if name.strip())
    options = SearchOptions(dedupe, mean_of_repeats, epochs, population_size, tournament_size, mutation_rate)
    try:
        experiment = Experiment(dataset, names, repeats, Budget(budget, budget_kind), seed, options, cache_dir)
    except ValueError as error:
        raise ConfigError(f"--algo: {error}") from None
    bench = _open_dataset(dataset, cache_dir, False, workers)  # convert once, before any run
    if epochs not in bench.valid_epochs:
        raise OutOfDomainError(f"--epochs: invalid number of epochs {epochs}, must be one of {sorted(bench.valid_epochs)}")
    out = Path(out_dir)
    console = Console(stderr=True)
    progress = Progress(
        TextColumn("searching"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=console, disable=not console.is_terminal,
    )  # fmt: skip
    started = time.perf_counter()
    with progress:
        task = progress.add_task("runs", total=len(experiment.runs()))
        results = run_experiment(experiment, workers or available_cpus(), lambda _: progress.advance(task), bench)
    seconds = time.perf_counter() - started
    synthetic = "synthetic" in Path(dataset).name or "synthetic" in str(bench.cache_folder or "")
    click.echo(format_summary(summarize(results)))
    if synthetic:
        click.echo("note: this dataset is SYNTHETIC (a fixture): its accuracies are made up")
    click.echo(f"{len(results)} runs in {seconds:.1f} s", err=True)
    click.echo(f"wrote {write_results(out, experiment, results, seconds)}", err=True)
    if plot:
        from nbcompile.search.plots import plot_results

        for path in plot_results(results, out, budget if budget_kind == "time" else max(r.times[-1] for r in results), synthetic):
            click.echo(f"wrote {path}", err=True)
    if emit_dir:
        from nbcompile.compiler.driver import compile_to_file

        best = max(results, key=lambda r: r.best_valids[-1])
        if best.best_hash is None:
            raise ConfigError("no cell was queried: nothing to emit")
        path = compile_to_file(bench.spec_of(best.best_hash), emit_dir)
        click.echo(f"best cell {best.best_hash} (validation {best.best_valids[-1]:.4f}, {best.algorithm} run seed {best.seed})", err=True)
        click.echo(str(path))
