"""``nbcompile proxies``: zero-cost proxies of cells, on the networks NAS-Bench-101 trained, into
a Parquet table, scored chunk by chunk as resumable work (local processes or Ray tasks). Torch is
imported when the command runs, not for its ``--help``."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import click

from nbcompile.cli._common import (
    LazyDataset,
    cache_dir_option,
    check_output_file,
    check_output_folder,
    check_ray_address,
    config_options,
    counting_columns,
    dataset_option,
    located_specs,
    max_attempts_option,
    network_config,
    no_cache_option,
    progress_bar,
    ray_options,
    workers_option,
)
from nbcompile.errors import ConfigError
from nbcompile.optional import require
from nbcompile.parallel import available_cpus
from nbcompile.proxies.names import DEFAULT_CHUNK_SIZE, PROXY_NAMES, parse_proxy_names


@click.command("proxies")
@click.argument("specs", nargs=-1)
@click.option(
    "--out", "out_path", required=True, type=click.Path(dir_okay=False), help="The table to write: FILE.parquet."
)
@click.option(
    "--proxies",
    "proxy_list",
    default=",".join(PROXY_NAMES),
    show_default=True,
    help="Comma-separated proxies to compute (one column each).",
)
@click.option("--sample", type=click.IntRange(1), default=None, help="Also score N cells drawn from the whole space.")
@click.option(
    "--data",
    "data_path",
    type=click.Path(exists=True),
    default=None,
    help="CIFAR-10 binary (tarball or folder) for the batch [default: standard-normal noise and random labels].",
)
@click.option("--batch-size", type=click.IntRange(1), default=256, show_default=True, help="Images in the one batch.")
@click.option(
    "--seed",
    type=int,
    default=0,
    show_default=True,
    help="Seed of every network's initialisation, of the batch, and of --sample.",
)
@click.option("--device", default="cpu", show_default=True, help="Torch device: cpu, cuda or cuda:N.")
@click.option(
    "--chunk-size",
    type=click.IntRange(1),
    default=DEFAULT_CHUNK_SIZE,
    show_default=True,
    help="Cells per chunk: the unit of work written, resumed, retried and sent to a worker.",
)
@max_attempts_option("chunk", default=5)
@workers_option(
    "Scoring processes (1: in this process; and processes converting the dataset)",
    "the CPUs available; on cuda, one per GPU",
)
@ray_options("chunk as a Ray task (of one GPU on cuda)")
@dataset_option(
    "in which to look up specs given as 32-digit module hashes, and against whose mean accuracies at 108 "
    "epochs the proxies are rank-correlated (OUT's stem + .correlations.md/.json, .plots/)"
)
@click.option("--no-plot", is_flag=True, help="With --dataset: write no scatter plots.")
@cache_dir_option
@no_cache_option
@config_options
def proxies_command(
    specs: tuple[str, ...],
    out_path: str,
    proxy_list: str,
    sample: int | None,
    data_path: str | None,
    batch_size: int,
    seed: int,
    device: str,
    chunk_size: int,
    max_attempts: int,
    workers: int | None,
    ray_address: str | None,
    ray_cpus: int | None,
    dataset: str | None,
    no_plot: bool,
    cache_dir: str | None,
    no_cache: bool,
    **options: int | None,
) -> None:
    """Compute zero-cost proxies of the cells in SPECS (JSON, JSON Lines, - for stdin, or a
    32-digit module hash with --dataset) and of --sample cells drawn from the space.

    Each cell is built as NAS-Bench-101 trained it (its canonical labeling, upstream's
    initialisation seeded with --seed) and scored on one batch: --batch-size CIFAR-10 training
    images with the training augmentation (--data), the same batch for every cell. The table has
    one row per distinct cell, keyed by module_hash, and the settings in its metadata.

    The cells are scored in chunks of --chunk-size, each written to the work folder OUT.work as it
    finishes: run the command again to resume after an interruption (chunks already scored are
    skipped) or to retry the chunks that failed --max-attempts times. The work folder is removed
    once every chunk is in the table.

    With --dataset, each proxy's Spearman rho and Kendall tau (tau-b) against the dataset's mean
    validation and mean test accuracy at 108 epochs, over the scored cells it holds, are printed
    beside the published figures and written next to the table, with a scatter plot per proxy.
    """
    require("pyarrow", "nbcompile proxies")
    if dataset is not None and not no_plot:
        require("matplotlib", "the scatter plots of --dataset (or pass --no-plot)")
    if Path(out_path).suffix != ".parquet":
        raise ConfigError(f"--out {out_path}: the file name must end in .parquet")
    check_output_file(out_path, "--out")
    reports = correlation_paths(out_path)
    if dataset is not None:
        check_output_file(str(reports["json"]), "--out")
        check_output_file(str(reports["markdown"]), "--out")
        if not no_plot:
            check_output_folder(str(reports["plots"]), "--out")
    check_ray_address(ray_address)
    proxies = parse_proxy_names(proxy_list)
    config = network_config(options)
    if not specs and sample is None:
        raise ConfigError("no cells to score: give SPEC arguments or --sample N")

    import torch

    from nbcompile._version import __version__
    from nbcompile.proxies.runner import needs_data, sample_specs
    from nbcompile.proxies.table import write_table
    from nbcompile.proxies.work import ChunkFolder, ProxySettings, assemble, plan_chunks, proxy_batch
    from nbcompile.runtime.aot import check_package_options

    torch_device = check_package_options(device, "fp32", batch_size)[0]  # the one check of a device name
    if "jacob_cov" in proxies or "nwot" in proxies:
        if batch_size < 2:
            raise ConfigError("--batch-size must be at least 2 for jacob_cov and nwot")
    lazy_dataset = LazyDataset(dataset, cache_dir, no_cache, workers)
    cells = [spec for _, spec in located_specs(specs, "score", lazy_dataset)]
    if sample is not None:
        cells += sample_specs(sample, seed)
    unique = {spec.module_hash: spec for spec in reversed(cells)}  # first occurrence wins
    ordered = [unique[key] for key in dict.fromkeys(spec.module_hash for spec in cells)]
    if dataset is not None:
        _check_correlatable(lazy_dataset, dataset, ordered)
    workers = workers or _default_workers(torch_device)
    data = str(Path(data_path).resolve()) if data_path else None
    threads = max(1, available_cpus() // workers) if torch_device.type == "cpu" else None
    settings = ProxySettings(proxies, config, seed, batch_size, data, str(torch_device), max_attempts, threads)
    batch = proxy_batch(settings)  # bad data files fail here, before any chunk starts
    if data_path is None and needs_data(proxies):
        click.echo("note: no --data: scoring on standard-normal noise with random labels", err=True)
    chunks = plan_chunks(ordered, chunk_size)
    folder = ChunkFolder(Path(f"{out_path}.work"))
    folder.claim(settings.identity(chunks), "--out")
    started = time.perf_counter()
    summary = _score_chunks(chunks, settings, folder, workers, ray_address, ray_cpus)
    table = assemble(chunks, folder, proxies)
    table_settings = {
        "nbcompile": __version__,
        "torch": torch.__version__,
        "proxies": list(proxies),
        "config": config.as_dict(),
        "labeling": "canonical",
        "seed": seed,
        "batch_size": batch_size,
        "batch": batch.source,
        "data": data,
        "device": str(torch_device),
        "chunk_size": chunk_size,
        "seconds": {name: round(value, 3) for name, value in table.seconds.items()},
        "missing": table.missing,
    }
    write_table(out_path, table.rows, proxies, table_settings)
    click.echo(
        f"{len(table.rows):,} cells in {time.perf_counter() - started:.1f} s → {out_path} ({summary.succeeded} chunks "
        f"scored, {summary.finished_before} already done, {summary.failed} failed, {summary.retries} retries)",
        err=True,
    )
    if table.missing:
        click.echo(
            f"warning: {len(table.missing):,} cells of failed chunks are not in the table (see the *.failed.json "
            f"files in {folder.root}); run the command again to retry them",
            err=True,
        )
    else:
        shutil.rmtree(folder.root)
    if dataset is not None:
        _write_correlations(table.rows, proxies, lazy_dataset, reports, no_plot)


def correlation_paths(out_path: str) -> dict[str, Path]:
    """Where ``--dataset``'s report goes, beside the table: ``STEM.correlations.json``, ``.md``
    and the plots folder ``STEM.plots``."""
    stem = Path(out_path).with_suffix("")
    return {
        "json": Path(f"{stem}.correlations.json"),
        "markdown": Path(f"{stem}.correlations.md"),
        "plots": Path(f"{stem}.plots"),
    }


def _check_correlatable(lazy_dataset: LazyDataset, dataset: str, cells: list) -> None:
    """Refuse, before any work, a dataset without 108-epoch runs or with fewer than 2 of the cells."""
    from nbcompile.space.ops import TRAIN_EPOCHS

    bench = lazy_dataset.open()
    if TRAIN_EPOCHS not in bench.valid_epochs:
        raise ConfigError(f"--dataset {dataset}: no runs at {TRAIN_EPOCHS} epochs to correlate with")
    held = sum(spec.module_hash in bench for spec in cells)
    if held < 2:
        raise ConfigError(
            f"--dataset {dataset}: holds {held} of the {len(cells)} cells to score; rank correlations need at least 2"
        )


def _write_correlations(
    rows: list, proxies: tuple[str, ...], lazy_dataset: LazyDataset, reports: dict[str, Path], no_plot: bool
) -> None:
    """Correlate the scored cells the dataset holds with their mean accuracies at 108 epochs:
    print the table, write it as Markdown and JSON, and the plots."""
    import json

    import numpy as np

    from nbcompile.fileio import write_atomic
    from nbcompile.proxies.correlation import correlate, correlation_document, markdown_table
    from nbcompile.space.ops import TRAIN_EPOCHS

    bench = lazy_dataset.open()
    held = [(module_hash, scores) for module_hash, scores in rows if module_hash in bench]
    accuracies = bench.query_many([module_hash for module_hash, _ in held], TRAIN_EPOCHS, reduce="mean")
    validation, test = accuracies["validation_accuracy"], accuracies["test_accuracy"]
    scores = {name: np.array([row[name] for _, row in held], dtype=np.float64) for name in proxies}
    correlations = correlate(scores, validation, test)
    text = markdown_table(correlations)
    click.echo(text, nl=False)
    title = f"# Proxies against the mean accuracy at {TRAIN_EPOCHS} epochs of {bench.source_file}\n\n"
    write_atomic(reports["markdown"], title + text)
    document = correlation_document(correlations, bench.source_file, TRAIN_EPOCHS)
    write_atomic(reports["json"], json.dumps(document, indent=1) + "\n")
    written = [reports["markdown"], reports["json"]]
    if not no_plot:
        from nbcompile.proxies.plots import plot_correlations

        plot_correlations(scores, validation, test, correlations, reports["plots"])
        written.append(reports["plots"])
    click.echo(f"correlations over {len(held):,} cells → {', '.join(map(str, written))}", err=True)


def _default_workers(device: Any) -> int:
    """Scoring processes unless told: every CPU on the CPU; one per GPU on ``cuda`` (one on ``cuda:N``)."""
    import torch

    if device.type == "cuda":
        return torch.cuda.device_count() if device.index is None else 1
    return available_cpus()


def _score_chunks(
    chunks: list, settings: Any, folder: Any, workers: int, ray_address: str | None, ray_cpus: int | None
) -> Any:
    """Run the chunks not scored yet through the sweeps' loop, with a progress bar of cells."""
    from nbcompile.proxies.work import failed_chunk, score_chunk
    from nbcompile.train.sweep import InProcess, ProcessPerDevice, RayExecutor, run_sweep

    with progress_bar(*counting_columns("scoring")) as progress:
        task = progress.add_task("cells", total=sum(len(c.cells) for c in chunks if not folder.is_finished(c)))
        done = {"cells": 0}

        def on_cell(chunk: Any, number: int, total: int) -> None:
            progress.update(task, completed=done["cells"] + number)

        def on_result(chunk: Any, result: dict) -> None:
            done["cells"] += len(chunk.cells)
            progress.update(task, completed=done["cells"])
            if result["status"] != "ok":
                line = f"{chunk.name}: FAILED after {len(result['errors'])} attempts ({result['errors'][-1]})"
                progress.console.print(line, highlight=False)

        if ray_address is not None:
            executor: Any = RayExecutor(settings, ray_address or None, ray_cpus, attempt_function=score_chunk)
        elif workers <= 1:
            executor = InProcess(settings, on_cell, attempt_function=score_chunk)
        else:
            devices = _worker_devices(settings.device, workers)
            executor = ProcessPerDevice(settings, devices, attempt_function=score_chunk)
        return run_sweep(chunks, settings, folder, executor, on_result, failed_result=failed_chunk)


def _worker_devices(device: str, workers: int) -> list[str]:
    """The device of each worker process: ``cuda`` spreads them over the GPUs."""
    if device == "cuda":
        import torch

        count = max(1, torch.cuda.device_count())
        return [f"cuda:{number % count}" for number in range(workers)]
    return [device] * workers
