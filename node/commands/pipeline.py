"""The aggregation pipeline: stages parsed and checked once (:func:`compile_pipeline`), then
run as generators over documents (:func:`run_pipeline`), on a node or on the router.

Stages: ``$match $project $addFields/$set $unset $group $sort $skip $limit $unwind $count
$lookup $graphLookup $facet $bucket $bucketAuto $sortByCount $replaceRoot/$replaceWith
$sample $redact $geoNear $unionWith $documents $densify $fill $setWindowFields $collStats
$indexStats $out $merge``, with MongoDB's rules on where each may appear. Expressions are
:mod:`node.engine.expressions`, accumulators :mod:`node.engine.accumulators`.

Reads of other collections (``$lookup``, ``$graphLookup``, ``$unionWith``) and writes
(``$out``, ``$merge``) go through the :class:`PipelineContext`, so the same stage code runs
on a node (reading its engine, writing through the log) and on the router (reading and
writing through the shards). Blocking stages (``$sort``, ``$group``) hold at most
``max_bytes`` and fail with 292 past it unless ``allowDiskUse`` lets them spill sorted runs
to a temporary directory (:mod:`node.commands.spill`).

The internal stages ``$_groupPartial`` (a ``$group`` emitting mergeable partial states) and
``$_groupMerge`` (finishing them) are what the router's split uses.
"""

from __future__ import annotations

import datetime
import itertools
import random
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from node.commands.args import fits_int64, is_number
from node.engine.accumulators import ACCUMULATORS, AccSpec, value_size
from node.engine.errors import MongoError
from node.engine.expressions import Scope, Vars, compile_expression, nullish, truthy
from node.engine.matcher import Matcher
from node.engine.projection import Projection
from node.engine.sorting import (
    MAX_BLOCKING_SORT_BYTES,
    QUERY_EXCEEDED_MEMORY_LIMIT,
    Sort,
    sort_direction,
    sort_documents_bounded,
)
from node.engine.values import MISSING, SortKey, compare, hash_key, number_value

Docs = Iterable[dict[str, Any]]
Stage = Callable[[Docs], Iterator[dict[str, Any]]]

STAGES = ("$match", "$project", "$addFields", "$set", "$unset", "$group", "$sort", "$skip",
          "$limit", "$unwind", "$count", "$lookup", "$graphLookup", "$facet", "$bucket",
          "$bucketAuto", "$sortByCount", "$replaceRoot", "$replaceWith", "$sample", "$redact",
          "$geoNear", "$out", "$merge", "$unionWith", "$documents", "$densify", "$fill",
          "$setWindowFields", "$collStats", "$indexStats", "$_groupPartial", "$_groupMerge")
FIRST_ONLY = ("$geoNear", "$documents", "$collStats", "$indexStats")
LAST_ONLY = ("$out", "$merge")
NOT_IN_FACET = ("$out", "$merge", "$facet", "$collStats", "$indexStats", "$geoNear",
                "$documents")
_GROUP_OVERHEAD = 64


def _err(code: int, msg: str) -> MongoError:
    return MongoError(code, msg, code_name=f"Location{code}")


@dataclass
class PipelineContext:
    """What a pipeline needs from where it runs.

    ``read(coll, pipeline, variables)``: the documents of ``coll`` (same database) through a
    sub-pipeline; ``write(kind, spec, docs)``: the ``$out``/``$merge`` writer; ``source``
    facts for ``$collStats``/``$indexStats``/``$geoNear``."""

    db: str = "test"
    coll: str = ""
    read: Callable[[str, list[dict[str, Any]], Mapping[str, Any]], Iterator[dict[str, Any]]] \
        | None = None
    write: Callable[[str, Any, Iterable[dict[str, Any]]], None] | None = None
    stats: Callable[[str, Any], Iterator[dict[str, Any]]] | None = None
    geo_near: Callable[[Mapping[str, Any]], Iterator[dict[str, Any]]] | None = None
    max_bytes: int = MAX_BLOCKING_SORT_BYTES
    allow_disk_use: bool = False
    variables: dict[str, Any] = field(default_factory=dict)
    now: datetime.datetime | None = None
    in_facet: bool = False
    in_lookup: bool = False
    explain: list[dict[str, Any]] = field(default_factory=list)

    def scope(self, *more: str) -> Scope:
        return Scope([*self.variables, *more], now=self.now)

    def vars(self, doc: Any) -> Vars:
        return Vars(doc, self.variables)

    def sub(self, **changes: Any) -> PipelineContext:
        out = PipelineContext(**{**self.__dict__, "explain": []})
        for k, v in changes.items():
            setattr(out, k, v)
        return out

    def expr(self, e: Any, *more: str) -> Callable[[Any], Any]:
        fn = compile_expression(e, self.scope(*more))
        variables = self.variables
        if not variables:
            return lambda doc: fn(Vars(doc))
        return lambda doc: fn(Vars(doc, variables))


# --- parsing --------------------------------------------------------------------------------


