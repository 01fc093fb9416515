"""Background jobs with progress and cancel, so long work never blocks the GUI thread.

Task
----
Run a plain function (an engine call: alignment, matching, tempo, labelling) on a thread pool
and report back on the GUI thread. The function is called as
``fn(*args, progress=progress, cancel=cancel, **kwargs)`` where

- ``progress(fraction: float, message: str)`` may be called from the worker as often as it likes
  (reports are throttled to ~25 per second, the last one always passes);
- ``cancel()`` returns True once :meth:`Job.cancel` was called; the function should then stop by
  raising (``engine.align.Cancelled`` or :class:`JobCancelled`).

Signals of a :class:`Job` (all delivered on the GUI thread, through queued connections):
``progressed(fraction, message)``, ``partial(result)``, ``succeeded(result)``, ``failed(exception)``,
``cancelled()``, and ``finished()`` after any of the three. ``partial`` carries intermediate results
of a job submitted with ``publish=True``: its function is also given ``publish(result)`` (e.g. a
first picture before the full one); they arrive in order, before ``succeeded``, and never after
the job ended or was cancelled. A job that raised after cancel was requested counts
as cancelled. Exceptions that are not ``EarwormError`` (bugs) are still delivered to ``failed``
— the window shows them as a dialog instead of dying — and logged with their traceback.
"""
from __future__ import annotations

import logging
import threading
import time
import traceback
from typing import Any, Callable

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Qt, Signal, Slot

log = logging.getLogger(__name__)

PROGRESS_INTERVAL_S = 0.04


class JobCancelled(Exception):
    """Raised by a job function that noticed ``cancel()`` returned True."""


def _cancel_exception_types() -> tuple[type, ...]:
    types: list[type] = [JobCancelled]
    try:
        from engine.align import Cancelled

        types.append(Cancelled)
    except ImportError:  # the engine may not provide it in every build
        pass
    return tuple(types)


class Job(QObject):
    """One background job; see the module docstring for its signals."""

    progressed = Signal(float, str)
    partial = Signal(object)
    succeeded = Signal(object)
    failed = Signal(object)
    cancelled = Signal()
    finished = Signal()

    # Emitted from the worker thread; connected with QueuedConnection to the public signals.
    _worker_progress = Signal(float, str)
    _worker_partial = Signal(object)
    _worker_done = Signal(str, object)

    def __init__(self, name: str, fn: Callable, args: tuple, kwargs: dict, parent: QObject | None = None,
                 publish: bool = False):
        super().__init__(parent)
        self.name = name
        self._fn, self._args, self._kwargs = fn, args, dict(kwargs)
        if publish:
            self._kwargs["publish"] = self._publish
        self._cancel_event = threading.Event()
        self._last_progress_t = 0.0
        self.state = "queued"  # queued → running → succeeded | failed | cancelled
        self.result: Any = None
        self.error: BaseException | None = None
        self.fraction = 0.0
        self.message = ""
        self._worker_progress.connect(self._on_worker_progress, Qt.QueuedConnection)
        self._worker_partial.connect(self._on_worker_partial, Qt.QueuedConnection)
        self._worker_done.connect(self._on_worker_done, Qt.QueuedConnection)

    # -- called from the GUI thread -----------------------------------------------------------
    def cancel(self) -> None:
        """Ask the job to stop at its next checkpoint (returns at once)."""
        self._cancel_event.set()

    def is_cancel_requested(self) -> bool:
        return self._cancel_event.is_set()

    @property
    def done(self) -> bool:
        return self.state in ("succeeded", "failed", "cancelled")

    @Slot(float, str)
    def _on_worker_progress(self, fraction: float, message: str) -> None:
        if self.done:
            return
        self.fraction, self.message = fraction, message
        self.progressed.emit(fraction, message)

    @Slot(object)
    def _on_worker_partial(self, result: object) -> None:
        if not self.done and not self._cancel_event.is_set():
            self.partial.emit(result)

    @Slot(str, object)
    def _on_worker_done(self, state: str, payload: object) -> None:
        self.state = state
        if state == "succeeded":
            self.result = payload
            self.succeeded.emit(payload)
        elif state == "cancelled":
            self.cancelled.emit()
        else:
            self.error = payload  # type: ignore[assignment]
            self.failed.emit(payload)
        self.finished.emit()

    # -- called from the worker thread --------------------------------------------------------
    def _progress(self, fraction: float, message: str = "") -> None:
        now = time.monotonic()
        if fraction < 1.0 and now - self._last_progress_t < PROGRESS_INTERVAL_S:
            return
        self._last_progress_t = now
        self._worker_progress.emit(float(min(max(fraction, 0.0), 1.0)), str(message))

    def _publish(self, result: object) -> None:
        if not self._cancel_event.is_set():
            self._worker_partial.emit(result)

    def _run(self) -> None:
        self.state = "running"
        if self._cancel_event.is_set():
            self._worker_done.emit("cancelled", None)
            return
        try:
            result = self._fn(*self._args, progress=self._progress, cancel=self._cancel_event.is_set, **self._kwargs)
        except BaseException as exc:  # noqa: BLE001 - a worker must report, never die silently
            if self._cancel_event.is_set() or isinstance(exc, _cancel_exception_types()):
                self._worker_done.emit("cancelled", None)
                return
            from engine.errors import EarwormError

            if not isinstance(exc, EarwormError):
                log.error("job %r failed:\n%s", self.name, traceback.format_exc())
            self._worker_done.emit("failed", exc)
            return
        if self._cancel_event.is_set():
            self._worker_done.emit("cancelled", None)
        else:
            self._worker_done.emit("succeeded", result)


class _JobRunnable(QRunnable):
    def __init__(self, job: Job):
        super().__init__()
        self.job = job
        self.setAutoDelete(True)

    def run(self) -> None:
        self.job._run()


class JobRunner(QObject):
    """Starts :class:`Job` objects on a private thread pool and keeps track of the live ones.

    Parameters
    ----------
    max_threads : int
        Jobs that run at once; more wait in a queue.
    """

    job_started = Signal(object)   # Job
    job_finished = Signal(object)  # Job

    def __init__(self, parent: QObject | None = None, max_threads: int = 2):
        super().__init__(parent)
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(max_threads)
        self._jobs: list[Job] = []

    def submit(self, fn: Callable, *args, name: str = "", publish: bool = False, **kwargs) -> Job:
        """Run ``fn(*args, progress=..., cancel=..., **kwargs)`` in the background.

        With ``publish=True`` it is also given ``publish=``: each call becomes ``Job.partial``.
        """
        job = Job(name or getattr(fn, "__name__", "job"), fn, args, kwargs, parent=self, publish=publish)
        self._jobs.append(job)
        job.finished.connect(lambda j=job: self._on_finished(j))
        self.job_started.emit(job)
        self._pool.start(_JobRunnable(job))
        return job

    @property
    def active_jobs(self) -> list[Job]:
        return list(self._jobs)

    def cancel_all(self) -> None:
        for job in self._jobs:
            job.cancel()

    def wait(self, timeout_s: float = 30.0) -> bool:
        """Block until every started job returned (used on quit and in tests)."""
        return self._pool.waitForDone(int(timeout_s * 1000))

    def _on_finished(self, job: Job) -> None:
        if job in self._jobs:
            self._jobs.remove(job)
        self.job_finished.emit(job)
        job.setParent(None)  # ownership back to Python: freed once no one holds the Job
