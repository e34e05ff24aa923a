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


def first_line(error: BaseException, *, with_type: bool = False, max_chars: int | None = None) -> str:
    """One line for ``error``: the first non-empty line of its message, or its type's name if it
    has none. The one way nbcompile cuts an error to a line.

    ``with_type``: prefix the type's name (``KeyError: 'x'``), for unexpected errors recorded as
    failures, whose message alone may say little; bad input (NbcompileError) is reported without.
    ``max_chars``: cut a longer line there, ending it with "..." (a parser's message may quote a
    whole payload). An error that only carries another one raised elsewhere, with the remote
    traceback as its own message (Ray's ``RayTaskError`` keeps the task's exception in
    ``cause``), is described by the one it carries.
    """
    error = _carried(error)
    lines = str(error).strip().splitlines()
    text = lines[0].strip() if lines else ""
    if not text:
        text = type(error).__name__
    elif with_type:
        text = f"{type(error).__name__}: {text}"
    if max_chars is not None and len(text) > max_chars:
        text = text[:max_chars] + "..."
    return text


def _carried(error: BaseException) -> BaseException:
    """The innermost exception that ``error`` carries in a ``cause`` attribute (task wrappers
    such as Ray's), else ``error`` itself."""
    seen = {id(error)}
    while isinstance(cause := getattr(error, "cause", None), BaseException) and id(cause) not in seen:
        seen.add(id(cause))
        error = cause
    return error
