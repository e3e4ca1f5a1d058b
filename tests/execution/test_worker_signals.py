"""Ctrl-C belongs to the coordinator: worker processes ignore SIGINT.

A terminal's Ctrl-C reaches the whole process group; a worker that took it would die mid-message
(the coordinator replaces it and re-runs the block: the result stays right) and print a
``KeyboardInterrupt`` traceback for every worker. The coordinator stops its workers itself."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from paraexec.execution.parallel.transport import WorkerPool

SIGINT_BIT = 1 << (signal.SIGINT - 1)


def ignores_sigint(pid: int) -> bool:
    with open(f"/proc/{pid}/status") as status:
        fields = dict(line.split(":\t", 1) for line in status if ":\t" in line)
    return bool(int(fields["SigIgn"], 16) & SIGINT_BIT)


def wait_until(condition, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="reads /proc")
@pytest.mark.parametrize("from_main_thread", [True, False])
def test_workers_ignore_sigint_and_the_coordinator_keeps_its_handler(from_main_thread):
    handler = signal.getsignal(signal.SIGINT)
    pool = WorkerPool(2)
    try:
        if from_main_thread:  # inherited through the exec (and set again in worker.main)
            pool.start()
        else:  # as the node's producer thread starts them: ignored once ``worker.main`` runs
            starter = threading.Thread(target=pool.start)
            starter.start()
            starter.join()
        assert wait_until(lambda: all(ignores_sigint(pid) for pid in pool.pids()))
        for pid in pool.pids():
            os.kill(pid, signal.SIGINT)
        time.sleep(0.3)
        assert all(proc.is_alive() for proc in pool.procs)
        assert signal.getsignal(signal.SIGINT) is handler
        assert signal.SIGINT not in signal.pthread_sigmask(signal.SIG_BLOCK, set())
    finally:
        pool.stop()
