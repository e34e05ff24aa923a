"""Process pools the way nbcompile uses them: results in submission order, a bounded window, and
workers that never outlive the process that started them.

Every pool of nbcompile goes through :func:`ordered_map`, which makes sure that

* a worker dies with its parent, even when the parent is killed with SIGKILL (on Linux the kernel
  sends the worker SIGKILL, ``prctl(PR_SET_PDEATHSIG)``; elsewhere a watchdog thread polls the
  parent's pid), so no orphan keeps running or keeps the caller's stdout and stderr open;
* SIGTERM to the parent tears the pool down like Ctrl-C does: the workers are killed, ``finally``
  blocks run (temporary files are removed) and the process exits with status 143;
* an error, or a consumer that stops early, kills the workers still running instead of waiting
  for them.
"""

from __future__ import annotations

import collections
import ctypes
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from typing import Any, TypeVar

Result = TypeVar("Result")

#: ``prctl`` option: the signal the kernel sends this process when its parent dies (Linux).
_PR_SET_PDEATHSIG = 1
#: Exit status after SIGTERM, as a shell reports a process killed by it.
EXIT_TERMINATED = 128 + signal.SIGTERM
#: Seconds between two looks at the parent's pid where ``prctl`` is not available.
_WATCH_SECONDS = 0.5


def available_cpus() -> int:
    """CPUs this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def _die_with_parent(parent_pid: int | None) -> None:
    """Make this (worker) process end when its parent does. ``parent_pid``: the pid the parent had
    when it started this worker (fork), or None where a helper process started it (forkserver,
    spawn): the current parent is then the one watched."""
    expected = os.getppid() if parent_pid is None else parent_pid
    armed = False
    if sys.platform.startswith("linux"):
        try:
            armed = ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0
        except (OSError, AttributeError):
            armed = False
    if os.getppid() != expected:  # the parent died before the signal was armed
        os._exit(1)
    if not armed:
        threading.Thread(target=_watch_parent, args=(expected,), daemon=True).start()


def _watch_parent(parent_pid: int) -> None:
    while os.getppid() == parent_pid:
        time.sleep(_WATCH_SECONDS)
    os._exit(1)


def start_worker(parent_pid: int | None, initializer: Callable[..., None] | None, initargs: tuple[Any, ...]) -> None:
    """Worker start-up: die with the parent, default signal handling, then the caller's initializer."""
    # a forked worker inherits the parent's handlers; Ctrl-C reaches the whole process group, and
    # the parent then kills the workers itself
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with_parent(parent_pid)
    if initializer is not None:
        initializer(*initargs)


class Terminated(SystemExit):
    """Raised in the main thread on SIGTERM while a pool runs; exits with status 143."""

    def __init__(self) -> None:
        super().__init__(EXIT_TERMINATED)


def _workers_of(pool: ProcessPoolExecutor) -> list[Any]:
    """The pool's worker processes (``multiprocessing.Process``) at this moment."""
    try:
        return list((getattr(pool, "_processes", None) or {}).values())
    except RuntimeError:  # the pool's own thread changed the table meanwhile: look again
        return list((getattr(pool, "_processes", None) or {}).values())


def _kill(processes: list[Any]) -> None:
    for process in processes:
        try:
            process.kill()
        except (OSError, ValueError, AttributeError):  # already gone, or never started
            pass


def kill_pool_workers(pool: ProcessPoolExecutor) -> None:
    """Stop ``pool`` now: nothing queued starts, running workers are killed, none is left behind."""
    processes = _workers_of(pool)
    _kill(processes)
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        process.join(5)


def _raise_terminated(signum: int, frame: Any) -> None:
    raise Terminated()


@contextmanager
def sigterm_unwinds() -> Iterator[None]:
    """While the block runs (in the main thread), SIGTERM raises :class:`Terminated`, so that
    ``finally`` blocks and context managers clean up as they do on Ctrl-C; the previous handler is
    restored after. A handler the program installed itself is left alone."""
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGTERM) != signal.SIG_DFL:
        yield
        return
    signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


#: Signals that stop a pool, the handlers they may have to be taken over, and what they raise.
_STOPPING_SIGNALS: tuple[tuple[signal.Signals, tuple[Any, ...], type[BaseException]], ...] = (
    (signal.SIGTERM, (signal.SIG_DFL, _raise_terminated), Terminated),
    (signal.SIGINT, (signal.default_int_handler,), KeyboardInterrupt),
)


@contextmanager
def _signals_stop(pool: ProcessPoolExecutor) -> Iterator[None]:
    """While the block runs, SIGTERM and SIGINT kill the pool's workers at once, then raise
    :class:`Terminated` or KeyboardInterrupt here, so that cleanup code runs. A signal whose handler
    the program changed is left alone, as is everything outside the main thread; the previous
    handlers are restored after the block."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    taken = []
    for number, expected, raised in _STOPPING_SIGNALS:
        previous = signal.getsignal(number)
        if previous in expected:

            def stop(signum: int, frame: Any, raised: type[BaseException] = raised) -> None:
                _kill(_workers_of(pool))  # no locks here: the interrupted code may hold the pool's
                raise raised()

            signal.signal(number, stop)
            taken.append((number, previous))
    try:
        yield
    finally:
        for number, previous in taken:
            signal.signal(number, previous)


def ordered_map(
    function: Callable[..., Result],
    tasks: Iterable[tuple[Any, ...]],
    workers: int,
    *,
    initializer: Callable[..., None] | None = None,
    initargs: tuple[Any, ...] = (),
) -> Iterator[Result]:
    """``function(*task)`` for every task, yielded in task order.

    With ``workers`` <= 1 everything runs here (``initializer`` is then not called). Otherwise a
    process pool runs them with at most ``2 * workers`` tasks in flight, so that a long task list
    is consumed lazily. On an error, SIGTERM, Ctrl-C or a consumer that stops early, the workers
    are killed; they also die if this process is killed (see the module docstring).
    """
    if workers <= 1:
        for task in tasks:
            yield function(*task)
        return
    context = multiprocessing.get_context()
    parent = os.getpid() if context.get_start_method() == "fork" else None
    pool = ProcessPoolExecutor(
        workers, mp_context=context, initializer=start_worker, initargs=(parent, initializer, initargs)
    )
    with _signals_stop(pool):
        finished = False
        try:
            pending: collections.deque = collections.deque()
            for task in tasks:
                pending.append(pool.submit(function, *task))
                if len(pending) > 2 * workers:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
            finished = True
        finally:
            if finished:
                pool.shutdown(wait=True)
            else:
                kill_pool_workers(pool)
