"""CPU accounting of a match: the local workers' CPU is counted, per stage, whatever the load."""
from __future__ import annotations

import time

from engine.distributed import local_cpu_seconds, make_runner, run_all


def burn_cpu(seconds: float) -> float:
    """Spin for ``seconds`` of this process's CPU; return the CPU seconds it used (a worker task)."""
    start = time.process_time()
    x = 0
    while time.process_time() - start < seconds:
        x += 1
    return time.process_time() - start


def test_cpu_of_live_and_finished_workers_is_counted():
    before = local_cpu_seconds()
    with make_runner(None, 2) as runner:
        burnt = run_all(runner, burn_cpu, [(0.4,), (0.4,)])
        live = local_cpu_seconds()  # workers still running: read through psutil
    finished = local_cpu_seconds()  # workers reaped: counted in RUSAGE_CHILDREN
    assert sum(burnt) >= 0.8
    assert live - before >= 0.95 * sum(burnt)
    assert finished >= live - 0.05


def test_inline_runner_cpu_is_this_process():
    before = local_cpu_seconds()
    with make_runner(None, 1) as runner:
        burnt = run_all(runner, burn_cpu, [(0.2,)])
    assert local_cpu_seconds() - before >= 0.95 * burnt[0]
