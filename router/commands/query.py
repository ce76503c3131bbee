"""The router's reads: ``find``, ``count``, ``distinct``, ``aggregate`` and ``explain``.

Each is parsed once (the node's typed requests), targeted (``_id`` equality and ``$in`` reach
the owning shards only, ``_id`` ranges the overlapping chunks, anything else every shard of
the collection; an unsharded collection its database's primary shard), sent to every target
at once with the version it was routed by, and merged:

* ``find``: shards sort and attach memcomparable sort keys, the router k-way merges them;
  ``skip``/``limit`` reach the shards as ``limit = skip + limit`` and are applied here; the
  router's cursor pages through the shards' cursors as the client asks for more;
* ``count``: summed (shards capped at ``skip + limit``); ``distinct``: united;
* ``aggregate``: the pipeline splits (:func:`split_pipeline`) into a shard part and a part run
  here on the merged stream with the node's own pipeline code: ``$sort`` merged in order with
  its ``$limit`` pushed down, ``$group`` as partial states merged here, ``$count`` summed;
  ``$lookup``/``$graphLookup``/``$unionWith`` read through the router (the foreign collection
  may be sharded) and ``$out``/``$merge`` write through it;
* ``explain``: each shard's plan, under ``SINGLE_SHARD`` or ``SHARD_MERGE``.

The ``config`` and ``admin`` databases live on the config servers: reads of them go there.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from node.commands import requests
from node.commands.context import RequestContext
from node.commands.query import cursor_reply, let_values, open_cursor
from node.engine.errors import MongoError
from node.engine.projection import Projection
from node.engine.sorting import Sort
from router import merge, snapshots, tailing
from router.catalog import CONFIG_DBS, Route
from router.cursors import RouterCursor, ShardStream, raise_for, shard_runner
from router.services import forwardable, read_preference
from router.shards import check_stale, versioned
from router.targeting import id_ranges, note_targets

if TYPE_CHECKING:
    from router.services import RouterServices

FIRST_BATCH = 101


def targets(route: Route, filt: Mapping[str, Any] | None) -> list[str]:
    """The shards a query of ``filt`` must ask (at least one, so the reply is well formed)."""
    if route.table is None:
        return note_targets([route.primary], 1)
    shards = route.table.shards_in(id_ranges(filt))
    return note_targets(shards or [route.table.chunks[0].shard], len(route.table.shards()))


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
        calls = [svc.shards.pool.submit(contextvars.copy_context().run,
                                        svc.shards.call_member, shard, db,
                                        versioned(c, route, shard), read_preference=pref)
                 for shard, c in zip(shards, cmds, strict=True)]
        answered = [f.result() for f in calls]
    snapshots.record(list(shards), [reply for reply, _ in answered])
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


def _snapshot(svc: RouterServices, cmd: Mapping[str, Any]
              ) -> tuple[snapshots.RouterSnapshot | None, AbstractContextManager[None]]:
    """A snapshot read's token (``router.snapshots``) and the context it reads in."""
    snap = svc.snapshots.begin(cmd)
    return snap, (snap.active() if snap is not None else nullcontext())


def _with_token(reply: dict[str, Any], snap: snapshots.RouterSnapshot | None
                ) -> dict[str, Any]:
    if snap is not None:
        reply.get("cursor", reply)["atClusterTime"] = snap.time
    return reply


def find(svc: RouterServices, db: str, cmd: Mapping[str, Any], ctx: RequestContext
         ) -> dict[str, Any]:
    req = requests.parse_find(db, cmd)
    if db in CONFIG_DBS:
        return _config_cursor(svc, db, cmd, req.ns, req.batch_size, ctx)
    if tailing.is_tailing(cmd):
        return tailing.find(svc, db, req, cmd, ctx)
    snap, reading = _snapshot(svc, cmd)

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

    def missing() -> dict[str, Any]:
        if req.projection:  # refused as a shard would refuse it
            Projection(req.projection, variables=let_values(req.let))
        return cursor_reply(req.ns, [], 0, True)

    with reading:
        return _with_token(svc.shards.routed(db, req.coll, attempt, missing=missing), snap)


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
    snapshots.record(shards, replies)
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

    snap, reading = _snapshot(svc, cmd)
    with reading:
        return _with_token(svc.shards.routed(db, req.coll, attempt,
                                             missing=lambda: {"values": []}), snap)


