"""What commands share: options declared once, the reader of spec sources, output checks.

(How a command's bad input becomes one line on stderr is the group's job: see ``_group``.)
"""

from __future__ import annotations

import functools
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from nbcompile.cli._group import flag_for
from nbcompile.compiler.config import NetworkConfig
from nbcompile.errors import ConfigError, OutOfDomainError, SpecError

if TYPE_CHECKING:
    from rich.progress import Progress, ProgressColumn

    from nbcompile.nasbench.api import NASBench
    from nbcompile.space.spec import ModelSpec

Command = TypeVar("Command", bound=Callable[..., None])

#: The most worker processes ``--workers`` accepts.
MAX_WORKERS = 64


def config_options(command: Command) -> Command:
    """``--stem-channels``, ``--num-stacks``, ``--cells-per-stack``, ``--num-labels``, ``--in-channels``:
    the network around the cells (see :func:`network_config`)."""
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
        command = click.option(
            flag_for(field),
            field,
            type=int,
            default=None,
            help=f"{help_text.capitalize()} [default: {getattr(defaults, field)}].",
        )(command)
    return command


def network_config(options: dict[str, int | None]) -> NetworkConfig:
    """The config from the flags given; errors name the flag, not the field."""
    return NetworkConfig.from_kwargs(**{k: v for k, v in options.items() if v is not None})


