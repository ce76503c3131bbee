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
from collections.abc import Callable
from typing import Any

from node.commands.sessions import MAX_SESSIONS_PER_ENTRY, drop_entry, idle_sessions
from node.engine.errors import MongoError
from node.server.periodic import Periodic

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
        self._clock = clock
        self._periodic = Periodic("session-reaper", self.run_once, interval_s, log,
                                  expected=(MongoError,))
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

    def start(self) -> None:
        self._periodic.start()

    def stop(self) -> None:
        self._periodic.stop()
