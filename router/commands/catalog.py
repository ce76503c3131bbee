"""The router's catalog commands. An unsharded collection lives on its database's primary
shard, so most of them go there; for a sharded collection ``createIndexes``, ``dropIndexes``
and ``drop`` reach every shard, ``drop``/``dropDatabase`` also remove the metadata on the
config servers, a unique index not prefixed by ``_id`` is refused (its uniqueness could not
be kept across shards) and ``renameCollection`` is refused. ``listDatabases`` unites the
shards' answers.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from bson import Int64

from node.commands.args import collection_name, get_bool, get_doc, get_str
from node.commands.catalog_requests import parse_index_specs
from node.commands.context import RequestContext
from node.commands.engine_ops import filter_docs
from node.engine.errors import MongoError
from router.catalog import CONFIG_DBS, Route
from router.cursors import raise_for
from router.services import forwardable
from router.shards import check_stale, versioned

if TYPE_CHECKING:
    from router.services import RouterServices

CANNOT_CREATE_INDEX = 67
ILLEGAL_OPERATION = 20
NAMESPACE_NOT_FOUND = 26


def _primary(svc: RouterServices, db: str, coll: str, cmd: Mapping[str, Any], *,
             create_db: bool = False) -> dict[str, Any]:
    """Forward ``cmd`` to the database's primary shard (unsharded collections)."""
    if db in CONFIG_DBS:
        return svc.config.command(db, forwardable(cmd))

    def attempt(route: Route) -> dict[str, Any]:
        reply = svc.shards.call(route.primary, db, versioned(forwardable(cmd), route,
                                                             route.primary))
        check_stale(route.ns, [reply])
        return reply

    return svc.shards.routed(db, coll, attempt, create_db=create_db,
                             missing=lambda: MongoError(NAMESPACE_NOT_FOUND,
                                                        f"database {db} not found",
                                                        code_name="NamespaceNotFound"
                                                        ).to_reply())


def _everywhere(svc: RouterServices, route: Route, db: str, cmd: Mapping[str, Any]
                ) -> list[dict[str, Any]]:
    shards = sorted({route.primary, *(route.table.shards() if route.table else [])})
    return svc.shards.call_many([(s, db, forwardable(cmd)) for s in shards])


def _all_shards(svc: RouterServices, db: str, cmd: Mapping[str, Any]) -> list[dict[str, Any]]:
    names = sorted(svc.catalog.shards(refresh=True))
    return svc.shards.call_many([(s, db, forwardable(cmd)) for s in names])


def create(svc: RouterServices, db: str, cmd: Mapping[str, Any], ctx: RequestContext
           ) -> dict[str, Any]:
    coll = collection_name(cmd, "create")
    reply = _primary(svc, db, coll, cmd, create_db=True)
    options = {k: cmd[k] for k in ("validator", "validationLevel", "validationAction")
               if k in cmd}
    if options and reply.get("ok") == 1.0:
        # every shard keeps the validation options, so chunks moved there later are checked
        # by them too (collMod creates the collection where it is missing)
        others = [s for s in sorted(svc.catalog.shards(refresh=True))
                  if s != svc.catalog.database(db)["primary"]]
        svc.shards.call_many([(s, db, {"collMod": coll, **options, "$_createIfMissing": True})
                              for s in others])
    return reply


def coll_mod(svc: RouterServices, db: str, cmd: Mapping[str, Any], ctx: RequestContext
             ) -> dict[str, Any]:
    """``collMod`` on every shard of the collection (validators are checked where writes
    apply, on each shard)."""
    coll = collection_name(cmd, "collMod")

    def attempt(route: Route) -> dict[str, Any]:
        marked = {**cmd, "$_createIfMissing": True}  # a shard without chunks yet keeps them too
        replies = (_all_shards(svc, db, marked) if route.table is not None
                   else _everywhere(svc, route, db, marked))
        for reply in replies:
            raise_for(reply, "shard")
        return {}

    return svc.shards.routed(db, coll, attempt)