canonical_option = click.option(
    "--canonical", is_flag=True, help="Build each cell in the labeling NAS-Bench-101 stored and trained."
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")


def dataset_option(
    purpose: str = "in which to look up specs given as 32-digit module hashes", required: bool = False
) -> Callable[[Command], Command]:
    """``--dataset FILE``: a NAS-Bench-101 dataset file for ``purpose``."""
    return click.option(
        "--dataset",
        type=click.Path(),
        metavar="FILE",
        required=required,
        default=None,
        help=f"NAS-Bench-101 .tfrecord (or its cache folder) {purpose}.",
    )


cache_dir_option = click.option(
    "--cache-dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Dataset cache folder [default: $NBCOMPILE_CACHE_DIR, else $XDG_CACHE_HOME/nbcompile, "
    "else ~/.cache/nbcompile].",
)


def workers_option(role: str, default: str = "the CPUs available") -> Callable[[Command], Command]:
    """``--workers N``: how many processes do ``role``; None when not given."""
    return click.option(
        "--workers", type=click.IntRange(1, MAX_WORKERS), default=None, help=f"{role} [default: {default}]."
    )


def max_attempts_option(unit: str, default: int) -> Callable[[Command], Command]:
    """``--max-attempts N``: attempts per ``unit`` of work before it is recorded as failed."""
    return click.option(
        "--max-attempts",
        type=click.IntRange(1),
        default=default,
        show_default=True,
        help=f"Attempts per {unit} before it is recorded as failed.",
    )


def ray_options(task: str, after_specs: bool = True) -> Callable[[Command], Command]:
    """``--ray [ADDRESS]`` and ``--ray-cpus N``: ``task`` says what runs as one Ray task (checked
    by :func:`check_ray_address`); ``after_specs``: the command takes SPEC arguments, which a
    ``--ray`` written before them would take for its ADDRESS."""
    placement = " Put it after SPECs or write --ray=ADDRESS." if after_specs else ""

    def decorate(command: Command) -> Command:
        command = click.option(
            "--ray-cpus", type=click.IntRange(1), default=None, help="CPUs of a Ray instance started here."
        )(command)
        return click.option(
            "--ray",
            "ray_address",
            is_flag=False,
            flag_value="",
            default=None,
            metavar="[ADDRESS]",
            help=f"Run each {task}; ADDRESS of a cluster (or 'auto'), none to start Ray here.{placement}",
        )(command)

    return decorate


def check_ray_address(ray_address: str | None) -> None:
    """Refuse a ``--ray`` that took a spec file for its ADDRESS, and Ray not installed."""
    if ray_address is None:
        return
    from nbcompile.optional import require

    if ray_address and (ray_address.endswith((".json", ".jsonl")) or Path(ray_address).is_file()):
        raise ConfigError(
            f"--ray took {ray_address!r} as its ADDRESS: put --ray after the SPECs or write --ray=ADDRESS"
        )
    require("ray", "--ray")


no_cache_option = click.option(
    "--no-cache", is_flag=True, help="Convert the dataset in memory; read and write no cache."
)


def cache_options(command: Callable[..., None]) -> Callable[..., None]:
    """``--cache-dir``, ``--no-cache`` and ``--workers``, for a command whose parameter ``dataset``
    (``--dataset FILE`` or a PATH argument) names a dataset file: the command is called with a
    :class:`LazyDataset` of that file and these options as ``dataset``, and without the three."""

    @functools.wraps(command)  # keeps the options declared so far (click keeps them on the function)
    def with_dataset(
        *args: Any, dataset: str | None, cache_dir: str | None, no_cache: bool, workers: int | None, **kwargs: Any
    ) -> None:
        command(*args, dataset=LazyDataset(dataset, cache_dir, no_cache, workers), **kwargs)

    conversion_workers = workers_option("Processes converting a dataset not cached yet")
    return cache_dir_option(no_cache_option(conversion_workers(with_dataset)))


class LazyDataset:
    """The dataset a command was given (``--dataset`` or a PATH argument) with the cache options;
    opened, and converted if it is not cached yet, on first use only."""

    def __init__(
        self, path: str | None, cache_dir: str | None = None, no_cache: bool = False, workers: int | None = None
    ) -> None:
        self.path = path
        self.cache_dir = cache_dir
        self.no_cache = no_cache
        self.workers = workers
        self._opened: NASBench | None = None

    def open(self) -> NASBench:
        """The dataset, opened on the first call."""
        if self.path is None:
            raise ConfigError("no dataset given: name it with --dataset FILE")
        if self._opened is None:
            from nbcompile.nasbench.api import NASBench

            self._opened = NASBench(self.path, cache_dir=self.cache_dir, cache=not self.no_cache, workers=self.workers)
        return self._opened


def located_specs(
    sources: tuple[str, ...], verb: str, dataset: LazyDataset | None = None, check_in_space: bool = True
) -> list[tuple[str, ModelSpec]]:
    """``(location, spec)`` of every SOURCE: a spec file (JSON, JSON Lines, .npz, ``-`` for stdin)
    or a 32-digit module hash looked up in ``dataset``. Every file is read, and with
    ``check_in_space`` every spec checked to be in the space, before the dataset is opened (it may
    need converting). ``verb`` says what the command does with a spec, for the error messages."""
    from nbcompile.space.cellfiles import read_specs
    from nbcompile.space.graph import is_module_hash

    hashes = {source for source in sources if is_module_hash(source) and not Path(source).exists()}
    if hashes and (dataset is None or dataset.path is None):
        first = next(source for source in sources if source in hashes)
        raise SpecError(f"{first}: no such file; to {verb} a module hash, name the dataset with --dataset FILE")
    stdin_text = sys.stdin.read() if "-" in sources else None
    from_files = {source: read_specs(source, stdin_text) for source in sources if source not in hashes}
    for located in from_files.values() if check_in_space else ():
        for location, spec in located:
            try:
                spec.validate()
            except OutOfDomainError as error:
                raise OutOfDomainError(f"{location}: {error}") from None
    return [
        item
        for source in sources
        for item in ([(source, dataset.open().spec_of(source))] if source in hashes else from_files[source])
    ]


def located_spec(
    source: str, command: str, verb: str, dataset: LazyDataset | None = None, check_in_space: bool = True
) -> tuple[str, ModelSpec]:
    """The one ``(location, spec)`` of SOURCE, read as :func:`located_specs` reads; ``command``
    names the command in the error for a source of several specs."""
    located = located_specs((source,), verb, dataset, check_in_space)
    if len(located) != 1:
        raise SpecError(f"{source}: {command} takes one spec, the input holds {len(located)}")
    return located[0]


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


def progress_bar(*columns: ProgressColumn) -> Progress:
    """A progress display of ``columns`` on stderr, shown only when stderr is a terminal."""
    from rich.console import Console
    from rich.progress import Progress

    console = Console(stderr=True)
    return Progress(*columns, console=console, disable=not console.is_terminal)


def counting_columns(label: str) -> tuple[ProgressColumn, ...]:
    """``label``, a bar, done/total and the time elapsed: the columns of a count of steps."""
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn

    return TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()
