"""nbcompile.parallel: process pools that stop their workers at once on an error or an early stop,
signal handlers restored, and SIGTERM unwinding like Ctrl-C."""

from __future__ import annotations

import os
import signal
import time

import pytest

from nbcompile.parallel import ordered_map


def _pid_after(seconds: float, value: int) -> int:
    time.sleep(seconds)
    if value < 0:
        raise ValueError("a task failed")
    return os.getpid()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as handle:  # a zombie is as good as gone
        return handle.read().rsplit(")", 1)[1].split()[0] != "Z"


def test_an_error_kills_the_other_workers_instead_of_waiting(tmp_path) -> None:
    started = time.monotonic()
    tasks = [(0.0, 1), (0.0, 2), (0.2, -1), (60.0, 3), (60.0, 4)]
    results = ordered_map(_pid_after, tasks, 2)
    pids = [next(results), next(results)]
    with pytest.raises(ValueError, match="a task failed"):
        next(results)
    assert time.monotonic() - started < 30  # did not wait for the 60-second tasks
    assert not any(_alive(pid) for pid in set(pids))


def test_a_consumer_that_stops_early_kills_the_workers() -> None:
    results = ordered_map(_pid_after, [(0.0, 1), (0.0, 2)] + [(60.0, i) for i in range(6)], 2)
    pids = {next(results), next(results)}
    results.close()
    assert not any(_alive(pid) for pid in pids)


def test_signal_handlers_are_restored_after_a_pool() -> None:
    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    seen = []
    for _pid in ordered_map(_pid_after, [(0.0, i) for i in range(4)], 2):
        seen.append(signal.getsignal(signal.SIGTERM))
    assert all(handler not in (signal.SIG_DFL, before[0]) for handler in seen)  # taken over meanwhile
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before


def test_workers_get_the_default_sigterm_and_ignore_sigint() -> None:
    handlers = list(ordered_map(_handlers, [()] * 2, 2))
    assert handlers == [(int(signal.SIG_DFL), int(signal.SIG_IGN))] * 2


def _handlers() -> tuple[int, int]:
    return int(signal.getsignal(signal.SIGTERM)), int(signal.getsignal(signal.SIGINT))


def test_sigterm_unwinds_and_restores_the_handler(tmp_path) -> None:
    from nbcompile.fileio import atomic_output
    from nbcompile.parallel import Terminated, sigterm_unwinds

    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(Terminated) as caught, sigterm_unwinds(), atomic_output(tmp_path / "out.txt") as temporary:
        temporary.write_text("partly written")
        os.kill(os.getpid(), signal.SIGTERM)  # arrives while the file is written
        time.sleep(5)
    assert caught.value.code == 143
    assert list(tmp_path.iterdir()) == []  # the temporary file was removed, as on Ctrl-C
    assert signal.getsignal(signal.SIGTERM) == before
