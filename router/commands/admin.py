"""The router's handshake and cluster administration: ``hello`` (``msg: "isdbgrid"``, as a
mongos), ``serverStatus``, and the sharding commands with MongoDB's names and reply shapes:
``addShard``, ``removeShard``, ``listShards``, ``enableSharding``, ``shardCollection``,
``split``, ``moveChunk``, ``flushRouterConfig``. Metadata changes are made by the config
servers (``_configsvr*``); the router resolves what the user named (``find``: the chunk
holding a document) and forgets what it cached.
"""

from __future__ import annotations

import datetime as _dt
import os
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from bson import Int64

from node.commands import operations
from node.commands.admin import VERSION, hello_reply
from node.commands.args import get_bool, get_doc, get_str
from node.commands.context import RequestContext
from node.commands.operations import common_sections
from node.engine.errors import BAD_VALUE, MongoError
from node.sharding.config_server import split_ns
from router.cursors import raise_for

if TYPE_CHECKING:
    from router.services import RouterServices


def hello(svc: RouterServices, db: str, cmd: Mapping[str, Any], ctx: RequestContext
          ) -> dict[str, Any]:
    reply = hello_reply(cmd, ctx, True, {"msg": "isdbgrid", "me": svc.advertised})
    if getattr(svc, "users", None) is not None and (
            "saslSupportedMechs" in cmd or "speculativeAuthenticate" in cmd):
        from node.security.users import hello_fields

        reply.update(hello_fields(svc, cmd, ctx))
    return reply


def server_status(svc: RouterServices, db: str, cmd: Mapping[str, Any], ctx: RequestContext
                  ) -> dict[str, Any]:
    common = common_sections(svc)
    commands = common.pop("commands")
    return {
        **common,
        "host": svc.advertised, "version": VERSION, "process": "helogale-router",
        "pid": Int64(os.getpid()), "uptime": float(int(time.time() - svc.started_at)),
        "localTime": _dt.datetime.now(_dt.UTC),
        "sharding": {"configsvrConnectionString": svc.config.conn},
        "metrics": {"cursor": {"open": {"total": Int64(len(svc.cursors))}},
                    "router": {"routingRefreshes": Int64(svc.catalog.refreshes),
                               "staleConfigRetries": Int64(svc.shards.stale_retries)},
                    "commands": commands},
    }


def _config(svc: RouterServices, cmd: Mapping[str, Any]) -> dict[str, Any]:
    reply = svc.config.command("admin", cmd, retry="safe")
    raise_for(reply, "config servers")
    return {k: v for k, v in reply.items() if k != "ok"}


def add_shard(svc: RouterServices, db: str, cmd: Mapping[str, Any], ctx: RequestContext
              ) -> dict[str, Any]:
    conn = get_str(cmd, "addShard", "addShard")
    out = _config(svc, {"_configsvrAddShard": conn,
                        **({"name": cmd["name"]} if isinstance(cmd.get("name"), str) else {})})
    svc.catalog.shards(refresh=True)
    return out


def remove_shard(svc: RouterServices, db: str, cmd: Mapping[str, Any], ctx: RequestContext
                 ) -> dict[str, Any]:
    name = get_str(cmd, "removeShard", "removeShard")
    reply = svc.config.command("admin", {"_configsvrRemoveShard": name}, retry="safe")
    svc.catalog.shards(refresh=True)
    return reply


def list_shards(svc: RouterServices, db: str, cmd: Mapping[str, Any], ctx: RequestContext
                ) -> dict[str, Any]:
    shards = svc.catalog.shards(refresh=True)
    return {"shards": [{"_id": s["_id"], "host": s["host"], "grpcHost": s.get("grpcHost"),
                        "state": s.get("state", 1)} for s in shards.values()]}


def enable_sharding(svc: RouterServices, db: str, cmd: Mapping[str, Any], ctx: RequestContext
                    ) -> dict[str, Any]:
    name = get_str(cmd, "enableSharding", "enableSharding")
    out = _config(svc, {"_configsvrCreateDatabase": name, "partitioned": True})
    svc.catalog.forget_database(name)
    return {"primary": out["database"]["primary"]}