# --- aggregate -------------------------------------------------------------------------------

STREAMING = ("$match", "$project", "$addFields", "$set", "$unset", "$unwind", "$replaceRoot",
             "$replaceWith", "$redact")
"""Stages a shard runs on its own documents as well as the router would on all of them."""


@dataclass
class Split:
    """A pipeline split for the shards: ``shards`` runs on each targeted shard, its outputs
    merge by ``merge`` (None: concatenated; a :class:`Sort`: k-way by that order; ``"count"``:
    the ``$count`` documents summed), then ``router`` runs here."""

    shards: list[dict[str, Any]]
    merge: Any
    router: list[tuple[str, Any]]

    def describe(self) -> dict[str, Any]:
        how = ("mergeSort" if isinstance(self.merge, Sort) else self.merge or "concat")
        return {"shardsPart": self.shards, "mergeType": how,
                "mergerPart": [{n: a} for n, a in self.router]}


def split_pipeline(stages: list[tuple[str, Any]]) -> Split:
    """The shard part runs up to the first stage needing every document (or another
    collection); that stage is split when it can be: ``$sort`` runs on the shards too (with
    the ``$limit`` after it) and merges in order; ``$group``/``$sortByCount`` fold partial
    states on the shards and finish here; ``$count`` is summed; ``$limit`` and ``$sample``
    run on both sides; ``$geoNear`` on the shards, merged by distance."""
    from node.commands.pipeline import parse_sort_stage, sort_keep

    i = 0
    shard: list[dict[str, Any]] = []
    if stages and stages[0][0] == "$geoNear" and isinstance(stages[0][1], Mapping):
        field = stages[0][1].get("distanceField")
        shard.append({"$geoNear": stages[0][1]})
        merge_by = Sort({field: 1}) if isinstance(field, str) and field else None
        return Split(shard, merge_by, stages[1:])
    if stages and stages[0][0] in ("$collStats", "$indexStats"):
        return Split([{stages[0][0]: stages[0][1]}], None, stages[1:])
    while i < len(stages) and stages[i][0] in STREAMING:
        shard.append({stages[i][0]: stages[i][1]})
        i += 1
    rest = stages[i:]
    if not rest:
        return Split(shard, None, [])
    name, arg = rest[0]
    try:
        if name == "$sort":
            sort = parse_sort_stage(arg)
            shard.append({"$sort": arg})
            keep = sort_keep(rest, 0)
            if keep:
                shard.append({"$limit": keep})
            return Split(shard, sort, rest[1:])
        if name == "$limit":
            shard.append({"$limit": arg})
            return Split(shard, None, rest)
        if name == "$sample":
            shard.append({"$sample": arg})
            return Split(shard, None, rest)
        if name in ("$group", "$sortByCount"):
            if name == "$sortByCount":
                group = {"_id": arg, "count": {"$sum": 1}}
                after: list[tuple[str, Any]] = [("$sort", {"count": -1})]
            else:
                group, after = arg, []
            if isinstance(group, Mapping):
                shard.append({"$_groupPartial": group})
                return Split(shard, None, [("$_groupMerge", group), *after, *rest[1:]])
        if name == "$count" and isinstance(arg, str):
            shard.append({"$count": arg})
            return Split(shard, "count", rest[1:])
    except MongoError:
        pass  # the router reports the stage's error when it compiles it
    return Split(shard, None, rest)


def _literal_let(variables: Mapping[str, Any]) -> dict[str, Any]:
    return {k: {"$literal": v} for k, v in variables.items()}


