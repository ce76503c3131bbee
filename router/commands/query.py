"""The router's reads: ``find``, ``count``, ``distinct``, ``aggregate`` and ``explain``.

Each is parsed once (the node's typed requests), targeted (``_id`` equality and ``$in`` reach
the owning shards only, ``_id`` ranges the overlapping chunks, anything else every shard of
the collection; an unsharded collection its database's primary shard), sent to every target
at once with the version it was routed by, and merged:

* ``find``: shards sort and attach memcomparable sort keys, the router k-way merges them;
  ``skip``/``limit`` reach the shards as ``limit = skip + limit`` and are applied here; the
  router's cursor pages through the shards' cursors as the client asks for more;
* ``count``: summed (shards capped at ``skip + limit``); ``distinct``: united;
* ``aggregate``: the pipeline splits into a shard part (up to the first ``$group``, ``$sort``,
  ``$skip``, ``$limit`` or ``$count``; pushed down when it can be) and a part run here on the
  merged stream with the node's own pipeline code;
* ``explain``: each shard's plan, under ``SINGLE_SHARD`` or ``SHARD_MERGE``.

The ``config`` and ``admin`` databases live on the config servers: reads of them go there.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from node.commands import requests
from node.commands.context import RequestContext
from node.commands.query import cursor_reply, open_cursor
from node.engine.errors import MongoError
from node.engine.sorting import Sort
from router import merge, tailing
from router.catalog import CONFIG_DBS, Route
from router.cursors import RouterCursor, ShardStream, raise_for, shard_runner
from router.services import forwardable, read_preference
from router.shards import check_stale, versioned
from router.targeting import id_ranges

if TYPE_CHECKING:
    from router.services import RouterServices

FIRST_BATCH = 101


def targets(route: Route, filt: Mapping[str, Any] | None) -> list[str]:
    """The shards a query of ``filt`` must ask (at least one, so the reply is well formed)."""
    if route.table is None:
        return [route.primary]
    shards = route.table.shards_in(id_ranges(filt))
    return shards or [route.table.chunks[0].shard]


def _is_near(filt: Mapping[str, Any]) -> bool:
    """A ``$near``/``$nearSphere`` query (results ordered by distance)."""
    return any(isinstance(v, Mapping) and ("$near" in v or "$nearSphere" in v)
               for v in filt.values())


def _first_batch_size(req: requests.FindRequest) -> int:
    want = FIRST_BATCH if req.batch_size is None else req.batch_size
    if req.limit:
        want = min(want, req.limit) if want else req.limit
    return want + req.skip if want else 0


# --- find ----------------------------------------------------------------------------------


def shard_find(req: requests.FindRequest, cmd: Mapping[str, Any], n_shards: int
               ) -> dict[str, Any]:
    """The ``find`` each of ``n_shards`` targets runs: one shard runs the client's query as it
    is; several each return their first ``skip + limit`` (the router skips and limits the
    merge), sorted with their sort keys attached."""
    if n_shards == 1:
        return forwardable(cmd)
    shard_cmd = forwardable(cmd, "skip", "limit", "batchSize", "singleBatch")
    if req.limit:
        shard_cmd["limit"] = req.skip + req.limit
    shard_cmd["batchSize"] = _first_batch_size(req)
    if req.sort or _is_near(req.filter):  # merged by sort key, or by distance for $near
        shard_cmd["$_requestSortKey"] = True
    return shard_cmd


def _open_streams(svc: RouterServices, route: Route, db: str, shards: Sequence[str],
                  cmds: Sequence[Mapping[str, Any]], cmd: Mapping[str, Any]
                  ) -> list[ShardStream]:
    pref = read_preference(cmd)
    if len(shards) == 1:  # no thread hand-off for a targeted query
        answered = [svc.shards.call_member(shards[0], db, versioned(cmds[0], route, shards[0]),
                                           read_preference=pref)]
    else:
        calls = [svc.shards.pool.submit(svc.shards.call_member, shard, db,
                                        versioned(c, route, shard), read_preference=pref)
                 for shard, c in zip(shards, cmds, strict=True)]
        answered = [f.result() for f in calls]
    streams = [ShardStream(shard, shard_runner(svc.shards, shard, pref), db, reply, address)
               for shard, (reply, address) in zip(shards, answered, strict=True)
               if reply.get("ok") == 1.0]
    failed = [reply for reply, _ in answered if reply.get("ok") != 1.0]
    if failed:
        for stream in streams:
            stream.close()
        check_stale(route.ns, failed)
        raise_for(failed[0], "shard")
    return streams


def find(svc: RouterServices, db: str, cmd: Mapping[str, Any], ctx: RequestContext
         ) -> dict[str, Any]:
    req = requests.parse_find(db, cmd)
    if db in CONFIG_DBS:
        return _config_cursor(svc, db, cmd, req.ns, req.batch_size, ctx)
    if tailing.is_tailing(cmd):
        return tailing.find(svc, db, req, cmd, ctx)

    def attempt(route: Route) -> dict[str, Any]:
        shards = targets(route, req.filter)
        shard_cmd = shard_find(req, cmd, len(shards))
        if len(shards) == 1:
            merge_fn = merge.concat
            skip = limit = 0
        else:
            sorted_ = bool(req.sort) or _is_near(req.filter)  # by sort key, or distance
            merge_fn = merge.merge_sorted if sorted_ else merge.concat
            skip, limit = req.skip, req.limit
        streams = _open_streams(svc, route, db, shards, [shard_cmd] * len(shards), cmd)
        docs = RouterCursor(streams, merge_fn, skip, limit)
        batch_size = req.batch_size
        if req.single_batch and batch_size is None:
            batch_size = req.limit or None
        return open_cursor(svc, req.ns, docs, batch_size,  # type: ignore[arg-type]
                           req.single_batch, ctx=ctx)

    return svc.shards.routed(db, req.coll, attempt,
                             missing=lambda: cursor_reply(req.ns, [], 0, True))


def _config_cursor(svc: RouterServices, db: str, cmd: Mapping[str, Any], ns: str,
                   batch_size: int | None, ctx: RequestContext) -> dict[str, Any]:
    """A read of the config servers' ``config``/``admin`` databases, as a router cursor."""
    config = svc.config

    def run(db_: str, c: dict[str, Any], address: Any) -> tuple[dict[str, Any], Any]:
        return config.run(db_, c, address=address)

    reply, address = run(db, forwardable(cmd), None)
    raise_for(reply, "config servers")
    if "cursor" not in reply:
        return reply
    stream = ShardStream("config", run, db, reply, address)
    return open_cursor(svc, reply["cursor"].get("ns", ns),  # type: ignore[arg-type]
                       RouterCursor([stream], merge.concat), batch_size, ctx=ctx)


