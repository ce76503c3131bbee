"""``applyOps``: several document writes as ONE log entry, applied only if every precondition
holds where the entry applies (compare-and-set across documents and collections).

The config servers change the cluster's metadata with it (a split replaces one chunk document
by two; a migration commit moves a chunk and bumps versions), since there are no
multi-document transactions: either every op applies or none does. The shape is MongoDB's:

``{applyOps: [{op: "i"|"u"|"d", ns: "db.coll", o: {...}, o2: {...}, b: bool}, ...],
preCondition: [{ns, q, res}], writeConcern}``

* ``i`` inserts ``o``; ``u`` updates the document matching ``o2`` with ``o`` (modifiers or a
  replacement; ``b: true`` upserts); ``d`` deletes the document matching ``o``;
* a precondition finds the first document of ``ns`` matching ``q`` and requires it to match
  ``res`` (a query); ``res: null`` requires that no document matches ``q``.

A failed precondition answers ``preCondition failed`` (BadValue) with ``whatFailed`` and
changes nothing; a failing op (a duplicate ``_id``, say) undoes the others.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from node.commands import crud
from node.commands.args import bson_type_name, get_list
from node.commands.context import RequestContext
from node.commands.pending import PendingReply
from node.engine.collection import ensure_id
from node.engine.errors import BAD_VALUE, MongoError, type_mismatch
from node.engine.matcher import Matcher

if TYPE_CHECKING:
    from node.commands.dispatcher import NodeServices

OPS = ("i", "u", "d")


def _split_ns(ns: Any, where: str) -> tuple[str, str]:
    if not isinstance(ns, str) or "." not in ns:
        raise MongoError(BAD_VALUE, f"{where}: 'ns' must be a string 'db.collection', got "
                         f"{ns!r}")
    db, _, coll = ns.partition(".")
    if not db or not coll:
        raise MongoError(BAD_VALUE, f"{where}: invalid namespace {ns!r}")
    return db, coll


def _doc(op: Mapping[str, Any], field: str, where: str) -> dict[str, Any]:
    value = op.get(field)
    if not isinstance(value, Mapping):
        raise type_mismatch(f"{where}: '{field}' must be an object, not "
                            f"{bson_type_name(value)}")
    return dict(value)


def parse_ops(cmd: Mapping[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The checked ops and preconditions of an ``applyOps`` command."""
    ops = get_list(cmd, "applyOps", "applyOps")
    out: list[dict[str, Any]] = []
    for i, op in enumerate(ops):
        where = f"applyOps.{i}"
        if not isinstance(op, Mapping):
            raise type_mismatch(f"{where} must be an object")
        kind = op.get("op")
        if kind not in OPS:
            raise MongoError(BAD_VALUE, f"{where}: unsupported op {kind!r} (i, u or d)")
        _split_ns(op.get("ns"), where)
        item: dict[str, Any] = {"op": kind, "ns": op["ns"], "o": _doc(op, "o", where)}
        if kind == "u":
            item["o2"] = _doc(op, "o2", where)
            item["b"] = bool(op.get("b", False))
        out.append(item)
    pre = cmd.get("preCondition", [])
    if not isinstance(pre, list):
        raise type_mismatch("preCondition must be an array")
    conditions: list[dict[str, Any]] = []
    for i, cond in enumerate(pre):
        where = f"preCondition.{i}"
        if not isinstance(cond, Mapping):
            raise type_mismatch(f"{where} must be an object")
        _split_ns(cond.get("ns"), where)
        res = cond.get("res")
        if res is not None and not isinstance(res, Mapping):
            raise type_mismatch(f"{where}: 'res' must be an object or null")
        conditions.append({"ns": cond["ns"], "q": _doc(cond, "q", where),
                           "res": dict(res) if res is not None else None})
    return out, conditions


def apply_ops(node: NodeServices, db: str, cmd: Mapping[str, Any], ctx: RequestContext
              ) -> dict[str, Any] | PendingReply:
    ops, conditions = parse_ops(cmd)
    entry = {"op": "applyOps", "ops": ops, "preCondition": conditions}
    return crud.submit(node, cmd, entry, ctx)


def _check(engine: Any, txn: Any, cond: Mapping[str, Any]) -> None:
    db, coll = _split_ns(cond["ns"], "preCondition")
    found = engine.collection(db, coll).find_one(cond["q"], txn=txn)
    res = cond["res"]
    ok = found is None if res is None else (found is not None and Matcher(res).matches(found))
    if not ok:
        raise MongoError(BAD_VALUE, "preCondition failed", details={
            "got": found, "whatFailed": dict(cond)})


def apply_apply_ops(engine: Any, txn: Any, entry: dict[str, Any]) -> dict[str, Any]:
    for cond in entry.get("preCondition", []):
        _check(engine, txn, cond)
    for op in entry["ops"]:
        db, coll = _split_ns(op["ns"], "applyOps")
        target = engine.collection(db, coll)
        if op["op"] == "i":
            target.insert_one(ensure_id(op["o"]), txn=txn)
        elif op["op"] == "u":
            res = target.update(op["o2"], op["o"], upsert=op.get("b", False), multi=False,
                                upsert_id=op["o2"].get("_id"), now=entry["now"], txn=txn)
            if res.n == 0 and not res.upserted:
                raise MongoError(BAD_VALUE, f"applyOps: no document of {op['ns']} matches "
                                 f"{op['o2']!r}")
        else:
            if target.delete(op["o"], limit=1, txn=txn) == 0:
                raise MongoError(BAD_VALUE, f"applyOps: no document of {op['ns']} matches "
                                 f"{op['o']!r}")
    n = len(entry["ops"])
    return {"applied": n, "results": [True] * n}


APPLIERS = {"applyOps": apply_apply_ops}
