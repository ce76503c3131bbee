"""``maxTimeMS``: the time budget of one operation, and MongoDB's MaxTimeMSExpired (50).

A :class:`TimeBudget` counts only the time the operation spends running (as mongod does for a
cursor: the find's ``maxTimeMS`` is spent across its ``getMore``s, not while the client is
away). Reads run their engine work inside :meth:`TimeBudget.running`, which installs the
budget's check at the engine's interrupt points (:mod:`node.engine.interrupt`). Writes bound
their wait for the log instead (see ``WriteConcern.max_time_ms``): a write that has been
proposed is never undone, exactly as ``wtimeout``.

``killOp`` goes through the same check: a budget also raises Interrupted (11601) once the
context's current operation (:mod:`node.ops.current`) was killed, so a killed read stops at
its next interrupt point whether or not it had a ``maxTimeMS``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from node.engine import interrupt
from node.engine.errors import MongoError
from node.ops import current as ops_current

MAX_TIME_MS_EXPIRED = 50


def max_time_expired() -> MongoError:
    return MongoError(MAX_TIME_MS_EXPIRED, "operation exceeded time limit",
                      code_name="MaxTimeMSExpired")


class TimeBudget:
    """``max_time_ms`` of running time (0: unlimited)."""

    def __init__(self, max_time_ms: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit_s = max_time_ms / 1000.0
        self._clock = clock
        self._used = 0.0
        self._started: float | None = None

    @property
    def unlimited(self) -> bool:
        return self.limit_s <= 0

    def check(self) -> None:
        """Raise Interrupted when the current op was killed, MaxTimeMSExpired once the
        running time passed the limit."""
        ops_current.check_killed()
        if self.unlimited:
            return
        used = self._used
        if self._started is not None:
            used += self._clock() - self._started
        if used >= self.limit_s:
            raise max_time_expired()

    def remaining_s(self) -> float:
        """Running time left (infinite when unlimited); negative once spent."""
        if self.unlimited:
            return float("inf")
        used = self._used
        if self._started is not None:
            used += self._clock() - self._started
        return self.limit_s - used

    @contextmanager
    def running(self) -> Iterator[None]:
        """Count the body's time against the budget; the engine's scans check it."""
        if self.unlimited:  # nothing to count (UNLIMITED is shared by every thread)
            if ops_current.current() is None:
                yield
                return
            with interrupt.interruptible(self.check):  # killOp still stops it
                self.check()
                yield
            return
        self._started = self._clock()
        try:
            with interrupt.interruptible(self.check):
                self.check()
                yield
        finally:
            self._used += self._clock() - self._started
            self._started = None


UNLIMITED = TimeBudget(0)
