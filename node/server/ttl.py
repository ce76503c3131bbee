"""The TTL monitor: the primary deletes documents whose TTL index date has expired.

Every ``interval`` seconds (``--ttl-monitor-secs``, 60 by default as MongoDB's
``ttlMonitorSleepSecs``) a writable primary finds the TTL indexes (one field,
``expireAfterSeconds``) and, for each, runs through the dispatcher exactly what a client would:
``{delete: coll, deletes: [{q: {field: {$lt: now - expireAfterSeconds}}, limit: 0}]}``. The
cutoff is fixed on the primary and the delete is one replicated log entry, so every member
removes the same documents. ``$lt`` against a date matches only dates, and an array when any
element (so its earliest) is before the cutoff: documents whose field is missing or not a date
never expire, as in MongoDB.
"""

from __future__ import annotations

import datetime as _dt
import logging
from collections.abc import Callable
from typing import Any

from node.commands.context import RequestContext
from node.engine.indexes import load_indexes
from node.server.periodic import Periodic

DEFAULT_INTERVAL_S = 60.0
log = logging.getLogger("helogale.ttl")
_CTX = RequestContext(peer="ttl-monitor")


def ttl_indexes(engine: Any) -> list[tuple[str, str, str, float]]:
    """``(db, collection, field, expireAfterSeconds)`` of every TTL index."""
    out: list[tuple[str, str, str, float]] = []
    with engine.store.read() as r:
        for db, coll in engine.namespaces(txn=r):
            for spec in load_indexes(r, db, coll):
                seconds = spec.ttl_seconds
                if seconds is not None:
                    out.append((db, coll, spec.key[0][0], seconds))
    return out


class TTLMonitor:
    """Deletes expired documents while ``is_primary()``; ``run_once`` is one pass."""

    def __init__(
        self,
        engine: Any,
        run_command: Callable[[str, dict[str, Any], RequestContext], dict[str, Any]],
        is_primary: Callable[[], bool],
        interval_s: float = DEFAULT_INTERVAL_S,
        clock: Callable[[], _dt.datetime] = lambda: _dt.datetime.now(_dt.UTC),
    ) -> None:
        self._engine = engine
        self._run = run_command
        self._is_primary = is_primary
        self._clock = clock
        self._periodic = Periodic("ttl-monitor", self.run_once, interval_s, log)
        self.passes = 0
        """Passes made as primary (for tests and serverStatus-like reporting)."""
        self.deleted = 0
        """Documents deleted by this monitor since start."""

    def run_once(self) -> int:
        """One pass if primary: delete every expired document; the number deleted."""
        if not self._is_primary():
            return 0
        now = self._clock()
        deleted = 0
        for db, coll, field, seconds in ttl_indexes(self._engine):
            cutoff = now - _dt.timedelta(seconds=seconds)
            cmd = {"delete": coll, "deletes": [{"q": {field: {"$lt": cutoff}}, "limit": 0}]}
            reply = self._run(db, cmd, _CTX)
            if reply.get("ok") != 1.0:
                log.warning("ttl delete failed", extra={"fields": {
                    "ns": f"{db}.{coll}", "errmsg": reply.get("errmsg")}})
                continue
            n = int(reply.get("n", 0))
            if n:
                log.info("ttl deleted", extra={"fields": {"ns": f"{db}.{coll}", "n": n}})
            deleted += n
        self.passes += 1
        self.deleted += deleted
        return deleted

    def start(self) -> None:
        self._periodic.start()

    def stop(self) -> None:
        self._periodic.stop()