def parse_stages(pipeline: Any, *, allow_internal: bool = False) -> list[tuple[str, Any]]:
    """``[{name: arg}, ...]`` -> ``[(name, arg), ...]`` with MongoDB's stage checks."""
    if not isinstance(pipeline, list):
        raise MongoError(14, "'pipeline' option must be specified as an array",
                         code_name="TypeMismatch")
    stages: list[tuple[str, Any]] = []
    for stage in pipeline:
        if not isinstance(stage, Mapping) or len(stage) != 1:
            raise _err(40323, "A pipeline stage specification object must contain exactly "
                       "one field.")
        name, arg = next(iter(stage.items()))
        if name not in STAGES or (name.startswith("$_") and not allow_internal):
            raise _err(40324, f"Unrecognized pipeline stage name: '{name}'")
        stages.append((name, arg))
    return stages


def check_positions(stages: list[tuple[str, Any]], ctx: PipelineContext) -> None:
    for i, (name, _) in enumerate(stages):
        if name in LAST_ONLY and i != len(stages) - 1:
            raise _err(40601, f"{name} can only be the final stage in the pipeline")
        if name in FIRST_ONLY and i != 0:
            code = {"$geoNear": 40603, "$collStats": 40602, "$indexStats": 40602,
                    "$documents": 40602}[name]
            raise _err(code, f"{name} is only valid as the first stage in a pipeline")
        if ctx.in_facet and name in NOT_IN_FACET:
            raise _err(40600, f"{name} is not allowed to be used within a $facet stage")
        if ctx.in_lookup and name in LAST_ONLY:
            raise _err(51047, f"{name} is not allowed within a $lookup's sub-pipeline")


def compile_pipeline(stages: list[tuple[str, Any]], ctx: PipelineContext) -> list[Stage]:
    check_positions(stages, ctx)
    out: list[Stage] = []
    for i, (name, arg) in enumerate(stages):
        builder = _BUILDERS[name]
        out.append(builder(arg, ctx, stages, i))
    return out


def run_pipeline(docs: Docs, stages: list[tuple[str, Any]], *,
                 max_bytes: int = MAX_BLOCKING_SORT_BYTES,
                 ctx: PipelineContext | None = None) -> Iterator[dict[str, Any]]:
    """Apply ``stages`` to ``docs`` (compiled first, so malformed stages fail before any
    document is read)."""
    if ctx is None:
        ctx = PipelineContext(max_bytes=max_bytes)
    compiled = compile_pipeline(stages, ctx)
    out: Iterable[dict[str, Any]] = docs
    for stage in compiled:
        out = stage(out)
    return iter(out)


# --- $match ---------------------------------------------------------------------------------


def _match(arg: Any, ctx: PipelineContext, stages: Any, i: int) -> Stage:
    if not isinstance(arg, Mapping):
        raise _err(15959, "the match filter must be an expression in an object")
    matcher = Matcher(arg, variables=ctx.variables, now=ctx.now)
    return lambda docs: (d for d in docs if matcher.matches(d))


# --- $project / $addFields / $unset ----------------------------------------------------------


def _project(arg: Any, ctx: PipelineContext, stages: Any, i: int) -> Stage:
    """``$project`` (and ``$unset``): the find projection's code, with the aggregation policy."""
    if not isinstance(arg, Mapping):
        raise _err(15969, "$project specification must be an object")
    try:
        projection = Projection(arg, variables=ctx.variables, now=ctx.now, aggregate=True)
    except MongoError as exc:
        raise MongoError(exc.code, f"Invalid $project :: caused by :: {exc.errmsg}",
                         code_name=exc.code_name) from exc
    return lambda docs: (projection.apply(d) for d in docs)


def set_path(doc: dict[str, Any], parts: list[str], value: Any) -> None:
    """``$addFields`` semantics: set ``value`` at ``parts``, through (and creating)
    subdocuments; over an array, in each element document."""
    key = parts[0]
    if len(parts) == 1:
        if value is MISSING:
            doc.pop(key, None)
        else:
            doc[key] = value
        return
    cur = doc.get(key, MISSING)
    if isinstance(cur, list):
        doc[key] = [_set_in(e, parts[1:], value) for e in cur]
        return
    sub = dict(cur) if isinstance(cur, Mapping) else {}
    set_path(sub, parts[1:], value)
    doc[key] = sub


def _set_in(e: Any, parts: list[str], value: Any) -> Any:
    if isinstance(e, list):
        return [_set_in(x, parts, value) for x in e]
    sub = dict(e) if isinstance(e, Mapping) else {}
    set_path(sub, parts, value)
    return sub


def _add_fields(arg: Any, ctx: PipelineContext, stages: Any, i: int) -> Stage:
    name = stages[i][0]
    if not isinstance(arg, Mapping):
        raise _err(40272, f"{name} specification stage must be an object, got "
                   f"{type(arg).__name__}")
    fields: list[tuple[list[str], Callable[[Any], Any]]] = []

    def flatten(prefix: list[str], spec: Mapping[str, Any]) -> None:
        for k, v in spec.items():
            if not isinstance(k, str) or not k or k.startswith("$"):
                raise _err(16410, f"FieldPath field names may not start with '$'. Given: {k}")
            path = prefix + k.split(".")
            if isinstance(v, Mapping) and v and not str(next(iter(v))).startswith("$"):
                flatten(path, v)
            else:
                fields.append((path, ctx.expr(v)))
    flatten([], arg)

    def run(docs: Docs) -> Iterator[dict[str, Any]]:
        for d in docs:
            out = dict(d)
            for parts, fn in fields:
                set_path(out, parts, fn(d))
            yield out
    return run


