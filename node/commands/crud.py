"""Write commands: ``insert``, ``update``, ``delete``, ``findAndModify``.

Each command has two halves:

* the **handler** (runs on the primary when the command arrives): validates the command,
  resolves everything non-deterministic (ObjectIds for documents without ``_id``, an ``_id`` for
  every possible upsert, the time for ``$currentDate``) into a log *entry*, and hands it to the
  member with the write concern;
* the **applier** (runs on every member when the entry is committed, inside the state machine's
  store transaction): applies the entry to the engine and builds MongoDB's reply (``n``,
  ``nModified``, ``upserted``, ``writeErrors[{index, code, errmsg}]``).

So replies come from applying the committed entry, identically on every member.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from bson import Int64, ObjectId

from node.commands import engine_ops
from node.commands.args import (
    bson_type_name,
    collection_name,
    get_bool,
    get_doc,
    get_list,
    is_number,
)
from node.commands.context import RequestContext
from node.commands.member import parse_write_concern
from node.commands.pending import PendingReply
from node.engine.errors import BAD_VALUE, FAILED_TO_PARSE, MongoError, type_mismatch
from node.engine.limits import MAX_USER_DEPTH, document_depth, insert_too_deep

if TYPE_CHECKING:
    from node.commands.dispatcher import NodeServices

MAX_WRITE_BATCH = 100_000
INVALID_LENGTH = 16


def _now() -> _dt.datetime:
    now = _dt.datetime.now(_dt.UTC)
    return now.replace(microsecond=(now.microsecond // 1000) * 1000)


def _check_batch(name: str, items: list[Any]) -> None:
    if not items or len(items) > MAX_WRITE_BATCH:
        raise MongoError(
            INVALID_LENGTH,
            f"Write batch sizes must be between 1 and {MAX_WRITE_BATCH}. "
            f"Got {len(items)} operations.",
            code_name="InvalidLength",
        )


def submit(node: NodeServices, cmd: Mapping[str, Any], entry: dict[str, Any],
           ctx: RequestContext) -> dict[str, Any] | PendingReply:
    """Attach session and time, replicate, and shape the reply (``writeConcernError``).

    With ``ctx.deferred_replies`` nothing waits here: the reply is a :class:`PendingReply`
    that completes when the entry has applied (and the write concern is satisfied)."""
    node.member.require_writable()
    wc = parse_write_concern(cmd, node.member.set_size())
    lsid = cmd.get("lsid")
    txn_number = cmd.get("txnNumber")
    if txn_number is not None:
        if not is_number(txn_number):
            raise type_mismatch("BSON field 'txnNumber' is the wrong type "
                                f"'{bson_type_name(txn_number)}', expected type 'long'")
        if lsid is None:
            raise MongoError(50768, "Transaction number requires a session ID to also be "
                             "specified")
        entry["lsid"] = lsid
        entry["txnNumber"] = Int64(int(txn_number))
    entry.setdefault("now", _now())

    def shape(outcome: tuple[dict[str, Any], dict[str, Any] | None]) -> dict[str, Any]:
        result, wce = outcome
        if not wc.acknowledged:
            return {"ok": 1.0}
        reply = dict(result)
        if wce is not None:
            reply["writeConcernError"] = wce
        return reply

    if ctx.deferred_replies:
        return PendingReply(node.member.submit_async(entry, wc), shape)
    return shape(node.member.submit(entry, wc))


def refuse_statements(node: NodeServices, cmd: Mapping[str, Any], statements: list[dict[str, Any]],
                      ordered: bool, check: Callable[[dict[str, Any]], None],
                      empty_reply: dict[str, Any]) -> dict[str, Any] | None:
    """Refuse at the primary, before proposing, the statements ``check`` says can only fail
    (a regex RE2 cannot run, say): each becomes ``{"refused": error}`` in the entry (its
    filter never reaches the log) and its applier reports the error as that statement's write
    error, in order with the others; after a refused statement of an ordered batch nothing is
    proposed. Returns the reply to answer at once when no statement is left to apply."""
    errors: list[dict[str, Any]] = []
    for i, st in enumerate(statements):
        try:
            check(st)
        except MongoError as exc:
            errors.append(write_error(i, exc))
            statements[i] = {"refused": {"code": exc.code, "errmsg": exc.errmsg,
                                         "codeName": exc.code_name}}
            if ordered:
                del statements[i + 1:]
                break
    if not errors or any("refused" not in st for st in statements):
        return None
    return answer_now(node, cmd, {**empty_reply, "writeErrors": errors})


def answer_now(node: NodeServices, cmd: Mapping[str, Any], reply: dict[str, Any]
               ) -> dict[str, Any]:
    """The reply of a write with nothing left to apply (all of it refused): nothing is
    proposed, but a secondary still answers NotWritablePrimary and ``w: 0`` only ``ok``."""
    node.member.require_writable()
    if not parse_write_concern(cmd, node.member.set_size()).acknowledged:
        return {"ok": 1.0}
    return reply


def _raise_refused(st: Mapping[str, Any]) -> None:
    """A statement the primary refused fails with the error it was refused with."""
    refused = st.get("refused")
    if refused is not None:
        raise MongoError(refused["code"], refused["errmsg"], code_name=refused["codeName"])


def write_error(index: int, exc: MongoError) -> dict[str, Any]:
    """One ``writeErrors`` element (with ``keyPattern``/``keyValue`` for DuplicateKey)."""
    err: dict[str, Any] = {"index": index, "code": exc.code, "errmsg": exc.errmsg}
    if exc.details:
        err.update(exc.details)
    return err


# --- insert ---------------------------------------------------------------------------------


def insert(node: NodeServices, db: str, cmd: Mapping[str, Any], ctx: RequestContext
           ) -> dict[str, Any] | PendingReply:
    coll = collection_name(cmd, "insert")
    docs = get_list(cmd, "insert", "documents")
    ordered = get_bool(cmd, "insert", "ordered", True)
    _check_batch("insert", docs)
    resolved: list[dict[str, Any]] = []
    for doc in docs:
        if not isinstance(doc, Mapping):
            raise type_mismatch("BSON field 'insert.documents.0' is the wrong type "
                                f"'{bson_type_name(doc)}', expected type 'object'")
        if "_id" in doc:
            resolved.append(dict(doc))
        else:
            resolved.append({"_id": ObjectId(), **doc})
    too_deep = [i for i, doc in enumerate(resolved)
                if document_depth(doc, MAX_USER_DEPTH) > MAX_USER_DEPTH]
    if too_deep:  # refused here when nothing else would apply; else the engine refuses them
        if ordered:  # identically at apply, and an ordered batch stops at the first
            too_deep = too_deep[:1]
            del resolved[too_deep[0] + 1:]
        if len(too_deep) == len(resolved):
            errors = [write_error(i, insert_too_deep()) for i in too_deep]
            return answer_now(node, cmd, {"n": 0, "writeErrors": errors})
    entry = {"op": "insert", "db": db, "coll": coll, "docs": resolved, "ordered": ordered}
    return submit(node, cmd, entry, ctx)


def apply_insert(engine: Any, txn: Any, entry: dict[str, Any]) -> dict[str, Any]:
    n, errors = engine_ops.insert_many(engine, txn, entry["db"], entry["coll"], entry["docs"],
                                       ordered=entry.get("ordered", True))
    reply: dict[str, Any] = {"n": n}
    if errors:
        reply["writeErrors"] = errors
    return reply


class InsertGrouper:
    """Consecutive single-document inserts into one collection, applied as one engine call
    (unordered across entries, so each entry's document succeeds or fails on its own, exactly
    as when applied one by one)."""

    def key(self, entry: Mapping[str, Any]) -> Any:
        if len(entry["docs"]) != 1:
            return None
        return (entry["db"], entry["coll"])

    def apply(self, engine: Any, txn: Any, entries: list[dict[str, Any]]
              ) -> list[dict[str, Any]]:
        docs = [e["docs"][0] for e in entries]
        _, errors = engine_ops.insert_many(engine, txn, entries[0]["db"], entries[0]["coll"],
                                           docs, ordered=False)
        replies: list[dict[str, Any]] = [{"n": 1} for _ in entries]
        for err in errors:
            replies[err["index"]] = {"n": 0, "writeErrors": [{**err, "index": 0}]}
        return replies


GROUPERS = {"insert": InsertGrouper()}


# --- update ---------------------------------------------------------------------------------

_UPDATE_FIELDS = {"q", "u", "upsert", "multi", "arrayFilters", "collation", "hint", "c"}


def _get_array_filters(st: Mapping[str, Any], where: str) -> list[dict[str, Any]] | None:
    """The statement's ``arrayFilters`` (None when absent), type-checked as MongoDB's IDL does;
    the filters themselves are compiled by :func:`refuse_statements` (a bad filter is a write
    error of its statement)."""
    filters = st.get("arrayFilters")
    if filters is None:
        return None
    if not isinstance(filters, list):
        raise type_mismatch(f"BSON field '{where}.arrayFilters' is the wrong type "
                            f"'{bson_type_name(filters)}', expected type 'array'")
    for i, f in enumerate(filters):
        if not isinstance(f, Mapping):
            raise type_mismatch(f"BSON field '{where}.arrayFilters.{i}' is the wrong type "
                                f"'{bson_type_name(f)}', expected type 'object'")
    return [dict(f) for f in filters]


def _parse_update_statement(i: int, st: Any) -> dict[str, Any]:
    if not isinstance(st, Mapping):
        raise type_mismatch(f"BSON field 'update.updates.{i}' is the wrong type "
                            f"'{bson_type_name(st)}', expected type 'object'")
    for key in st:
        if key not in _UPDATE_FIELDS:
            raise MongoError(40415, f"BSON field 'update.updates.{key}' is an unknown field.",
                             code_name="Location40415")
    q = get_doc(st, "update.updates", "q")
    u = st.get("u")
    if isinstance(u, list):
        raise MongoError(BAD_VALUE, "aggregation pipeline updates are not supported")
    if not isinstance(u, Mapping):
        raise type_mismatch("BSON field 'update.updates.u' is the wrong type "
                            f"'{bson_type_name(u)}', expected type 'object'")
    multi = get_bool(st, "update.updates", "multi")
    upsert = get_bool(st, "update.updates", "upsert")
    is_replacement = not any(str(k).startswith("$") for k in u)
    if multi and is_replacement and u:
        raise MongoError(FAILED_TO_PARSE, "multi update is not supported for replacement-style "
                         "update")
    array_filters = _get_array_filters(st, "update.updates")
    out: dict[str, Any] = {"q": dict(q), "u": dict(u), "multi": multi, "upsert": upsert}
    if array_filters is not None:
        out["arrayFilters"] = array_filters
    if upsert:
        out["upsertId"] = ObjectId()
    return out


def update(node: NodeServices, db: str, cmd: Mapping[str, Any], ctx: RequestContext
           ) -> dict[str, Any] | PendingReply:
    coll = collection_name(cmd, "update")
    updates = get_list(cmd, "update", "updates")
    _check_batch("update", updates)
    ordered = get_bool(cmd, "update", "ordered", True)
    statements = [_parse_update_statement(i, st) for i, st in enumerate(updates)]
    now = refuse_statements(node, cmd, statements, ordered, lambda st: engine_ops.validate_write(
        st["q"], st["u"], st.get("arrayFilters")), {"n": 0, "nModified": 0})
    if now is not None:
        return now
    entry = {"op": "update", "db": db, "coll": coll, "updates": statements, "ordered": ordered}
    return submit(node, cmd, entry, ctx)


def apply_update(engine: Any, txn: Any, entry: dict[str, Any]) -> dict[str, Any]:
    n = 0
    modified = 0
    upserted: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []
    for i, st in enumerate(entry["updates"]):
        try:
            _raise_refused(st)
            res = engine_ops.update(engine, txn, entry["db"], entry["coll"], st, entry["now"])
        except MongoError as exc:
            errors.append(write_error(i, exc))
            if entry.get("ordered", True):
                break
            continue
        n += res.matched
        modified += res.modified
        if res.upserted_id is not None:
            n += 1
            upserted.append({"index": i, "_id": res.upserted_id})
    reply: dict[str, Any] = {"n": n, "nModified": modified}
    if upserted:
        reply["upserted"] = upserted
    if errors:
        reply["writeErrors"] = errors
    return reply


# --- delete ---------------------------------------------------------------------------------


def _parse_delete_statement(i: int, st: Any) -> dict[str, Any]:
    if not isinstance(st, Mapping):
        raise type_mismatch(f"BSON field 'delete.deletes.{i}' is the wrong type "
                            f"'{bson_type_name(st)}', expected type 'object'")
    q = get_doc(st, "delete.deletes", "q")
    if "limit" not in st:
        raise MongoError(40414, "BSON field 'delete.deletes.limit' is missing but a required "
                         "field", code_name="Location40414")
    limit = st["limit"]
    if not is_number(limit) or limit not in (0, 1):
        raise MongoError(FAILED_TO_PARSE, f"The limit field in delete objects must be 0 or 1. "
                         f"Got {limit}")
    return {"q": dict(q), "limit": int(limit)}


def delete(node: NodeServices, db: str, cmd: Mapping[str, Any], ctx: RequestContext
           ) -> dict[str, Any] | PendingReply:
    coll = collection_name(cmd, "delete")
    deletes = get_list(cmd, "delete", "deletes")
    _check_batch("delete", deletes)
    ordered = get_bool(cmd, "delete", "ordered", True)
    statements = [_parse_delete_statement(i, st) for i, st in enumerate(deletes)]
    now = refuse_statements(node, cmd, statements, ordered,
                            lambda st: engine_ops.validate_write(st["q"]), {"n": 0})
    if now is not None:
        return now
    entry = {"op": "delete", "db": db, "coll": coll, "deletes": statements, "ordered": ordered}
    return submit(node, cmd, entry, ctx)


def apply_delete(engine: Any, txn: Any, entry: dict[str, Any]) -> dict[str, Any]:
    n = 0
    errors: list[dict[str, Any]] = []
    for i, st in enumerate(entry["deletes"]):
        try:
            _raise_refused(st)
            n += engine_ops.delete(engine, txn, entry["db"], entry["coll"], st["q"],
                                   just_one=st["limit"] == 1)
        except MongoError as exc:
            errors.append(write_error(i, exc))
            if entry.get("ordered", True):
                break
    reply: dict[str, Any] = {"n": n}
    if errors:
        reply["writeErrors"] = errors
    return reply


# --- findAndModify ----------------------------------------------------------------------------


def find_and_modify(node: NodeServices, db: str, cmd: Mapping[str, Any], ctx: RequestContext
                    ) -> dict[str, Any] | PendingReply:
    name = next(iter(cmd))
    coll = collection_name(cmd, name)
    query = get_doc(cmd, name, "query", {})
    sort = get_doc(cmd, name, "sort", {})
    fields = get_doc(cmd, name, "fields", None)
    remove = get_bool(cmd, name, "remove")
    new = get_bool(cmd, name, "new")
    upsert = get_bool(cmd, name, "upsert")
    upd = cmd.get("update")
    array_filters = _get_array_filters(cmd, name)
    if remove:
        if upd is not None:
            raise MongoError(FAILED_TO_PARSE, "Cannot specify both an update and remove=true")
        if upsert:
            raise MongoError(FAILED_TO_PARSE, "Cannot specify both upsert=true and remove=true")
        if new:
            raise MongoError(FAILED_TO_PARSE, "Cannot specify both new=true and remove=true; "
                             "'remove' always returns the deleted document")
        if array_filters is not None:
            raise MongoError(FAILED_TO_PARSE, "Cannot specify arrayFilters and remove=true")
    else:
        if upd is None:
            raise MongoError(FAILED_TO_PARSE, "Either an update or remove=true must be "
                             "specified")
        if isinstance(upd, list):
            raise MongoError(BAD_VALUE, "aggregation pipeline updates are not supported")
        if not isinstance(upd, Mapping):
            raise type_mismatch("BSON field 'findAndModify.update' is the wrong type "
                                f"'{bson_type_name(upd)}', expected type 'object'")
    entry: dict[str, Any] = {
        "op": "findAndModify", "db": db, "coll": coll, "query": dict(query),
        "sort": dict(sort), "fields": dict(fields) if fields is not None else None,
        "remove": remove, "new": new, "upsert": upsert,
        "update": dict(upd) if isinstance(upd, Mapping) else None,
    }
    if array_filters is not None:
        entry["arrayFilters"] = array_filters
    if upsert:
        entry["upsertId"] = ObjectId()
    engine_ops.validate_write(entry["query"], entry["update"], array_filters)  # refused at once
    return submit(node, cmd, entry, ctx)


def apply_find_and_modify(engine: Any, txn: Any, entry: dict[str, Any]) -> dict[str, Any]:
    res = engine_ops.find_and_modify(engine, txn, entry)
    last: dict[str, Any] = {"n": res.n}
    if not entry["remove"]:
        last["updatedExisting"] = res.updated_existing
        if res.upserted_id is not None:
            last["upserted"] = res.upserted_id
    return {"lastErrorObject": last, "value": res.value}


APPLIERS = {
    "insert": apply_insert,
    "update": apply_update,
    "delete": apply_delete,
    "findAndModify": apply_find_and_modify,
}
