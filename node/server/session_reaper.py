"""The session reaper: the primary drops retryable-write records of idle logical sessions.

Every ``interval`` seconds (``--session-refresh-secs``, 300 by default as MongoDB's
``logicalSessionRefreshMillis``) a writable primary looks for session records last used more
than ``logicalSessionTimeoutMinutes`` ago (``--session-timeout-minutes``, 30) and proposes one
``dropSessions`` entry naming them (up to 10,000 per entry), with the cutoff it used. Applying
the entry compares each record's last use (an entry's ``now``) with that cutoff, so every
member drops the same records whatever its own clock says (see :mod:`node.commands.sessions`).
"""

from __future__ import annotations

import datetime as _dt
import logging
import threading
from collections.abc import Callable
from typing import Any

from node.commands.sessions import MAX_SESSIONS_PER_ENTRY, drop_entry, idle_sessions
from node.engine.errors import MongoError

DEFAULT_TIMEOUT_MINUTES = 30.0
DEFAULT_INTERVAL_S = 300.0
log = logging.getLogger("helogale.sessions")


class SessionReaper:
    """Prunes idle sessions' records while ``is_primary()``; ``run_once`` is one pass."""

    def __init__(
        self,
        store: Any,
        submit: Callable[[dict[str, Any]], dict[str, Any]],
        is_primary: Callable[[], bool],
        *,
        timeout_minutes: float = DEFAULT_TIMEOUT_MINUTES,
        interval_s: float = DEFAULT_INTERVAL_S,
        clock: Callable[[], _dt.datetime] = lambda: _dt.datetime.now(_dt.UTC),
    ) -> None:
        self._store = store
        self._submit = submit
        self._is_primary = is_primary
        self._timeout = _dt.timedelta(minutes=timeout_minutes)
        self._interval = interval_s
        self._clock = clock
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="session-reaper", daemon=True)
        self.dropped = 0
        """Session records this reaper had dropped since start."""

    def run_once(self) -> int:
        """One pass if primary: drop every idle session's record; how many were dropped."""
        dropped = 0
        while self._is_primary():
            now = self._clock()
            now = now.replace(microsecond=(now.microsecond // 1000) * 1000)  # BSON's precision
            idle_before = now - self._timeout
            keys = idle_sessions(self._store, idle_before, MAX_SESSIONS_PER_ENTRY)
            if not keys:
                break
            reply = self._submit(drop_entry(keys, now, idle_before))
            n = int(reply.get("n", 0))
            dropped += n
            if len(keys) < MAX_SESSIONS_PER_ENTRY or not n:
                break
        if dropped:
            log.info("idle sessions dropped", extra={"fields": {"n": dropped}})
        self.dropped += dropped
        return dropped

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self.run_once()
            except MongoError as exc:  # stepped down meanwhile, say: the next pass retries
                log.info("session reaper pass failed", extra={"fields": {"errmsg": exc.errmsg}})
            except Exception:
                log.exception("session reaper pass failed")

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
