"""``nbcompile proxies``: zero-cost proxies of cells, on the networks NAS-Bench-101 trained, into
a Parquet table. Torch is imported when the command runs, not for its ``--help``."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

import click

from nbcompile.cli._common import (
    cache_options,
    check_output_file,
    config_options,
    counting_columns,
    dataset_option,
    located_specs,
    network_config,
    progress_bar,
)
from nbcompile.errors import ConfigError
from nbcompile.optional import require
from nbcompile.proxies.names import PROXY_NAMES, parse_proxy_names

if TYPE_CHECKING:
    from nbcompile.cli._common import LazyDataset


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
@dataset_option()
@cache_options
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
    dataset: LazyDataset,
    **options: int | None,
) -> None:
    """Compute zero-cost proxies of the cells in SPECS (JSON, JSON Lines, - for stdin, or a
    32-digit module hash with --dataset) and of --sample cells drawn from the space.

    Each cell is built as NAS-Bench-101 trained it (its canonical labeling, upstream's
    initialisation seeded with --seed) and scored on one batch: --batch-size CIFAR-10 training
    images with the training augmentation (--data), the same batch for every cell. The table has
    one row per distinct cell, keyed by module_hash, and the settings in its metadata.
    """
    require("pyarrow", "nbcompile proxies")
    if Path(out_path).suffix != ".parquet":
        raise ConfigError(f"--out {out_path}: the file name must end in .parquet")
    check_output_file(out_path, "--out")
    proxies = parse_proxy_names(proxy_list)
    config = network_config(options)
    if not specs and sample is None:
        raise ConfigError("no cells to score: give SPEC arguments or --sample N")

    import torch

    from nbcompile._version import __version__
    from nbcompile.proxies.runner import ProxyScorer, cifar10_batch, needs_data, random_batch, sample_specs
    from nbcompile.proxies.table import write_table
    from nbcompile.runtime.aot import check_package_options

    torch_device = check_package_options(device, "fp32", batch_size)[0]  # the one check of a device name
    if "jacob_cov" in proxies or "nwot" in proxies:
        if batch_size < 2:
            raise ConfigError("--batch-size must be at least 2 for jacob_cov and nwot")
    cells = [spec for _, spec in located_specs(specs, "score", dataset)]
    if sample is not None:
        cells += sample_specs(sample, seed)
    unique = {spec.module_hash: spec for spec in reversed(cells)}  # first occurrence wins
    ordered = [unique[key] for key in dict.fromkeys(spec.module_hash for spec in cells)]
    batch = cifar10_batch(data_path, batch_size, seed) if data_path else random_batch(batch_size, seed, config)
    if data_path is None and needs_data(proxies):
        click.echo("note: no --data: scoring on standard-normal noise with random labels", err=True)
    scorer = ProxyScorer(proxies, batch, config, seed, torch_device)
    started = time.perf_counter()
    rows = []
    with progress_bar(*counting_columns("scoring")) as progress:
        task = progress.add_task("cells", total=len(ordered))
        for row in scorer.score_all(ordered):
            rows.append(row)
            progress.advance(task)
    settings = {
        "nbcompile": __version__,
        "torch": torch.__version__,
        "proxies": list(proxies),
        "config": config.as_dict(),
        "labeling": "canonical",
        "seed": seed,
        "batch_size": batch_size,
        "batch": batch.source,
        "data": str(Path(data_path).resolve()) if data_path else None,
        "device": str(torch_device),
        "seconds": {name: round(value, 3) for name, value in scorer.seconds.items()},
    }
    write_table(out_path, rows, proxies, settings)
    click.echo(f"{len(rows):,} cells in {time.perf_counter() - started:.1f} s → {out_path}", err=True)
