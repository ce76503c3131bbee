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

from node.commands import engine_ops, requests
from node.commands.args import bson_type_name, int64_value, is_number
from node.commands.context import RequestContext
from node.commands.member import parse_write_concern
from node.commands.pending import PendingReply
from node.engine.errors import MongoError, type_mismatch
from node.engine.limits import MAX_USER_DEPTH, document_depth, insert_too_deep

if TYPE_CHECKING:
    from node.commands.dispatcher import NodeServices


def _now() -> _dt.datetime:
    now = _dt.datetime.now(_dt.UTC)
    return now.replace(microsecond=(now.microsecond // 1000) * 1000)


def submit(node: NodeServices, cmd: Mapping[str, Any], entry: dict[str, Any],
           ctx: RequestContext, max_time_ms: int = 0) -> dict[str, Any] | PendingReply:
    """Attach session and time, replicate, and shape the reply (``writeConcernError``);
    ``max_time_ms`` (the command's ``maxTimeMS``) bounds the wait.

    With ``ctx.deferred_replies`` nothing waits here: the reply is a :class:`PendingReply`
    that completes when the entry has applied (and the write concern is satisfied)."""
    node.member.require_writable()
    wc = parse_write_concern(cmd, node.member.set_size(), max_time_ms,
                             config=node.member.repl_set_get_config)
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
        entry["txnNumber"] = Int64(int64_value(txn_number, "txnNumber"))
    if cmd.get("shardVersion") is not None:  # routed: checked again where it applies
        entry["shardVersion"] = cmd["shardVersion"]
    entry.setdefault("now", _now())
    if cmd.get("bypassDocumentValidation"):  # travels in the entry: members apply it alike
        entry["bypassDocumentValidation"] = True

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


Done = dict[int, Any]
"""Results of a retryable write's statements by statement id (the recorded ones, or new)."""
StatementsApplier = Callable[[Any, Any, dict[str, Any], Done], tuple[dict[str, Any], Done]]


def statement_ids(entry: Mapping[str, Any], count: int) -> list[int]:
    """The entry's statement ids (``stmtIds``, as a router sends them), else 0..count-1."""
    ids = entry.get("stmtIds")
    return [int(i) for i in ids] if ids else list(range(count))


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
    if not parse_write_concern(cmd, node.member.set_size(),
                               config=node.member.repl_set_get_config).acknowledged:
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
    req = requests.parse_insert(db, cmd)
    resolved = [dict(doc) if "_id" in doc else {"_id": ObjectId(), **doc}
                for doc in req.documents]
    too_deep = [i for i, doc in enumerate(resolved)
                if document_depth(doc, MAX_USER_DEPTH) > MAX_USER_DEPTH]
    if too_deep:  # refused here when nothing else would apply; else the engine refuses them
        if req.ordered:  # identically at apply, and an ordered batch stops at the first
            too_deep = too_deep[:1]
            del resolved[too_deep[0] + 1:]
        if len(too_deep) == len(resolved):
            errors = [write_error(i, insert_too_deep()) for i in too_deep]
            return answer_now(node, cmd, {"n": 0, "writeErrors": errors})
    entry = {"op": "insert", "db": db, "coll": req.coll, "docs": resolved,
             "ordered": req.ordered}
    if req.stmt_ids is not None:
        entry["stmtIds"] = req.stmt_ids
    return submit(node, cmd, entry, ctx, req.max_time_ms)


def apply_insert(engine: Any, txn: Any, entry: dict[str, Any]) -> dict[str, Any]:
    return insert_statements(engine, txn, entry, {})[0]


def insert_statements(engine: Any, txn: Any, entry: dict[str, Any], done: Done
                      ) -> tuple[dict[str, Any], Done]:
    """Insert the documents whose statement is not in ``done``; (reply, new results)."""
    docs = entry["docs"]
    ids = statement_ids(entry, len(docs))
    todo = [i for i in range(len(docs)) if ids[i] not in done]
    ordered = entry.get("ordered", True)
    errors: list[dict[str, Any]] = []
    succeeded: list[int] = []
    if todo:
        _, errors = engine_ops.insert_many(engine, txn, entry["db"], entry["coll"],
                                           [docs[i] for i in todo], ordered=ordered)
        failed = {e["index"] for e in errors}
        last = min(failed) if ordered and failed else len(todo)
        succeeded = [i for j, i in enumerate(todo[:last]) if j not in failed]
        for e in errors:
            e["index"] = todo[e["index"]]
    reply: dict[str, Any] = {"n": len(docs) - len(todo) + len(succeeded)}
    if errors:
        reply["writeErrors"] = errors
    return reply, {ids[i]: 1 for i in succeeded}


class InsertGrouper:
    """Consecutive single-document inserts into one collection, applied as one engine call
    (unordered across entries, so each entry's document succeeds or fails on its own, exactly
    as when applied one by one)."""

    def key(self, entry: Mapping[str, Any]) -> Any:
        if len(entry["docs"]) != 1 or entry.get("bypassDocumentValidation"):
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

def update(node: NodeServices, db: str, cmd: Mapping[str, Any], ctx: RequestContext
           ) -> dict[str, Any] | PendingReply:
    req = requests.parse_update(db, cmd)
    statements = []
    for st in req.updates:
        doc = st.to_doc()
        if st.upsert:
            doc["upsertId"] = ObjectId()
        statements.append(doc)
    now = refuse_statements(node, cmd, statements, req.ordered,
                            lambda st: engine_ops.validate_write(st["q"], st["u"],
                                                                 st.get("arrayFilters"),
                                                                 st.get("c")),
                            {"n": 0, "nModified": 0})
    if now is not None:
        return now
    entry = {"op": "update", "db": db, "coll": req.coll, "updates": statements,
             "ordered": req.ordered}
    if req.stmt_ids is not None:
        entry["stmtIds"] = req.stmt_ids
    return submit(node, cmd, entry, ctx, req.max_time_ms)


def apply_update(engine: Any, txn: Any, entry: dict[str, Any]) -> dict[str, Any]:
    return update_statements(engine, txn, entry, {})[0]


def update_statements(engine: Any, txn: Any, entry: dict[str, Any], done: Done
                      ) -> tuple[dict[str, Any], Done]:
    """Run the update statements not in ``done`` (whose recorded results are folded into the
    reply); (reply, new results ``{n, m[, u]}`` per statement)."""
    n = 0
    modified = 0
    upserted: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []
    results: Done = {}
    ids = statement_ids(entry, len(entry["updates"]))
    for i, st in enumerate(entry["updates"]):
        outcome = done.get(ids[i])
        if outcome is None:
            try:
                _raise_refused(st)
                res = engine_ops.update(engine, txn, entry["db"], entry["coll"], st,
                                        entry["now"])
            except MongoError as exc:
                errors.append(write_error(i, exc))
                if entry.get("ordered", True):
                    break
                continue
            outcome = {"n": res.matched, "m": res.modified}
            if res.upserted_id is not None:
                outcome = {"n": 1, "m": 0, "u": res.upserted_id}
            results[ids[i]] = outcome
        n += outcome["n"]
        modified += outcome["m"]
        if "u" in outcome:
            upserted.append({"index": i, "_id": outcome["u"]})
    reply: dict[str, Any] = {"n": n, "nModified": modified}
    if upserted:
        reply["upserted"] = upserted
    if errors:
        reply["writeErrors"] = errors
    return reply, results


# --- delete ---------------------------------------------------------------------------------


def delete(node: NodeServices, db: str, cmd: Mapping[str, Any], ctx: RequestContext
           ) -> dict[str, Any] | PendingReply:
    req = requests.parse_delete(db, cmd)
    statements = [st.to_doc() for st in req.deletes]
    now = refuse_statements(node, cmd, statements, req.ordered,
                            lambda st: engine_ops.validate_write(st["q"]), {"n": 0})
    if now is not None:
        return now
    entry = {"op": "delete", "db": db, "coll": req.coll, "deletes": statements,
             "ordered": req.ordered}
    if req.stmt_ids is not None:
        entry["stmtIds"] = req.stmt_ids
    return submit(node, cmd, entry, ctx, req.max_time_ms)


def apply_delete(engine: Any, txn: Any, entry: dict[str, Any]) -> dict[str, Any]:
    return delete_statements(engine, txn, entry, {})[0]


def delete_statements(engine: Any, txn: Any, entry: dict[str, Any], done: Done
                      ) -> tuple[dict[str, Any], Done]:
    """Run the delete statements not in ``done``; (reply, new results ``{n}``)."""
    n = 0
    errors: list[dict[str, Any]] = []
    results: Done = {}
    ids = statement_ids(entry, len(entry["deletes"]))
    for i, st in enumerate(entry["deletes"]):
        outcome = done.get(ids[i])
        if outcome is None:
            try:
                _raise_refused(st)
                deleted = engine_ops.delete(engine, txn, entry["db"], entry["coll"], st["q"],
                                            just_one=st["limit"] == 1, hint=st.get("hint"))
            except MongoError as exc:
                errors.append(write_error(i, exc))
                if entry.get("ordered", True):
                    break
                continue
            outcome = results[ids[i]] = {"n": deleted}
        n += outcome["n"]
    reply: dict[str, Any] = {"n": n}
    if errors:
        reply["writeErrors"] = errors
    return reply, results


# --- findAndModify ----------------------------------------------------------------------------


def find_and_modify(node: NodeServices, db: str, cmd: Mapping[str, Any], ctx: RequestContext
                    ) -> dict[str, Any] | PendingReply:
    req = requests.parse_find_and_modify(db, cmd)
    entry: dict[str, Any] = {"op": "findAndModify", "db": db, "coll": req.coll,
                             **req.to_entry_fields()}
    if req.upsert:
        entry["upsertId"] = ObjectId()
    if req.stmt_id is not None:
        entry["stmtIds"] = [req.stmt_id]
    engine_ops.validate_write(entry["query"], entry["update"], req.array_filters)
    return submit(node, cmd, entry, ctx, req.max_time_ms)


def apply_find_and_modify(engine: Any, txn: Any, entry: dict[str, Any]) -> dict[str, Any]:
    return find_and_modify_statements(engine, txn, entry, {})[0]


def find_and_modify_statements(engine: Any, txn: Any, entry: dict[str, Any], done: Done
                               ) -> tuple[dict[str, Any], Done]:
    """The one statement of a findAndModify: its recorded reply, or run it."""
    (sid,) = statement_ids(entry, 1)
    if sid in done:
        return dict(done[sid]), {}
    reply = _find_and_modify_reply(engine, txn, entry)
    return reply, {sid: reply}


def _find_and_modify_reply(engine: Any, txn: Any, entry: dict[str, Any]) -> dict[str, Any]:
    res = engine_ops.find_and_modify(engine, txn, entry)
    last: dict[str, Any] = {"n": res.n}
    if not entry["remove"]:
        last["updatedExisting"] = res.updated_existing
        if res.upserted_id is not None:
            last["upserted"] = res.upserted_id
    return {"lastErrorObject": last, "value": res.value}


STATEMENTS: dict[str, StatementsApplier] = {
    "insert": insert_statements,
    "update": update_statements,
    "delete": delete_statements,
    "findAndModify": find_and_modify_statements,
}
"""Retryable writes statement by statement: the state machine passes the results recorded
for the session's transaction number (``done``) and records the new ones."""

APPLIERS = {
    "insert": apply_insert,
    "update": apply_update,
    "delete": apply_delete,
    "findAndModify": apply_find_and_modify,
}