def _unset(arg: Any, ctx: PipelineContext, stages: Any, i: int) -> Stage:
    paths = [arg] if isinstance(arg, str) else arg
    if not isinstance(paths, list) or not paths or not all(
            isinstance(p, str) and p for p in paths):
        raise _err(31002, "$unset specification must be a string or an array of strings")
    return _project(dict.fromkeys(paths, 0), ctx, stages, i)


def _replace_root(arg: Any, ctx: PipelineContext, stages: Any, i: int) -> Stage:
    if stages[i][0] == "$replaceRoot":
        if not isinstance(arg, Mapping) or "newRoot" not in arg:
            raise _err(40231, "no newRoot specified for the $replaceRoot stage")
        arg = arg["newRoot"]
    fn = ctx.expr(arg)

    def run(docs: Docs) -> Iterator[dict[str, Any]]:
        for d in docs:
            value = fn(d)
            if not isinstance(value, Mapping):
                raise _err(40228, "'newRoot' expression must evaluate to an object, but "
                           f"resulting value was: {value!r}. Type of resulting value: "
                           f"'{'missing' if value is MISSING else type(value).__name__}'.")
            yield dict(value)
    return run


def _redact(arg: Any, ctx: PipelineContext, stages: Any, i: int) -> Stage:
    fn = compile_expression(arg, ctx.scope())
    keep, prune, descend = "$$KEEP", "$$PRUNE", "$$DESCEND"
    marks = {"KEEP": keep, "PRUNE": prune, "DESCEND": descend}

    def visit(doc: Mapping[str, Any]) -> Any:
        r = fn(Vars(doc, {**ctx.variables, **marks}))
        if r == keep:
            return doc
        if r == prune:
            return MISSING
        if r != descend:
            raise _err(17053, "$redact's expression should not return anything aside from the "
                       "variables $$KEEP, $$DESCEND, and $$PRUNE, but returned "
                       f"{r!r}")
        out = {}
        for k, v in doc.items():
            if isinstance(v, Mapping):
                sub = visit(v)
                if sub is not MISSING:
                    out[k] = sub
            elif isinstance(v, list):
                out[k] = [x for x in (visit(e) if isinstance(e, Mapping) else e for e in v)
                          if x is not MISSING]
            else:
                out[k] = v
        return out

    def run(docs: Docs) -> Iterator[dict[str, Any]]:
        for d in docs:
            r = visit(d)
            if r is not MISSING:
                yield r
    return run


# --- $skip / $limit / $count / $sample / $unwind ----------------------------------------------


def _int_arg(stage: str, arg: Any, positive: bool) -> int:
    if not fits_int64(arg) or int(arg) != arg:  # also NaN, infinities, past 64 bits
        code = {"$limit": 15957, "$skip": 15972, "$sample": 28746}.get(stage, 15957)
        raise _err(code, f"invalid argument to {stage} stage: {arg!r}")
    n = int(arg)
    if n < 0 or (positive and n == 0):
        code = {"$limit": 15958, "$skip": 15956, "$sample": 28747}.get(stage, 15958)
        raise _err(code, f"invalid argument to {stage} stage: {stage[1:]} must be "
                   f"{'positive' if positive else 'non-negative'}")
    return n


def _skip(arg: Any, ctx: PipelineContext, stages: Any, i: int) -> Stage:
    n = _int_arg("$skip", arg, False)
    return lambda docs: itertools.islice(docs, n, None)


def _limit(arg: Any, ctx: PipelineContext, stages: Any, i: int) -> Stage:
    n = _int_arg("$limit", arg, True)
    return lambda docs: itertools.islice(docs, n)


def _count(arg: Any, ctx: PipelineContext, stages: Any, i: int) -> Stage:
    if not isinstance(arg, str) or not arg:
        raise _err(40156, "the count field must be a non-empty string")
    if arg.startswith("$"):
        raise _err(40158, "the count field cannot be a $-prefixed path")
    if "." in arg:
        raise _err(40160, "the count field cannot contain '.'")

    def run(docs: Docs) -> Iterator[dict[str, Any]]:
        n = sum(1 for _ in docs)
        if n:
            yield {arg: n}
    return run


def _sample(arg: Any, ctx: PipelineContext, stages: Any, i: int) -> Stage:
    if not isinstance(arg, Mapping) or set(arg) != {"size"}:
        raise _err(28749, "$sample stage must specify a size" if not isinstance(arg, Mapping)
                   or "size" not in arg else "unrecognized option to $sample")
    n = _int_arg("$sample", arg["size"], False)

    def run(docs: Docs) -> Iterator[dict[str, Any]]:
        reservoir: list[dict[str, Any]] = []
        for k, d in enumerate(docs):
            if k < n:
                reservoir.append(d)
            else:
                j = random.randint(0, k)
                if j < n:
                    reservoir[j] = d
        random.shuffle(reservoir)
        return iter(reservoir)
    return run


