"""Process pools the way nbcompile uses them: results in submission order, a bounded window."""

from __future__ import annotations

import collections
import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from typing import Any, TypeVar

Result = TypeVar("Result")


def available_cpus() -> int:
    """CPUs this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


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
    is consumed lazily; on an error the tasks not started are cancelled.
    """
    if workers <= 1:
        for task in tasks:
            yield function(*task)
        return
    with ProcessPoolExecutor(workers, initializer=initializer, initargs=initargs) as pool:
        pending: collections.deque = collections.deque()
        try:
            for task in tasks:
                pending.append(pool.submit(function, *task))
                if len(pending) > 2 * workers:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        except BaseException:
            for future in pending:
                future.cancel()
            raise
