"""``errors.first_line``: the one way an error is cut to one line (CLI, dataset, bench, sweep)."""

from __future__ import annotations

import pytest

from nbcompile.errors import SpecError, first_line


def test_the_first_non_empty_line_without_or_with_the_type() -> None:
    error = RuntimeError("\n  CUDA out of memory.  \nTried to allocate 2.00 GiB\n")
    assert first_line(error) == "CUDA out of memory."
    assert first_line(error, with_type=True) == "RuntimeError: CUDA out of memory."
    assert first_line(KeyError("x"), with_type=True) == "KeyError: 'x'"
    assert first_line(SpecError("ops must be a list")) == "ops must be a list"


def test_an_empty_message_gives_the_type() -> None:
    assert first_line(RuntimeError()) == first_line(RuntimeError(" \n"), with_type=True) == "RuntimeError"


def test_a_long_line_is_cut() -> None:
    assert first_line(ValueError("x" * 150), max_chars=100) == "x" * 100 + "..."
    assert first_line(ValueError("x" * 100), max_chars=100) == "x" * 100


class _TaskError(Exception):
    """Like a task runner's wrapper: the remote traceback as message, the real error in ``cause``."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(f"task() (pid=1)\n  File 'job.py', line 3\n{type(cause).__name__}: {cause}\nmore")
        self.cause = cause


def test_a_wrapped_task_error_is_described_by_the_error_it_carries() -> None:
    inner = _TaskError(ValueError("bad cell\nsecond line"))
    assert first_line(_TaskError(inner), with_type=True) == "ValueError: bad cell"
    looped = _TaskError(ValueError("x"))
    looped.cause = looped  # a wrapper that carries itself must not loop
    assert first_line(looped) == "task() (pid=1)"


def test_a_ray_task_error_is_described_by_its_cause() -> None:
    exceptions = pytest.importorskip("ray.exceptions")
    traceback = "Traceback (most recent call last):\n  File 'job.py', line 3, in run\nValueError: bad cell\nsecond line"
    cause = ValueError("bad cell\nsecond line")
    error = exceptions.RayTaskError("run", traceback, cause, proctitle="ray::run", pid=1, ip="127.0.0.1")
    error = error.as_instanceof_cause()
    assert not str(error).startswith("bad cell")  # Ray's message is the traceback
    assert first_line(error, with_type=True) == "ValueError: bad cell"
