"""How the command line runs a command: commands imported when needed, bad input as one line.

Every command below the root group gets, from the group, what nbcompile promises of bad input:
one ``nbcompile: error: ...`` line on stderr and exit code 2, no traceback; warnings one line
each; SIGTERM unwinding like Ctrl-C; a closed stdout ending the command quietly. This module
imports only click and the standard library, so that ``nbcompile --help`` stays fast.
"""

from __future__ import annotations

import importlib
import os
import sys
import warnings
from collections.abc import Mapping
from typing import Any, NamedTuple, NoReturn

import click

from nbcompile.errors import NbcompileError, first_line

#: Exit code for bad input (specs, options, files), as click uses for usage errors.
EXIT_BAD_INPUT = 2
#: What a command raises for bad input: reported in one line, not as a traceback.
BAD_INPUT = (NbcompileError, OSError)


def fail(message: str) -> NoReturn:
    """Print ``nbcompile: error: MESSAGE`` on stderr and exit with EXIT_BAD_INPUT."""
    click.echo(f"nbcompile: error: {message}", err=True)
    sys.exit(EXIT_BAD_INPUT)


def flag_for(field: str) -> str:
    """The command-line flag of a library keyword or config field: ``stem_channels`` → ``--stem-channels``."""
    return "--" + field.replace("_", "-")


def error_line(error: BaseException) -> str:
    """One line for ``error``; a ConfigError's field is named by its command-line flag."""
    message = first_line(error)
    field = getattr(error, "field", None)
    if field and message.startswith(field):
        message = flag_for(field) + message[len(field) :]
    return message


def _warning_line(message, category, filename, lineno, file=None, line=None) -> None:
    click.echo(
        f"nbcompile: warning: {first_line(message if isinstance(message, Warning) else Warning(message))}", err=True
    )


class OneLineErrorGroup(click.Group):
    """A click group whose commands (nested groups' included) report bad input in one line on
    stderr with exit code 2, as do its usage errors; warnings are one line each
    (``nbcompile: warning: ...``); SIGTERM unwinds like Ctrl-C (temporary files are removed,
    worker processes killed) and exits with status 143; a reader that goes away (``| head``)
    ends the command quietly with status 1."""

    def main(self, *args: Any, **kwargs: Any) -> NoReturn:
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

    def invoke(self, ctx: click.Context) -> Any:
        from nbcompile.parallel import sigterm_unwinds

        try:
            with warnings.catch_warnings(), sigterm_unwinds():
                warnings.showwarning = _warning_line
                return super().invoke(ctx)
        except BrokenPipeError:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            sys.exit(1)
        except BAD_INPUT as error:
            fail(error_line(error))


class LazyCommand(NamedTuple):
    """Where a command is defined (``module:attribute``) and its line in the group's help."""

    target: str
    short_help: str

    def load(self) -> click.Command:
        module, _, attribute = self.target.partition(":")
        return getattr(importlib.import_module(module), attribute)


class LazyGroup(OneLineErrorGroup):
    """A group whose ``lazy_commands`` are imported when run or when their own help is shown; its
    help lists them from their entries alone, importing none. Commands added the usual way
    (``add_command``) are listed too."""

    def __init__(self, *args: Any, lazy_commands: Mapping[str, LazyCommand], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy_commands = dict(lazy_commands)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *self.lazy_commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = self.lazy_commands.get(cmd_name)
        return entry.load() if entry else super().get_command(ctx, cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Commands"):
            formatter.write_dl([(name, self._short_help(name)) for name in self.list_commands(ctx)])

    def _short_help(self, name: str) -> str:
        entry = self.lazy_commands.get(name)
        return entry.short_help if entry else self.commands[name].get_short_help_str()
