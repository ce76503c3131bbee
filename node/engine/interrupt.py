"""Cooperative interruption of long reads: the points where a scan may be stopped.

The engine never looks at a clock. A caller that wants a read bounded (``maxTimeMS``) runs it
inside :func:`interruptible` with a check function; the engine's scan loops call
:func:`check` every few hundred records examined, and the check raises (MaxTimeMSExpired) to
end the read. The check lives in a context variable, so it follows the thread that pulls a
lazy result (a cursor's ``getMore`` sets its own), and applying log entries, which never sets
one, can never be interrupted: every member applies every entry the same way.

:func:`report_plan` lets the planner tell an observer (the current operation, for
``currentOp`` and the slow-operation log) which plan a read runs and its live counters; the
observer is installed by :mod:`node.ops.current`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

CHECK_EVERY = 256
"""Records (or index keys) examined between two checks (a power of two: ``n & MASK``)."""
MASK = CHECK_EVERY - 1

_current: ContextVar[Callable[[], None] | None] = ContextVar("helogale_interrupt",
                                                              default=None)


def check() -> None:
    """Raise if the read running in this context must stop (no-op outside one)."""
    fn = _current.get()
    if fn is not None:
        fn()


@contextmanager
def interruptible(fn: Callable[[], None]) -> Iterator[None]:
    """Run the body with ``fn`` as the check the engine's scan loops call."""
    token = _current.set(fn)
    try:
        yield
    finally:
        _current.reset(token)


plan_sink: Callable[[str, Any], None] | None = None
"""Called with (plan summary, live Stats) when a read starts its plan."""


def report_plan(summary: str, stats: Any) -> None:
    """Tell the observer (if any) the plan and counters of the read starting now."""
    if plan_sink is not None:
        plan_sink(summary, stats)