def _unwind(arg: Any, ctx: PipelineContext, stages: Any, i: int) -> Stage:
    preserve = False
    index_field: str | None = None
    path = arg
    if isinstance(arg, Mapping):
        for k in arg:
            if k not in ("path", "preserveNullAndEmptyArrays", "includeArrayIndex"):
                raise _err(28811, f"unrecognized option to $unwind stage: {k}")
        if "path" not in arg:
            raise _err(28812, "no path specified to $unwind stage")
        path = arg["path"]
        preserve = bool(arg.get("preserveNullAndEmptyArrays", False))
        index_field = arg.get("includeArrayIndex")
        if index_field is not None and (not isinstance(index_field, str) or not index_field
                                        or index_field.startswith("$")):
            raise _err(28822, "includeArrayIndex option to $unwind stage must be a non-empty "
                       "string not starting with '$'")
    elif not isinstance(arg, str):
        raise _err(15981, f"expected either a string or an object as specification for $unwind "
                   f"stage, got {type(arg).__name__}")
    if not isinstance(path, str):
        raise _err(28808, "expected a string as the path for $unwind stage")
    if not path.startswith("$") or len(path) < 2:
        raise _err(28818, f"path option to $unwind stage should be prefixed with a '$': {path}")
    parts = path[1:].split(".")
    from node.engine.expressions import get_path
    idx_parts = index_field.split(".") if index_field else None

    def run(docs: Docs) -> Iterator[dict[str, Any]]:
        for d in docs:
            value = get_path(d, parts) if len(parts) > 1 else d.get(parts[0], MISSING)
            if isinstance(value, list) and value:
                for n, element in enumerate(value):
                    out = dict(d)
                    set_path(out, parts, element)
                    if idx_parts:
                        set_path(out, idx_parts, n)
                    yield out
            elif isinstance(value, list) or nullish(value):
                if preserve:
                    out = dict(d)
                    if isinstance(value, list):
                        set_path(out, parts, MISSING)
                    if idx_parts:
                        set_path(out, idx_parts, None)
                    yield out
            else:
                out = dict(d)
                if idx_parts:
                    set_path(out, idx_parts, None)
                yield out
    return run


# --- $sort --------------------------------------------------------------------------------------


def sort_keep(stages: list[tuple[str, Any]], i: int) -> int:
    """How many documents the ``$sort`` at ``stages[i]`` must keep (0: all): the ``$limit``s
    right after it, with ``$skip``s in between added."""
    keep = 0
    skip = 0
    for name, arg in stages[i + 1:]:
        try:
            if name == "$limit":
                keep = skip + _int_arg("$limit", arg, True)
                break
            if name == "$skip":
                skip += _int_arg("$skip", arg, False)
                continue
        except MongoError:
            return 0
        break
    return keep


def parse_sort_stage(arg: Any) -> Sort:
    if not isinstance(arg, Mapping) or not arg:
        raise _err(15973, "the $sort key specification must be an object")
    for k, v in arg.items():
        if isinstance(v, Mapping):
            if dict(v) != {"$meta": "textScore"} and dict(v) != {"$meta": "randVal"}:
                raise _err(17312, "$meta is the only expression supported by $sort right now")
            raise _err(17311, "$sort by $meta is not supported")
        sort_direction(str(k), v)
    return Sort(arg)


def _sort(arg: Any, ctx: PipelineContext, stages: Any, i: int) -> Stage:
    sort = parse_sort_stage(arg)
    keep = sort_keep(stages, i)

    def run(docs: Docs) -> Iterator[dict[str, Any]]:
        if ctx.allow_disk_use and not keep:
            from node.commands.spill import external_sort
            return external_sort(docs, sort, ctx.max_bytes)
        return iter(sort_documents_bounded(docs, sort, keep=keep, max_bytes=ctx.max_bytes))
    return run


# --- $group ----------------------------------------------------------------------------------


def group_exceeded() -> MongoError:
    return MongoError(QUERY_EXCEEDED_MEMORY_LIMIT, "Exceeded memory limit for $group, but didn't "
                      "allow external sort. Pass allowDiskUse:true to opt in.",
                      code_name="QueryExceededMemoryLimitNoDiskUseAllowed")


@dataclass
class GroupSpec:
    key: Callable[[Any], Any]
    fields: list[tuple[str, AccSpec]]
    variables: dict[str, Any]


def parse_group(arg: Any, ctx: PipelineContext) -> GroupSpec:
    if not isinstance(arg, Mapping):
        raise _err(15947, "a group's fields must be specified in an object")
    if "_id" not in arg:
        raise _err(15955, "a group specification must include an _id")
    fields: list[tuple[str, AccSpec]] = []
    for name, spec in arg.items():
        if name == "_id":
            continue
        if name.startswith("$") or "." in name:
            raise _err(40236 if "." in name else 16410,
                       f"The field name '{name}' cannot contain '.'" if "." in name else
                       f"FieldPath field names may not start with '$'. Given: {name}")
        if not isinstance(spec, Mapping):
            raise _err(40234, f"The field '{name}' must be an accumulator object")
        if len(spec) != 1:
            raise _err(40238, f"The field '{name}' must specify one accumulator")
        op, expr = next(iter(spec.items()))
        if op not in ACCUMULATORS:
            raise _err(15952, f"unknown group operator '{op}'")
        fields.append((name, AccSpec(op, expr, ctx.scope())))
    return GroupSpec(ctx.expr(arg["_id"]), fields, ctx.variables)


