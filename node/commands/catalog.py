"""Catalog commands: ``listCollections``, ``listDatabases``, ``collStats``, ``dbStats`` (reads)
and ``create``, ``drop``, ``dropDatabase`` (replicated writes)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from bson import Int64

from node.commands import engine_ops
from node.commands.args import collection_name, get_bool, get_doc
from node.commands.catalog_requests import refuse_unsupported
from node.commands.context import RequestContext
from node.commands.crud import submit
from node.commands.pending import PendingReply
from node.engine import capped
from node.engine.errors import (
    INVALID_OPTIONS,
    MongoError,
    illegal_operation,
    namespace_not_found,
)

if TYPE_CHECKING:
    from node.commands.dispatcher import NodeServices


def list_collections(node: NodeServices, db: str, cmd: Mapping[str, Any], ctx: RequestContext
                     ) -> dict[str, Any]:
    from node.commands.query import open_cursor

    filt = get_doc(cmd, "listCollections", "filter", {})
    name_only = get_bool(cmd, "listCollections", "nameOnly")
    node.member.check_readable(cmd, ctx)
    infos = []
    for entry in node.engine.list_collections(db):
        name = entry["name"]
        info: dict[str, Any] = {"name": name, "type": "collection"}
        if not name_only:
            info.update({"options": dict(entry.get("options") or {}),
                         "info": {"readOnly": False},
                         "idIndex": {"v": 2, "key": {"_id": 1}, "name": "_id_"}})
        infos.append(info)
    if filt:
        infos = engine_ops.filter_docs(infos, filt)
    cursor = cmd.get("cursor") if isinstance(cmd.get("cursor"), Mapping) else {}
    batch = cursor.get("batchSize")
    return open_cursor(node, f"{db}.$cmd.listCollections", iter(infos),
                       int(batch) if isinstance(batch, int) else None, ctx=ctx)


def list_databases(node: NodeServices, db: str, cmd: Mapping[str, Any], ctx: RequestContext
                   ) -> dict[str, Any]:
    node.member.check_readable(cmd, ctx)
    name_only = get_bool(cmd, "listDatabases", "nameOnly")
    dbs = []
    total = 0
    for name in engine_ops.database_names(node.engine):
        size = engine_ops.database_size(node.engine, name)
        total += size
        dbs.append({"name": name} if name_only else
                   {"name": name, "sizeOnDisk": Int64(size), "empty": size == 0})
    filt = get_doc(cmd, "listDatabases", "filter", {})
    if filt:
        dbs = engine_ops.filter_docs(dbs, filt)
    reply: dict[str, Any] = {"databases": dbs}
    if not name_only:
        reply["totalSize"] = Int64(total)
    return reply


def coll_stats(node: NodeServices, db: str, cmd: Mapping[str, Any], ctx: RequestContext
               ) -> dict[str, Any]:
    coll = collection_name(cmd, "collStats")
    node.member.check_readable(cmd, ctx)
    n, size = engine_ops.data_size(node.engine, db, coll)
    reply: dict[str, Any] = {
        "ns": f"{db}.{coll}", "count": n, "size": size, "avgObjSize": size // n if n else 0,
        "nindexes": len(engine_ops.list_indexes(node.engine, db, coll, missing_ok=True)),
        "capped": False}
    entry = node.engine.catalog_entry(db, coll)
    options = (entry or {}).get("options") or {}
    if options.get("capped"):
        reply.update(capped=True, maxSize=Int64(options["size"]))
        if options.get("max"):
            reply["max"] = Int64(options["max"])
    return reply


def db_stats(node: NodeServices, db: str, cmd: Mapping[str, Any], ctx: RequestContext
             ) -> dict[str, Any]:
    node.member.check_readable(cmd, ctx)
    names = engine_ops.collection_names(node.engine, db)
    sizes = [engine_ops.data_size(node.engine, db, c) for c in names]
    return {"db": db, "collections": len(names), "objects": sum(n for n, _ in sizes),
            "dataSize": sum(b for _, b in sizes)}


CREATE_UNSUPPORTED = ("viewOn", "pipeline", "timeseries", "clusteredIndex", "encryptedFields")
"""``create`` options MongoDB accepts that Helogale refuses (115): views, time series,
clustered collections and Queryable Encryption."""
COLL_MOD_UNSUPPORTED = ("index", "viewOn", "pipeline", "expireAfterSeconds", "timeseries",
                        "timeseriesBucketsMayHaveMixedSchemaData", "cappedSize", "cappedMax",
                        "dryRun")
"""``collMod`` options MongoDB accepts that Helogale refuses (115)."""


def create(node: NodeServices, db: str, cmd: Mapping[str, Any], ctx: RequestContext
           ) -> dict[str, Any] | PendingReply:
    coll = collection_name(cmd, "create")
    refuse_unsupported(cmd, "create", CREATE_UNSUPPORTED)
    if cmd.get("expireAfterSeconds") is not None:
        raise MongoError(INVALID_OPTIONS, "'expireAfterSeconds' requires clustering to be "
                         "enabled", code_name="InvalidOptions")
    from node.engine.validation import check_options
    options = capped.parse_options({k: cmd[k] for k in ("capped", "size", "max") if k in cmd})
    options = options if options.get("capped") else {}
    options.update(check_options(cmd))
    entry: dict[str, Any] = {"op": "create", "db": db, "coll": coll}
    if options:
        entry["options"] = options
    return submit(node, cmd, entry, ctx)


def apply_create(engine: Any, txn: Any, entry: dict[str, Any]) -> dict[str, Any]:
    engine.create_collection(entry["db"], entry["coll"], entry.get("options"), txn=txn)
    return {}


def convert_to_capped(node: NodeServices, db: str, cmd: Mapping[str, Any],
                      ctx: RequestContext) -> dict[str, Any] | PendingReply:
    """``convertToCapped``: the collection rewritten as capped (natural order = ``_id`` order,
    the oldest beyond the bounds dropped); only its ``_id`` index is kept, as MongoDB does."""
    coll = collection_name(cmd, "convertToCapped")
    if "size" not in cmd:
        raise MongoError(72, "the 'size' field is required", code_name="InvalidOptions")
    options = capped.parse_options({"capped": True, "size": cmd.get("size"),
                                    **({"max": cmd["max"]} if "max" in cmd else {})})
    return submit(node, cmd, {"op": "convertToCapped", "db": db, "coll": coll,
                              "options": options}, ctx)


def apply_convert_to_capped(engine: Any, txn: Any, entry: dict[str, Any]) -> dict[str, Any]:
    db, coll = entry["db"], entry["coll"]
    current = engine.catalog_entry(db, coll, txn=txn)
    if current is None:
        raise namespace_not_found(f"source collection {db}.{coll} does not exist")
    ownership = getattr(engine, "ownership", None)
    if ownership is not None and ownership.owned(txn, f"{db}.{coll}") is not None:
        raise illegal_operation("You can't convertToCapped a sharded collection")
    source = engine.collection(db, coll)
    docs = [doc for _, doc in source.find_records({}, txn=txn)]
    engine_ops.drop_collection(engine, txn, db, coll)
    engine.create_collection(db, coll, entry["options"], txn=txn)
    target = engine.collection(db, coll)
    for doc in docs:
        target.insert_one(doc, txn=txn)
    return {}


def coll_mod(node: NodeServices, db: str, cmd: Mapping[str, Any], ctx: RequestContext
             ) -> dict[str, Any] | PendingReply:
    """``collMod``: change a collection's validation options (``validator``,
    ``validationLevel``, ``validationAction``); the fields are checked by the dispatcher
    (:data:`~node.commands.catalog_requests.COLL_MOD_FIELDS`), the options Helogale does not
    implement are refused (115) and the rest (``changeStreamPreAndPostImages`` ...) ignored."""
    from node.engine.validation import check_options
    coll = collection_name(cmd, "collMod")
    refuse_unsupported(cmd, "collMod", COLL_MOD_UNSUPPORTED)
    return submit(node, cmd, {"op": "collMod", "db": db, "coll": coll,
                              "options": check_options(cmd),
                              "create": bool(cmd.get("$_createIfMissing"))}, ctx)


def apply_coll_mod(engine: Any, txn: Any, entry: dict[str, Any]) -> dict[str, Any]:
    current = engine.catalog_entry(entry["db"], entry["coll"], txn=txn)
    if current is None and entry.get("create"):  # a shard the router reached first
        engine.create_collection(entry["db"], entry["coll"], entry["options"], txn=txn)
        return {}
    if current is None:
        raise MongoError(26, f"ns does not exist: {entry['db']}.{entry['coll']}",
                         code_name="NamespaceNotFound")
    options = {**current.get("options", {}), **entry["options"]}
    engine.put_catalog_entry(txn, entry["db"], entry["coll"], {**current, "options": options})
    return {}


def drop(node: NodeServices, db: str, cmd: Mapping[str, Any], ctx: RequestContext
         ) -> dict[str, Any] | PendingReply:
    coll = collection_name(cmd, "drop")
    return submit(node, cmd, {"op": "drop", "db": db, "coll": coll}, ctx)


def apply_drop(engine: Any, txn: Any, entry: dict[str, Any]) -> dict[str, Any]:
    if engine.catalog_entry(entry["db"], entry["coll"], txn=txn) is None:
        raise namespace_not_found("ns not found")
    was = engine_ops.drop_collection(engine, txn, entry["db"], entry["coll"])
    return {"nIndexesWas": was, "ns": f"{entry['db']}.{entry['coll']}"}


def drop_database(node: NodeServices, db: str, cmd: Mapping[str, Any], ctx: RequestContext
                  ) -> dict[str, Any] | PendingReply:
    return submit(node, cmd, {"op": "dropDatabase", "db": db}, ctx)


def apply_drop_database(engine: Any, txn: Any, entry: dict[str, Any]) -> dict[str, Any]:
    engine_ops.drop_database(engine, txn, entry["db"])
    return {"dropped": entry["db"]}


APPLIERS = {"create": apply_create, "convertToCapped": apply_convert_to_capped,
            "drop": apply_drop, "dropDatabase": apply_drop_database, "collMod": apply_coll_mod}
