"""``nbcompile bench``."""

from __future__ import annotations

from typing import Any

import click
from rich.console import Console

from nbcompile.bench.modes import MODES, check_mode_names
from nbcompile.cli._common import (
    LazyDataset,
    cache_options,
    canonical_option,
    check_output_file,
    config_options,
    dataset_option,
    located_specs,
    network_config,
)
from nbcompile.errors import ConfigError
from nbcompile.optional import require


def _cell_label(location: str) -> str:
    """``examples/inception.json`` → ``inception``; ``cells.jsonl:3`` → ``cells:3``."""
    name = location.rsplit("/", 1)[-1]
    stem, _, rest = name.partition(".")
    suffix = "".join(char for char in rest if char in ":[]0123456789")
    return stem + suffix


#: The largest batch size ``--batch-sizes`` accepts (a 32×32 RGB float batch of it is 805 MB).
MAX_BATCH_SIZE = 65536


class BatchSizes(click.ParamType):
    """Comma-separated batch sizes, each in 1..MAX_BATCH_SIZE."""

    name = "sizes"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> tuple[int, ...]:
        if isinstance(value, tuple):
            return value
        try:
            sizes = tuple(int(part) for part in str(value).split(",") if part.strip())
        except ValueError:
            self.fail(f"{value!r} must be comma-separated integers", param, ctx)
        if not sizes:
            self.fail(f"{value!r} names no batch size", param, ctx)
        bad = next((size for size in sizes if not 1 <= size <= MAX_BATCH_SIZE), None)
        if bad is not None:
            self.fail(f"batch size {bad} is not in 1..{MAX_BATCH_SIZE}", param, ctx)
        return sizes


class ModeNames(click.ParamType):
    """Comma-separated mode names, or ``all`` for every mode."""

    name = "modes"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> tuple[str, ...]:
        if isinstance(value, tuple):
            return value
        text = str(value)
        names = tuple(MODES) if text.strip() == "all" else tuple(n.strip() for n in text.split(",") if n.strip())
        if not names:
            self.fail(f"{value!r} names no mode", param, ctx)
        try:
            check_mode_names(names)
        except ValueError as error:
            self.fail(str(error), param, ctx)
        return names


class Device(click.ParamType):
    """``cpu``, ``cuda`` or ``cuda:N``."""

    name = "device"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        text = str(value)
        kind, colon, index = text.partition(":")
        if text == "cpu" or (kind == "cuda" and (not colon or (index.isdigit() and index.isascii()))):
            return text
        self.fail(f"{text!r} is not cpu, cuda or cuda:N", param, ctx)


@click.command("bench", epilog="\b\nModes:\n" + "\n".join(f"  {m.name:18} {m.description}" for m in MODES.values()))
@click.argument("specs", nargs=-1, required=True)
@click.option("--device", type=Device(), default="cpu", show_default=True, help="cpu, cuda or cuda:N.")
@click.option(
    "--batch-sizes",
    type=BatchSizes(),
    default="1,64,256",
    show_default=True,
    help=f"Comma-separated batch sizes (each at most {MAX_BATCH_SIZE}).",
)
@click.option(
    "--modes",
    type=ModeNames(),
    default="all",
    show_default=True,
    help="Comma-separated modes, or all: " + ", ".join(MODES) + ".",
)
@click.option(
    "--dtype", type=click.Choice(["fp32", "bf16"]), default="fp32", show_default=True, help="bf16 runs under autocast."
)
@click.option("--channels-last", is_flag=True, help="Use channels_last inputs and weights.")
@click.option("--train", is_flag=True, help="Time a training step (forward, backward, SGD step) instead of inference.")
@click.option("--warmup", type=click.IntRange(0), default=5, show_default=True, help="Untimed calls before timing.")
@click.option(
    "--iters",
    type=click.IntRange(1),
    default=50,
    show_default=True,
    help="Timed calls of a mode in one round (at most).",
)
@click.option(
    "--max-seconds",
    type=click.FloatRange(0, 86400, min_open=True),
    default=10.0,
    show_default=True,
    help="Time limit for the timed calls of one mode in one round.",
)
@click.option(
    "--rounds",
    type=click.IntRange(1),
    default=3,
    show_default=True,
    help="Interleaved rounds (ABC ABC ABC): the median of round medians is reported.",
)
@click.option("--compile-backend", default="inductor", show_default=True, help="torch.compile backend.")
@click.option(
    "--image-size", type=click.IntRange(1, 4096), default=32, show_default=True, help="Input height and width."
)
@canonical_option
@click.option("--no-peak", is_flag=True, help="Skip the matmul peak measurement.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Write the full results as JSON.")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False), help="Write a PNG of latency against batch size.")
@dataset_option()
@cache_options
@config_options
def bench_command(
    specs: tuple[str, ...],
    device: str,
    batch_sizes: tuple[int, ...],
    modes: tuple[str, ...],
    dtype: str,
    channels_last: bool,
    train: bool,
    warmup: int,
    iters: int,
    max_seconds: float,
    rounds: int,
    compile_backend: str,
    image_size: int,
    canonical: bool,
    no_peak: bool,
    json_path: str | None,
    plot_path: str | None,
    dataset: LazyDataset,
    **options: int | None,
) -> None:
    """Time generated models against graph walking for every spec in SPECS (JSON, JSON Lines,
    - for stdin, or a 32-digit module hash with --dataset).

    Every mode runs in this process on the same weights, in --rounds interleaved rounds; a mode
    that fails or does not apply is reported in the table and the JSON, not raised.
    """
    check_output_file(json_path, "--json")
    check_output_file(plot_path, "--plot")
    import torch

    from nbcompile.bench.report import plot_latency, results_table, write_json
    from nbcompile.bench.runner import BenchSettings, run_benchmark

    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"--device {device}: CUDA is not available on this machine")
    if device.startswith("cuda:") and int(device[5:]) >= torch.cuda.device_count():
        raise ConfigError(f"--device {device}: this machine has {torch.cuda.device_count()} CUDA devices")
    if plot_path is not None:
        require("matplotlib", "--plot")
    try:
        settings = BenchSettings(
            device=device,
            batch_sizes=batch_sizes,
            modes=modes,
            dtype=dtype,
            channels_last=channels_last,
            train=train,
            warmup=warmup,
            iters=iters,
            max_seconds=max_seconds,
            rounds=rounds,
            compile_backend=compile_backend,
            image_size=image_size,
            canonical=canonical,
            measure_peak=not no_peak,
            config=network_config(options),
        )
    except ValueError as error:
        raise ConfigError(str(error)) from None
    located = located_specs(specs, "bench", dataset)
    cells = [(_cell_label(location), spec) for location, spec in located]
    console = Console(stderr=True)
    total = len(cells) * len(settings.batch_sizes) * len(settings.modes)
    with console.status("benchmarking", spinner="dots") as status:
        done = 0

        def show(result: dict) -> None:
            nonlocal done
            done += 1
            status.update(
                f"benchmarking: {done}/{total} ({result['cell']}, batch {result['batch_size']}, {result['mode']})"
            )

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
