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


def validate_write(q: Mapping[str, Any] | None, u: Mapping[str, Any] | None = None,
                   array_filters: list[Mapping[str, Any]] | None = None) -> None:
    """Compile a write statement's update (with its ``arrayFilters``) and filter in the order
    the engine does when the entry applies, raising the same MongoError: the primary refuses a
    statement that can only fail (a regex RE2 cannot run, an unknown operator, a query nested
    too deeply) before proposing it. A pure function of the statement, like the apply."""
    if u is not None:
        Update(u, array_filters)
    Matcher(q or {})



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
        sort=st.get("sort"), hint=st.get("hint"), txn=txn)
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
         limit: int, hint: Any = None, return_sort_key: bool = False
         ) -> Iterator[dict[str, Any]]:
    collection = engine.collection(db, coll)
    direction = natural_direction(sort, hint)
    if direction is not None or (not sort and hint is None and collection.is_capped()):
        it: Iterator[dict[str, Any]] = (doc for _, doc in collection.find_natural(
            filt, projection, reverse=direction == -1, skip=skip, limit=limit))
    else:
        it = collection.find(filt, projection, sort=sort or None, skip=skip, limit=limit,
                             hint=hint, return_sort_key=return_sort_key)
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


def aggregate(engine: Engine, db: str, coll: str, stages: list[tuple[str, Any]]
              ) -> Iterator[dict[str, Any]]:
    from node.commands.pipeline import run_pipeline

    filt: Mapping[str, Any] = {}
    if stages and stages[0][0] == "$match":
        if not isinstance(stages[0][1], Mapping):
            raise MongoError(15959, "the match filter must be an expression in an object",
                             code_name="Location15959")
        filt, stages = stages[0][1], stages[1:]
    docs = engine.collection(db, coll).find(filt)
    max_bytes = getattr(engine.planner, "max_sort_bytes", MAX_BLOCKING_SORT_BYTES)
    return run_pipeline(docs, stages, max_bytes=max_bytes)
