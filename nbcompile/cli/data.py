"""``nbcompile data``: dataset files (convert, info, query) and synthetic fixtures."""

from __future__ import annotations

import click

from nbcompile.cli._common import (
    LazyDataset,
    cache_dir_option,
    cache_options,
    check_output_file,
    check_output_folder,
    json_option,
    located_spec,
    progress_bar,
    workers_option,
)
from nbcompile.nasbench.writer import DEFAULT_LAYOUT, LAYOUTS
from nbcompile.space.ops import TRAIN_EPOCHS
from nbcompile.synthetic.landscape import DEFAULT_LANDSCAPE, LANDSCAPES


@click.group("data")
def data_group() -> None:
    """Work with NAS-Bench-101 dataset files (no TensorFlow needed)."""


@data_group.command("fixture")
@click.argument("out", type=click.Path(dir_okay=False))
@click.option(
    "--cells",
    "cell_count",
    type=click.IntRange(1),
    default=100,
    show_default=True,
    help="Cells, spread over the whole space.",
)
@click.option("--all", "all_cells", is_flag=True, help="Every one of the 423,624 cells.")
@click.option("--full", is_flag=True, help="Epoch budgets 4, 12, 36 and 108 (like nasbench_full); default 108 only.")
@workers_option("Processes building the records")
@click.option(
    "--layout",
    type=click.Choice(list(LAYOUTS)),
    default=DEFAULT_LAYOUT,
    show_default=True,
    help="Byte layout of the records (all valid for upstream's reader): checkpoint path empty, "
    "non-empty or absent; compact JSON; protobuf fields reordered; a derived benchmark's "
    "line-broken base64 and extra fields.",
)
@click.option(
    "--landscape",
    type=click.Choice(list(LANDSCAPES)),
    default=DEFAULT_LANDSCAPE,
    show_default=True,
    help="How accuracies are made up: hashed (a hash of the cell: every search ties with random "
    "search) or structured (from the cell's ops, depth, width and parameter count, plus noise).",
)
def fixture_command(
    out: str, cell_count: int, all_cells: bool, full: bool, workers: int | None, layout: str, landscape: str
) -> None:
    """Write OUT in the official TFRecord format with SYNTHETIC metrics.

    Parameter counts are the real ones of each cell's canonical network; accuracies and times
    are made up (deterministically). OUT's name must contain "synthetic".
    """
    from nbcompile.parallel import available_cpus
    from nbcompile.space.enumeration import enumerate_cells, sample_cells
    from nbcompile.synthetic.fixture import FULL, ONLY_108, write_fixture
    from nbcompile.synthetic.naming import check_fixture_name

    check_fixture_name(out)
    check_output_file(out, "OUT")
    cells = enumerate_cells() if all_cells else sample_cells(cell_count)
    count = write_fixture(out, cells, FULL if full else ONLY_108, workers or available_cpus(), layout, landscape)
    click.echo(f"wrote {count:,} records to {out}", err=True)


@data_group.command("convert")
@click.argument("dataset", metavar="PATH", type=click.Path(dir_okay=False))
@cache_options
def convert_command(dataset: LazyDataset) -> None:
    """Convert the dataset file PATH into the cache (or find it there) and say where it is."""
    if not dataset.no_cache:  # writing the cache is this command's job: refuse a folder it cannot write first
        from nbcompile.nasbench.cache import default_cache_root

        check_output_folder(dataset.cache_dir or str(default_cache_root()), "--cache-dir")
    opened = dataset.open()
    action = "converted" if opened.converted else "found in the cache"
    click.echo(
        f"{action}: {len(opened):,} cells, {opened.tables.num_records:,} records in {opened.load_seconds:.2f} s",
        err=True,
    )
    click.echo(str(opened.cache_folder) if opened.cache_folder else "(not cached)")


@data_group.command("info")
@click.argument("dataset", metavar="PATH", type=click.Path())
@json_option
@cache_options
def data_info_command(dataset: LazyDataset, as_json: bool) -> None:
    """Summarise the dataset PATH (a .tfrecord or a cache folder): cells, epochs, repeats,
    parameter range, and the best cells by mean validation and mean test accuracy."""
    import json

    from nbcompile.nasbench.report import dataset_info, format_dataset_info
    from nbcompile.synthetic.naming import is_synthetic_dataset

    opened = dataset.open()
    info = dataset_info(opened, is_synthetic_dataset(opened))
    click.echo(json.dumps(info, indent=2) if as_json else format_dataset_info(info))