def group_docs(docs: Docs, spec: GroupSpec, ctx: PipelineContext, *, partial: bool = False,
               merging: bool = False) -> Iterator[dict[str, Any]]:
    """Fold ``docs`` into groups. ``partial``: emit each accumulator's partial state (the
    shard side of the router's split); ``merging``: the input documents are partial states
    (``_id`` already the key) to merge."""
    groups: dict[Any, tuple[Any, list[Any]]] = {}
    held = 0
    spilled: Any = None
    for d in docs:
        key = d.get("_id", None) if merging else spec.key(d)
        key = None if key is MISSING else key
        h = hash_key(key)
        entry = groups.get(h)
        if entry is None:
            entry = groups[h] = (key, [a.new() for _, a in spec.fields])
            held += 2 * value_size(key) + _GROUP_OVERHEAD * (1 + len(spec.fields))
        for (name, a), acc in zip(spec.fields, entry[1], strict=True):
            if merging:
                before = acc.size()
                acc.merge(d[name])
                held += acc.size() - before
            else:
                before = acc.size() if acc.op in _GROWING else 0
                acc.add(a.value(Vars(d, spec.variables) if spec.variables else Vars(d)))
                if acc.op in _GROWING:
                    held += acc.size() - before
        if held > ctx.max_bytes:
            if not ctx.allow_disk_use:
                raise group_exceeded()
            from node.commands.spill import GroupSpill
            if spilled is None:
                spilled = GroupSpill(spec)
            spilled.write(groups)
            groups = {}
            held = 0
    if spilled is not None:
        spilled.write(groups)
        yield from spilled.merged(partial)
        return
    for key, accs in groups.values():
        yield finish_group(key, spec, accs, partial)


_GROWING = frozenset({"$push", "$addToSet", "$mergeObjects", "$topN", "$bottomN", "$top",
                      "$bottom", "$firstN", "$lastN", "$minN", "$maxN", "$median",
                      "$percentile", "$min", "$max", "$first", "$last"})


def finish_group(key: Any, spec: GroupSpec, accs: list[Any], partial: bool) -> dict[str, Any]:
    out = {"_id": key}
    for (name, _), acc in zip(spec.fields, accs, strict=True):
        out[name] = acc.partial() if partial else acc.result()
    return out


def _group(arg: Any, ctx: PipelineContext, stages: Any, i: int) -> Stage:
    spec = parse_group(arg, ctx)
    name = stages[i][0]
    return lambda docs: group_docs(docs, spec, ctx, partial=name == "$_groupPartial",
                                   merging=name == "$_groupMerge")


def _sort_by_count(arg: Any, ctx: PipelineContext, stages: Any, i: int) -> Stage:
    if not (isinstance(arg, str) and arg.startswith("$")) and not (
            isinstance(arg, Mapping) and arg and str(next(iter(arg))).startswith("$")):
        raise _err(40148, "the sortByCount field must be defined as a $-prefixed path or an "
                   "expression")
    group = _group({"_id": arg, "count": {"$sum": 1}}, ctx, [("$group", None)], 0)
    sort = _sort({"count": -1}, ctx, [("$sort", None)], 0)
    return lambda docs: sort(group(docs))


# --- $bucket / $bucketAuto -----------------------------------------------------------------


def _bucket(arg: Any, ctx: PipelineContext, stages: Any, i: int) -> Stage:
    if not isinstance(arg, Mapping):
        raise _err(40201, "Argument to $bucket stage must be an object")
    for k in arg:
        if k not in ("groupBy", "boundaries", "default", "output"):
            raise _err(40197, f"Unrecognized option to $bucket: {k}.")
    if "groupBy" not in arg or "boundaries" not in arg:
        raise _err(40198, "$bucket requires 'groupBy' and 'boundaries' to be specified.")
    gb = arg["groupBy"]
    if not (isinstance(gb, str) and gb.startswith("$")) and not isinstance(gb, Mapping):
        raise _err(40202, "The $bucket 'groupBy' field must be defined as a $-prefixed path or "
                   "an expression")
    bounds = arg["boundaries"]
    if not isinstance(bounds, list) or len(bounds) < 2:
        raise _err(40192, "The $bucket 'boundaries' field must be an array of at least two "
                   "values")
    for a, b in itertools.pairwise(bounds):
        from node.engine.values import canonical_rank
        if canonical_rank(a) != canonical_rank(b):
            raise _err(40193, "All values in the the 'boundaries' option to $bucket must have "
                       "the same type")
        if compare(a, b) >= 0:
            raise _err(40194, "The 'boundaries' option to $bucket must be sorted in ascending "
                       "order")
    has_default = "default" in arg
    default = arg.get("default")
    if has_default and compare(bounds[0], default) <= 0 and compare(default, bounds[-1]) < 0:
        from node.engine.values import canonical_rank
        if canonical_rank(default) == canonical_rank(bounds[0]):
            raise _err(40199, "The $bucket 'default' field must be less than the lowest boundary "
                       "or greater than or equal to the highest boundary.")
    output = arg.get("output", {"count": {"$sum": 1}})
    if not isinstance(output, Mapping):
        raise _err(40196, "The $bucket 'output' field must be an object")
    key_fn = ctx.expr(gb)
    spec = parse_group({"_id": None, **output}, ctx)

    def bucket_of(doc: Any) -> Any:
        v = key_fn(doc)
        v = None if v is MISSING else v
        from node.engine.values import canonical_rank
        if canonical_rank(v) == canonical_rank(bounds[0]) and compare(bounds[0], v) <= 0 \
                and compare(v, bounds[-1]) < 0:
            lo = 0
            for k in range(len(bounds) - 1):
                if compare(v, bounds[k + 1]) < 0:
                    lo = k
                    break
            return bounds[lo]
        if not has_default:
            raise _err(40066, "$switch could not find a matching branch for an input, and no "
                       "default was specified.")
        return default

    spec.key = bucket_of

    def run(docs: Docs) -> Iterator[dict[str, Any]]:
        groups = list(group_docs(docs, spec, ctx))
        groups.sort(key=lambda g: (g["_id"] == default and has_default and not any(
            compare(g["_id"], b) == 0 for b in bounds), SortKey(g["_id"])))
        return iter(groups)
    return run


