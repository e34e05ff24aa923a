"""What every command shares: one-line errors with exit code 2, config and cache options."""

from __future__ import annotations

import functools
import os
import sys
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from nbcompile.compiler.config import NetworkConfig
from nbcompile.errors import ConfigError, NbcompileError, OutOfDomainError, SpecError, first_line
from nbcompile.parallel import sigterm_unwinds

if TYPE_CHECKING:
    from nbcompile.space.spec import ModelSpec

#: Exit code for bad input (specs, options, files), as click uses for usage errors.
EXIT_BAD_INPUT = 2
_BAD_INPUT = (NbcompileError, OSError)


def fail(message: str) -> None:
    click.echo(f"nbcompile: error: {message}", err=True)
    sys.exit(EXIT_BAD_INPUT)


def error_line(error: BaseException) -> str:
    """One line for ``error``; a ConfigError's field is named by its command-line flag."""
    message = first_line(error)
    field = getattr(error, "field", None)
    if field and message.startswith(field):
        message = "--" + field.replace("_", "-") + message[len(field) :]
    return message


def _warning_line(message, category, filename, lineno, file=None, line=None) -> None:
    click.echo(
        f"nbcompile: warning: {first_line(message if isinstance(message, Warning) else Warning(message))}", err=True
    )


def reports_bad_input(command: Callable[..., None]) -> Callable[..., None]:
    """Turn bad-input exceptions into one line on stderr and exit code 2, without a traceback;
    warnings are one line each too (``nbcompile: warning: ...``); SIGTERM unwinds like Ctrl-C
    (temporary files are removed, worker processes killed) and exits with status 143."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        try:
            with warnings.catch_warnings(), sigterm_unwinds():
                warnings.showwarning = _warning_line
                command(*args, **kwargs)
        except BrokenPipeError:  # the reader went away (e.g. `| head`): stop quietly
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            sys.exit(1)
        except _BAD_INPUT as error:
            fail(error_line(error))

    return wrapper


def config_options(command: Callable[..., None]) -> Callable[..., None]:
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


def network_config(options: dict[str, int | None]) -> NetworkConfig:
    """The config from the flags given; errors name the flag, not the field."""
    return NetworkConfig.from_kwargs(**{k: v for k, v in options.items() if v is not None})


def read_stdin(sources: tuple[str, ...]) -> str | None:
    return sys.stdin.read() if "-" in sources else None


class OneLineErrorGroup(click.Group):
    """A click group whose usage errors are one line on stderr (exit 2), like nbcompile's own."""

    def main(self, *args: Any, **kwargs: Any) -> Any:
        kwargs["standalone_mode"] = False
        try:
            result = super().main(*args, **kwargs)
        except click.ClickException as error:
            hint = ""
            if isinstance(error, click.UsageError) and error.ctx is not None:
                hint = f" (see '{error.ctx.command_path} --help')"
            fail(error.format_message().replace("\n", " ") + hint)
        except click.Abort:
            click.echo("nbcompile: aborted", err=True)
            sys.exit(1)
        sys.exit(result if isinstance(result, int) else 0)


def cache_options(command: Callable[..., None]) -> Callable[..., None]:
    command = click.option(
        "--workers",
        type=click.IntRange(1, 64),
        default=None,
        help="Conversion processes [default: the CPUs available].",
    )(command)
    command = click.option("--no-cache", is_flag=True, help="Convert in memory; read and write no cache.")(command)
    command = click.option(
        "--cache-dir",
        type=click.Path(file_okay=False),
        default=None,
        help="Cache folder [default: $NBCOMPILE_CACHE_DIR, else $XDG_CACHE_HOME/nbcompile, else ~/.cache/nbcompile].",
    )(command)
    return command


def open_dataset(path: str, cache_dir: str | None, no_cache: bool, workers: int | None, seed: int | None = None):
    from nbcompile.nasbench.api import NASBench

    return NASBench(path, seed, cache_dir=cache_dir, cache=not no_cache, workers=workers)


def located_specs(
    sources: tuple[str, ...],
    dataset: str | None,
    verb: str,
    cache_dir: str | None = None,
    no_cache: bool = False,
    workers: int | None = None,
) -> list[tuple[str, ModelSpec]]:
    """``(location, spec)`` of every SOURCE: a spec file (JSON, JSON Lines, .npz, ``-`` for stdin)
    or a 32-digit module hash looked up in ``dataset``. Every file is read and every spec checked
    to be in the space before the dataset is opened (it may need converting)."""
    from nbcompile.space.cellfiles import read_specs
    from nbcompile.space.graph import is_module_hash

    hashes = {source for source in sources if is_module_hash(source) and not Path(source).exists()}
    if hashes and dataset is None:
        first = next(source for source in sources if source in hashes)
        raise SpecError(f"{first}: no such file; to {verb} a module hash, name the dataset with --dataset FILE")
    stdin_text = read_stdin(sources)
    from_files = {source: read_specs(source, stdin_text) for source in sources if source not in hashes}
    for located in from_files.values():
        for location, spec in located:
            try:
                spec.validate()
            except OutOfDomainError as error:
                raise OutOfDomainError(f"{location}: {error}") from None
    opened = open_dataset(dataset, cache_dir, no_cache, workers) if hashes else None
    return [
        item
        for source in sources
        for item in ([(source, opened.spec_of(source))] if source in hashes else from_files[source])
    ]


def check_output_file(path: str | None, flag: str) -> None:
    """Refuse, before any work, an output file that could not be written: a folder in its place,
    a parent that is a file, or a folder where no file can be created. Creates nothing."""
    if path is None:
        return
    target = Path(path)
    if target.is_dir():
        raise ConfigError(f"{flag} {path}: is a folder, not a file")
    _check_writable_folder(target.parent, path, flag)


def check_output_folder(path: str | None, flag: str) -> None:
    """Refuse, before any work, an output folder that could not be created or written in."""
    if path is None:
        return
    target = Path(path)
    if target.exists() and not target.is_dir():
        raise ConfigError(f"{flag} {path}: is a file, not a folder")
    _check_writable_folder(target, path, flag)


def _check_writable_folder(folder: Path, given: str, flag: str) -> None:
    """The nearest existing ancestor of ``folder`` must be a folder we can create a file in."""
    existing = folder.absolute()
    while not existing.exists():
        if existing.is_symlink():  # a dangling link: nothing can be created through it
            raise ConfigError(f"{flag} {given}: {existing} is a broken link")
        existing = existing.parent
    if not existing.is_dir():
        raise ConfigError(f"{flag} {given}: {existing} is not a folder")
    try:
        fd, probe = tempfile.mkstemp(dir=existing, prefix=".nbcompile-probe.", suffix=".tmp")
    except OSError as error:
        raise ConfigError(f"{flag} {given}: cannot write in {existing} ({error.strerror or error})") from None
    os.close(fd)
    os.unlink(probe)
