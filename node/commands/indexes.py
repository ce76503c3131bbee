"""Index commands: ``createIndexes`` and ``dropIndexes`` (replicated writes) and
``listIndexes`` (a read answered as a cursor)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from node.commands import engine_ops
from node.commands.args import bson_type_name, collection_name
from node.commands.catalog_requests import parse_index_specs
from node.commands.context import RequestContext
from node.commands.crud import submit
from node.commands.pending import PendingReply
from node.engine.errors import MongoError, type_mismatch
from node.ops.progress import Progress

if TYPE_CHECKING:
    from node.commands.dispatcher import NodeServices


def create_indexes(node: NodeServices, db: str, cmd: Mapping[str, Any], ctx: RequestContext
                   ) -> dict[str, Any] | PendingReply:
    coll = collection_name(cmd, "createIndexes")
    entry = {"op": "createIndexes", "db": db, "coll": coll, "indexes": parse_index_specs(cmd)}
    return submit(node, cmd, entry, ctx)


def apply_create_indexes(engine: Any, txn: Any, entry: dict[str, Any]) -> dict[str, Any]:
    ns = f"{entry['db']}.{entry['coll']}"
    with Progress("indexBuild", total=len(entry["indexes"]), unit="indexes", ns=ns,
                  indexes=",".join(str(s.get("name")) for s in entry["indexes"])) as work:
        created_coll, before, after = engine_ops.create_indexes(
            engine, txn, entry["db"], entry["coll"], entry["indexes"])
        work.set(len(entry["indexes"]))
    reply: dict[str, Any] = {
        "createdCollectionAutomatically": created_coll,
        "numIndexesBefore": before,
        "numIndexesAfter": after,
    }
    if before == after:
        reply["note"] = "all indexes already exist"
    return reply


def drop_indexes(node: NodeServices, db: str, cmd: Mapping[str, Any], ctx: RequestContext
                 ) -> dict[str, Any] | PendingReply:
    coll = collection_name(cmd, "dropIndexes")
    which = cmd.get("index")
    if which is None:
        raise MongoError(40414, "BSON field 'dropIndexes.index' is missing but a required "
                         "field", code_name="Location40414")
    if not isinstance(which, str | Mapping | list):
        raise type_mismatch("BSON field 'dropIndexes.index' is the wrong type "
                            f"'{bson_type_name(which)}', expected types '[string, object]'")
    entry = {"op": "dropIndexes", "db": db, "coll": coll,
             "index": dict(which) if isinstance(which, Mapping) else which}
    return submit(node, cmd, entry, ctx)


def apply_drop_indexes(engine: Any, txn: Any, entry: dict[str, Any]) -> dict[str, Any]:
    was = engine_ops.drop_indexes(engine, txn, entry["db"], entry["coll"], entry["index"])
    return {"nIndexesWas": was}


def list_indexes(node: NodeServices, db: str, cmd: Mapping[str, Any], ctx: RequestContext
                 ) -> dict[str, Any]:
    from node.commands.query import open_cursor

    coll = collection_name(cmd, "listIndexes")
    node.member.check_readable(cmd, ctx)
    specs = engine_ops.list_indexes(node.engine, db, coll)
    cursor = cmd.get("cursor") if isinstance(cmd.get("cursor"), Mapping) else {}
    batch = cursor.get("batchSize")
    return open_cursor(node, f"{db}.{coll}", iter(specs),
                       int(batch) if isinstance(batch, int) else None, ctx=ctx)


APPLIERS = {"createIndexes": apply_create_indexes, "dropIndexes": apply_drop_indexes}
