"""Running batch work on all local cores, or on a Dask cluster.

Task
----
A batch job (features of a library, alignments of candidate pairs) is many calls of one plain
function. A :class:`BatchRunner` runs ``fn(*args)`` for a list of argument tuples and yields
``(index, result)`` as each call finishes, so that the caller can store results as they arrive
(an interrupted job then resumes from them) and report progress.

- :class:`InlineRunner`: in this process, one call after the other (``n_workers=1``; tests, debugging);
- :class:`ProcessRunner`: all local cores, a ``concurrent.futures`` process pool (spawned
  workers, so no thread or lock state is inherited);
- :class:`DaskRunner`: a ``dask.distributed`` cluster given by its scheduler address
  (``tcp://host:port``) or an existing ``distributed.Client``.

Conventions
-----------
- Only paths, parameters (plain dicts, numbers, strings) travel to the workers, and only numpy
  arrays and plain values come back: workers never unpickle user data, and a task function
  reports bad input by returning ``{"error": reason}`` rather than raising (exceptions of user
  data would have to be pickled; a raised exception is a bug and propagates).
- Task functions must be importable top-level functions (workers import them by name).
- At most ``window`` calls are in flight at once, so that cancelling is quick and memory stays
  bounded; ``cancel()`` is polled between results and stops the job (:class:`JobCancelled`).
"""
from __future__ import annotations

import os
import time
from collections import deque
from typing import Callable, Iterable, Iterator, Sequence

from engine.errors import EarwormError


class ClusterError(EarwormError):
    """The Dask scheduler cannot be reached or the cluster has no workers."""


class JobCancelled(Exception):
    """Raised from :meth:`BatchRunner.run` when its ``cancel()`` returned True."""


def local_cores() -> int:
    """Cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


class BatchRunner:
    """Base class: runs a function over argument tuples; see the module docstring."""

    n_workers: int = 1
    description: str = ""

    def run(self, fn: Callable, arg_tuples: Sequence[tuple], cancel: Callable[[], bool] | None = None
            ) -> Iterator[tuple[int, object]]:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class InlineRunner(BatchRunner):
    """Every call in this process, in order."""

    description = "in this process"

    def run(self, fn, arg_tuples, cancel=None):
        for index, args in enumerate(arg_tuples):
            if cancel is not None and cancel():
                raise JobCancelled()
            yield index, fn(*args)


def _windowed(submit, wait_first, cancel_all, arg_tuples, window, cancel):
    """Keep ``window`` futures in flight; yield (index, result) as they complete."""
    pending = deque(enumerate(arg_tuples))
    running = {}
    try:
        while pending or running:
            while pending and len(running) < window:
                index, args = pending.popleft()
                running[submit(args)] = index
            if cancel is not None and cancel():
                raise JobCancelled()
            for future in wait_first(list(running)):
                index = running.pop(future)
                yield index, future.result()
            if cancel is not None and cancel():
                raise JobCancelled()
    except BaseException:
        cancel_all(list(running))
        raise


class ProcessRunner(BatchRunner):
    """A pool of ``n_workers`` spawned local processes (all cores by default)."""

    def __init__(self, n_workers: int | None = None):
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        self.n_workers = n_workers or local_cores()
        self.description = f"{self.n_workers} local processes"
        self._pool = ProcessPoolExecutor(max_workers=self.n_workers, mp_context=multiprocessing.get_context("spawn"))

    def run(self, fn, arg_tuples, cancel=None):
        from concurrent.futures import FIRST_COMPLETED, wait

        def wait_first(futures):
            return wait(futures, timeout=0.5, return_when=FIRST_COMPLETED)[0]

        def cancel_all(futures):
            for f in futures:
                f.cancel()

        yield from _windowed(lambda args: self._pool.submit(fn, *args), wait_first, cancel_all, arg_tuples,
                             4 * self.n_workers, cancel)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


class DaskRunner(BatchRunner):
    """Calls run on a ``dask.distributed`` cluster.

    Parameters
    ----------
    scheduler : str or distributed.Client
        ``tcp://host:port`` of a running scheduler, or a connected client (not closed by us).
    timeout_s : float
        How long to wait for the scheduler before :class:`ClusterError`.
    """

    def __init__(self, scheduler, timeout_s: float = 15.0):
        from distributed import Client

        if isinstance(scheduler, Client):
            self._client, self._own = scheduler, False
        else:
            try:
                self._client = Client(scheduler, timeout=f"{timeout_s}s", set_as_default=False)
            except (OSError, TimeoutError, ValueError) as exc:
                raise ClusterError(str(scheduler), f"cannot connect to the Dask scheduler ({exc})") from None
            self._own = True
        threads = self._client.nthreads()
        if not threads:
            try:
                self._client.wait_for_workers(1, timeout=timeout_s)
            except (OSError, TimeoutError) as exc:
                raise ClusterError(str(self._client.scheduler.address), f"the cluster has no workers ({exc})") from None
            threads = self._client.nthreads()
        self.n_workers = max(1, sum(threads.values()))
        self.description = f"Dask cluster {self._client.scheduler.address} ({len(threads)} workers, {self.n_workers} threads)"

    def run(self, fn, arg_tuples, cancel=None):
        def wait_first(futures):
            # distributed.wait needs a default client; polling our own futures does not.
            deadline = time.monotonic() + 0.5
            while True:
                done = [f for f in futures if f.done()]
                if done or time.monotonic() > deadline:
                    return done
                time.sleep(0.005)

        def submit(args):
            return self._client.submit(fn, *args, pure=False)

        def cancel_all(futures):
            if futures:
                self._client.cancel(futures)

        yield from _windowed(submit, wait_first, cancel_all, arg_tuples, 4 * self.n_workers, cancel)

    def close(self) -> None:
        if self._own:
            self._client.close()


def make_runner(scheduler=None, n_workers: int | None = None) -> BatchRunner:
    """The runner for a job: a Dask cluster when ``scheduler`` is given, else local cores.

    ``n_workers=1`` (without a scheduler) runs everything in this process.
    """
    if scheduler:
        return DaskRunner(scheduler)
    n = n_workers or local_cores()
    return InlineRunner() if n <= 1 else ProcessRunner(n)


def local_cpu_seconds() -> float:
    """CPU seconds (user + system) used so far by this process and its local worker processes.

    Live descendants are read with psutil (a dependency of dask.distributed); finished ones count
    through ``RUSAGE_CHILDREN`` once reaped. The difference between two calls is the CPU a stage
    used on this machine whatever the load (work on a Dask cluster's other machines is not seen).
    """
    try:
        import resource

        reaped = resource.getrusage(resource.RUSAGE_CHILDREN)
        total = time.process_time() + reaped.ru_utime + reaped.ru_stime
    except ImportError:  # not on a Unix
        total = time.process_time()
    try:
        import psutil

        for child in psutil.Process().children(recursive=True):
            try:
                t = child.cpu_times()
                total += t.user + t.system + t.children_user + t.children_system
            except psutil.Error:  # ended meanwhile: counted when reaped
                continue
    except ImportError:
        pass
    return float(total)


def run_all(runner: BatchRunner, fn: Callable, arg_tuples: Iterable[tuple], cancel=None) -> list:
    """Every result, in the order of ``arg_tuples`` (a convenience over :meth:`BatchRunner.run`)."""
    arg_tuples = list(arg_tuples)
    out = [None] * len(arg_tuples)
    for index, result in runner.run(fn, arg_tuples, cancel):
        out[index] = result
    return out