def convert_to_capped(svc: RouterServices, db: str, cmd: Mapping[str, Any],
                      ctx: RequestContext) -> dict[str, Any]:
    """``convertToCapped``: an unsharded collection's primary shard converts it; a sharded
    collection cannot be capped (IllegalOperation, as mongos)."""
    coll = collection_name(cmd, "convertToCapped")

    def attempt(route: Route) -> dict[str, Any]:
        if route.table is not None:
            raise MongoError(ILLEGAL_OPERATION, "You can't convertToCapped a sharded "
                             f"collection: {db}.{coll}", code_name="IllegalOperation")
        reply = svc.shards.call(route.primary, db, versioned(forwardable(cmd), route,
                                                             route.primary))
        check_stale(route.ns, [reply])
        return reply

    return svc.shards.routed(db, coll, attempt,
                             missing=lambda: MongoError(NAMESPACE_NOT_FOUND,
                                                        f"database {db} not found",
                                                        code_name="NamespaceNotFound"
                                                        ).to_reply())


def list_indexes(svc: RouterServices, db: str, cmd: Mapping[str, Any], ctx: RequestContext
                 ) -> dict[str, Any]:
    coll = collection_name(cmd, "listIndexes")
    return _primary(svc, db, coll, cmd)


def list_collections(svc: RouterServices, db: str, cmd: Mapping[str, Any],
                     ctx: RequestContext) -> dict[str, Any]:
    if db in CONFIG_DBS:
        return svc.config.command(db, forwardable(cmd))
    try:
        primary = svc.catalog.database(db)["primary"]
    except MongoError:
        return {"cursor": {"firstBatch": [], "id": Int64(0), "ns": f"{db}.$cmd.listCollections"}}
    return svc.shards.call(str(primary), db, forwardable(cmd))


def create_indexes(svc: RouterServices, db: str, cmd: Mapping[str, Any], ctx: RequestContext
                   ) -> dict[str, Any]:
    coll = collection_name(cmd, "createIndexes")
    specs = parse_index_specs(cmd)  # refused here before any shard is reached

    def attempt(route: Route) -> dict[str, Any]:
        if route.table is not None:
            for spec in specs:
                key = spec["key"]
                if spec.get("unique") and next(iter(key), None) != "_id":
                    raise MongoError(CANNOT_CREATE_INDEX, f"cannot create unique index over "
                                     f"{dict(key)} with shard key pattern {{ _id: 1 }}",
                                     code_name="CannotCreateIndex")
        replies = _everywhere(svc, route, db, cmd)
        for reply in replies:
            raise_for(reply, "shard")
        first = next((r for r in replies), {})
        return {k: v for k, v in first.items() if k != "ok"}

    return svc.shards.routed(db, coll, attempt, create_db=True)


def drop_indexes(svc: RouterServices, db: str, cmd: Mapping[str, Any], ctx: RequestContext
                 ) -> dict[str, Any]:
    coll = collection_name(cmd, "dropIndexes")

    def attempt(route: Route) -> dict[str, Any]:
        replies = _everywhere(svc, route, db, cmd)
        ok = [r for r in replies if r.get("ok") == 1.0]
        if not ok:
            raise_for(replies[0], "shard")
        return {k: v for k, v in ok[0].items() if k != "ok"}

    return svc.shards.routed(db, coll, attempt)


def drop(svc: RouterServices, db: str, cmd: Mapping[str, Any], ctx: RequestContext
         ) -> dict[str, Any]:
    coll = collection_name(cmd, "drop")
    if db in CONFIG_DBS:
        raise MongoError(ILLEGAL_OPERATION, f"cannot drop {db}.{coll} through a router",
                         code_name="IllegalOperation")
    ns = f"{db}.{coll}"
    route = svc.catalog.route(db, coll)
    if route is None:
        raise MongoError(NAMESPACE_NOT_FOUND, "ns not found", code_name="NamespaceNotFound")
    if route.table is not None:
        reply = svc.config.command("admin", {"_configsvrDropCollection": ns})
        raise_for(reply, "config servers")
    replies = _all_shards(svc, db, cmd)
    svc.catalog.mark_stale(ns)
    dropped = [r for r in replies if r.get("ok") == 1.0]
    if not dropped:
        raise MongoError(NAMESPACE_NOT_FOUND, "ns not found", code_name="NamespaceNotFound")
    return {"ns": ns, "nIndexesWas": max(int(r.get("nIndexesWas", 0)) for r in dropped)}