def routed_docs(svc: RouterServices, db: str, coll: str, stages: list[tuple[str, Any]],
                cmd: Mapping[str, Any], variables: Mapping[str, Any],
                explain: list[dict[str, Any]] | None = None) -> Iterator[dict[str, Any]]:
    """The documents of ``stages`` over ``db.coll`` through the shards: the split's shard part
    on every targeted shard, merged, then the router part here (reading other collections
    through the router again)."""
    from node.commands.pipeline import PipelineContext, compile_pipeline

    split = split_pipeline(stages)
    ctx = PipelineContext(db=db, coll=coll, variables=dict(variables),
                          allow_disk_use=bool(cmd.get("allowDiskUse")))
    snap = snapshots.current()  # a $lookup in a later batch reads under the same token
    ctx.read = lambda c, p, vs: _read_through(svc, db, c, p, cmd, vs, snap)
    ctx.write = lambda name, spec, docs: _write_through(svc, db, name, spec, docs, cmd)
    from node.commands.pipeline import parse_stages
    check = ctx.sub(geo_near=lambda arg: iter(()), stats=lambda name, arg: iter(()))
    compile_pipeline(parse_stages(split.shards, allow_internal=True), check)  # fail early
    compiled = compile_pipeline(split.router, ctx)

    def attempt(route: Route) -> Iterator[dict[str, Any]]:
        shards = targets(route, _leading_match(stages))
        shard_cmd = {**forwardable(cmd, "explain", "let", "pipeline", "cursor"),
                     "aggregate": coll, "pipeline": split.shards, "cursor": {},
                     "$_internalSplit": True}
        if variables:
            shard_cmd["let"] = _literal_let(variables)
        if explain is not None:
            replies = svc.shards.call_many(
                [(s, db, versioned({**{k: v for k, v in shard_cmd.items() if k != "cursor"},
                                    "explain": True}, route, s)) for s in shards], read_preference=read_preference(cmd))
            check_stale(route.ns, replies)
            for reply in replies:
                raise_for(reply, "shard")
            explain.append({"splitPipeline": split.describe(), "shards": {
                s: {k: v for k, v in r.items() if k not in ("ok", "$clusterTime",
                                                            "operationTime")}
                for s, r in zip(shards, replies, strict=True)}})
            return iter(())
        streams = _open_streams(svc, route, db, shards, [shard_cmd] * len(shards), cmd)

        def merged(ss: Sequence[ShardStream]) -> Iterator[dict[str, Any]]:
            if isinstance(split.merge, Sort):
                docs: Iterator[dict[str, Any]] = merge.merge_sorted(
                    ss, key=split.merge.key_bytes, strip=False)
            elif split.merge == "count":
                name = split.shards[-1]["$count"]
                total = sum(int(d.get(name, 0)) for d in merge.concat(ss))
                docs = iter([{name: total}] if total else [])
            else:
                docs = merge.concat(ss)
            for stage in compiled:
                docs = stage(docs)
            return iter(docs)

        return RouterCursor(streams, merged)

    def missing() -> Iterator[dict[str, Any]]:
        docs: Iterator[dict[str, Any]] = iter(())
        if split.merge == "count":
            return docs
        for stage in compiled:
            docs = stage(docs)
        return iter(docs)

    return svc.shards.routed(db, coll, attempt, missing=missing)


def _read_through(svc: RouterServices, db: str, coll: str, pipeline: list[dict[str, Any]],
                  cmd: Mapping[str, Any], variables: Mapping[str, Any],
                  snap: snapshots.RouterSnapshot | None = None) -> Iterator[dict[str, Any]]:
    from node.commands.pipeline import parse_stages

    stages = parse_stages(pipeline)
    if stages and stages[0][0] == "$documents":
        from node.commands.pipeline import PipelineContext, run_pipeline
        return run_pipeline(iter(()), stages, ctx=PipelineContext(
            db=db, coll=coll, variables=dict(variables)))
    with snap.active() if snap is not None else nullcontext():
        return iter(list(routed_docs(svc, db, coll, stages,
                                     forwardable(cmd, "pipeline", "let"), variables)))