# --- count, distinct -------------------------------------------------------------------------


def _scatter(svc: RouterServices, route: Route, db: str, shards: list[str],
             cmd: Mapping[str, Any], shard_cmd: Mapping[str, Any]) -> list[dict[str, Any]]:
    replies = svc.shards.call_many([(s, db, versioned(shard_cmd, route, s)) for s in shards],
                                   read_preference=read_preference(cmd))
    check_stale(route.ns, replies)
    for reply in replies:
        raise_for(reply, "shard")
    return replies


def count(svc: RouterServices, db: str, cmd: Mapping[str, Any], ctx: RequestContext
          ) -> dict[str, Any]:
    req = requests.parse_count(db, cmd)
    if db in CONFIG_DBS:
        return svc.config.command(db, forwardable(cmd))

    def attempt(route: Route) -> dict[str, Any]:
        shards = targets(route, req.query)
        shard_cmd = forwardable(cmd, "skip", "limit")
        if req.limit:
            shard_cmd["limit"] = req.skip + req.limit
        replies = _scatter(svc, route, db, shards, cmd, shard_cmd)
        return {"n": merge.merge_counts((int(r["n"]) for r in replies), req.skip, req.limit)}

    return svc.shards.routed(db, req.coll, attempt, missing=lambda: {"n": 0})


def distinct(svc: RouterServices, db: str, cmd: Mapping[str, Any], ctx: RequestContext
             ) -> dict[str, Any]:
    req = requests.parse_distinct(db, cmd)
    if db in CONFIG_DBS:
        return svc.config.command(db, forwardable(cmd))

    def attempt(route: Route) -> dict[str, Any]:
        replies = _scatter(svc, route, db, targets(route, req.query), cmd, forwardable(cmd))
        return {"values": merge.merge_distinct(r["values"] for r in replies)}

    return svc.shards.routed(db, req.coll, attempt, missing=lambda: {"values": []})


# --- aggregate -------------------------------------------------------------------------------

BLOCKING = ("$group", "$sort", "$skip", "$limit", "$count")
DECOMPOSABLE = ("$sum", "$min", "$max")


def split_pipeline(stages: list[tuple[str, Any]]) -> tuple[list[dict[str, Any]], Any,
                                                          list[tuple[str, Any]]]:
    """(shard part, how to merge, the part run on the router).

    The merge is ``None`` (concatenate), a :class:`Sort` (k-way merge by it) or ``"count"``
    (sum the shards' ``$count`` documents, named by the stage)."""
    i = next((k for k, (name, _) in enumerate(stages) if name in BLOCKING), len(stages))
    shard = [{name: arg} for name, arg in stages[:i]]
    rest = stages[i:]
    if not rest:
        return shard, None, []
    name, arg = rest[0]
    if name == "$sort" and isinstance(arg, Mapping) and arg:
        shard.append({"$sort": arg})
        if len(rest) > 1 and rest[1][0] == "$limit":
            shard.append({"$limit": rest[1][1]})
        return shard, Sort(arg), rest[1:]
    if name == "$limit":
        shard.append({"$limit": arg})
        return shard, None, rest
    if name == "$group" and _decomposable(arg):
        shard.append({"$group": arg})
        final = {"_id": "$_id", **{f: {op: f"${f}"} for f, spec in arg.items() if f != "_id"
                                   for op in spec}}
        return shard, None, [("$group", final), *rest[1:]]
    if name == "$count" and isinstance(arg, str):
        shard.append({"$count": arg})
        return shard, "count", rest[1:]
    return shard, None, rest


