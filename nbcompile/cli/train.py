"""``nbcompile train``: train cells upstream's way, locally or on a Ray cluster, with results in
the dataset's own format; ``nbcompile train-merge``: merge sweep folders into one dataset file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from nbcompile.cli._common import (
    LazyDataset,
    cache_options,
    canonical_option,
    check_output_file,
    check_output_folder,
    check_ray_address,
    config_options,
    counting_columns,
    dataset_option,
    located_specs,
    max_attempts_option,
    network_config,
    progress_bar,
    ray_options,
)
from nbcompile.errors import ConfigError, NbcompileError
from nbcompile.optional import require
from nbcompile.space.ops import TRAIN_EPOCHS


def default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


@click.command("train")
@click.argument("specs", nargs=-1, required=True)
@click.option(
    "--data",
    "data_path",
    required=True,
    type=click.Path(exists=True),
    help="CIFAR-10 binary: cifar-10-binary.tar.gz, its cifar-10-batches-bin folder, or a folder holding either "
    "(see 'nbcompile data cifar10').",
)
@click.option(
    "--epochs",
    "budgets",
    type=click.IntRange(1),
    multiple=True,
    default=(TRAIN_EPOCHS,),
    show_default=True,
    help="Epoch budget of a run; repeat the flag for several (upstream: 4, 12, 36, 108).",
)
@click.option("--repeats", type=click.IntRange(1), default=3, show_default=True, help="Runs per cell and budget.")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False),
    default="train-results",
    show_default=True,
    help="Output folder: runs/ (JSON + TFRecord per run), plots/, models/, results.tfrecord.",
)
@click.option(
    "--device",
    default=None,
    help="Torch device [default: cuda if available, else cpu]; with several GPUs, one process each.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Sweep seed (each run and retry derives its own).")
@click.option(
    "--ghost-bn/--no-ghost-bn",
    default=True,
    show_default=True,
    help="BatchNorm statistics over each half of a batch, as upstream's 2 TPU shards of 128 images had them.",
)
@click.option(
    "--batch-size", type=click.IntRange(1), default=256, show_default=True, help="Batch size (upstream: 256)."
)
@click.option(
    "--compile-step/--no-compile-step",
    default=None,
    help="Compile the training step cell by cell, in channels_last (nbcompile.optimize) [default: on for cuda].",
)
@click.option(
    "--cuda-graphs/--no-cuda-graphs",
    default=True,
    show_default=True,
    help="On CUDA, capture the compiled step (forward, backward, optimizer step) in one CUDA graph and replay it.",
)
@click.option(
    "--precision",
    type=click.Choice(["fp32", "tf32", "bf16"]),
    default="fp32",
    show_default=True,
    help="fp32: IEEE float32 (TF32 off); tf32: TF32 convolutions and matmuls (Ampere+); bf16: autocast forward "
    "and loss. Set for each run only.",
)
@click.option(
    "--max-train-seconds",
    type=click.FloatRange(0, min_open=True),
    default=None,
    help="Stop a run after this much measured training time and record it, as upstream's 4 h limit did "
    "[default: no limit].",
)
@click.option(
    "--channels-last",
    is_flag=True,
    help="Channels-last layout of model and batches in the eager step (a compiled step always uses it).",
)
@click.option(
    "--loss-every",
    type=click.IntRange(1),
    default=100,
    show_default=True,
    help="Steps between loss samples (plot and NaN check).",
)
@max_attempts_option("run", default=5)
@dataset_option()
@cache_options
@canonical_option
@ray_options("run as a Ray task of one GPU")
@click.option("--no-plot", is_flag=True, help="Write no metrics plot per run.")
@config_options
def train_command(
    specs: tuple[str, ...],
    data_path: str,
    budgets: tuple[int, ...],
    repeats: int,
    out_dir: str,
    device: str | None,
    seed: int,
    ghost_bn: bool,
    batch_size: int,
    compile_step: bool | None,
    cuda_graphs: bool,
    precision: str,
    max_train_seconds: float | None,
    channels_last: bool,
    loss_every: int,
    max_attempts: int,
    dataset: LazyDataset,
    canonical: bool,
    ray_address: str | None,
    ray_cpus: int | None,
    no_plot: bool,
    **options: int | None,
) -> None:
    """Train every cell in SPECS (JSON, JSON Lines, - for stdin, or module hashes with --dataset)
    with NAS-Bench-101's recipe: --repeats runs per --epochs budget, each evaluated at step 0,
    halfway and at the end on 9,984 images. Finished runs are skipped when the command is run
    again on the same --out; failing runs are retried from scratch (--max-attempts)."""
    check_ray_address(ray_address)
    if not no_plot:
        require("matplotlib", "the metrics plot (or pass --no-plot)")
    from nbcompile.compiler.driver import plan_job
    from nbcompile.train.cifar10 import load_cifar10
    from nbcompile.train.loop import TrainConfig
    from nbcompile.train.recipe import steps_for
    from nbcompile.train.results import ResultFolder, merge_results, plan_jobs
    from nbcompile.train.sweep import SweepSettings

    check_output_folder(out_dir, "--out")
    network = network_config(options)
    if network.in_channels != 3 or network.num_labels < 10:
        raise ConfigError("CIFAR-10 needs --in-channels 3 and --num-labels of at least 10")
    device = device or default_device()
    if ghost_bn and batch_size % 2:
        raise ConfigError(
            f"--batch-size {batch_size} does not split into 2 halves for --ghost-bn (or pass --no-ghost-bn)"
        )
    train = TrainConfig(
        batch_size=batch_size,
        ghost_bn=ghost_bn,
        loss_every=loss_every,
        precision=precision,
        max_train_seconds=max_train_seconds,
        channels_last=channels_last,
        compile_step=device.startswith("cuda") if compile_step is None else compile_step,
        cuda_graphs=cuda_graphs,
    )
    cells = [spec for _, spec in located_specs(specs, "train", dataset)]
    cells = [spec.canonical() for spec in cells] if canonical else cells
    for spec in cells:
        plan_job(spec, config=network)  # a config too small for a cell fails here, before training
    data = load_cifar10(data_path)  # bad data files fail here, before any job starts
    smallest = min(len(data.train), len(data.valid), len(data.test), len(data.train_eval))
    if batch_size > smallest:
        raise ConfigError(
            f"--batch-size {batch_size} is more than the {smallest} images of the smallest set in {data_path}"
        )
    for epochs in budgets:
        if steps_for(epochs, len(data.train), batch_size) < 1:
            raise ConfigError(f"--epochs {epochs} of {len(data.train)} images is less than one batch of {batch_size}")
    del data
    jobs = plan_jobs(cells, budgets, repeats)
    settings = SweepSettings(str(Path(data_path).resolve()), train, network, seed, device, max_attempts)
    folder = ResultFolder(out_dir)
    for spec in {spec.module_hash: spec for spec in cells}.values():
        plan_job(spec, config=network).write(folder.root / "models")
    summary = _run_with_progress(jobs, settings, folder, ray_address, ray_cpus, not no_plot)
    merged = folder.root / "results.tfrecord"
    records = merge_results(merged, [folder.root])
    click.echo(
        f"{summary.succeeded} runs trained, {summary.failed} failed, {summary.finished_before} already done, "
        f"{summary.retries} retries; {records} records in {merged}",
        err=True,
    )


def _executor(settings: Any, ray_address: str | None, ray_cpus: int | None, progress: Any) -> Any:
    from nbcompile.train import sweep

    if ray_address is not None:
        return sweep.RayExecutor(settings, ray_address or None, ray_cpus)
    if settings.device == "cuda":
        import torch

        count = torch.cuda.device_count()
        if count > 1:
            return sweep.ProcessPerDevice(settings, [f"cuda:{i}" for i in range(count)])
    return sweep.InProcess(settings, progress)


def _run_with_progress(
    jobs: list, settings: Any, folder: Any, ray_address: str | None, ray_cpus: int | None, plot: bool
) -> Any:
    from rich.progress import TimeRemainingColumn

    from nbcompile.train.sweep import run_sweep

    with progress_bar(*counting_columns("{task.description}"), TimeRemainingColumn()) as progress:
        overall = progress.add_task("runs", total=len([job for job in jobs if not folder.is_finished(job)]))
        run_task = progress.add_task("run", total=1, visible=False)
        current = {"job": None}

        def on_step(job: Any, step: int, total: int) -> None:
            if current["job"] != job.name:
                current["job"] = job.name
                progress.reset(
                    run_task,
                    total=total,
                    visible=True,
                    description=f"{job.module_hash[:12]} e{job.epochs} r{job.repeat}",
                )
            progress.update(run_task, completed=step)

        def on_result(job: Any, result: dict) -> None:
            current["job"] = None
            progress.advance(overall)
            if result["status"] == "ok":
                final = result["evaluations"][-1]
                line = (
                    f"{job.name}: valid {final['validation_accuracy']:.4f} test {final['test_accuracy']:.4f} "
                    f"in {result['training_time']:.1f} s ({result['images_per_second']:.0f} images/s)"
                )
                if plot:
                    from nbcompile.train.plots import plot_run

                    plot_run(result, folder.root / "plots" / f"{job.name}.png")
            else:
                line = f"{job.name}: FAILED after {len(result['errors'])} attempts ({result['errors'][-1]})"
            progress.console.print(line, highlight=False)

        return run_sweep(jobs, settings, folder, _executor(settings, ray_address, ray_cpus, on_step), on_result)


@click.command("train-merge")
@click.argument("out", type=click.Path(dir_okay=False))
@click.argument("folders", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False))
def train_merge_command(out: str, folders: tuple[str, ...]) -> None:
    """Merge the successful runs of the `nbcompile train --out` FOLDERS into the dataset file OUT
    (official TFRecord format, readable by NASBench and every nbcompile data command)."""
    from nbcompile.train.results import merge_results

    check_output_file(out, "OUT")
    count = merge_results(out, folders)
    if not count:
        raise NbcompileError(f"no successful runs in {', '.join(folders)}")
    click.echo(f"wrote {count} records to {out}", err=True)