_SERIES = {
    "R5": [10, 16, 25, 40, 63], "R10": [10, 12.5, 16, 20, 25, 31.5, 40, 50, 63, 80],
    "1-2-5": [10, 20, 50], "POWERSOF2": None,
    "E6": [10, 15, 22, 33, 47, 68], "E12": [10, 12, 15, 18, 22, 27, 33, 39, 47, 56, 68, 82],
}


def _bucket_auto(arg: Any, ctx: PipelineContext, stages: Any, i: int) -> Stage:
    if not isinstance(arg, Mapping):
        raise _err(40240, "The argument to $bucketAuto must be an object")
    for k in arg:
        if k not in ("groupBy", "buckets", "output", "granularity"):
            raise _err(40245, f"Unrecognized option to $bucketAuto: {k}.")
    if "groupBy" not in arg or "buckets" not in arg:
        raise _err(40246, "$bucketAuto requires 'groupBy' and 'buckets' to be specified")
    n = arg["buckets"]
    if not is_number(n) or int(number_value(n)) != number_value(n) or number_value(n) <= 0:
        raise _err(40243, f"The $bucketAuto 'buckets' field must be greater than 0, but found: "
                   f"{n}")
    n = int(number_value(n))
    key_fn = ctx.expr(arg["groupBy"])
    output = arg.get("output", {"count": {"$sum": 1}})
    spec = parse_group({"_id": None, **output}, ctx)

    def run(docs: Docs) -> Iterator[dict[str, Any]]:
        items = []
        for d in docs:
            v = key_fn(d)
            items.append((None if v is MISSING else v, d))
        items.sort(key=lambda t: SortKey(t[0]))
        if not items:
            return
        per = max(1, round(len(items) / n))
        buckets: list[list[tuple[Any, Any]]] = []
        k = 0
        while k < len(items):
            end = min(k + per, len(items)) if len(buckets) < n - 1 else len(items)
            while end < len(items) and compare(items[end][0], items[end - 1][0]) == 0:
                end += 1
            buckets.append(items[k:end])
            k = end
        for b, bucket in enumerate(buckets):
            accs = [a.new() for _, a in spec.fields]
            for _, d in bucket:
                for (_, a), acc in zip(spec.fields, accs, strict=True):
                    acc.add(a.value(Vars(d, ctx.variables)))
            hi = buckets[b + 1][0][0] if b + 1 < len(buckets) else bucket[-1][0]
            out = finish_group({"min": bucket[0][0], "max": hi}, spec, accs, False)
            yield out
    return run


# --- $facet -----------------------------------------------------------------------------------


def _facet(arg: Any, ctx: PipelineContext, stages: Any, i: int) -> Stage:
    if not isinstance(arg, Mapping) or not arg:
        raise _err(40169, "the $facet specification must be a non-empty object")
    sub = ctx.sub(in_facet=True)
    facets = []
    for name, pipeline in arg.items():
        if not isinstance(pipeline, list) or not pipeline:
            raise _err(40170 if not isinstance(pipeline, list) else 40171,
                       f"arguments to $facet must be arrays, {name} is not a non-empty array")
        facets.append((name, compile_pipeline(parse_stages(pipeline), sub)))

    def run(docs: Docs) -> Iterator[dict[str, Any]]:
        held = list(docs)
        out = {}
        for name, compiled in facets:
            stream: Iterable[dict[str, Any]] = iter(held)
            for stage in compiled:
                stream = stage(stream)
            out[name] = list(stream)
        yield out
    return run


# --- $lookup / $graphLookup / $unionWith ---------------------------------------------------


def _need_read(ctx: PipelineContext, name: str) -> Callable[..., Iterator[dict[str, Any]]]:
    if ctx.read is None:
        raise _err(51047, f"{name} cannot read other collections here")
    return ctx.read


