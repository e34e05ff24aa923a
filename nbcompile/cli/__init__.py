"""The ``nbcompile`` command line: one module per command group, on top of every other layer.

A command's module is imported only when the command runs or shows its own help, so that
``import nbcompile.cli`` and ``nbcompile --help`` load neither torch nor the compiler.
"""

from __future__ import annotations

import click

from nbcompile._version import __version__
from nbcompile.cli._group import LazyCommand, LazyGroup

#: Every command: where it is defined, and its line in ``nbcompile --help``.
COMMANDS = {
    "bench": LazyCommand("nbcompile.cli.bench:bench_command", "Time generated models against graph walking."),
    "compile": LazyCommand("nbcompile.cli.compile:compile_command", "Generate a model file for every spec."),
    "data": LazyCommand("nbcompile.cli.data:data_group", "Work with NAS-Bench-101 dataset files (no TensorFlow)."),
    "enumerate": LazyCommand("nbcompile.cli.enumerate:enumerate_command", "Write every unique NAS-Bench-101 cell."),
    "info": LazyCommand("nbcompile.cli.compile:info_command", "Report on one spec: hash, channels, parameters, FLOPs."),
    "proxies": LazyCommand("nbcompile.cli.proxies:proxies_command", "Score cells with zero-cost proxies (Parquet)."),
    "search": LazyCommand("nbcompile.cli.search:search_command", "Run searches on the dataset and summarise them."),
    "train": LazyCommand("nbcompile.cli.train:train_command", "Train cells with NAS-Bench-101's recipe."),
    "train-merge": LazyCommand("nbcompile.cli.train:train_merge_command", "Merge train folders into one dataset file."),
}


@click.group(
    "nbcompile", cls=LazyGroup, lazy_commands=COMMANDS, context_settings={"help_option_names": ["-h", "--help"]}
)
@click.version_option(__version__, prog_name="nbcompile")
def main() -> None:
    """Compile NAS-Bench-101 cell specs into static PyTorch modules."""
