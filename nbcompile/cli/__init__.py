"""The ``nbcompile`` command line: one module per command group, on top of every other layer."""

from __future__ import annotations

import click

from nbcompile._version import __version__
from nbcompile.cli._common import OneLineErrorGroup
from nbcompile.cli.bench import bench_command
from nbcompile.cli.compile import compile_command, info_command
from nbcompile.cli.data import data_group
from nbcompile.cli.enumerate import enumerate_command
from nbcompile.cli.search import search_command
from nbcompile.cli.train import train_command, train_merge_command


@click.group("nbcompile", cls=OneLineErrorGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="nbcompile")
def main() -> None:
    """Compile NAS-Bench-101 cell specs into static PyTorch modules."""


for _command in (
    compile_command,
    info_command,
    bench_command,
    enumerate_command,
    data_group,
    search_command,
    train_command,
    train_merge_command,
):
    main.add_command(_command)