def shard_collection(svc: RouterServices, db: str, cmd: Mapping[str, Any],
                     ctx: RequestContext) -> dict[str, Any]:
    ns = get_str(cmd, "shardCollection", "shardCollection")
    split_ns(ns)
    key = get_doc(cmd, "shardCollection", "key")
    extra = {k: cmd[k] for k in ("numInitialChunks", "presplitWindowSecs") if k in cmd}
    for k, v in extra.items():
        if not isinstance(v, int | float) or isinstance(v, bool):
            raise MongoError(14, f"BSON field 'shardCollection.{k}' must be a number",
                             code_name="TypeMismatch")
    out = _config(svc, {"_configsvrShardCollection": ns, "key": dict(key),
                        "unique": get_bool(cmd, "shardCollection", "unique"), **extra})
    svc.catalog.forget_database(ns.partition(".")[0])
    svc.catalog.mark_stale(ns, database=True)
    return out


def _route(svc: RouterServices, ns: str) -> Any:
    db, coll = split_ns(ns)
    svc.catalog.mark_stale(ns)
    route = svc.catalog.route(db, coll)
    if route is None or route.table is None:
        raise MongoError(BAD_VALUE, f"ns not sharded: {ns}", code_name="BadValue")
    return route.table


def _chunk_bounds(svc: RouterServices, name: str, ns: str, cmd: Mapping[str, Any]
                  ) -> tuple[Any, Any, Any]:
    """(min, max) of the chunk a ``find``/``bounds``/``middle`` argument names, and the
    middle point if one was given."""
    table = _route(svc, ns)
    middle = None
    if "bounds" in cmd:
        bounds = cmd["bounds"]
        if not isinstance(bounds, list) or len(bounds) != 2 or not all(
                isinstance(b, Mapping) and "_id" in b for b in bounds):
            raise MongoError(BAD_VALUE, "bounds must be [{_id: min}, {_id: max}]")
        chunk = table.chunk_at(bounds[0]["_id"], bounds[1]["_id"])
        if chunk is None:
            raise MongoError(BAD_VALUE, f"no chunk of {ns} has the bounds {bounds!r}")
    elif "find" in cmd or "middle" in cmd:
        field = "find" if "find" in cmd else "middle"
        point = cmd[field]
        if not isinstance(point, Mapping) or "_id" not in point:
            raise MongoError(BAD_VALUE, f"{field} must be a document with _id (the shard key)")
        chunk = table.chunk_for_id(point["_id"])
        if field == "middle":
            middle = point["_id"]
    else:
        raise MongoError(BAD_VALUE, f"{name} needs one of find, middle or bounds")
    return chunk.min, chunk.max, middle


def split(svc: RouterServices, db: str, cmd: Mapping[str, Any], ctx: RequestContext
          ) -> dict[str, Any]:
    ns = get_str(cmd, "split", "split")
    lo, hi, middle = _chunk_bounds(svc, "split", ns, cmd)
    if middle is None:
        middle = _median_id(svc, ns, lo, hi)
    out = _config(svc, {"_configsvrSplitChunk": ns, "min": lo, "max": hi,
                        "splitPoints": [middle]})
    svc.catalog.mark_stale(ns)
    return out


def _median_id(svc: RouterServices, ns: str, lo: Any, hi: Any) -> Any:
    """The middle ``_id`` of a chunk's documents (``split`` with ``find`` or ``bounds``)."""
    from bson import MaxKey, MinKey

    db, coll = split_ns(ns)
    table = _route(svc, ns)
    shard = table.chunk_for_id(lo).shard if not isinstance(lo, MinKey) else \
        table.chunks[0].shard
    filt: dict[str, Any] = {}
    if not isinstance(lo, MinKey):
        filt.setdefault("_id", {})["$gte"] = lo
    if not isinstance(hi, MaxKey):
        filt.setdefault("_id", {})["$lt"] = hi
    n = svc.shards.call(shard, db, {"count": coll, "query": filt}).get("n", 0)
    if not n or n < 2:
        raise MongoError(BAD_VALUE, f"cannot split a chunk of {ns} holding {n} document(s) "
                         "without a middle point")
    reply = svc.shards.call(shard, db, {"find": coll, "filter": filt, "sort": {"_id": 1},
                                        "skip": int(n) // 2, "limit": 1,
                                        "projection": {"_id": 1}, "singleBatch": True})
    raise_for(reply, f"shard {shard}")
    return reply["cursor"]["firstBatch"][0]["_id"]


