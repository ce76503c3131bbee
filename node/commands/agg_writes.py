"""``$out`` and ``$merge``: an aggregation that writes is an ordinary write command.

On a node, the primary runs the pipeline up to the writing stage (a read of its current
state), resolves what is not deterministic (ObjectIds for documents without ``_id``, the time
for ``$$NOW``) and proposes one log entry carrying the documents; every member applies it in
one transaction:

* ``aggOut``: the documents are written to a temporary collection created with the target's
  options and indexes, which then replaces the target in the same transaction (readers see
  the old contents or the new, never a mix; a duplicate key leaves the target untouched);
* ``aggMerge``: each document is matched on the ``on`` fields and inserted, replaced, merged,
  kept, refused or run through the ``whenMatched`` pipeline (with ``$$new`` and the ``let``
  variables).

On a router the same stages run through routed writes (router/commands/query.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from bson import ObjectId

from node.commands import engine_ops
from node.commands.context import RequestContext
from node.commands.pending import PendingReply
from node.engine.errors import MongoError

if TYPE_CHECKING:
    from node.commands.dispatcher import NodeServices
    from node.commands.pipeline import PipelineContext
    from node.commands.requests import AggregateRequest

_WHEN_MATCHED = ("replace", "keepExisting", "merge", "fail")
_WHEN_NOT_MATCHED = ("insert", "discard", "fail")
TEMP_PREFIX = "tmp.agg_out."


def _err(code: int, msg: str, name: str | None = None) -> MongoError:
    return MongoError(code, msg, code_name=name or f"Location{code}")


def _target(value: Any, db: str, what: str) -> tuple[str, str]:
    if isinstance(value, str):
        return db, value
    if isinstance(value, Mapping):
        coll = value.get("coll")
        tdb = value.get("db", db)
        if not isinstance(coll, str) or not isinstance(tdb, str) or not coll:
            raise _err(13111 if what == "$merge" else 16994,
                       f"{what} requires a target collection name")
        return tdb, coll
    raise _err(51178 if what == "$merge" else 16990,
               f"{what} only supports a string or object argument, not {type(value).__name__}")


def parse_out(name: str, arg: Any, ctx: PipelineContext) -> dict[str, Any]:
    """The checked spec of a ``$out``/``$merge`` stage."""
    if name == "$out":
        db, coll = _target(arg, ctx.db, "$out")
        if coll.startswith("system."):
            raise _err(17385, f"Can't $out to special collection: {coll}")
        return {"db": db, "coll": coll}
    if isinstance(arg, str):
        arg = {"into": arg}
    if not isinstance(arg, Mapping):
        raise _err(51182, "$merge only supports a string or object argument")
    for k in arg:
        if k not in ("into", "on", "let", "whenMatched", "whenNotMatched"):
            raise _err(40415, f"BSON field '$merge.{k}' is an unknown field.",
                       "IDLUnknownField")
    if "into" not in arg:
        raise _err(40414, "BSON field '$merge.into' is missing but a required field")
    db, coll = _target(arg["into"], ctx.db, "$merge")
    on = arg.get("on", "_id")
    on_fields = [on] if isinstance(on, str) else on
    if not isinstance(on_fields, list) or not on_fields or not all(
            isinstance(f, str) for f in on_fields):
        raise _err(51186, "$merge 'on' field must be either a string or an array of strings")
    matched = arg.get("whenMatched", "merge")
    if isinstance(matched, list):
        from node.commands.pipeline import parse_stages
        for n, _ in parse_stages(matched):
            if n not in ("$addFields", "$set", "$project", "$unset", "$replaceRoot",
                         "$replaceWith"):
                raise _err(51198, f"'{n}' is not allowed in a $merge whenMatched pipeline")
    elif matched not in _WHEN_MATCHED:
        raise _err(2, f"Enumeration value '{matched}' for field '$merge.whenMatched' is not a "
                   "valid value.", "BadValue")
    not_matched = arg.get("whenNotMatched", "insert")
    if not_matched not in _WHEN_NOT_MATCHED:
        raise _err(2, f"Enumeration value '{not_matched}' for field '$merge.whenNotMatched' is "
                   "not a valid value.", "BadValue")
    let = arg.get("let", {"new": "$$ROOT"})
    if not isinstance(let, Mapping):
        raise _err(51199, "$merge 'let' must be an object")
    if "let" in arg and not isinstance(matched, list):
        raise _err(51199, "Cannot use 'let' variables with 'whenMatched: "
                   f"{matched}' mode")
    return {"db": db, "coll": coll, "on": on_fields, "whenMatched": matched,
            "whenNotMatched": not_matched, "let": dict(let)}


def prepare_docs(docs: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The documents to write, each with an ``_id`` (generated here, on the primary)."""
    out = []
    for d in docs:
        if "_id" not in d:
            d = {"_id": ObjectId(), **d}
        out.append(d)
    return out


def merge_let_values(spec: Mapping[str, Any], doc: dict[str, Any]) -> dict[str, Any]:
    """``$merge``'s ``let`` evaluated against one document of the pipeline's output."""
    from node.engine.expressions import Scope, Vars, compile_expression
    return {k: compile_expression(v, Scope())(Vars(doc)) for k, v in spec["let"].items()}


