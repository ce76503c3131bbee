"""The command layer's narrow view of the engine: the calls handlers and appliers make.

Everything here is a thin call into :mod:`node.engine` (``Engine``/``Collection`` and the
index catalog functions), so the handlers read as MongoDB commands and the engine's API is
touched in one place. Write functions take the state machine's write transaction; read
functions open their own snapshot (a cursor keeps its snapshot while it is open).
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from node.engine import indexes as _indexes
from node.engine.database import Engine
from node.engine.errors import MongoError, bad_value, namespace_not_found
from node.engine.matcher import Matcher
from node.engine.sorting import MAX_BLOCKING_SORT_BYTES
from node.engine.updater import Update


def open_engine(store: Any, *, max_sort_bytes: int = MAX_BLOCKING_SORT_BYTES) -> Engine:
    """The engine over ``store`` with the index maintainer and the query planner plugged in;
    ``max_sort_bytes`` bounds every blocking sort (find's and aggregate's) and ``$group``."""
    from node.engine.indexes import IndexManager
    from node.engine.planner import Planner

    return Engine(store, indexes=IndexManager(), planner=Planner(max_sort_bytes=max_sort_bytes))


# --- writes (inside the state machine's transaction) -------------------------------------------


def validate_write(q: Mapping[str, Any] | None, u: Any = None,
                   array_filters: list[Mapping[str, Any]] | None = None,
                   constants: Mapping[str, Any] | None = None) -> None:
    """Compile a write statement's update (with its ``arrayFilters``) and filter in the order
    the engine does when the entry applies, raising the same MongoError: the primary refuses a
    statement that can only fail (a regex RE2 cannot run, an unknown operator, a query nested
    too deeply) before proposing it. A pure function of the statement, like the apply."""
    if u is not None:
        Update(u, array_filters, constants)
    Matcher(q or {}, allow_rand=False)  # $rand would differ from member to member



def insert_many(engine: Engine, txn: Any, db: str, coll: str, docs: list[Mapping[str, Any]],
                *, ordered: bool) -> tuple[int, list[dict[str, Any]]]:
    """Insert ``docs``; returns (n inserted, writeErrors documents)."""
    res = engine.collection(db, coll).insert(docs, ordered=ordered, txn=txn)
    return res.n, [e.to_doc() for e in res.write_errors]


@dataclass
class UpdateOutcome:
    matched: int
    modified: int
    upserted_id: Any


def update(engine: Engine, txn: Any, db: str, coll: str, st: Mapping[str, Any],
           now: _dt.datetime) -> UpdateOutcome:
    res = engine.collection(db, coll).update(
        st["q"], st["u"], upsert=st["upsert"], multi=st["multi"],
        upsert_id=st.get("upsertId"), now=now, array_filters=st.get("arrayFilters"),
        sort=st.get("sort"), hint=st.get("hint"), txn=txn, constants=st.get("c"))
    if res.upserted:
        return UpdateOutcome(0, 0, res.upserted_id)
    return UpdateOutcome(res.n, res.n_modified, None)


def delete(engine: Engine, txn: Any, db: str, coll: str, q: Mapping[str, Any], *,
           just_one: bool, hint: Any = None) -> int:
    return engine.collection(db, coll).delete(q, limit=1 if just_one else 0, hint=hint, txn=txn)


def find_and_modify(engine: Engine, txn: Any, entry: Mapping[str, Any]) -> Any:
    return engine.collection(entry["db"], entry["coll"]).find_and_modify(
        entry["query"], sort=entry["sort"] or None, update=entry["update"],
        remove=entry["remove"], new=entry["new"], fields=entry["fields"],
        upsert=entry["upsert"], upsert_id=entry.get("upsertId"), now=entry["now"],
        array_filters=entry.get("arrayFilters"), hint=entry.get("hint"), txn=txn)


def create_collection(engine: Engine, txn: Any, db: str, coll: str) -> None:
    engine.create_collection(db, coll, txn=txn)


def drop_collection(engine: Engine, txn: Any, db: str, coll: str) -> int:
    """Drops ``db.coll``; returns how many indexes it had (0 when it did not exist)."""
    if engine.catalog_entry(db, coll, txn=txn) is None:
        return 0
    was = len(_indexes.load_indexes(txn, db, coll))
    engine.drop_collection(db, coll, txn=txn)
    return was


def drop_database(engine: Engine, txn: Any, db: str) -> None:
    engine.drop_database(db, txn=txn)


def create_indexes(engine: Engine, txn: Any, db: str, coll: str,
                   specs: list[Mapping[str, Any]]) -> tuple[bool, int, int]:
    """Build ``specs``; returns (collection created, indexes before, indexes after)."""
    created = engine.catalog_entry(db, coll, txn=txn) is None
    if created:
        engine.create_collection(db, coll, txn=txn)
    before = len(_indexes.load_indexes(txn, db, coll))
    for spec in specs:
        options = {k: v for k, v in spec.items() if k not in ("key", "v", "ns")}
        _indexes.create_index(txn, db, coll, list(spec["key"].items()), **options)
    after = len(_indexes.load_indexes(txn, db, coll))
    return created, before, after


def drop_indexes(engine: Engine, txn: Any, db: str, coll: str, which: Any) -> int:
    """Drop by name, key pattern, ``"*"`` or a list of names; returns the count before."""
    if engine.catalog_entry(db, coll, txn=txn) is None:
        raise namespace_not_found(f"ns not found {db}.{coll}")
    was = len(_indexes.load_indexes(txn, db, coll))
    names = which if isinstance(which, list) else [which]
    for name in names:
        _indexes.drop_index(txn, db, coll, name)
    return was


# --- reads -------------------------------------------------------------------------------------


def find(engine: Engine, db: str, coll: str, filt: Mapping[str, Any], *,
         projection: Mapping[str, Any] | None, sort: list[tuple[str, Any]] | None, skip: int,
         limit: int, hint: Any = None, return_sort_key: bool = False,
         variables: Mapping[str, Any] | None = None) -> Iterator[dict[str, Any]]:
    collection = engine.collection(db, coll)
    direction = natural_direction(sort, hint)
    if direction is not None or (not sort and hint is None and collection.is_capped()):
        it: Iterator[dict[str, Any]] = (doc for _, doc in collection.find_natural(
            filt, projection, reverse=direction == -1, skip=skip, limit=limit,
            variables=variables))
    else:
        it = collection.find(filt, projection, sort=sort or None, skip=skip, limit=limit,
                             hint=hint, return_sort_key=return_sort_key, variables=variables)
    # start the generator now so query errors surface before the reply is built
    first = next(it, None)
    if first is None:
        return iter(())
    return _chain(first, it)


def natural_direction(sort: list[tuple[str, Any]] | None, hint: Any) -> int | None:
    """1 or -1 for a ``{$natural: ±1}`` sort (alone) or hint; None otherwise."""
    for spec in (sort, list(hint.items()) if isinstance(hint, Mapping) else None):
        if spec and spec[0][0] == "$natural":
            if len(spec) != 1 or spec[0][1] not in (1, -1):
                raise bad_value("$natural must be the only field and 1 or -1")
            return int(spec[0][1])
    return None


def _chain(first: dict[str, Any], rest: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    yield first
    yield from rest


def count(engine: Engine, db: str, coll: str, query: Mapping[str, Any], *, skip: int = 0,
          limit: int = 0, hint: Any = None) -> int:
    return engine.collection(db, coll).count(query, skip=skip, limit=limit, hint=hint)


def data_size(engine: Engine, db: str, coll: str) -> tuple[int, int]:
    """(documents, bytes of their BSON) of a collection, as this node serves it (a shard
    counts only the records it owns)."""
    from node.engine.collection import docs_table

    ns = f"{db}.{coll}"
    n = size = 0
    with engine.store.read() as txn:
        owned = engine.ownership.owned(txn, ns) if engine.ownership is not None else None
        for key, raw in txn.scan(docs_table(ns)):
            if owned is not None and not owned.contains(bytes(key)):
                continue
            n += 1
            size += len(raw)
    return n, size


def distinct(engine: Engine, db: str, coll: str, key: str, query: Mapping[str, Any]
             ) -> list[Any]:
    return engine.collection(db, coll).distinct(key, query)


def list_indexes(engine: Engine, db: str, coll: str, missing_ok: bool = False
                 ) -> list[dict[str, Any]]:
    if engine.catalog_entry(db, coll) is None:
        if missing_ok:
            return []
        raise namespace_not_found(f"ns does not exist: {db}.{coll}")
    with engine.store.read() as txn:
        return [dict(d) for d in _indexes.list_indexes(txn, db, coll)]


def collection_names(engine: Engine, db: str) -> list[str]:
    return engine.collection_names(db)


def database_names(engine: Engine) -> list[str]:
    return [d["name"] for d in engine.list_databases()]


def database_size(engine: Engine, db: str) -> int:
    for d in engine.list_databases():
        if d["name"] == db:
            return int(d["sizeOnDisk"])
    return 0


def filter_docs(docs: list[dict[str, Any]], filt: Mapping[str, Any]) -> list[dict[str, Any]]:
    matcher = Matcher(filt)
    return [d for d in docs if matcher.matches(d)]


def aggregate(engine: Engine, db: str, coll: str, stages: list[tuple[str, Any]], *,
              allow_disk_use: bool = False, variables: Mapping[str, Any] | None = None,
              now: _dt.datetime | None = None, write: Any = None,
              explain: list[dict[str, Any]] | None = None) -> Iterator[dict[str, Any]]:
    """Run a pipeline on ``db.coll``: a leading ``$match`` (and a ``$sort`` right after it,
    with the ``$limit`` that follows) become the planner's query, so indexes serve them; the
    rest runs in :mod:`node.commands.pipeline`. ``explain`` (a list) receives the stages'
    description instead of being left empty."""
    from node.commands.pipeline import PipelineContext, compile_pipeline, sort_keep

    max_bytes = getattr(engine.planner, "max_sort_bytes", MAX_BLOCKING_SORT_BYTES)
    ctx = PipelineContext(db=db, coll=coll, max_bytes=max_bytes, allow_disk_use=allow_disk_use,
                          variables=dict(variables or {}), now=now, write=write)
    ctx.read = lambda c, pipeline, vs: _sub_aggregate(engine, ctx, c, pipeline, vs)
    ctx.stats = lambda name, arg: _stats_source(engine, db, coll, name)
    ctx.geo_near = lambda arg: _geo_near_source(engine, db, coll, arg, ctx)
    compiled = compile_pipeline(stages, ctx)  # every stage checked before anything runs
    filt: Mapping[str, Any] = {}
    sort: Any = None
    limit = 0
    k = 0
    if stages and stages[0][0] == "$match" and not _needs_variables(stages[0][1]):
        filt, k = stages[0][1], 1
    if len(stages) > k and stages[k][0] == "$sort" and not allow_disk_use:
        from node.commands.pipeline import parse_sort_stage
        sort = parse_sort_stage(stages[k][1]).spec
        limit = sort_keep(stages, k)
        k += 1
    if explain is not None:
        explain.append(_query_explain(engine, db, coll, filt, sort, limit))
        explain.extend({n: a} for n, a in stages[k:])
    source_stage = stages[0][0] if stages else None
    if source_stage in ("$documents", "$collStats", "$indexStats", "$geoNear"):
        docs: Iterator[dict[str, Any]] = iter(())
    elif filt or sort or k:
        docs = engine.collection(db, coll).find(filt, sort=sort, limit=limit)
    else:
        docs = engine.collection(db, coll).find({})
    for stage in compiled[k:]:
        docs = stage(docs)
    return iter(docs)


def _needs_variables(filt: Any) -> bool:
    return "$$" in repr(filt)


def _sub_aggregate(engine: Engine, ctx: Any, coll: str, pipeline: list[dict[str, Any]],
                   variables: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    from node.commands.pipeline import compile_pipeline, parse_stages

    stages = parse_stages(pipeline)
    sub = ctx.sub(coll=coll, variables=dict(variables), in_lookup=True)
    compiled = compile_pipeline(stages, sub)
    k = 0
    filt: Mapping[str, Any] = {}
    if stages and stages[0][0] == "$match" and not _needs_variables(stages[0][1]):
        filt, k = stages[0][1], 1
    if stages and stages[0][0] == "$documents":
        docs: Any = iter(())
    else:
        docs = engine.collection(ctx.db, coll).find(filt)
    for stage in compiled[k:]:
        docs = stage(docs)
    return iter(docs)


def _query_explain(engine: Engine, db: str, coll: str, filt: Mapping[str, Any], sort: Any,
                   limit: int) -> dict[str, Any]:
    planner = engine.planner
    if planner is None or engine.catalog_entry(db, coll) is None:
        return {"$cursor": {"queryPlanner": {"namespace": f"{db}.{coll}",
                                             "winningPlan": {"stage": "EOF"}}}}
    with engine.store.read() as txn:
        out = planner.explain(txn, f"{db}.{coll}", filt, sort=sort, limit=limit,
                              verbosity="queryPlanner")
    out.pop("ok", None)
    return {"$cursor": out}


def _stats_source(engine: Engine, db: str, coll: str, name: str) -> Iterator[dict[str, Any]]:
    n = engine.collection(db, coll).count({}) if engine.catalog_entry(db, coll) else 0
    if name == "$collStats":
        return iter([{"ns": f"{db}.{coll}", "count": n,
                      "storageStats": {"count": n,
                                       "nindexes": len(list_indexes(engine, db, coll, True))}}])
    return iter([{"name": ix["name"], "key": ix["key"], "accesses": {"ops": 0}}
                 for ix in list_indexes(engine, db, coll, True)])


def _geo_near_source(engine: Engine, db: str, coll: str, arg: Mapping[str, Any], ctx: Any
                     ) -> Iterator[dict[str, Any]]:
    from node.commands.pipeline import set_path
    from node.engine import geo

    spherical = bool(arg.get("spherical", False))
    near = arg["near"]
    if isinstance(near, Mapping) and near.get("type") == "Point":
        near, spherical = near.get("coordinates"), True
    point = geo.as_point(near)
    if point is None:
        raise MongoError(2, "$geoNear requires near to be a point", code_name="BadValue")
    key = arg.get("key")
    if key is None:
        geo_keys = [k for ix in list_indexes(engine, db, coll, True)
                    for k, v in ix["key"].items() if v == "2d"]
        if len(geo_keys) != 1:
            raise MongoError(2, "There is more than one 2d index; please specify which one to "
                             "use" if geo_keys else "$geoNear requires a 2d or 2dsphere index, "
                             "but none were found", code_name="IndexNotFound"
                             if not geo_keys else "BadValue")
        key = geo_keys[0]
    op: dict[str, Any] = {"$nearSphere" if spherical else "$near": list(point)}
    if "maxDistance" in arg:
        op["$maxDistance"] = arg["maxDistance"]
    if "minDistance" in arg:
        op["$minDistance"] = arg["minDistance"]
    query = dict(arg.get("query", {}))
    query[key] = op
    mult = arg.get("distanceMultiplier", 1)
    dist_parts = str(arg["distanceField"]).split(".")
    locs = arg.get("includeLocs")
    limit = int(arg.get("limit", arg.get("num", 0)) or 0)
    dist = geo.sphere_distance if spherical else geo.flat_distance

    def run() -> Iterator[dict[str, Any]]:
        for doc in engine.collection(db, coll).find(query, limit=limit or 1 << 62):
            from node.engine.paths import lookup as _lookup
            pts = geo.points_of(_lookup(doc, key))
            if not pts:
                continue
            best = min(pts, key=lambda p: dist(point, p))
            out = dict(doc)
            set_path(out, dist_parts, dist(point, best) * float(mult))
            if locs:
                set_path(out, str(locs).split("."), list(best))
            yield out
    return run()
