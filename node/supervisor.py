"""Restart processes that die, as a container runtime's restart policy would: ``helogale up``
watches every member and router it started; one that exits (crash, SIGKILL, a member's fatal
exit 3) is started again after a backoff that doubles from :data:`FIRST_BACKOFF_S` to
:data:`MAX_BACKOFF_S` and goes back to the first step once the process has stayed up
:data:`STABLE_AFTER_S`. Each restart prints one line. ``helogale up --no-restart`` turns it off
(the chaos harness kills members on purpose and does its own restarting).

The supervisor only polls ``alive`` and calls ``restart``; the clock and the wait are
injectable so the backoff can be tested without sleeping."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

FIRST_BACKOFF_S = 0.5
MAX_BACKOFF_S = 30.0
STABLE_AFTER_S = 60.0
POLL_S = 0.2


@dataclass
class Watched:
    """One supervised process: a name for the log line, whether it runs, how to start it,
    and its exit status (for the log line)."""

    name: str
    alive: Callable[[], bool]
    restart: Callable[[], None]
    status: Callable[[], int | None] = lambda: None
    backoff: float = FIRST_BACKOFF_S
    due: float | None = None
    """When the pending restart is due (None: running, or not noticed dead yet)."""
    up_since: float = 0.0
    restarts: int = field(default=0)


class Supervisor:
    """Polls the watched processes and restarts those that died (see module docstring)."""

    def __init__(self, say: Callable[[str], None], *, clock: Callable[[], float] = time.monotonic,
                 first: float = FIRST_BACKOFF_S, maximum: float = MAX_BACKOFF_S,
                 stable_after: float = STABLE_AFTER_S) -> None:
        self.say = say
        self.clock = clock
        self.first, self.maximum, self.stable_after = first, maximum, stable_after
        self.watched: list[Watched] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def watch(self, name: str, alive: Callable[[], bool], restart: Callable[[], None],
              status: Callable[[], int | None] = lambda: None) -> None:
        with self._lock:
            self.watched.append(Watched(name, alive, restart, status, self.first,
                                        up_since=self.clock()))

    def check(self) -> None:
        """One pass: notice deaths, restart those whose backoff has run out."""
        now = self.clock()
        with self._lock:
            for w in self.watched:
                if self._stop.is_set():
                    return
                if w.alive():
                    if w.due is None and now - w.up_since >= self.stable_after:
                        w.backoff = self.first
                    continue
                if w.due is None:
                    if now - w.up_since >= self.stable_after:
                        w.backoff = self.first
                    w.due = now + w.backoff
                    self.say(f"helogale up: {w.name} exited (status {w.status()}); restarting "
                             f"in {w.backoff:g} s")
                    continue
                if now >= w.due:
                    try:
                        w.restart()
                    except Exception as exc:  # try again after a longer backoff
                        self.say(f"helogale up: restarting {w.name} failed: {exc}")
                    w.restarts += 1
                    w.due = None
                    w.up_since = now
                    w.backoff = min(self.maximum, w.backoff * 2)

    def start(self, poll: float = POLL_S) -> Supervisor:
        def loop() -> None:
            while not self._stop.wait(poll):
                self.check()

        self._thread = threading.Thread(target=loop, name="supervisor", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop watching (before the processes are stopped on purpose)."""
        self._stop.set()
        with self._lock:  # a restart in progress finishes first
            pass
        if self._thread is not None:
            self._thread.join(5.0)
