"""Running operations: ``currentOp`` lists them, ``killOp`` marks one killed.

The dispatcher registers an :class:`Op` per command (and long background work registers one
too, see :mod:`node.ops.progress`) and makes it the context's current op. A killed read stops
at the engine's next interrupt point: :class:`~node.commands.deadline.TimeBudget` checks
:func:`check_killed` beside ``maxTimeMS`` and raises Interrupted (11601). A write that has
been proposed is never undone: killing it only marks it, as ``maxTimeMS`` does.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from bson import Int64

from node.engine import interrupt
from node.engine.errors import MongoError

INTERRUPTED = 11601

_current: ContextVar[Op | None] = ContextVar("helogale_op", default=None)


def interrupted() -> MongoError:
    return MongoError(INTERRUPTED, "operation was interrupted", code_name="Interrupted")


@dataclass(slots=True)
class Op:
    """One running operation."""

    opid: int
    op: str
    """MongoDB's op type: query, getmore, insert, update, remove, command, or a task kind."""
    ns: str
    command: Mapping[str, Any]
    desc: str = "conn"
    client: str = ""
    connection_id: int = 0
    started: float = field(default_factory=time.monotonic)
    killed: bool = False
    plan_summary: str | None = None
    stats: Any = None
    """The planner's :class:`~node.engine.planner.Stats` of the read this op runs."""
    progress: dict[str, Any] | None = None
    msg: str | None = None
    extra: dict[str, Any] | None = None
    """More fields ``currentOp`` shows (a migration's ``phase``)."""

    def describe(self) -> dict[str, Any]:
        """The op as ``currentOp`` shows it."""
        now = time.monotonic()
        doc: dict[str, Any] = {
            "type": "op" if self.desc.startswith("conn") else "task",
            "desc": self.desc, "active": True, "opid": self.opid, "op": self.op,
            "ns": self.ns, "command": _trim(self.command),
            "secs_running": Int64(int(now - self.started)),
            "microsecs_running": Int64(int((now - self.started) * 1e6)),
            "currentOpTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(
                time.time() - (now - self.started))),
            "killPending": self.killed,
        }
        if self.client:
            doc["client"] = self.client
        if self.connection_id:
            doc["connectionId"] = self.connection_id
        if self.plan_summary:
            doc["planSummary"] = self.plan_summary
        if self.stats is not None:
            doc["keysExamined"] = Int64(self.stats.keys_examined)
            doc["docsExamined"] = Int64(self.stats.docs_examined)
        if self.msg:
            doc["msg"] = self.msg
        if self.progress:
            doc["progress"] = dict(self.progress)
        if self.extra:
            doc.update(self.extra)
        return doc


def _trim(command: Mapping[str, Any], limit: int = 12) -> dict[str, Any]:
    """The command without bulky payloads (documents, updates)."""
    out: dict[str, Any] = {}
    for i, (k, v) in enumerate(command.items()):
        if i >= limit:
            break
        if isinstance(v, list) and len(v) > 3:
            out[k] = f"<{len(v)} items>"
        else:
            out[k] = v
    return out


class OpRegistry:
    """The running ops of one process (or one in-process dispatcher). No lock: a dict's
    single operations (set, pop, get, a copy of its values) are atomic under the GIL, and
    ``itertools.count`` hands out each id once."""

    def __init__(self) -> None:
        self._ops: dict[int, Op] = {}
        self._ids = itertools.count(1)

    def add(self, op: str, ns: str, command: Mapping[str, Any], **kw: Any) -> Op:
        o = Op(next(self._ids), op, ns, command, **kw)
        self._ops[o.opid] = o
        return o

    def remove(self, o: Op) -> None:
        self._ops.pop(o.opid, None)

    def ops(self) -> list[Op]:
        return list(self._ops.values())

    def kill(self, opid: int) -> bool:
        """Mark ``opid`` killed; False when no such op runs."""
        o = self._ops.get(opid)
        if o is None:
            return False
        o.killed = True
        return True

    def __len__(self) -> int:
        return len(self._ops)


TASKS = OpRegistry()
"""Long background work of this process (snapshots, migrations, index builds...), listed by
every dispatcher's ``currentOp`` beside its commands."""


def current() -> Op | None:
    return _current.get()


def enter(o: Op | None) -> Any:
    """Make ``o`` the current op; returns the token for :func:`leave`."""
    return _current.set(o)


def leave(token: Any) -> None:
    _current.reset(token)


@contextmanager
def running(o: Op | None) -> Iterator[None]:
    """Make ``o`` the current op of the body."""
    token = _current.set(o)
    try:
        yield
    finally:
        _current.reset(token)


def check_killed() -> None:
    """Raise Interrupted when the current op was killed."""
    o = _current.get()
    if o is not None and o.killed:
        raise interrupted()


def note_plan(summary: str, stats: Any) -> None:
    """The engine's planner reports the plan of the read the current op runs."""
    o = _current.get()
    if o is not None:
        o.plan_summary = summary
        o.stats = stats


interrupt.plan_sink = note_plan