def _write_through(svc: RouterServices, db: str, name: str, spec: Mapping[str, Any],
                   docs: Iterable[dict[str, Any]], cmd: Mapping[str, Any]) -> None:
    """``$out``/``$merge`` through the router: the documents go to the target's shards as
    ``aggregate: 1`` with ``$documents`` and the writing stage, where they are written
    through the log as on a replica set. ``$out`` refuses a sharded target (28769); a
    sharded ``$merge`` target gets each document at the shard owning its ``_id``."""
    from node.commands.agg_writes import prepare_docs

    out = prepare_docs(docs)
    tdb, tcoll = spec["db"], spec["coll"]
    stage_arg: dict[str, Any]
    if name == "$out":
        stage_arg = {"db": tdb, "coll": tcoll}
    else:
        stage_arg = {"into": {"db": tdb, "coll": tcoll}, "on": spec["on"],
                     "whenMatched": spec["whenMatched"],
                     "whenNotMatched": spec["whenNotMatched"]}
        if isinstance(spec["whenMatched"], list):
            stage_arg["let"] = spec["let"]
    extra = {k: cmd[k] for k in ("writeConcern", "bypassDocumentValidation") if k in cmd}

    def attempt(route: Route) -> None:
        if route.table is not None:
            if name == "$out":
                raise MongoError(28769, f"{tdb}.{tcoll} cannot be sharded",
                                 code_name="Location28769")
            if "_id" not in spec["on"]:
                raise MongoError(51190, "Cannot find index to verify that join fields will be "
                                 "unique: $merge 'on' fields must include the shard key _id",
                                 code_name="Location51190")
            by_shard: dict[str, list[dict[str, Any]]] = {}
            for d in out:
                by_shard.setdefault(route.table.shard_for_id(d["_id"]), []).append(d)
        else:
            by_shard = {route.primary: out}
        calls = [(s, tdb, versioned({"aggregate": 1, "pipeline": [
            {"$documents": {"$literal": ds}}, {name: stage_arg}], "cursor": {}, **extra},
            route, s)) for s, ds in by_shard.items()]
        replies = svc.shards.call_many(calls, retry="none") if calls else []
        check_stale(route.ns, replies)
        for reply in replies:
            raise_for(reply, "shard")

    svc.shards.routed(tdb, tcoll, attempt, create_db=True)


def aggregate(svc: RouterServices, db: str, cmd: Mapping[str, Any], ctx: RequestContext
              ) -> dict[str, Any]:
    from node.commands.query import let_values

    req = requests.parse_aggregate(db, cmd)
    if db in CONFIG_DBS:
        return _config_cursor(svc, db, cmd, f"{db}.{req.coll}", req.batch_size, ctx)
    variables = let_values(req.let)
    ns = f"{db}.{req.coll}"
    if req.collectionless:
        from node.commands.pipeline import PipelineContext, run_pipeline
        pctx = PipelineContext(db=db, coll=req.coll, variables=variables)
        pctx.read = lambda c, p, vs: _read_through(svc, db, c, p, cmd, vs)
        pctx.write = lambda name, spec, docs: _write_through(svc, db, name, spec, docs, cmd)
        docs = run_pipeline(iter(()), req.stages, ctx=pctx)
        return open_cursor(svc, ns, docs, req.batch_size, ctx=ctx)  # type: ignore[arg-type]
    if req.explain:
        explain: list[dict[str, Any]] = []
        for _ in routed_docs(svc, db, req.coll, req.stages, cmd, variables, explain):
            pass
        out = explain[0] if explain else {"splitPipeline": None, "shards": {}}
        return {"explainVersion": "1", **out}
    snap, reading = _snapshot(svc, cmd)
    with reading:
        docs = routed_docs(svc, db, req.coll, req.stages, cmd, variables)
        if req.stages and req.stages[-1][0] in ("$out", "$merge"):
            for _ in docs:
                pass
            return cursor_reply(ns, [], 0, True)
        return _with_token(open_cursor(svc, ns, docs, req.batch_size,  # type: ignore[arg-type]
                                       ctx=ctx), snap)


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