def drop_database(svc: RouterServices, db: str, cmd: Mapping[str, Any], ctx: RequestContext
                  ) -> dict[str, Any]:
    if db in CONFIG_DBS:
        raise MongoError(ILLEGAL_OPERATION, f"cannot drop the {db} database through a router",
                         code_name="IllegalOperation")
    reply = svc.config.command("admin", {"_configsvrDropDatabase": db})
    raise_for(reply, "config servers")
    _all_shards(svc, db, cmd)
    svc.catalog.forget_database(db)
    return {"dropped": db}


def list_databases(svc: RouterServices, db: str, cmd: Mapping[str, Any], ctx: RequestContext
                   ) -> dict[str, Any]:
    sizes: dict[str, int] = {}
    for reply in _all_shards(svc, "admin", {"listDatabases": 1}):
        for d in reply.get("databases", []) if reply.get("ok") == 1.0 else []:
            sizes[d["name"]] = sizes.get(d["name"], 0) + int(d.get("sizeOnDisk", 0))
    config = svc.config.command("admin", {"listDatabases": 1})
    for d in config.get("databases", []) if config.get("ok") == 1.0 else []:
        if d["name"] in CONFIG_DBS:
            sizes[d["name"]] = sizes.get(d["name"], 0) + int(d.get("sizeOnDisk", 0))
    name_only = get_bool(cmd, "listDatabases", "nameOnly")
    dbs = [{"name": n} if name_only else {"name": n, "sizeOnDisk": Int64(s), "empty": s == 0}
           for n, s in sorted(sizes.items())]
    filt = get_doc(cmd, "listDatabases", "filter", {})
    if filt:  # as a node filters: over the documents it answers
        dbs = filter_docs(dbs, filt)
    out: dict[str, Any] = {"databases": dbs}
    if not name_only:
        out["totalSize"] = Int64(sum(sizes.values()))
    return out


def coll_stats(svc: RouterServices, db: str, cmd: Mapping[str, Any], ctx: RequestContext
               ) -> dict[str, Any]:
    """Every shard holding chunks, summed; ``nchunks`` and the shard list from the config
    servers' routing table, read afresh (a cached one may predate migrations other routers
    or the balancer made; collStats is rare, one config read is cheap)."""
    coll = collection_name(cmd, "collStats")
    svc.catalog.mark_stale(f"{db}.{coll}")

    def attempt(route: Route) -> dict[str, Any]:
        shards = sorted({route.primary, *(route.table.shards() if route.table else [])})
        replies = svc.shards.call_many([(s, db, forwardable(cmd)) for s in shards])
        per = {s: r for s, r in zip(shards, replies, strict=True) if r.get("ok") == 1.0}
        return {"ns": route.ns, "sharded": route.table is not None,
                "count": sum(int(r.get("count", 0)) for r in per.values()),
                "size": sum(int(r.get("size", 0)) for r in per.values()),
                "nchunks": len(route.table.chunks) if route.table else 1,
                "shards": {s: {k: v for k, v in r.items() if k != "ok"}
                           for s, r in per.items()}}

    return svc.shards.routed(db, coll, attempt)


def db_stats(svc: RouterServices, db: str, cmd: Mapping[str, Any], ctx: RequestContext
             ) -> dict[str, Any]:
    replies = [r for r in _all_shards(svc, db, cmd) if r.get("ok") == 1.0]
    return {"db": db, "collections": max((int(r.get("collections", 0)) for r in replies),
                                         default=0),
            "objects": sum(int(r.get("objects", 0)) for r in replies),
            "dataSize": sum(int(r.get("dataSize", 0)) for r in replies)}


def rename_collection(svc: RouterServices, db: str, cmd: Mapping[str, Any],
                      ctx: RequestContext) -> dict[str, Any]:
    source = get_str(cmd, "renameCollection", "renameCollection")
    sdb, _, scoll = source.partition(".")
    route = svc.catalog.route(sdb, scoll)
    if route is None:
        raise MongoError(NAMESPACE_NOT_FOUND, "source namespace does not exist",
                         code_name="NamespaceNotFound")
    if route.table is not None:
        raise MongoError(ILLEGAL_OPERATION, f"cannot rename sharded collection '{source}'",
                         code_name="IllegalOperation")
    reply = svc.shards.call(route.primary, "admin", forwardable(cmd))
    svc.catalog.mark_stale(source)
    return reply
