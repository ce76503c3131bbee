"""The small aggregation pipeline ``aggregate`` supports: ``$match $sort $skip $limit $project
$count $unwind $group`` (accumulators ``$sum $avg $min $max $first $last $push $addToSet``,
expressions: ``"$field.path"``, constants, and documents of those).

Stages are generators over documents, built on the engine's matcher, sort and projection, so
the values, order and equality rules are exactly the engine's. The blocking stages are bounded
like MongoDB's: ``$sort`` and ``$group`` hold at most ``max_bytes`` (the engine's blocking-sort
limit, 100 MiB by default) and fail with 292 QueryExceededMemoryLimitNoDiskUseAllowed past it;
a ``$sort`` followed by ``$limit`` (or ``$skip`` then ``$limit``) keeps only the top documents.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import bson
from bson import Int64

from node.commands.args import fits_int64, is_number
from node.engine.errors import MongoError
from node.engine.matcher import Matcher
from node.engine.paths import lookup
from node.engine.projection import Projection
from node.engine.sorting import (
    MAX_BLOCKING_SORT_BYTES,
    QUERY_EXCEEDED_MEMORY_LIMIT,
    sort_documents_bounded,
)
from node.engine.values import MISSING, compare, hash_key

_ACCUMULATORS = ("$sum", "$avg", "$min", "$max", "$first", "$last", "$push", "$addToSet")
_GROUP_OVERHEAD = 64
"""Bytes counted per group and per accumulator besides the values they hold."""


def _err(code: int, msg: str) -> MongoError:
    return MongoError(code, msg, code_name=f"Location{code}")


def evaluate(expr: Any, doc: Mapping[str, Any]) -> Any:
    """Value of a (small) aggregation expression in ``doc``; MISSING when a path is absent."""
    if isinstance(expr, str) and expr.startswith("$"):
        if expr.startswith("$$"):
            raise _err(17276, f"Use of undefined variable: {expr[2:]}")
        return lookup(doc, expr[1:])
    if isinstance(expr, Mapping):
        if any(str(k).startswith("$") for k in expr):
            op = next(iter(expr))
            raise MongoError(168, f"Unrecognized expression '{op}'",
                             code_name="InvalidPipelineOperator")
        out = {}
        for k, v in expr.items():
            value = evaluate(v, doc)
            if value is not MISSING:
                out[k] = value
        return out
    if isinstance(expr, list):
        return [None if (v := evaluate(e, doc)) is MISSING else v for e in expr]
    return expr


def _match(docs: Iterable[dict[str, Any]], arg: Any) -> Iterator[dict[str, Any]]:
    if not isinstance(arg, Mapping):
        raise _err(15959, "the match filter must be an expression in an object")
    matcher = Matcher(arg)
    return (d for d in docs if matcher.matches(d))


def _int_arg(stage: str, arg: Any, positive: bool) -> int:
    if (not fits_int64(arg) or int(arg) != arg or arg < 0
            or (positive and arg == 0)):
        raise _err(15958 if stage == "$limit" else 15956,
                   f"invalid argument to {stage} stage: {arg!r}")
    return int(arg)


def _skip(docs: Iterable[dict[str, Any]], n: int) -> Iterator[dict[str, Any]]:
    for i, d in enumerate(docs):
        if i >= n:
            yield d


def _limit(docs: Iterable[dict[str, Any]], n: int) -> Iterator[dict[str, Any]]:
    for i, d in enumerate(docs):
        if i >= n:
            return
        yield d


def _unwind(docs: Iterable[dict[str, Any]], arg: Any) -> Iterator[dict[str, Any]]:
    preserve = False
    path = arg
    if isinstance(arg, Mapping):
        path = arg.get("path")
        preserve = bool(arg.get("preserveNullAndEmptyArrays", False))
    if not isinstance(path, str) or not path.startswith("$") or "." in path:
        raise _err(28812, "$unwind supports a top-level field path like '$tags'")
    name = path[1:]
    for d in docs:
        value = d.get(name, MISSING)
        if isinstance(value, list) and value:
            for element in value:
                out = dict(d)
                out[name] = element
                yield out
        elif isinstance(value, list) or value is MISSING or value is None:
            if preserve:
                yield d
        else:
            yield d


class _Acc:
    def __init__(self, op: str, expr: Any) -> None:
        self.op, self.expr = op, expr
        self.value: Any = MISSING
        self.count = 0
        self.seen: set[Any] = set()
        self.items: list[Any] = []

    def add(self, doc: Mapping[str, Any]) -> int:
        """Fold ``doc`` in; returns the bytes this accumulator now holds in addition."""
        v = evaluate(self.expr, doc)
        op = self.op
        if op in ("$sum", "$avg"):
            if is_number(v) or isinstance(v, Int64):
                self.value = (0 if self.value is MISSING else self.value) + v
                self.count += 1
        elif op in ("$min", "$max"):
            if v is MISSING or v is None:
                return 0
            if self.value is MISSING:
                self.value = v
                return 0
            c = compare(v, self.value)
            if (op == "$min" and c < 0) or (op == "$max" and c > 0):
                self.value = v
        elif op == "$first":
            if self.count == 0:
                self.value = None if v is MISSING else v
            self.count += 1
        elif op == "$last":
            self.value = None if v is MISSING else v
        elif op == "$push":
            if v is not MISSING:
                self.items.append(v)
                return _value_size(v)
        elif op == "$addToSet" and v is not MISSING:
            h = hash_key(v)
            if h not in self.seen:
                self.seen.add(h)
                self.items.append(v)
                return 2 * _value_size(v)  # the value and its hash key
        return 0

    def result(self) -> Any:
        if self.op == "$sum":
            return 0 if self.value is MISSING else self.value
        if self.op == "$avg":
            return None if not self.count else self.value / self.count
        if self.op in ("$push", "$addToSet"):
            return self.items
        return None if self.value is MISSING else self.value


def _value_size(value: Any) -> int:
    return len(bson.encode({"": value}))


def group_exceeded() -> MongoError:
    return MongoError(QUERY_EXCEEDED_MEMORY_LIMIT, "Exceeded memory limit for $group, but didn't "
                      "allow external sort. Pass allowDiskUse:true to opt in.",
                      code_name="QueryExceededMemoryLimitNoDiskUseAllowed")


def _group(docs: Iterable[dict[str, Any]], arg: Any, max_bytes: int
           ) -> Iterator[dict[str, Any]]:
    if not isinstance(arg, Mapping) or "_id" not in arg:
        raise _err(15955, "a group specification must include an _id")
    fields: list[tuple[str, str, Any]] = []
    for name, spec in arg.items():
        if name == "_id":
            continue
        if not isinstance(spec, Mapping) or len(spec) != 1:
            raise _err(40234, f"The field '{name}' must be an accumulator object")
        op, expr = next(iter(spec.items()))
        if op not in _ACCUMULATORS:
            raise _err(15952, f"unknown group operator '{op}'")
        fields.append((name, op, expr))
    groups: dict[Any, tuple[Any, list[_Acc]]] = {}
    held = 0
    for d in docs:
        key = evaluate(arg["_id"], d)
        key = None if key is MISSING else key
        h = hash_key(key)
        if h not in groups:
            groups[h] = (key, [_Acc(op, expr) for _, op, expr in fields])
            held += 2 * _value_size(key) + _GROUP_OVERHEAD * (1 + len(fields))
        for acc in groups[h][1]:
            held += acc.add(d)
        if held > max_bytes:
            raise group_exceeded()
    for key, accs in groups.values():
        out = {"_id": key}
        for (name, _, _), acc in zip(fields, accs):
            out[name] = acc.result()
        yield out


def _top_k(stages: list[tuple[str, Any]], i: int) -> int:
    """How many documents the ``$sort`` at ``stages[i]`` must keep (0: all): the ``$limit``
    right after it, or ``$skip`` + ``$limit`` after it."""
    following = stages[i + 1:i + 3]
    names = [n for n, _ in following]
    try:
        if names[:1] == ["$limit"]:
            return _int_arg("$limit", following[0][1], True)
        if names[:2] == ["$skip", "$limit"]:
            return (_int_arg("$skip", following[0][1], False)
                    + _int_arg("$limit", following[1][1], True))
    except MongoError:
        return 0  # the stage itself reports its bad argument
    return 0


def run_pipeline(docs: Iterable[dict[str, Any]], stages: list[tuple[str, Any]], *,
                 max_bytes: int = MAX_BLOCKING_SORT_BYTES) -> Iterator[dict[str, Any]]:
    """Apply ``stages`` (already checked to be known names) to ``docs``; ``$sort`` and
    ``$group`` hold at most ``max_bytes``."""
    out: Iterable[dict[str, Any]] = docs
    for i, (name, arg) in enumerate(stages):
        if name == "$match":
            out = _match(out, arg)
        elif name == "$sort":
            if not isinstance(arg, Mapping) or not arg:
                raise _err(15973, "the $sort key specification must be an object")
            out = iter(sort_documents_bounded(out, arg, keep=_top_k(stages, i),
                                              max_bytes=max_bytes))
        elif name == "$skip":
            out = _skip(out, _int_arg(name, arg, False))
        elif name == "$limit":
            out = _limit(out, _int_arg(name, arg, True))
        elif name == "$project":
            if not isinstance(arg, Mapping):
                raise _err(15969, "$project specification must be an object")
            proj = Projection(arg)
            out = (proj.apply(d) for d in out)
        elif name == "$count":
            if not isinstance(arg, str) or not arg or arg.startswith("$") or "." in arg:
                raise _err(40156, "the count field must be a non-empty string without $ or .")
            n = sum(1 for _ in out)
            out = iter([{arg: n}] if n else [])
        elif name == "$unwind":
            out = _unwind(out, arg)
        elif name == "$group":
            out = _group(out, arg, max_bytes)
    return iter(out)
