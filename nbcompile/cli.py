"""The ``nbcompile`` command line."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any

import click
from rich.console import Console
from rich.progress import track

from nbcompile import __version__
from nbcompile.compiler import CompileJob, plan_job
from nbcompile.config import NetworkConfig
from nbcompile.errors import ConfigError, OutOfDomainError, SpecError
from nbcompile.files import read_specs
from nbcompile.naming import validate_module_name
from nbcompile.report import format_info, info_json, spec_info

#: Exit code for bad input (specs, options, files), as click uses for usage errors.
EXIT_BAD_INPUT = 2
_BAD_INPUT = (SpecError, OutOfDomainError, ConfigError, OSError)


def _fail(message: str) -> None:
    click.echo(f"nbcompile: error: {message}", err=True)
    sys.exit(EXIT_BAD_INPUT)


def _reports_bad_input(command: Callable[..., None]) -> Callable[..., None]:
    """Turn bad-input exceptions into one line on stderr and exit code 2, without a traceback."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        try:
            command(*args, **kwargs)
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
    jobs: dict[str, CompileJob] = {}
    for location, spec in located:
        try:
            job = plan_job(spec, name=name, canonical=canonical, config=config)
        except (OutOfDomainError, ConfigError) as error:
            raise type(error)(f"{location}: {error}") from None
        jobs.setdefault(job.module_name, job)
    console = Console(stderr=True)
    for job in track(jobs.values(), description="compiling", console=console, disable=len(jobs) < 2 or not console.is_terminal):
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
