"""Write-concern waits with no thread per write.

A write is answered once its Raft entry has applied here (the reply is what applying it
returned) and, for ``w: N > 1``, N voting members hold the entry durably (for a mode name or tag
set, the members holding it cover the tag counts it asks, ``node.commands.write_modes``). ``wtimeout`` bounds
the whole wait: when it passes first, the reply carries a writeConcernError (code 64) and the
write is never undone. The command's ``maxTimeMS`` bounds it too: a write not applied by then
fails with MaxTimeMSExpired (50), an applied one short of its copies gets a writeConcernError
with code 50. :class:`WriteConcernWaits` holds every write still waiting: the apply
thread hands it each entry's outcome, and one watcher thread does what needs the clock or the
replication progress (deadlines, ``w > 1``, tags), woken by either. A write applied here but still
short of ``w`` copies when this member stops being leader is answered at once with MongoDB's
PrimarySteppedDown writeConcernError (code 189, retryable): only a leader counts copies, so
it would otherwise wait for its wtimeout, or forever.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Collection
from concurrent.futures import Future
from typing import Any

from node.commands.deadline import max_time_expired
from node.commands.member import WriteConcern, write_concern_error
from node.engine.errors import MongoError

Outcome = tuple[dict[str, Any], "dict[str, Any] | None"]
MAX_SLEEP_S = 1.0
"""The watcher re-reads the clock at least this often even with no deadline in sight."""
PRIMARY_STEPPED_DOWN = 189


def stepped_down_error(wc: WriteConcern) -> dict[str, Any]:
    """The ``writeConcernError`` of a write whose primary stepped down while it waited."""
    return {"code": PRIMARY_STEPPED_DOWN, "codeName": "PrimarySteppedDown",
            "errmsg": "Primary stepped down while waiting for replication",
            "errInfo": {"writeConcern": wc.to_doc()}}


class _Wait:
    """One write: its future, write concern, deadline and (once applied) result and index."""

    __slots__ = ("deadline", "done", "index", "max_time", "out", "result", "wc")

    def __init__(self, out: Future[Outcome], wc: WriteConcern, deadline: float | None,
                 max_time: bool) -> None:
        self.out = out
        self.wc = wc
        self.deadline = deadline
        self.max_time = max_time
        """The deadline is the command's ``maxTimeMS`` (not its ``wtimeout``)."""
        self.result: dict[str, Any] | None = None
        self.index = 0
        self.done = False

    @property
    def needs_copies(self) -> bool:
        """Whether members other than this one must hold the entry (not: applied here is
        enough)."""
        w = self.wc.w
        return self.wc.rule is not None or (isinstance(w, int) and w > 1)

    def copies_held(self, holders: Collection[int]) -> bool:
        """Whether the members ``holders`` (ids holding the entry durably) satisfy ``w``."""
        if self.wc.rule is not None:
            return self.wc.rule.met_by(holders)
        return len(holders) >= int(self.wc.w)  # type: ignore[arg-type]


