"""``nbcompile compile`` and ``nbcompile info``.

The compiler is imported when a command runs, not for its ``--help``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from nbcompile.cli._common import (
    cache_options,
    canonical_option,
    check_output_folder,
    config_options,
    dataset_option,
    json_option,
    located_spec,
    located_specs,
    network_config,
)
from nbcompile.errors import ConfigError, OutOfDomainError

if TYPE_CHECKING:
    from nbcompile.cli._common import LazyDataset
    from nbcompile.compiler.driver import CompileJob
    from nbcompile.space.spec import ModelSpec


@click.command("compile")
@click.argument("specs", nargs=-1, required=True)
@click.option(
    "-o",
    "--out-dir",
    default=".",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Folder for the generated files.",
)
@click.option("--name", default=None, help="Module name of the generated file (one spec only).")
@canonical_option
@dataset_option()
@cache_options
@click.option(
    "--aot",
    is_flag=True,
    help="Also write an AOTInductor package (.pt2) of the optimised inference network beside each file.",
)
@click.option(
    "--device", default="cpu", show_default=True, help="With --aot: the package's device, cpu, cuda or cuda:N."
)
@click.option(
    "--batch-size", type=int, default=1, show_default=True, help="With --aot: the package's fixed batch size."
)
@click.option(
    "--dtype",
    type=click.Choice(["auto", "fp32", "bf16"]),
    default="auto",
    show_default=True,
    help="With --aot: weight dtype; auto is bf16 on CUDA, fp32 on the CPU.",
)
@click.option(
    "--seed", type=int, default=0, show_default=True, help="With --aot: seed of the packaged weights' initialisation."
)
@config_options
def compile_command(
    specs: tuple[str, ...],
    out_dir: str,
    name: str | None,
    canonical: bool,
    dataset: LazyDataset,
    aot: bool,
    device: str,
    batch_size: int,
    dtype: str,
    seed: int,
    **options: int | None,
) -> None:
    """Generate a model file for every spec in SPECS (JSON, JSON Lines, - for stdin, or a
    32-digit module hash with --dataset).

    With --aot, each file also gets a precompiled package that ``nbcompile.load_package`` loads
    with no compilation; it holds freshly initialised weights (from --seed). To package trained
    weights, call ``nbcompile.build_package(model, path)`` in Python.
    """
    from rich.console import Console
    from rich.progress import track

    from nbcompile.compiler.driver import plan_job
    from nbcompile.compiler.naming import validate_module_name

    check_output_folder(out_dir, "--out-dir")
    config = network_config(options)
    if aot:
        from nbcompile.runtime.aot import check_package_options

        device = str(check_package_options(device, dtype, batch_size)[0])
    if name is not None:
        validate_module_name(name)
    located = located_specs(specs, "compile", dataset)
    if name is not None and len(located) != 1:
        raise ConfigError(f"--name needs exactly one spec, got {len(located)}")
    # Every spec is lowered (checked) before any file is written, and lowered again when written.
    # Why twice: a plan of the whole network takes ~20 kB, 8.5 GB for the whole space (423,624
    # cells), while lowering costs ~0.6 ms, 6% of rendering (measured 2026-11-28, 2-core x86_64).
    # So only the specs are kept between the passes. Specs that build the same file are written once.
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
        path = job.write(out_dir)
        click.echo(str(path))
        if aot:
            click.echo(str(_write_package(job, path, out_dir, device, dtype, batch_size, seed)))


def _write_package(
    job: CompileJob, source: Path, out_dir: str, device: str, dtype: str, batch_size: int, seed: int
) -> Path:
    """Build the AOT package of the generated file ``source``, weights initialised from ``seed``."""

    from nbcompile.runtime.aot import build_package, check_package_options
    from nbcompile.runtime.device import seeded
    from nbcompile.runtime.loader import load_model

    dtype = check_package_options(device, dtype, batch_size)[1]
    with seeded(seed):
        model = load_model(source, num_labels=job.plan.config.num_labels)
    return build_package(
        model,
        job.package_path(out_dir, device, dtype, batch_size),
        device=device,
        dtype=dtype,
        batch_size=batch_size,
        in_channels=job.plan.config.in_channels,
        module_hash=job.plan.module_hash,
    )


@click.command("info")
@click.argument("spec")
@json_option
@canonical_option
@dataset_option()
@cache_options
@config_options
def info_command(
    spec: str,
    as_json: bool,
    canonical: bool,
    dataset: LazyDataset,
    **options: int | None,
) -> None:
    """Report on one SPEC (a spec file, - for stdin, or a 32-digit module hash with --dataset):
    pruned spec, hash, validity, channels, parameters, FLOPs.

    Exits with 1 when the spec is well formed but outside the NAS-Bench-101 space.
    """
    from nbcompile.compiler.report import format_info, info_json, spec_info

    config = network_config(options)
    location, model_spec = located_spec(spec, "info", "report on", dataset, check_in_space=False)
    try:
        info = spec_info(model_spec, config, canonical)
    except ConfigError as error:
        raise ConfigError(f"{location}: {error}") from None
    click.echo(info_json(info) if as_json else format_info(info))
    if not info["valid"]:
        sys.exit(1)
