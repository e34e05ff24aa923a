"""Exceptions raised by nbcompile: one base class, so that a caller (the CLI) catches one type."""

from __future__ import annotations


class NbcompileError(Exception):
    """Base of every error nbcompile raises for bad input; the message is one line."""


class SpecError(NbcompileError, ValueError):
    """A cell spec is malformed: not a square 0/1 upper-triangular matrix with a matching op list."""


class OutOfDomainError(NbcompileError, ValueError):
    """A well-formed cell lies outside the NAS-Bench-101 search space (after pruning)."""


class ConfigError(NbcompileError, ValueError):
    """A network configuration value is not usable (e.g. too few channels for the cell).

    ``field`` names the offending NetworkConfig field or option, when there is one, so that a
    front end can name its own flag for it.
    """

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class DatasetError(NbcompileError, ValueError):
    """A dataset file is malformed; the message names the record index and byte offset."""


class UnknownCellError(NbcompileError, KeyError):
    """A valid cell that the dataset file does not hold."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class MissingDependencyError(NbcompileError, ImportError):
    """An optional package a feature needs is not installed; the message names the extra."""


def first_line(error: BaseException) -> str:
    """The first non-empty line of an error's message, or its type's name if it has none."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