def _lookup(arg: Any, ctx: PipelineContext, stages: Any, i: int) -> Stage:
    if not isinstance(arg, Mapping):
        raise _err(15945, "the $lookup stage specification must be an object")
    for k in arg:
        if k not in ("from", "localField", "foreignField", "as", "let", "pipeline"):
            raise _err(9, f"unknown argument to $lookup: {k}")
    if "as" not in arg or not isinstance(arg["as"], str):
        raise _err(9, "must specify 'as' field for a $lookup")
    coll = arg.get("from")
    if coll is not None and not isinstance(coll, str):
        raise _err(9, "$lookup 'from' field must be a string")
    as_parts = arg["as"].split(".")
    has_pipeline = "pipeline" in arg
    local, foreign = arg.get("localField"), arg.get("foreignField")
    if (local is None) != (foreign is None):
        raise _err(9, "$lookup requires both or neither of 'localField' and 'foreignField' "
                   "to be specified")
    if not has_pipeline and local is None:
        raise _err(9, "$lookup requires either 'pipeline' or both 'localField' and "
                   "'foreignField' to be specified")
    if has_pipeline and coll is None and not (arg["pipeline"] and "$documents" in
                                              arg["pipeline"][0]):
        raise _err(9, "must specify 'from' field for a $lookup")
    let = arg.get("let", {})
    if not isinstance(let, Mapping):
        raise _err(9, "$lookup argument 'let' must be an object")
    from node.engine.expr_misc import check_variable_name
    for name in let:
        check_variable_name(name)
    let_fns = {k: ctx.expr(v) for k, v in let.items()}
    sub_stages = parse_stages(arg["pipeline"]) if has_pipeline else []
    sub_ctx = ctx.sub(in_lookup=True, variables={**ctx.variables, **dict.fromkeys(let)})
    check_positions(sub_stages, sub_ctx)
    compile_pipeline(sub_stages, sub_ctx)  # errors now, before any document
    read = _need_read(ctx, "$lookup")
    from node.engine.expressions import get_path
    local_parts = local.split(".") if isinstance(local, str) else []

    def run(docs: Docs) -> Iterator[dict[str, Any]]:
        cache: list[dict[str, Any]] | None = None
        for d in docs:
            variables = {**ctx.variables, **{k: f(d) for k, f in let_fns.items()}}
            pipeline = [{n: a} for n, a in sub_stages]
            if local is not None:
                v = get_path(d, local_parts)
                values = v if isinstance(v, list) else [None if v is MISSING else v]
                if not values:
                    values = [None]
                if any(isinstance(x, Mapping) and x and str(next(iter(x))).startswith("$")
                       for x in values) or any(hasattr(x, "pattern") for x in values):
                    matcher = Matcher({foreign: {"$in": [x for x in values]}})
                    if cache is None and not has_pipeline:
                        cache = list(read(coll or ctx.coll, [], {}))
                    found = [x for x in (cache or []) if matcher.matches(x)]
                    if has_pipeline:
                        found = list(run_pipeline(found, sub_stages,
                                                  ctx=ctx.sub(variables=variables,
                                                              in_lookup=True)))
                else:
                    pipeline = [{"$match": {foreign: {"$in": values}}}, *pipeline]
                    found = list(read(coll or ctx.coll, pipeline, variables))
            else:
                found = list(read(coll or ctx.coll, pipeline, variables))
            out = dict(d)
            set_path(out, as_parts, found)
            yield out
    return run


def _graph_lookup(arg: Any, ctx: PipelineContext, stages: Any, i: int) -> Stage:
    if not isinstance(arg, Mapping):
        raise _err(40327, "$graphLookup must be an object")
    need = ("from", "startWith", "connectFromField", "connectToField", "as")
    for k in arg:
        if k not in (*need, "maxDepth", "depthField", "restrictSearchWithMatch"):
            raise _err(40104, f"Unknown argument to $graphLookup: {k}")
    for k in need:
        if k not in arg:
            raise _err(40105, f"$graphLookup requires '{k}' to be specified")
    max_depth = arg.get("maxDepth")
    if max_depth is not None and (not is_number(max_depth) or number_value(max_depth) < 0):
        raise _err(40101, "maxDepth requires a nonnegative argument")
    start = ctx.expr(arg["startWith"])
    from_f, to_f = arg["connectFromField"], arg["connectToField"]
    restrict = arg.get("restrictSearchWithMatch", {})
    depth_field = arg.get("depthField")
    read = _need_read(ctx, "$graphLookup")
    from node.engine.expressions import get_path

    def run(docs: Docs) -> Iterator[dict[str, Any]]:
        for d in docs:
            v = start(d)
            frontier = v if isinstance(v, list) else [v]
            seen_ids: set[Any] = set()
            seen_vals: set[Any] = set()
            found: list[dict[str, Any]] = []
            depth = 0
            while frontier and (max_depth is None or depth <= number_value(max_depth)):
                values = []
                for x in frontier:
                    x = None if x is MISSING else x
                    h = hash_key(x)
                    if h not in seen_vals:
                        seen_vals.add(h)
                        values.append(x)
                if not values:
                    break
                q = {"$and": [{to_f: {"$in": values}}, restrict]} if restrict else \
                    {to_f: {"$in": values}}
                frontier = []
                for doc in read(arg["from"], [{"$match": q}], {}):
                    h = hash_key(doc.get("_id"))
                    if h in seen_ids:
                        continue
                    seen_ids.add(h)
                    out = dict(doc)
                    if depth_field:
                        set_path(out, depth_field.split("."), depth)
                    found.append(out)
                    nxt = get_path(doc, from_f.split("."))
                    if nxt is not MISSING:
                        frontier.extend(nxt if isinstance(nxt, list) else [nxt])
                depth += 1
            out = dict(d)
            set_path(out, arg["as"].split("."), found)
            yield out
    return run


