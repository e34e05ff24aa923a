"""Many independent tasks run to completion: finished ones skipped, failures retried, every
outcome recorded as it arrives, in this process, in a local process pool or as Ray tasks.

A task is anything the caller's ``function(task, settings, attempt)`` can run; ``settings`` is
what every task shares and ``attempt`` counts from 1. :func:`run_tasks` submits the tasks not
finished yet to an :class:`Executor`, retries a failed attempt up to ``max_attempts`` times and
then records the task as failed without stopping the others; an :class:`~nbcompile.errors.NbcompileError`
(bad input, the same for every task) stops everything at once. The caller's ``record`` writes
each outcome (atomically, so that a rerun skips exactly the finished tasks). The training sweep
(:mod:`nbcompile.train.sweep`) and the search study (:mod:`nbcompile.search.study`) both run on this.
"""

from __future__ import annotations

import collections
import concurrent.futures
import multiprocessing
import os
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from nbcompile.errors import NbcompileError, first_line
from nbcompile.parallel import kill_pool_workers, start_worker

Task = TypeVar("Task")
#: ``function(task, settings, attempt)``: one attempt at one task.
AttemptFunction = Callable[..., Any]


class Executor(Protocol):
    """Runs attempts; ``slots`` is how many may be in flight at once."""

    slots: int

    def submit(self, task: Any, attempt: int) -> concurrent.futures.Future: ...

    def close(self) -> None: ...


@dataclass
class TaskSummary:
    """What :func:`run_tasks` did."""

    finished_before: int = 0
    succeeded: int = 0
    failed: int = 0
    retries: int = 0


def run_tasks(
    tasks: Sequence[Task],
    executor: Executor,
    record: Callable[[Task, Any, list[str]], None],
    *,
    key: Callable[[Task], Hashable] = lambda task: task,
    is_finished: Callable[[Task], bool] = lambda task: False,
    max_attempts: int = 1,
) -> TaskSummary:
    """Run every task that ``is_finished`` does not skip; ``record(task, result, errors)`` gets each
    outcome: the result (None once ``max_attempts`` attempts have failed) and the failed attempts'
    errors, one line each (``"attempt 2: ValueError: ..."``). An NbcompileError stops the run at
    once. ``executor`` is closed at the end, whatever happens."""
    summary = TaskSummary()
    pending: collections.deque = collections.deque()
    for task in tasks:
        if is_finished(task):
            summary.finished_before += 1
        else:
            pending.append((task, 1))
    errors: dict[Hashable, list[str]] = collections.defaultdict(list)
    in_flight: dict[concurrent.futures.Future, tuple[Task, int]] = {}
    try:
        while pending or in_flight:
            while pending and len(in_flight) < executor.slots:
                task, attempt = pending.popleft()
                in_flight[executor.submit(task, attempt)] = (task, attempt)
            done, _ = concurrent.futures.wait(in_flight, return_when=concurrent.futures.FIRST_COMPLETED)
            for future in done:
                task, attempt = in_flight.pop(future)
                try:
                    result = future.result()
                except NbcompileError:
                    raise
                except Exception as error:
                    errors[key(task)].append(f"attempt {attempt}: {first_line(error, with_type=True)}")
                    if attempt < max_attempts:
                        summary.retries += 1
                        pending.appendleft((task, attempt + 1))
                        continue
                    result = None
                    summary.failed += 1
                else:
                    summary.succeeded += 1
                record(task, result, errors.pop(key(task), []))
    finally:
        for future in in_flight:
            future.cancel()
        executor.close()
    return summary


class InProcess:
    """Attempts one after another in this process."""

    slots = 1

    def __init__(self, function: AttemptFunction, settings: Any) -> None:
        self.function, self.settings = function, settings

    def submit(self, task: Any, attempt: int) -> concurrent.futures.Future:
        future: concurrent.futures.Future = concurrent.futures.Future()
        try:
            future.set_result(self.function(task, self.settings, attempt))
        except Exception as error:
            future.set_exception(error)
        return future

    def close(self) -> None:
        pass


class ProcessPool:
    """A pool of ``workers`` local processes, each taking the next attempt when it finishes one.
    Workers die with this process (:func:`nbcompile.parallel.start_worker`); ``initializer`` runs
    in each, with the arguments ``initargs()`` gives when the pool starts.

    A worker that dies (killed, out of memory) breaks the pool: every attempt in flight then fails
    with BrokenProcessPool, :func:`run_tasks` retries them like any other failure, and the next
    submission starts a fresh pool. (The pool cannot tell which worker died, so the attempts of the
    others count as failed too.) Closed with attempts still running (an error, Ctrl-C), it kills
    its workers rather than wait for them."""

    def __init__(
        self,
        function: AttemptFunction,
        settings: Any,
        workers: int,
        *,
        initializer: Callable[..., None] | None = None,
        initargs: Callable[[], tuple[Any, ...]] = tuple,
        start_method: str | None = None,
    ) -> None:
        self.function, self.settings, self.slots = function, settings, workers
        self._context = multiprocessing.get_context(start_method)
        self._initializer, self._initargs = initializer, initargs
        self.restarts = 0
        self._futures: list[concurrent.futures.Future] = []
        self._pool = self._start_pool()

    def _start_pool(self) -> concurrent.futures.ProcessPoolExecutor:
        parent = os.getpid() if self._context.get_start_method() == "fork" else None
        return concurrent.futures.ProcessPoolExecutor(
            self.slots,
            mp_context=self._context,
            initializer=start_worker,
            initargs=(parent, self._initializer, self._initargs()),
        )

    def submit(self, task: Any, attempt: int) -> concurrent.futures.Future:
        arguments = (self.function, task, self.settings, attempt)
        try:
            future = self._pool.submit(*arguments)
        except concurrent.futures.BrokenExecutor:  # the pool lost a worker
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = self._start_pool()
            self.restarts += 1
            future = self._pool.submit(*arguments)
        self._futures = [f for f in self._futures if not f.done()] + [future]
        return future

    def close(self) -> None:
        if any(not future.done() for future in self._futures):
            kill_pool_workers(self._pool)
        else:
            self._pool.shutdown(wait=True)


class RayTasks:
    """Every attempt a Ray task of one CPU (and ``num_gpus`` GPUs). Ray is started here unless it
    runs already (``address``: a cluster's, or 'auto'; none starts a local instance of ``num_cpus``
    CPUs). ``function`` and ``settings`` must be usable on every worker (nbcompile installed there,
    paths readable). A worker that dies mid-task fails its attempt, which is then retried."""

    slots = 100_000

    def __init__(
        self,
        function: AttemptFunction,
        settings: Any,
        address: str | None = None,
        num_cpus: int | None = None,
        num_gpus: float = 0,
    ) -> None:
        import ray

        self._ray = ray
        self._owns_ray = not ray.is_initialized()
        if self._owns_ray:
            local = {} if address else {"num_cpus": num_cpus}
            ray.init(address=address or None, include_dashboard=False, log_to_driver=False, **local)
        self.settings = settings
        self._remote = ray.remote(function).options(num_cpus=1, num_gpus=num_gpus, max_retries=0)
        self._refs: list[Any] = []

    def submit(self, task: Any, attempt: int) -> concurrent.futures.Future:
        ref = self._remote.remote(task, self.settings, attempt)
        self._refs.append(ref)
        return ref.future()

    def close(self) -> None:
        for ref in self._refs:
            try:
                self._ray.cancel(ref, force=True)
            except Exception:
                pass
        if self._owns_ray:
            self._ray.shutdown()
