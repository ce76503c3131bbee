"""``renameCollection`` (admin database): ``{renameCollection: "db.a", to: "db.b", dropTarget}``.

The primary checks the names (InvalidNamespace 73, IllegalOperation 20) and proposes ONE log
entry ``{op: "renameCollection", db, coll, toDb, toColl, dropTarget}``; every member applies it
in one store transaction with :func:`node.engine.rename.rename_collection` (records, indexes and
both catalog entries move; NamespaceNotFound 26 / NamespaceExists 48 come from applying, so
they are decided in log order). Renames across databases are allowed, as in MongoDB.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from node.commands.args import bson_type_name, get_bool, missing
from node.commands.context import RequestContext
from node.commands.crud import submit
from node.commands.pending import PendingReply
from node.engine.errors import type_mismatch
from node.engine.rename import check_rename, rename_collection, split_namespace

if TYPE_CHECKING:
    from node.commands.dispatcher import NodeServices

OP = "renameCollection"


def _namespace_field(cmd: Mapping[str, Any], field: str, which: str) -> tuple[str, str]:
    if field not in cmd:
        raise missing(OP, field)
    value = cmd[field]
    if not isinstance(value, str):
        raise type_mismatch(f"BSON field '{OP}.{field}' is the wrong type "
                            f"'{bson_type_name(value)}', expected type 'string'")
    return split_namespace(value, which)


def rename_collection_command(node: NodeServices, db: str, cmd: Mapping[str, Any],
                              ctx: RequestContext) -> dict[str, Any] | PendingReply:
    """Handler of ``renameCollection`` (the dispatcher runs it on ``admin`` only)."""
    src_db, src_coll = _namespace_field(cmd, OP, "source")
    dst_db, dst_coll = _namespace_field(cmd, "to", "target")
    drop_target = get_bool(cmd, OP, "dropTarget")
    check_rename(src_db, src_coll, dst_db, dst_coll)
    entry = {"op": OP, "db": src_db, "coll": src_coll, "toDb": dst_db, "toColl": dst_coll,
             "dropTarget": drop_target}
    return submit(node, cmd, entry, ctx)


def apply_rename_collection(engine: Any, txn: Any, entry: dict[str, Any]) -> dict[str, Any]:
    """Applier of a ``renameCollection`` entry (inside the state machine's transaction)."""
    rename_collection(engine, txn, entry["db"], entry["coll"], entry["toDb"], entry["toColl"],
                      drop_target=bool(entry.get("dropTarget")))
    return {}


APPLIERS = {OP: apply_rename_collection}