def _union_with(arg: Any, ctx: PipelineContext, stages: Any, i: int) -> Stage:
    if isinstance(arg, str):
        coll, pipeline = arg, []
    elif isinstance(arg, Mapping):
        for k in arg:
            if k not in ("coll", "pipeline"):
                raise _err(40415, f"BSON field '$unionWith.{k}' is an unknown field.")
        coll, pipeline = arg.get("coll"), arg.get("pipeline", [])
        if coll is None and not (pipeline and "$documents" in pipeline[0]):
            raise _err(40414, "BSON field '$unionWith.coll' is missing but a required field")
    else:
        raise _err(ErrorCodes_FailedToParse, "the $unionWith stage specification must be an "
                   "object or string")
    sub = parse_stages(pipeline)
    check_positions(sub, ctx.sub(in_lookup=True))
    read = _need_read(ctx, "$unionWith")

    def run(docs: Docs) -> Iterator[dict[str, Any]]:
        yield from docs
        if coll is None:
            yield from run_pipeline(iter(()), sub, ctx=ctx.sub())
        else:
            yield from read(coll, [{n: a} for n, a in sub], ctx.variables)
    return run


ErrorCodes_FailedToParse = 9


def _documents(arg: Any, ctx: PipelineContext, stages: Any, i: int) -> Stage:
    fn = ctx.expr(arg)

    def run(docs: Docs) -> Iterator[dict[str, Any]]:
        values = fn({})
        if not isinstance(values, list) or not all(isinstance(v, Mapping) for v in values):
            raise _err(5858203, "error during $documents evaluation: an array of objects is "
                       "expected")
        return iter([dict(v) for v in values])
    return run


# --- $geoNear, $collStats, $indexStats: the source provides them --------------------------------


def _geo_near(arg: Any, ctx: PipelineContext, stages: Any, i: int) -> Stage:
    if not isinstance(arg, Mapping):
        raise _err(10065, "$geoNear requires an object")
    if "near" not in arg:
        raise _err(5860400, "$geoNear requires a 'near' argument")
    if "distanceField" not in arg:
        raise _err(40412, "$geoNear requires a 'distanceField' option as a String")
    if ctx.geo_near is None:
        raise _err(40602, "$geoNear is only valid as the first stage in a pipeline")
    source = ctx.geo_near

    def run(docs: Docs) -> Iterator[dict[str, Any]]:
        return source(arg)
    return run


def _coll_stats(arg: Any, ctx: PipelineContext, stages: Any, i: int) -> Stage:
    if ctx.stats is None:
        raise _err(40602, f"{stages[i][0]} is only valid as the first stage in a pipeline")
    stats = ctx.stats
    name = stages[i][0]
    if name == "$collStats" and not isinstance(arg, Mapping):
        raise _err(5447000, "$collStats must take a nested object")
    return lambda docs: stats(name, arg)


# --- $densify / $fill / $setWindowFields ------------------------------------------------------


def _densify(arg: Any, ctx: PipelineContext, stages: Any, i: int) -> Stage:
    from node.commands.windows import densify
    return densify(arg, ctx)


def _fill(arg: Any, ctx: PipelineContext, stages: Any, i: int) -> Stage:
    from node.commands.windows import fill
    return fill(arg, ctx)


def _set_window_fields(arg: Any, ctx: PipelineContext, stages: Any, i: int) -> Stage:
    from node.commands.windows import set_window_fields
    return set_window_fields(arg, ctx)


# --- $out / $merge ------------------------------------------------------------------------------


def _out(arg: Any, ctx: PipelineContext, stages: Any, i: int) -> Stage:
    from node.commands.agg_writes import parse_out
    spec = parse_out(stages[i][0], arg, ctx)
    if ctx.write is None:
        raise _err(ErrorCodes_FailedToParse, f"{stages[i][0]} is not allowed here")
    write = ctx.write
    name = stages[i][0]

    def run(docs: Docs) -> Iterator[dict[str, Any]]:
        write(name, spec, docs)
        return iter(())
    return run


_BUILDERS: dict[str, Callable[[Any, PipelineContext, Any, int], Stage]] = {
    "$match": _match, "$project": _project, "$addFields": _add_fields, "$set": _add_fields,
    "$unset": _unset, "$group": _group, "$_groupPartial": _group, "$_groupMerge": _group,
    "$sort": _sort, "$skip": _skip, "$limit": _limit, "$unwind": _unwind, "$count": _count,
    "$lookup": _lookup, "$graphLookup": _graph_lookup, "$facet": _facet, "$bucket": _bucket,
    "$bucketAuto": _bucket_auto, "$sortByCount": _sort_by_count,
    "$replaceRoot": _replace_root, "$replaceWith": _replace_root, "$sample": _sample,
    "$redact": _redact, "$geoNear": _geo_near, "$out": _out, "$merge": _out,
    "$unionWith": _union_with, "$documents": _documents, "$densify": _densify,
    "$fill": _fill, "$setWindowFields": _set_window_fields, "$collStats": _coll_stats,
    "$indexStats": _coll_stats,
}

__all__ = ["STAGES", "PipelineContext", "compile_pipeline", "parse_stages", "run_pipeline",
           "truthy"]