def _decomposable(arg: Any) -> bool:
    return isinstance(arg, Mapping) and all(
        isinstance(spec, Mapping) and len(spec) == 1 and next(iter(spec)) in DECOMPOSABLE
        for f, spec in arg.items() if f != "_id")


def aggregate(svc: RouterServices, db: str, cmd: Mapping[str, Any], ctx: RequestContext
              ) -> dict[str, Any]:
    from node.commands.pipeline import run_pipeline

    req = requests.parse_aggregate(db, cmd)
    if db in CONFIG_DBS:
        return _config_cursor(svc, db, cmd, f"{db}.{req.coll}", req.batch_size, ctx)
    shard_part, how, rest = split_pipeline(req.stages)

    def attempt(route: Route) -> dict[str, Any]:
        shards = targets(route, _leading_match(req.stages))
        shard_cmd = {**forwardable(cmd), "pipeline": shard_part, "cursor": {}}
        streams = _open_streams(svc, route, db, shards, [shard_cmd] * len(shards), cmd)

        def merged(ss: Sequence[ShardStream]) -> Iterator[dict[str, Any]]:
            if isinstance(how, Sort):
                docs = merge.merge_sorted(ss, key=how.key_bytes, strip=False)
            elif how == "count":
                name = shard_part[-1]["$count"]
                total = sum(int(d.get(name, 0)) for d in merge.concat(ss))
                docs = iter([{name: total}] if total else [])
            else:
                docs = merge.concat(ss)
            return run_pipeline(docs, rest)

        cursor = RouterCursor(streams, merged)
        return open_cursor(svc, f"{db}.{req.coll}", cursor,  # type: ignore[arg-type]
                           req.batch_size, ctx=ctx)

    return svc.shards.routed(db, req.coll, attempt,
                             missing=lambda: cursor_reply(f"{db}.{req.coll}", [], 0, True))


def _leading_match(stages: list[tuple[str, Any]]) -> Mapping[str, Any] | None:
    if stages and stages[0][0] == "$match" and isinstance(stages[0][1], Mapping):
        return stages[0][1]
    return None


# --- explain ---------------------------------------------------------------------------------


def explain(svc: RouterServices, db: str, cmd: Mapping[str, Any], ctx: RequestContext
            ) -> dict[str, Any]:
    inner = cmd.get("explain")
    if not isinstance(inner, Mapping) or not inner:
        raise MongoError(9, "explain command requires a nested object",
                         code_name="FailedToParse")
    name = next(iter(inner))
    if name not in ("find", "count", "distinct"):
        raise MongoError(115, f"Explain for the command '{name}' is not supported",
                         code_name="CommandNotSupported")
    coll = inner.get(name)
    if not isinstance(coll, str):
        raise MongoError(73, "collection name must be a string", code_name="InvalidNamespace")
    filt = inner.get("filter") if name == "find" else inner.get("query")
    filt = filt if isinstance(filt, Mapping) else None

    def attempt(route: Route) -> dict[str, Any]:
        shards = targets(route, filt)
        shard_inner = forwardable(inner)
        if name == "find":  # what find would send (the router skips, limits, merges)
            shard_inner = shard_find(requests.parse_find(db, inner), inner, len(shards))
            shard_inner.pop("$_requestSortKey", None)
            shard_inner.pop("batchSize", None)
        replies = svc.shards.call_many(
            [(s, db, {**forwardable(cmd), "explain": versioned(shard_inner, route, s)})
             for s in shards], read_preference=read_preference(cmd))
        check_stale(route.ns, replies)
        for reply in replies:
            raise_for(reply, "shard explain")
        stage = "SINGLE_SHARD" if len(shards) == 1 else (
            "SHARD_MERGE_SORT" if name == "find" and inner.get("sort") else "SHARD_MERGE")
        per_shard = []
        for s, reply in zip(shards, replies, strict=True):
            planner = dict(reply.get("queryPlanner", {}))
            per_shard.append({"shardName": s, **planner})
        out: dict[str, Any] = {"queryPlanner": {"mongosPlannerVersion": 1, "winningPlan": {
            "stage": stage, "shards": per_shard}}}
        if all("executionStats" in r for r in replies):
            stats = [r["executionStats"] for r in replies]
            out["executionStats"] = {
                "nReturned": sum(int(x.get("nReturned", 0)) for x in stats),
                "totalKeysExamined": sum(int(x.get("totalKeysExamined", 0)) for x in stats),
                "totalDocsExamined": sum(int(x.get("totalDocsExamined", 0)) for x in stats),
                "executionStages": {"stage": stage, "shards": [
                    {"shardName": s, **x} for s, x in zip(shards, stats, strict=True)]}}
        out["command"] = {**dict(inner), "$db": db}
        return out

    return svc.shards.routed(db, coll, attempt)
