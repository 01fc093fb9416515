"""Background jobs: results, progress, errors and cancellation arrive on the GUI thread."""
from __future__ import annotations

import threading
import time

import pytest
from PySide6.QtCore import QThread

from engine.errors import AudioError
from gui.workers import JobCancelled, JobRunner


@pytest.fixture
def runner(qtbot):
    r = JobRunner(max_threads=2)
    yield r
    r.cancel_all()
    r.wait(10)


def _count_to(n, progress, cancel, delay_s=0.002):
    threads = set()
    for i in range(n):
        if cancel():
            raise JobCancelled()
        threads.add(threading.get_ident())
        progress((i + 1) / n, f"step {i + 1}")
        time.sleep(delay_s)
    return {"total": sum(range(n)), "threads": threads}


def test_result_and_progress_arrive_on_the_gui_thread(qtbot, runner):
    gui_thread = QThread.currentThread()
    seen = []
    job = runner.submit(_count_to, 50, name="count")
    job.progressed.connect(lambda f, m: seen.append((f, m, QThread.currentThread() is gui_thread)))
    with qtbot.waitSignal(job.succeeded, timeout=10000) as blocker:
        pass
    result = blocker.args[0]
    assert result["total"] == sum(range(50))
    assert threading.get_ident() not in result["threads"]  # it really ran elsewhere
    assert seen and all(on_gui for _, _, on_gui in seen)
    assert seen[-1][0] == pytest.approx(1.0)  # the last report always passes the throttle
    assert [f for f, _, _ in seen] == sorted(f for f, _, _ in seen)
    assert job.state == "succeeded"


def test_cancel_stops_the_job(qtbot, runner):
    job = runner.submit(_count_to, 100000, delay_s=0.001)
    qtbot.waitUntil(lambda: job.fraction > 0, timeout=5000)
    with qtbot.waitSignal(job.cancelled, timeout=5000):
        job.cancel()
    assert job.state == "cancelled" and job.result is None
    assert job not in runner.active_jobs


def test_errors_are_delivered_not_raised(qtbot, runner):
    def bad_audio(progress, cancel):
        raise AudioError("/tmp/x.wav", "cannot decode audio (garbage)")

    def bug(progress, cancel):
        return 1 / 0

    job = runner.submit(bad_audio)
    with qtbot.waitSignal(job.failed, timeout=5000) as blocker:
        pass
    assert isinstance(blocker.args[0], AudioError) and "x.wav" in str(blocker.args[0])
    job2 = runner.submit(bug)
    with qtbot.waitSignal(job2.failed, timeout=5000) as blocker2:
        pass
    assert isinstance(blocker2.args[0], ZeroDivisionError)
    assert job2.state == "failed"


def test_finished_follows_every_outcome(qtbot, runner):
    finished = []
    jobs = [runner.submit(_count_to, 5), runner.submit(lambda progress, cancel: 1 / 0)]
    for j in jobs:
        j.finished.connect(lambda j=j: finished.append(j.state))
    qtbot.waitUntil(lambda: len(finished) == 2, timeout=5000)
    assert sorted(finished) == ["failed", "succeeded"]


def test_partial_results_arrive_in_order_before_the_result(qtbot, runner):
    gui_thread = QThread.currentThread()

    def stages(progress, cancel, publish):
        for k in range(3):
            publish({"stage": k})
            time.sleep(0.01)
        return "done"

    partial = []
    job = runner.submit(stages, publish=True)
    job.partial.connect(lambda r: partial.append((r["stage"], QThread.currentThread() is gui_thread, job.done)))
    with qtbot.waitSignal(job.succeeded, timeout=10000) as blocker:
        pass
    assert blocker.args == ["done"]
    assert partial == [(0, True, False), (1, True, False), (2, True, False)]


def test_no_partial_results_after_cancel(qtbot, runner):
    published = threading.Event()
    release = threading.Event()

    def slow(progress, cancel, publish):
        publish("early")
        published.set()
        release.wait(5)
        publish("late")  # the job was cancelled meanwhile: never delivered
        raise JobCancelled()

    seen = []
    job = runner.submit(slow, publish=True)
    job.partial.connect(seen.append)
    assert published.wait(5)
    qtbot.waitUntil(lambda: seen == ["early"], timeout=5000)
    job.cancel()
    release.set()
    with qtbot.waitSignal(job.cancelled, timeout=5000):
        pass
    assert seen == ["early"]


def test_functions_without_publish_are_called_as_before(qtbot, runner):
    job = runner.submit(_count_to, 3)  # no ``publish`` keyword
    with qtbot.waitSignal(job.succeeded, timeout=10000):
        pass
    assert job.result["total"] == 3