def move_chunk(svc: RouterServices, db: str, cmd: Mapping[str, Any], ctx: RequestContext
               ) -> dict[str, Any]:
    ns = get_str(cmd, "moveChunk", "moveChunk")
    to = get_str(cmd, "moveChunk", "to")
    lo, hi, _ = _chunk_bounds(svc, "moveChunk", ns, cmd)
    out = _config(svc, {"_configsvrMoveChunk": ns, "min": lo, "max": hi, "toShard": to,
                        "waitForDelete": get_bool(cmd, "moveChunk", "_waitForDelete")})
    svc.catalog.mark_stale(ns)
    return out


def flush_router_config(svc: RouterServices, db: str, cmd: Mapping[str, Any],
                        ctx: RequestContext) -> dict[str, Any]:
    svc.catalog.flush()
    return {"flushed": True}


def balancer_start(svc: RouterServices, db: str, cmd: Mapping[str, Any], ctx: RequestContext
                   ) -> dict[str, Any]:
    return _config(svc, {"_configsvrBalancerStart": 1})


def balancer_stop(svc: RouterServices, db: str, cmd: Mapping[str, Any], ctx: RequestContext
                  ) -> dict[str, Any]:
    return _config(svc, {"_configsvrBalancerStop": 1})


def balancer_status(svc: RouterServices, db: str, cmd: Mapping[str, Any], ctx: RequestContext
                    ) -> dict[str, Any]:
    return _config(svc, {"_configsvrBalancerStatus": 1})


def merge_chunks(svc: RouterServices, db: str, cmd: Mapping[str, Any], ctx: RequestContext
                 ) -> dict[str, Any]:
    ns = get_str(cmd, "mergeChunks", "mergeChunks")
    bounds = cmd.get("bounds")
    if not isinstance(bounds, list) or len(bounds) != 2 or not all(
            isinstance(b, Mapping) and "_id" in b for b in bounds):
        raise MongoError(BAD_VALUE, "mergeChunks needs bounds: [{_id: min}, {_id: max}]")
    out = _config(svc, {"_configsvrMergeChunks": ns, "min": bounds[0]["_id"],
                        "max": bounds[1]["_id"]})
    svc.catalog.mark_stale(ns)
    return out


def move_primary(svc: RouterServices, db: str, cmd: Mapping[str, Any], ctx: RequestContext
                 ) -> dict[str, Any]:
    name = get_str(cmd, "movePrimary", "movePrimary")
    out = _config(svc, {"_configsvrMovePrimary": name, "to": get_str(cmd, "movePrimary", "to")})
    svc.catalog.forget_database(name)
    return out


def current_op(svc: RouterServices, db: str, cmd: Mapping[str, Any], ctx: RequestContext
               ) -> dict[str, Any]:
    """The router's own operations, then each shard primary's as ``"<shard>:<opid>"``."""
    inprog = operations.local_ops(svc, cmd, ctx)
    for d in inprog:
        d.setdefault("router", svc.advertised)
    names = sorted(svc.catalog.shards())
    forwarded = {k: v for k, v in cmd.items() if k not in ("$db", "$readPreference",
                                                           "$clusterTime", "lsid", "$ownOps")}
    replies = svc.shards.call_many([(name, "admin", forwarded) for name in names])
    for name, reply in zip(names, replies, strict=True):
        if reply.get("ok") != 1.0:
            continue
        for d in reply.get("inprog", []):
            d["opid"] = f"{name}:{d['opid']}"
            d["shard"] = name
            inprog.append(d)
    return {"inprog": inprog}


def kill_op(svc: RouterServices, db: str, cmd: Mapping[str, Any], ctx: RequestContext
            ) -> dict[str, Any]:
    """``killOp`` of a router op, or (``"<shard>:<opid>"``) forwarded to that shard."""
    opid = operations.opid_arg(cmd)
    if isinstance(opid, str) and ":" in opid:
        shard, _, local = opid.rpartition(":")
        if shard not in svc.catalog.shards():
            raise MongoError(BAD_VALUE, f"no shard {shard!r} (op {opid!r})")
        if not local.isdigit():
            raise MongoError(BAD_VALUE, f"invalid op: {opid!r}")
        reply = svc.shards.call(shard, "admin", {"killOp": 1, "op": int(local)})
        raise_for(reply, f"shard {shard}")
        return {k: v for k, v in reply.items() if k != "ok"}
    found = operations.kill_local(svc, opid)
    return {"info": "attempting to kill op" if found else "no such op", "found": found}
