"""MongoDB 8's ``bulkWrite`` admin command: inserts, updates and deletes on several namespaces in
one command (pymongo's ``MongoClient.bulk_write``), for nodes and routers alike.

The request (``ops`` and ``nsInfo``, usually as OP_MSG document sequences) is parsed once into a
:class:`BulkWriteRequest`. Consecutive operations of one kind on one namespace run as ONE
ordinary ``insert``/``update``/``delete`` command through the handler table of whoever serves it
(a member's handlers, or the router's, which route each statement to its shard), carrying the
operations' positions as ``stmtIds`` with the caller's ``lsid``/``txnNumber``: a retried
``bulkWrite`` applies each operation at most once, as any retryable write. ``ordered`` stops at
the first failed operation; unordered runs them all. The reply is MongoDB's: one result per
operation (only the failures with ``errorsOnly``) in a cursor on ``admin.$cmd.bulkWrite``, and
the totals ``nErrors``, ``nInserted``, ``nMatched``, ``nModified``, ``nUpserted``, ``nDeleted``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bson.int64 import Int64

from node.commands.args import bson_type_name, get_bool, get_list
from node.commands.context import RequestContext
from node.commands.pending import PendingReply
from node.commands.requests import check_batch
from node.engine.errors import BAD_VALUE, FAILED_TO_PARSE, MongoError, type_mismatch

KINDS = ("insert", "update", "delete")
FORWARDED = ("lsid", "txnNumber", "writeConcern", "bypassDocumentValidation", "let", "comment",
             "maxTimeMS")
_UPDATE_FIELDS = {"filter": "q", "updateMods": "u", "multi": "multi", "upsert": "upsert",
                  "arrayFilters": "arrayFilters", "hint": "hint", "collation": "collation",
                  "sort": "sort", "constants": "c"}
_DELETE_FIELDS = {"filter": "q", "hint": "hint", "collation": "collation"}


@dataclass(frozen=True)
class BulkOp:
    kind: str  # insert | update | delete
    ns: int
    statement: dict[str, Any]
    """The statement as the ``insert``/``update``/``delete`` command takes it."""


@dataclass(frozen=True)
class BulkWriteRequest:
    ops: list[BulkOp]
    namespaces: list[tuple[str, str]]
    ordered: bool
    errors_only: bool
    raw: Mapping[str, Any]


def _op(i: int, doc: Any, n_ns: int) -> BulkOp:
    if not isinstance(doc, Mapping) or not doc:
        raise type_mismatch(f"BSON field 'bulkWrite.ops.{i}' is the wrong type "
                            f"'{bson_type_name(doc)}', expected type 'object'")
    kind = next(iter(doc))
    if kind not in KINDS:
        raise MongoError(FAILED_TO_PARSE, f"Unrecognized bulkWrite operation: {kind}",
                         code_name="FailedToParse")
    index = doc[kind]
    if isinstance(index, bool) or not isinstance(index, int):
        raise type_mismatch(f"BSON field 'bulkWrite.ops.{i}.{kind}' is the wrong type "
                            f"'{bson_type_name(index)}', expected type 'int'")
    if not 0 <= int(index) < n_ns:
        raise MongoError(BAD_VALUE, f"BulkWrite ops entry {i} has an invalid nsInfo index.")
    if kind == "insert":
        document = doc.get("document")
        if not isinstance(document, Mapping):
            raise type_mismatch(f"BSON field 'bulkWrite.ops.{i}.document' is the wrong type "
                                f"'{bson_type_name(document)}', expected type 'object'")
        return BulkOp(kind, int(index), dict(document))
    fields = _UPDATE_FIELDS if kind == "update" else _DELETE_FIELDS
    statement: dict[str, Any] = {}
    for name, value in doc.items():
        if name == kind:
            continue
        if name == "multi" and kind == "delete":
            continue
        if name not in fields:
            raise MongoError(40415, f"BSON field 'bulkWrite.ops.{i}.{name}' is an unknown "
                             "field.", code_name="Location40415")
        statement[fields[name]] = value
    if "q" not in statement:
        raise MongoError(40414, f"BSON field 'bulkWrite.ops.{i}.filter' is missing but a "
                         "required field", code_name="Location40414")
    if kind == "update" and "u" not in statement:
        raise MongoError(40414, f"BSON field 'bulkWrite.ops.{i}.updateMods' is missing but a "
                         "required field", code_name="Location40414")
    if kind == "delete":
        statement["limit"] = 0 if get_bool(doc, "bulkWrite", "multi") else 1
    return BulkOp(kind, int(index), statement)


def parse_bulk_write(cmd: Mapping[str, Any]) -> BulkWriteRequest:
    ops = get_list(cmd, "bulkWrite", "ops")
    ns_info = get_list(cmd, "bulkWrite", "nsInfo")
    check_batch(ops)
    if not ns_info:
        raise MongoError(BAD_VALUE, "At least one namespace must be specified.")
    namespaces: list[tuple[str, str]] = []
    for i, entry in enumerate(ns_info):
        ns = entry.get("ns") if isinstance(entry, Mapping) else None
        if not isinstance(ns, str) or "." not in ns or ns.startswith("."):
            raise MongoError(73, f"Invalid namespace specified in nsInfo entry {i}: "
                             f"'{ns}'", code_name="InvalidNamespace")
        db, coll = ns.split(".", 1)
        namespaces.append((db, coll))
    return BulkWriteRequest([_op(i, op, len(namespaces)) for i, op in enumerate(ops)],
                            namespaces, get_bool(cmd, "bulkWrite", "ordered", True),
                            get_bool(cmd, "bulkWrite", "errorsOnly"), cmd)


def _groups(req: BulkWriteRequest) -> list[list[int]]:
    """Runs of consecutive operations of one kind on one namespace. Updates and deletes run one
    per command unless only errors are asked for: their per-operation ``n`` and ``nModified``
    are then exact."""
    groups: list[list[int]] = []
    for i, op in enumerate(req.ops):
        last = req.ops[groups[-1][-1]] if groups else None
        joins = op.kind == "insert" or req.errors_only
        if joins and last is not None and (last.kind, last.ns) == (op.kind, op.ns):
            groups[-1].append(i)
        else:
            groups.append([i])
    return groups


def _sub_command(req: BulkWriteRequest, group: list[int]) -> tuple[str, dict[str, Any]]:
    first = req.ops[group[0]]
    db, coll = req.namespaces[first.ns]
    field = {"insert": "documents", "update": "updates", "delete": "deletes"}[first.kind]
    cmd: dict[str, Any] = {first.kind: coll,
                           field: [req.ops[i].statement for i in group],
                           "ordered": req.ordered}
    for name in FORWARDED:
        if name in req.raw:
            cmd[name] = req.raw[name]
    if "txnNumber" in cmd:
        cmd["stmtIds"] = list(group)
    return db, cmd


def _error_doc(idx: int, code: int, errmsg: str, extra: Mapping[str, Any] | None = None
               ) -> dict[str, Any]:
    doc: dict[str, Any] = {"ok": 0.0, "idx": idx, "code": code, "errmsg": errmsg, "n": 0}
    for key in ("codeName", "errInfo", "keyPattern", "keyValue"):
        if extra and key in extra:
            doc[key] = extra[key]
    return doc


def bulk_write(services: Any, db: str, cmd: Mapping[str, Any], ctx: RequestContext
               ) -> dict[str, Any]:
    req = parse_bulk_write(cmd)
    table = services.commands
    inline = dataclasses.replace(ctx, deferred_replies=False)
    results: list[dict[str, Any] | None] = [None] * len(req.ops)
    totals = {"nInserted": 0, "nMatched": 0, "nModified": 0, "nUpserted": 0, "nDeleted": 0}
    errors = 0
    wc_error: Any = None
    for group in _groups(req):
        sub_db, sub = _sub_command(req, group)
        kind = req.ops[group[0]].kind
        reply = table[kind].handler(services, sub_db, sub, inline)
        if isinstance(reply, PendingReply):
            reply = reply.settle()
        if reply.get("ok", 1.0) != 1.0:  # the whole group failed (no primary, say)
            return dict(reply)
        wc_error = reply.get("writeConcernError", wc_error)
        failed = {int(e["index"]): e for e in reply.get("writeErrors", [])}
        upserted = {int(u["index"]): u["_id"] for u in reply.get("upserted", [])}
        n = int(reply.get("n", 0))
        if kind == "insert":
            totals["nInserted"] += n
        elif kind == "delete":
            totals["nDeleted"] += n
        else:
            totals["nUpserted"] += len(upserted)
            totals["nMatched"] += n - len(upserted)
            totals["nModified"] += int(reply.get("nModified", 0))
        ran = len(group) if not failed or not req.ordered else min(failed) + 1
        for pos, idx in enumerate(group[:ran]):
            if pos in failed:
                e = failed[pos]
                results[idx] = _error_doc(idx, int(e.get("code", 1)), str(e.get("errmsg", "")),
                                          e)
                errors += 1
            elif kind == "insert":
                results[idx] = {"ok": 1.0, "idx": idx, "n": 1}
            else:  # alone in its group: the reply's counts are its own
                doc: dict[str, Any] = {"ok": 1.0, "idx": idx, "n": n}
                if kind == "update":
                    doc["nModified"] = int(reply.get("nModified", 0))
                    if pos in upserted:
                        doc["upserted"] = {"_id": upserted[pos]}
                results[idx] = doc
        if failed and req.ordered:
            break
    batch = [r for r in results if r is not None and (not req.errors_only or not r["ok"])]
    out: dict[str, Any] = {"cursor": {"id": Int64(0), "firstBatch": batch,
                                      "ns": "admin.$cmd.bulkWrite"},
                           "nErrors": errors, **totals}
    if wc_error is not None:
        out["writeConcernError"] = wc_error
    return out
