"""``nbcompile compile`` and ``nbcompile info``."""

from __future__ import annotations

import sys

import click
from rich.console import Console
from rich.progress import track

from nbcompile.cli._common import check_output_folder, config_options, network_config, reports_bad_input, read_stdin
from nbcompile.compiler.driver import plan_job
from nbcompile.compiler.naming import validate_module_name
from nbcompile.compiler.report import format_info, info_json, spec_info
from nbcompile.errors import ConfigError, OutOfDomainError, SpecError
from nbcompile.space.cellfiles import read_specs
from nbcompile.space.spec import ModelSpec

@click.command("compile")
@click.argument("specs", nargs=-1, required=True)
@click.option("-o", "--out-dir", default=".", show_default=True, type=click.Path(file_okay=False), help="Folder for the generated files.")
@click.option("--name", default=None, help="Module name of the generated file (one spec only).")
@click.option("--canonical", is_flag=True, help="Build the cell in the labeling NAS-Bench-101 stored and trained.")
@config_options
@reports_bad_input
def compile_command(specs: tuple[str, ...], out_dir: str, name: str | None, canonical: bool, **options: int | None) -> None:
    """Generate a model file for every spec in SPECS (JSON, JSON Lines, or - for stdin)."""
    check_output_folder(out_dir, "--out-dir")
    config = network_config(options)
    if name is not None:
        validate_module_name(name)
    stdin_text = read_stdin(specs)
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


@click.command("info")
@click.argument("spec")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option("--canonical", is_flag=True, help="Report the network built in the canonical labeling.")
@config_options
@reports_bad_input
def info_command(spec: str, as_json: bool, canonical: bool, **options: int | None) -> None:
    """Report on one SPEC: pruned spec, hash, validity, channels, parameters, FLOPs.

    Exits with 1 when the spec is well formed but outside the NAS-Bench-101 space.
    """
    config = network_config(options)
    located = read_specs(spec, read_stdin((spec,)))
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
