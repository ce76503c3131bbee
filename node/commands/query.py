"""Read commands: ``find``, ``getMore``, ``killCursors``, ``count``, ``distinct`` and a small
``aggregate`` (``$match $sort $skip $limit $project $count $group $unwind``).

Reads never go through the log: the member first checks that this node may serve the read
(primary, or read preference allowing a secondary; ``readConcern: linearizable`` waits for a
ReadIndex), then the engine answers from its current state. Results come back as MongoDB's
cursor replies (``cursor.firstBatch``/``nextBatch``, ``id``, ``ns``).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from bson import Int64

from node.commands import engine_ops
from node.commands.args import (
    bson_type_name,
    collection_name,
    get_bool,
    get_doc,
    get_int,
    get_list,
    get_nonneg_int,
    get_str,
    is_number,
)
from node.commands.context import RequestContext
from node.commands.cursors import take_batch
from node.engine.errors import BAD_VALUE, FAILED_TO_PARSE, MongoError, type_mismatch

if TYPE_CHECKING:
    from node.commands.dispatcher import NodeServices


def cursor_reply(ns: str, batch: list[dict[str, Any]], cursor_id: int, first: bool
                 ) -> dict[str, Any]:
    key = "firstBatch" if first else "nextBatch"
    return {"cursor": {key: batch, "id": Int64(cursor_id), "ns": ns}}


def open_cursor(node: NodeServices, ns: str, docs: Iterator[dict[str, Any]],
                batch_size: int | None, single_batch: bool = False,
                ctx: RequestContext | None = None) -> dict[str, Any]:
    """First batch of ``docs``; the rest stays open as a server cursor (counted against the
    caps of ``ctx``'s connection)."""
    if single_batch:
        batch, _ = take_batch(docs, batch_size, [])
        return cursor_reply(ns, batch, 0, True)
    batch, cid = node.cursors.first_batch(ns, docs, batch_size,
                                          ctx.connection_id if ctx is not None else 0)
    return cursor_reply(ns, batch, cid, True)


def find(node: NodeServices, db: str, cmd: Mapping[str, Any], ctx: RequestContext
         ) -> dict[str, Any]:
    coll = collection_name(cmd, "find")
    filt = get_doc(cmd, "find", "filter", {})
    sort = get_doc(cmd, "find", "sort", None)
    projection = get_doc(cmd, "find", "projection", None)
    skip = get_nonneg_int(cmd, "find", "skip", 0)
    limit = get_int(cmd, "find", "limit", 0)
    batch_size = get_nonneg_int(cmd, "find", "batchSize", None)
    single_batch = get_bool(cmd, "find", "singleBatch")
    if limit < 0:
        limit, single_batch = -limit, True
    hint = cmd.get("hint")
    node.member.check_readable(cmd, ctx)
    docs = engine_ops.find(node.engine, db, coll, filt, projection=projection, sort=sort,
                           skip=skip, limit=limit, hint=hint)
    if single_batch and batch_size is None:
        batch_size = limit or None
    return open_cursor(node, f"{db}.{coll}", iter(docs), batch_size, single_batch, ctx)


def get_more(node: NodeServices, db: str, cmd: Mapping[str, Any], ctx: RequestContext
             ) -> dict[str, Any]:
    cursor_id = cmd.get("getMore")
    if not is_number(cursor_id):
        raise type_mismatch("BSON field 'getMore.getMore' is the wrong type "
                            f"'{bson_type_name(cursor_id)}', expected type 'long'")
    coll = get_str(cmd, "getMore", "collection")
    batch_size = get_nonneg_int(cmd, "getMore", "batchSize", None) or None
    ns = f"{db}.{coll}"
    batch, cid = node.cursors.get_more(int(cursor_id), ns, batch_size)
    return cursor_reply(ns, batch, cid, False)


def kill_cursors(node: NodeServices, db: str, cmd: Mapping[str, Any], ctx: RequestContext
                 ) -> dict[str, Any]:
    collection_name(cmd, "killCursors")
    ids = get_list(cmd, "killCursors", "cursors")
    for cid in ids:
        if not is_number(cid):
            raise type_mismatch("BSON field 'killCursors.cursors' is the wrong type "
                                f"'{bson_type_name(cid)}', expected type 'long'")
    killed, missing = node.cursors.kill([int(c) for c in ids])
    return {
        "cursorsKilled": [Int64(c) for c in killed],
        "cursorsNotFound": [Int64(c) for c in missing],
        "cursorsAlive": [],
        "cursorsUnknown": [],
    }


def count(node: NodeServices, db: str, cmd: Mapping[str, Any], ctx: RequestContext
          ) -> dict[str, Any]:
    coll = collection_name(cmd, "count")
    query = get_doc(cmd, "count", "query", {})
    skip = get_nonneg_int(cmd, "count", "skip", 0)
    limit = abs(get_int(cmd, "count", "limit", 0))
    node.member.check_readable(cmd, ctx)
    n = engine_ops.count(node.engine, db, coll, query, skip=skip, limit=limit,
                         hint=cmd.get("hint"))
    return {"n": n}


def distinct(node: NodeServices, db: str, cmd: Mapping[str, Any], ctx: RequestContext
             ) -> dict[str, Any]:
    coll = collection_name(cmd, "distinct")
    key = get_str(cmd, "distinct", "key")
    query = get_doc(cmd, "distinct", "query", {})
    node.member.check_readable(cmd, ctx)
    return {"values": engine_ops.distinct(node.engine, db, coll, key, query)}


# --- aggregate (a small subset) --------------------------------------------------------------

_STAGES = ("$match", "$sort", "$skip", "$limit", "$project", "$count", "$group", "$unwind")


def aggregate(node: NodeServices, db: str, cmd: Mapping[str, Any], ctx: RequestContext
              ) -> dict[str, Any]:
    target = cmd.get("aggregate")
    if target == 1 or not isinstance(target, str):
        raise MongoError(BAD_VALUE, "aggregate with no collection is not supported")
    coll = collection_name(cmd, "aggregate")
    pipeline = get_list(cmd, "aggregate", "pipeline")
    cursor_opts = get_doc(cmd, "aggregate", "cursor", None)
    if cursor_opts is None and not get_bool(cmd, "aggregate", "explain"):
        raise MongoError(FAILED_TO_PARSE, "The 'cursor' option is required, except for "
                         "aggregate with the explain argument")
    batch_size = get_nonneg_int(cursor_opts or {}, "aggregate.cursor", "batchSize", None)
    stages: list[tuple[str, Any]] = []
    for stage in pipeline:
        if not isinstance(stage, Mapping) or len(stage) != 1:
            raise MongoError(40323, "A pipeline stage specification object must contain "
                             "exactly one field.", code_name="Location40323")
        name, arg = next(iter(stage.items()))
        if name not in _STAGES:
            raise MongoError(40324, f"Unrecognized pipeline stage name: '{name}'",
                             code_name="Location40324")
        stages.append((name, arg))
    node.member.check_readable(cmd, ctx)
    docs = engine_ops.aggregate(node.engine, db, coll, stages)
    return open_cursor(node, f"{db}.{coll}", iter(docs), batch_size, ctx=ctx)
