"""The background-job loop shared by the TTL monitor, reapers, range deleter and recovery."""

from __future__ import annotations

import logging
import threading

from node.server.periodic import Periodic

log = logging.getLogger("test.periodic")


def test_a_failing_pass_does_not_end_the_job_and_wake_runs_it_at_once() -> None:
    ran = threading.Event()
    calls: list[int] = []

    def tick() -> None:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("first pass fails")
        ran.set()

    job = Periodic("t", tick, 3600.0, log)  # the interval alone would never fire in this test
    job.start()
    job.wake()
    job.wake()
    try:
        while not ran.is_set():
            job.wake()
            assert ran.wait(0.05) or job.is_alive()
    finally:
        job.stop()
    assert len(calls) >= 2
    assert not job.is_alive()


def test_a_pass_runs_only_while_allowed() -> None:
    allowed = threading.Event()
    seen = threading.Event()
    checks = threading.Semaphore(0)

    def gate() -> bool:
        checks.release()
        return allowed.is_set()

    job = Periodic("t", seen.set, 3600.0, log, allowed=gate)
    job.start()
    try:
        for _ in range(3):
            job.wake()
            assert checks.acquire(timeout=5)
        assert not seen.is_set()
        allowed.set()
        job.wake()
        assert seen.wait(5)
    finally:
        job.stop()