@data_group.command("export")
@click.argument("dataset", metavar="PATH", type=click.Path())
@click.option(
    "--out", "out_path", required=True, type=click.Path(dir_okay=False), help="The table to write: FILE.parquet."
)
@click.option("--mean", is_flag=True, help="One row per (cell, budget): the mean of its runs, and their number.")
@cache_options
def export_command(dataset: LazyDataset, out_path: str, mean: bool) -> None:
    """Write the dataset PATH (a .tfrecord or a cache folder) as one Parquet table: a row per run
    (cell, epoch budget, repeat), or per (cell, budget) with --mean; the cell as the dataset stores
    it (module_hash, adjacency digits row by row, comma-separated ops), trainable_parameters and
    every stored metric (halfway and final training time, train, validation, test accuracy)."""
    from pathlib import Path

    from nbcompile.errors import ConfigError
    from nbcompile.optional import require

    require("pyarrow", "nbcompile data export")
    if Path(out_path).suffix != ".parquet":
        raise ConfigError(f"--out {out_path}: the file name must end in .parquet")
    check_output_file(out_path, "--out")
    from nbcompile.nasbench.export import write_export

    opened = dataset.open()
    rows = write_export(out_path, opened.tables, opened.source_file, mean)
    click.echo(f"{rows:,} rows → {out_path}", err=True)


@data_group.command("query")
@click.argument("dataset", metavar="PATH", type=click.Path())
@click.argument("spec")
@click.option("--epochs", type=int, default=TRAIN_EPOCHS, show_default=True, help="Epoch budget.")
@click.option("--halfway", is_flag=True, help="Metrics at half the budget (stop_halfway).")
@click.option("--mean", is_flag=True, help="Mean over the repeats instead of one sampled repeat.")
@click.option("--seed", type=int, default=None, help="Seed of the repeat sampling.")
@json_option
@cache_options
def data_query_command(
    dataset: LazyDataset,
    spec: str,
    epochs: int,
    halfway: bool,
    mean: bool,
    seed: int | None,
    as_json: bool,
) -> None:
    """Query the dataset PATH for SPEC: a spec file (as compile reads), - for stdin, or a
    32-digit module hash."""
    from nbcompile.nasbench.report import format_query, query_json
    from nbcompile.synthetic.naming import is_synthetic_dataset

    _, model_spec = located_spec(spec, "query", "query", dataset)  # a spec file is checked before the dataset opens
    opened = dataset.open()
    opened.reseed(seed)
    result = opened.query(model_spec, epochs, stop_halfway=halfway, reduce="mean" if mean else None)
    show = query_json if as_json else format_query
    click.echo(show(result, model_spec.module_hash, is_synthetic_dataset(opened)))


@data_group.command("verify")
@click.argument("path", type=click.Path())
@cache_dir_option
def verify_command(path: str, cache_dir: str | None) -> None:
    """Check a dataset cache: every array against the shape, dtype and CRC-32C its manifest
    records, and the source file (if still there) against the one converted. PATH is a cache
    folder or a source .tfrecord (whose cache is looked up). Exits 2 on any mismatch."""
    from pathlib import Path

    from nbcompile.errors import DatasetError
    from nbcompile.nasbench import cache

    folder = Path(path)
    if not folder.is_dir():
        if not folder.is_file():
            raise DatasetError(f"{path}: no such file or cache folder")
        folder = Path(cache_dir or cache.default_cache_root()) / cache.SourceKey.of(folder).folder_name()
        if not folder.is_dir():
            raise DatasetError(f"{path}: not converted yet (no cache in {folder.parent})")
    manifest = cache.verify(folder)
    source = "source checked" if manifest["source_checked"] else "source not found, not checked"
    click.echo(f"ok: {folder} ({manifest['cells']:,} cells, {len(manifest['arrays'])} arrays; {source})")


@data_group.command("cifar10")
@click.argument("directory", type=click.Path(file_okay=False))
@click.option("--url", default=None, hidden=True, help="Another address of the same tarball (tests, mirrors).")
@click.option("--md5", default=None, hidden=True, help="The MD5 expected at --url.")
def cifar10_command(directory: str, url: str | None, md5: str | None) -> None:
    """Download CIFAR-10's binary distribution into DIRECTORY, check its published MD5 and unpack
    it atomically (DIRECTORY/cifar-10-batches-bin); then train with --data DIRECTORY."""
    from rich.progress import DownloadColumn, Progress

    from nbcompile.train import cifar10

    check_output_folder(directory, "DIRECTORY")
    with progress_bar(*Progress.get_default_columns(), DownloadColumn()) as bar:
        task = bar.add_task("cifar-10-binary.tar.gz", total=None)
        folder = cifar10.download_cifar10(
            directory,
            url or cifar10.URL,
            md5 or cifar10.MD5,
            lambda done, total: bar.update(task, completed=done, total=total),
        )
    click.echo(str(folder))