def aggregate_write(node: NodeServices, db: str, cmd: Mapping[str, Any],
                    req: AggregateRequest, ctx: RequestContext
                    ) -> dict[str, Any] | PendingReply:
    """Handler of an ``aggregate`` ending in ``$out``/``$merge`` on a replica-set member."""
    from node.commands.crud import _now, submit
    from node.commands.query import cursor_reply, let_values

    node.member.require_writable()
    if req.explain:
        raise _err(2, "explain of a pipeline with $out or $merge is not supported",
                   "BadValue")
    captured: list[tuple[str, Any, list[dict[str, Any]]]] = []

    def write(name: str, spec: Any, docs: Iterable[dict[str, Any]]) -> None:
        captured.append((name, spec, prepare_docs(docs)))

    now = _now()
    for _ in engine_ops.aggregate(node.engine, db, req.coll, req.stages,
                                  allow_disk_use=req.allow_disk_use,
                                  variables=let_values(req.let, now), now=now, write=write):
        pass
    name, spec, docs = captured[0]
    op = "aggOut" if name == "$out" else "aggMerge"
    if name == "$merge" and isinstance(spec["whenMatched"], list):
        spec = {**spec, "letValues": [merge_let_values(spec, d) for d in docs]}
    entry: dict[str, Any] = {"op": op, "db": spec["db"], "coll": spec["coll"], "spec": spec,
                             "docs": docs, "now": now,
                             "bypassDocumentValidation": bool(req.bypass_validation)}
    result = submit(node, cmd, entry, ctx)

    def shape(reply: dict[str, Any]) -> dict[str, Any]:
        if reply.get("ok", 1.0) != 1.0 or "code" in reply:
            return reply
        out = cursor_reply(f"{db}.{req.coll}", [], 0, True)
        if "writeConcernError" in reply:
            out["writeConcernError"] = reply["writeConcernError"]
        return out
    if isinstance(result, PendingReply):
        finish = result.finish
        return PendingReply(result.future, lambda o: shape(finish(o)))
    return shape(result)


# --- appliers (every member, inside the entry's transaction) -----------------------------------


def apply_out(engine: Any, txn: Any, entry: dict[str, Any]) -> dict[str, Any]:
    from node.engine import indexes as _indexes

    db, coll = entry["db"], entry["coll"]
    temp = f"{TEMP_PREFIX}{coll}"
    existing = engine.catalog_entry(db, coll, txn=txn)
    options = dict(existing.get("options", {})) if existing else {}
    specs = [dict(ix) for ix in _indexes.list_indexes(txn, db, coll)] if existing else []
    if engine.catalog_entry(db, temp, txn=txn) is not None:
        engine.drop_collection(db, temp, txn=txn)
    engine.create_collection(db, temp, options, txn=txn)
    extra = [s for s in specs if s.get("name") != "_id_"]
    if extra:
        engine_ops.create_indexes(engine, txn, db, temp, extra)
    res = engine.collection(db, temp).insert(entry["docs"], ordered=True, txn=txn)
    if res.write_errors:
        e = res.write_errors[0]
        raise MongoError(e.code, e.errmsg, code_name=e.code_name, details=e.details)
    from node.engine.rename import rename_collection
    rename_collection(engine, txn, db, temp, db, coll, drop_target=True)
    return {"n": len(entry["docs"])}


def apply_merge(engine: Any, txn: Any, entry: dict[str, Any]) -> dict[str, Any]:
    from node.commands.pipeline import PipelineContext, parse_stages, run_pipeline

    db, coll = entry["db"], entry["coll"]
    spec = entry["spec"]
    on = spec["on"]
    matched, not_matched = spec["whenMatched"], spec["whenNotMatched"]
    target = engine.collection(db, coll)
    if on != ["_id"]:
        from node.engine import indexes as _indexes
        unique = [ix for ix in _indexes.list_indexes(txn, db, coll) if ix.get("unique")
                  and sorted(ix["key"]) == sorted(on)]
        if not unique:
            raise _err(51183, "Cannot find index to verify that join fields will be unique")
    if engine.catalog_entry(db, coll, txn=txn) is None:
        engine.create_collection(db, coll, txn=txn)
    stages = parse_stages(matched) if isinstance(matched, list) else None
    let_values = spec.get("letValues") or []
    n = 0
    for i, doc in enumerate(entry["docs"]):
        q = {}
        for f in on:
            from node.engine.paths import lookup
            value = lookup(doc, f)
            if value is None or isinstance(value, list) or value.__class__.__name__ == "_Missing":
                raise _err(51132, f"$merge write error: 'on' field '{f}' cannot be missing, "
                           "null, undefined or an array")
            q[f] = value
        current = target.find_one(q, txn=txn)
        if current is None:
            if not_matched == "discard":
                continue
            if not_matched == "fail":
                raise _err(13113, "$merge could not find a matching document in the target "
                           "collection for at least one document in the source collection",
                           "MergeStageNoMatchingDocument")
            res = target.insert([doc], ordered=True, txn=txn)
            if res.write_errors:
                e = res.write_errors[0]
                raise MongoError(e.code, e.errmsg, code_name=e.code_name, details=e.details)
            n += 1
            continue
        if matched == "keepExisting":
            continue
        if matched == "fail":
            raise MongoError(11000, f"E11000 duplicate key error collection: {db}.{coll} "
                             f"index: _id_ dup key: {q!r}", code_name="DuplicateKey")
        if matched == "replace":
            new = {**doc, "_id": current["_id"]}
        elif matched == "merge":
            new = {**current, **doc, "_id": current["_id"]}
        else:
            assert stages is not None
            variables = let_values[i] if i < len(let_values) else {"new": doc}
            ctx = PipelineContext(db=db, coll=coll, variables=dict(variables),
                                  now=entry.get("now"))
            out = list(run_pipeline([current], stages, ctx=ctx))
            new = {**out[0], "_id": current["_id"]} if out else current
        if "_id" in doc and doc["_id"] != current["_id"] and "_id" not in on:
            new["_id"] = current["_id"]
        target.update({"_id": current["_id"]}, new, txn=txn, now=entry.get("now"))
        n += 1
    return {"n": n}


APPLIERS = {"aggOut": apply_out, "aggMerge": apply_merge}
