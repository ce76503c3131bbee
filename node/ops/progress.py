"""Progress of long work: one utility for every long-running job of a process.

``with Progress("migration", total=n, unit="docs", ns=ns) as p: ... p.advance(k)`` shows a
bar on a terminal (``stream`` a TTY), or writes a log line at most every ``every_s`` seconds
(and one at the end) otherwise; while it runs, the work is listed by ``currentOp``
(:data:`node.ops.current.TASKS`, with ``progress: {done, total, unit}``) and can be asked to
stop there (``killOp`` sets :attr:`Progress.killed`, which the work may check).

Used by snapshot transfers and installs, index builds, chunk migrations, range deletions,
``removeShard`` draining, benchmark windows and preloads, and chaos runs.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any, TextIO

from node.ops.current import TASKS, Op

log = logging.getLogger("helogale.progress")

BAR_WIDTH = 30


class Progress:
    """One piece of long work (see module docstring)."""

    def __init__(self, what: str, total: int | None = None, *, unit: str = "", ns: str = "",
                 stream: TextIO | None = None, every_s: float = 5.0,
                 clock: Callable[[], float] = time.monotonic, **ids: Any) -> None:
        self.what = what
        self.total = total
        self.unit = unit
        self.done = 0
        self.ids = {k: str(v) for k, v in ids.items()}
        self.stream = stream
        self.tty = bool(stream is not None and getattr(stream, "isatty", lambda: False)())
        self.every_s = every_s
        self._clock = clock
        self._started = clock()
        self._last = self._started
        self.lines = 0
        """Log lines (or bar redraws) written so far."""
        self.op: Op = TASKS.add(what, ns, {what: ns or 1, **self.ids}, desc=what)
        self._publish()

    @property
    def killed(self) -> bool:
        return self.op.killed

    def _publish(self) -> None:
        self.op.progress = {"done": self.done, "total": self.total, "unit": self.unit}
        self.op.msg = self.text()

    def text(self) -> str:
        elapsed = self._clock() - self._started
        if self.total:
            pct = 100.0 * self.done / self.total
            body = f"{self.done}/{self.total} {self.unit} ({pct:.0f}%)".replace("  ", " ")
        else:
            body = f"{self.done} {self.unit}".rstrip()
        return f"{self.what}: {body} in {elapsed:.1f}s"

    def set(self, done: int, total: int | None = None) -> None:
        """Absolute progress (and, if it became known, the total)."""
        self.done = done
        if total is not None:
            self.total = total
        self._tick()

    def advance(self, n: int = 1) -> None:
        self.done += n
        self._tick()

    def _tick(self, final: bool = False) -> None:
        self._publish()
        now = self._clock()
        if not final and now - self._last < (0.1 if self.tty else self.every_s):
            return
        self._last = now
        self.lines += 1
        if self.tty:
            assert self.stream is not None
            self.stream.write("\r" + self.bar() + ("\n" if final else ""))
            self.stream.flush()
        else:
            log.info(self.text(), extra={"fields": {
                "c": "PROGRESS", "work": self.what, "done": self.done, "total": self.total,
                "unit": self.unit, **({"final": True} if final else {}), **self.ids}})

    def bar(self) -> str:
        if self.total:
            filled = int(BAR_WIDTH * min(self.done, self.total) / self.total)
            return f"[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {self.text()}"
        return self.text()

    def finish(self) -> None:
        if self.op.opid not in {o.opid for o in TASKS.ops()}:
            return
        self._tick(final=True)
        TASKS.remove(self.op)

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc is not None:
            self.op.msg = f"{self.text()} (failed: {exc})"
        self.finish()


def terminal() -> TextIO | None:
    """stderr when it is a terminal (a bar), else None (log lines)."""
    return sys.stderr if sys.stderr.isatty() else None
