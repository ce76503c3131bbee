"""Read commands: ``find``, ``getMore``, ``killCursors``, ``count``, ``distinct`` and
``aggregate`` (the pipeline of :mod:`node.commands.pipeline`; with ``$out``/``$merge`` it is a
write, :mod:`node.commands.agg_writes`).

Reads never go through the log: the member first checks that this node may serve the read
(primary, or read preference allowing a secondary; ``readConcern: linearizable`` waits for a
ReadIndex), waits for the read concern's cluster time if it names one, then the engine answers
from its current state (:mod:`node.commands.read_concern`; ``snapshot``: from one pinned
snapshot, for every batch). Results come back as MongoDB's cursor replies
(``cursor.firstBatch``/``nextBatch``, ``id``, ``ns``, and ``atClusterTime`` for a snapshot).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, Any

from bson import Int64

from node import failpoints
from node.commands import engine_ops, requests, tailing
from node.commands.context import RequestContext
from node.commands.cursors import take_batch
from node.commands.deadline import UNLIMITED, TimeBudget
from node.commands.pending import PendingReply
from node.commands.read_concern import Pin, PinnedSource, ReadConcern, wait_for_read_concern
from node.engine.errors import BAD_VALUE, MongoError

if TYPE_CHECKING:
    from node.commands.dispatcher import NodeServices


def cursor_reply(ns: str, batch: list[dict[str, Any]], cursor_id: int, first: bool
                 ) -> dict[str, Any]:
    key = "firstBatch" if first else "nextBatch"
    return {"cursor": {key: batch, "id": Int64(cursor_id), "ns": ns}}


def open_cursor(node: NodeServices, ns: str, docs: Iterator[dict[str, Any]],
                batch_size: int | None, single_batch: bool = False,
                budget: TimeBudget = UNLIMITED, ctx: RequestContext | None = None
                ) -> dict[str, Any]:
    """First batch of ``docs``; the rest stays open as a server cursor (with ``budget``, the
    command's ``maxTimeMS``, for its later batches; counted against the cursor caps of
    ``ctx``'s connection)."""
    if single_batch:
        try:
            with budget.running():
                batch, _ = take_batch(docs, batch_size, [])
        finally:
            close = getattr(docs, "close", None)
            if callable(close):
                close()
        return cursor_reply(ns, batch, 0, True)
    batch, cid = node.cursors.first_batch(ns, docs, batch_size, budget,
                                          ctx.connection_id if ctx is not None else 0,
                                          ctx.auth if ctx is not None else None)
    return cursor_reply(ns, batch, cid, True)


def _open_pin(node: NodeServices, rc: ReadConcern) -> Pin | None:
    """The snapshot a ``readConcern: snapshot`` read runs in (None for other levels)."""
    return node.snapshots.open(node.engine.store, rc.at) if rc.snapshot else None


def _in(pin: Pin | None) -> AbstractContextManager[None]:
    return pin.active() if pin is not None else nullcontext()


def _source(pin: Pin | None, docs: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """The cursor's documents; a snapshot's keep reading its snapshot (and let it go when
    the cursor closes)."""
    return PinnedSource(pin, docs) if pin is not None else docs


def _snapshot_reply(reply: dict[str, Any], pin: Pin | None) -> dict[str, Any]:
    """``atClusterTime`` (in the cursor document when there is one) and ``operationTime``:
    the snapshot's cluster time."""
    if pin is not None:
        reply.get("cursor", reply)["atClusterTime"] = pin.time
        reply["operationTime"] = pin.time
    return reply


def find(node: NodeServices, db: str, cmd: Mapping[str, Any], ctx: RequestContext
         ) -> dict[str, Any]:
    req = requests.parse_find(db, cmd)
    node.member.check_readable(cmd, ctx)
    budget = TimeBudget(req.max_time_ms)
    rc = wait_for_read_concern(node, cmd, budget)
    if cmd.get("tailable") or cmd.get("awaitData") or "$_resumeAfter" in cmd:
        with budget.running():
            return tailing.find(node, req, ctx)
    pin = _open_pin(node, rc)
    try:
        with budget.running(), _in(pin):
            docs = engine_ops.find(node.engine, db, req.coll, req.filter,
                                   projection=req.projection, sort=req.sort, skip=req.skip,
                                   limit=req.limit, hint=req.hint,
                                   return_sort_key=req.return_sort_key,
                                   variables=let_values(req.let) if req.let else None)
    except BaseException:
        if pin is not None:
            pin.release()
        raise
    failpoints.hit("waitInFindBeforeMakingBatch", req.ns)  # tests: killOp of a running read
    batch_size = req.batch_size
    if req.single_batch and batch_size is None:
        batch_size = req.limit or None
    return _snapshot_reply(open_cursor(node, req.ns, _source(pin, iter(docs)), batch_size,
                                       req.single_batch, budget, ctx), pin)


def get_more(node: NodeServices, db: str, cmd: Mapping[str, Any], ctx: RequestContext
             ) -> dict[str, Any] | PendingReply:
    req = requests.parse_get_more(db, cmd)
    cursor = node.cursors.lookup(req.cursor_id, req.ns, ctx.auth)
    if cursor.tail is not None:
        own = getattr(cursor.tail, "get_more", None)  # the router's pass-through cursor
        if own is not None:
            return own(req, cursor, ctx)  # type: ignore[no-any-return]
        return tailing.get_more(node, req, cursor, ctx)
    if req.max_time_ms:
        raise MongoError(BAD_VALUE, "cannot set maxTimeMS on getMore command for a "
                         "non-awaitData cursor")
    batch, cid = node.cursors.get_more(req.cursor_id, req.ns, req.batch_size, ctx.auth)
    return cursor_reply(req.ns, batch, cid, False)


def kill_cursors(node: NodeServices, db: str, cmd: Mapping[str, Any], ctx: RequestContext
                 ) -> dict[str, Any]:
    req = requests.parse_kill_cursors(db, cmd)
    killed, missing = node.cursors.kill(req.cursor_ids, ctx.auth)
    return {
        "cursorsKilled": [Int64(c) for c in killed],
        "cursorsNotFound": [Int64(c) for c in missing],
        "cursorsAlive": [],
        "cursorsUnknown": [],
    }


def count(node: NodeServices, db: str, cmd: Mapping[str, Any], ctx: RequestContext
          ) -> dict[str, Any]:
    req = requests.parse_count(db, cmd)
    node.member.check_readable(cmd, ctx)
    budget = TimeBudget(req.max_time_ms)
    wait_for_read_concern(node, cmd, budget)
    with budget.running():
        n = engine_ops.count(node.engine, db, req.coll, req.query, skip=req.skip,
                             limit=req.limit, hint=req.hint)
    return {"n": n}


def distinct(node: NodeServices, db: str, cmd: Mapping[str, Any], ctx: RequestContext
             ) -> dict[str, Any]:
    req = requests.parse_distinct(db, cmd)
    node.member.check_readable(cmd, ctx)
    budget = TimeBudget(req.max_time_ms)
    pin = _open_pin(node, wait_for_read_concern(node, cmd, budget))
    try:
        with budget.running(), _in(pin):
            values = engine_ops.distinct(node.engine, db, req.coll, req.key, req.query)
    finally:
        if pin is not None:
            pin.release()
    return _snapshot_reply({"values": values}, pin)


# --- aggregate -------------------------------------------------------------------------------


def let_values(let: Mapping[str, Any], now: Any = None) -> dict[str, Any]:
    """The command's top-level ``let``: constants (expressions of constants) by name."""
    from node.engine.expr_misc import check_variable_name
    from node.engine.expressions import Scope, Vars, compile_expression

    out: dict[str, Any] = {}
    for name, expr in let.items():
        check_variable_name(name)
        out[name] = compile_expression(expr, Scope(list(out), now=now))(Vars({}, out))
    return out


def aggregate(node: NodeServices, db: str, cmd: Mapping[str, Any], ctx: RequestContext
              ) -> dict[str, Any]:
    req = requests.parse_aggregate(db, cmd)
    if any(name in ("$out", "$merge") for name, _ in req.stages):
        from node.commands.agg_writes import aggregate_write
        return aggregate_write(node, db, cmd, req, ctx)
    node.member.check_readable(cmd, ctx)
    budget = TimeBudget(req.max_time_ms)
    pin = _open_pin(node, wait_for_read_concern(node, cmd, budget))
    explain: list[dict[str, Any]] | None = [] if req.explain else None
    try:
        with budget.running(), _in(pin):
            docs = engine_ops.aggregate(node.engine, db, req.coll, req.stages,
                                        allow_disk_use=req.allow_disk_use,
                                        variables=let_values(req.let), explain=explain)
    except BaseException:
        if pin is not None:
            pin.release()
        raise
    if explain is not None:
        if pin is not None:
            pin.release()
        return {"explainVersion": "1", "stages": explain, "serverInfo": {"host": "helogale"}}
    return _snapshot_reply(open_cursor(node, f"{db}.{req.coll}", _source(pin, iter(docs)),
                                       req.batch_size, budget=budget, ctx=ctx), pin)


def map_reduce(node: Any, db: str, cmd: Mapping[str, Any], ctx: RequestContext
               ) -> dict[str, Any]:
    """MongoDB's JavaScript ``mapReduce``: refused, pointing at what to use instead."""
    raise MongoError(115, "mapReduce is not supported: Helogale runs no JavaScript. Use the "
                     "aggregation pipeline ($group with accumulators, then $out or $merge), or "
                     "the helogale client's Collection.map_reduce with Python functions",
                     code_name="CommandNotSupported")
