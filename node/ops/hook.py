"""The dispatcher's operations hook: every command becomes a running :class:`Op` (for
``currentOp``/``killOp``), and when its reply is known (a deferred write's when it settles) it
is counted (:class:`~node.ops.stats.CommandStats`) and, past ``slowms``, logged as MongoDB
logs a slow operation: with its plan summary and keys/documents examined.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from node.commands.context import RequestContext
from node.ops.current import Op, OpRegistry
from node.ops.stats import CommandStats

log = logging.getLogger("helogale.command")

DEFAULT_SLOW_MS = 100

_OP_TYPE = {"find": "query", "getMore": "getmore", "insert": "insert", "update": "update",
            "delete": "remove"}
_QUIET = frozenset({"hello", "isMaster", "ismaster", "ping"})
"""Commands never logged as slow (drivers' monitors)."""


def namespace(db: str, name: str, command: Mapping[str, Any]) -> str:
    """The namespace a command works on (``db.coll`` when its first value names one)."""
    if name == "getMore":
        coll = command.get("collection")
    else:
        coll = command.get(name)
    if isinstance(coll, str) and coll and "." not in coll:
        return f"{db}.{coll}"
    if isinstance(coll, str) and "." in coll and db == "admin":
        return coll
    return f"{db}.$cmd"


class OpsHook:
    """Per-dispatcher bookkeeping of operations."""

    def __init__(self, slow_ms: int = DEFAULT_SLOW_MS) -> None:
        self.registry = OpRegistry()
        self.stats = CommandStats()
        self.slow_ms = slow_ms
        self.metrics_port: int | None = None
        """Where this process serves metrics (serverStatus ``metricsPort``), once it does."""
        self.connection_sources: list[Callable[[], Mapping[str, int]]] = []
        """Transports' connection counts (``current``, ``totalCreated``) for serverStatus."""

    def begin(self, db: str, name: str, command: Mapping[str, Any], ctx: RequestContext
              ) -> Op:
        return self.registry.add(_OP_TYPE.get(name, "command"), namespace(db, name, command),
                                 command, desc=f"conn{ctx.connection_id}", client=ctx.peer,
                                 connection_id=ctx.connection_id)

    def end(self, o: Op, name: str, reply: Mapping[str, Any]) -> None:
        self.registry.remove(o)
        seconds = time.monotonic() - o.started
        ok = reply.get("ok") == 1.0
        outcome = "ok" if ok else str(reply.get("codeName") or reply.get("code") or "error")
        self.stats.record(name, o.command, o.ns if not o.ns.endswith(".$cmd") else "",
                          outcome, seconds)
        millis = int(seconds * 1000)
        if millis >= self.slow_ms and name not in _QUIET:
            self.stats.slow_ops += 1
            self._log_slow(o, name, reply, millis)

    def _log_slow(self, o: Op, name: str, reply: Mapping[str, Any], millis: int) -> None:
        attr: dict[str, Any] = {"type": "command", "ns": o.ns, "opid": o.opid,
                                "command": name, "durationMillis": millis}
        if o.plan_summary:
            attr["planSummary"] = o.plan_summary
        if o.stats is not None:
            attr["keysExamined"] = o.stats.keys_examined
            attr["docsExamined"] = o.stats.docs_examined
        lsid = o.command.get("lsid")
        if isinstance(lsid, Mapping) and "id" in lsid:
            attr["lsid"] = str(lsid["id"])
        if reply.get("ok") != 1.0:
            attr["errCode"] = reply.get("code")
            attr["errName"] = reply.get("codeName")
        if o.connection_id:
            attr["ctx"] = f"conn{o.connection_id}"
        log.info("Slow query", extra={"fields": {"c": "COMMAND", **attr}})