class WriteConcernWaits:
    """Completes waiting writes. ``holders(index)`` names the voters holding ``index`` durably
    (none when this member is not leader); ``wait_progress(pred, timeout)`` blocks until the replication
    state may have changed and ``pred()`` holds, or the timeout; ``wake()`` interrupts it;
    ``leading()`` says whether this member is still the leader that counts copies."""

    def __init__(
        self,
        holders: Callable[[int], Collection[int]],
        wait_progress: Callable[[Callable[[], bool], float], bool],
        wake: Callable[[], None],
        clock: Callable[[], float] = time.monotonic,
        leading: Callable[[], bool] = lambda: True,
    ) -> None:
        self._holders = holders
        self._leading = leading
        self._wait_progress = wait_progress
        self._wake = wake
        self._clock = clock
        self._lock = threading.Lock()
        self._added = threading.Condition(self._lock)
        self._waits: set[_Wait] = set()
        self._changed = False
        self._stopped = False
        self._thread = threading.Thread(target=self._loop, name="write-concern-waits",
                                        daemon=True)
        self._thread.start()

    def add(self, wc: WriteConcern, started: float) -> _Wait:
        """Start waiting for a write submitted at ``started`` (monotonic seconds)."""
        limits = []
        if wc.wtimeout_ms:
            limits.append((started + wc.wtimeout_ms / 1000, False))
        if wc.max_time_ms:
            limits.append((started + wc.max_time_ms / 1000, True))
        deadline, max_time = min(limits) if limits else (None, False)
        wait = _Wait(Future(), wc, deadline, max_time)
        with self._lock:
            self._waits.add(wait)
            self._changed = True
            self._added.notify()
        self._wake()
        return wait

    def applied(self, wait: _Wait, result: dict[str, Any], index: int) -> None:
        """The write's entry applied at ``index`` with ``result`` (apply thread)."""
        with self._lock:
            if wait.done:  # answered already (its wtimeout passed first)
                return
            wait.result, wait.index = result, index
            ready = not wait.needs_copies
            if ready:
                self._finish_locked(wait)
            else:
                self._changed = True
        if ready:
            wait.out.set_result((result, None))
        else:
            self._wake()

    def failed(self, wait: _Wait, exc: BaseException) -> None:
        """The write's proposal failed: its future fails with ``exc``."""
        with self._lock:
            if wait.done:
                return
            self._finish_locked(wait)
        wait.out.set_exception(exc)

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
            self._added.notify()
        self._wake()
        self._thread.join(timeout=5)

    # --- the watcher -----------------------------------------------------------------------------
    def _finish_locked(self, wait: _Wait) -> bool:
        if wait.done:
            return False
        wait.done = True
        self._waits.discard(wait)
        return True

    def _outcome(self, wait: _Wait, now: float) -> Outcome | MongoError | None:
        """The reply (or error) now due for ``wait``, or None while it must go on waiting."""
        if wait.result is not None and wait.needs_copies:
            if wait.copies_held(self._holders(wait.index)):
                return wait.result, None
            if not self._leading():
                return wait.result, stepped_down_error(wait.wc)
        if wait.deadline is None or now < wait.deadline:
            return None
        if wait.result is None:
            if wait.max_time:
                return max_time_expired()
            return {"n": 0}, write_concern_error("waiting for replication timed out", wait.wc)
        return wait.result, write_concern_error(
            f"waiting for replication timed out; w={wait.wc.w} not reached for index "
            f"{wait.index}", wait.wc, max_time=wait.max_time)

    def _settle(self) -> float | None:
        """Complete every wait that is due; the earliest deadline still pending."""
        now = self._clock()
        due: list[tuple[_Wait, Outcome | MongoError]] = []
        earliest: float | None = None
        with self._lock:
            self._changed = False
            for wait in list(self._waits):
                outcome = self._outcome(wait, now)
                if outcome is not None:
                    if self._finish_locked(wait):
                        due.append((wait, outcome))
                elif wait.deadline is not None:
                    earliest = wait.deadline if earliest is None else min(earliest, wait.deadline)
        for wait, outcome in due:
            if isinstance(outcome, MongoError):
                wait.out.set_exception(outcome)
            else:
                wait.out.set_result(outcome)
        return earliest

    def _loop(self) -> None:
        while True:
            with self._lock:
                while not self._waits and not self._stopped:
                    self._added.wait()
                if self._stopped:
                    return
            earliest = self._settle()
            timeout = MAX_SLEEP_S if earliest is None else earliest - self._clock()
            if timeout > 0:
                self._wait_progress(self._progress_due, min(timeout, MAX_SLEEP_S))

    def _progress_due(self) -> bool:
        """Whether the watcher should look again: something changed here, or a write waiting
        for copies may have them now."""
        if self._changed or self._stopped:
            return True
        with self._lock:
            waits = [w for w in self._waits if w.result is not None and w.needs_copies]
        if waits and not self._leading():
            return True
        return any(w.copies_held(self._holders(w.index)) for w in waits)
