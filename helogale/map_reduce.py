"""``Collection.map_reduce`` / ``inline_map_reduce`` for the book's uses, built on the
aggregation pipeline: the map and reduce functions are Python callables run in the client
(MongoDB's JavaScript ``mapReduce`` is not available; the server answers it with 115).

* ``map_fn(doc)`` yields ``(key, value)`` pairs (the ``emit`` calls);
* ``reduce_fn(key, values)`` returns one value (called only for keys with several values,
  and again over partial results, so it must be associative, as MongoDB requires);
* ``finalize(key, value)`` (optional) shapes each result.

The input is read with a pipeline (``query`` -> ``$match``, ``sort`` -> ``$sort``, ``limit``
-> ``$limit``); results ``{_id: key, value}`` are written with ``aggregate: 1`` +
``$documents`` + ``$out`` (mode ``replace``) or ``$merge`` (``merge``: replace matching
documents; ``reduce``: reduce with the existing value first), or returned (``inline``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from node.engine.values import SortKey, hash_key

if TYPE_CHECKING:
    from helogale.collection import Collection

MapFn = Callable[[Mapping[str, Any]], Iterable[tuple[Any, Any]]]
ReduceFn = Callable[[Any, list[Any]], Any]


def run_map_reduce(coll: Collection, map_fn: MapFn, reduce_fn: ReduceFn, *,
                   query: Mapping[str, Any] | None = None, sort: Mapping[str, Any] | None = None,
                   limit: int = 0, finalize: Callable[[Any, Any], Any] | None = None
                   ) -> list[dict[str, Any]]:
    """The ``{_id, value}`` results, in key order."""
    pipeline: list[dict[str, Any]] = []
    if query:
        pipeline.append({"$match": dict(query)})
    if sort:
        pipeline.append({"$sort": dict(sort)})
    if limit:
        pipeline.append({"$limit": int(limit)})
    groups: dict[Any, tuple[Any, list[Any]]] = {}
    for doc in coll.aggregate(pipeline):
        for key, value in map_fn(doc):
            entry = groups.setdefault(hash_key(key), (key, []))
            entry[1].append(value)
            if len(entry[1]) >= 1000:  # reduce as it goes, bounding memory per key
                entry[1][:] = [reduce_fn(key, list(entry[1]))]
    out = []
    for key, values in groups.values():
        value = values[0] if len(values) == 1 else reduce_fn(key, values)
        if finalize is not None:
            value = finalize(key, value)
        out.append({"_id": key, "value": value})
    out.sort(key=lambda d: SortKey(d["_id"]))
    return out


def write_results(coll: Collection, results: list[dict[str, Any]], out: Any,
                  reduce_fn: ReduceFn) -> Any:
    """Write ``results`` as ``out`` says; returns the output collection (or the results)."""
    if isinstance(out, str):
        out = {"replace": out}
    if not isinstance(out, Mapping) or not out:
        raise TypeError("'out' must be a collection name or a document such as "
                        "{'replace': name}, {'merge': name}, {'reduce': name}, {'inline': 1}")
    mode = next(iter(out))
    if mode == "inline":
        return results
    target = out[mode]
    db_name = out.get("db", coll.database.name)
    database = coll.database.client[db_name]
    docs = results
    if mode == "reduce" and results:
        existing = {hash_key(d["_id"]): d for d in database[target].find(
            {"_id": {"$in": [r["_id"] for r in results]}})}
        docs = []
        for r in results:
            old = existing.get(hash_key(r["_id"]))
            value = r["value"] if old is None else reduce_fn(r["_id"], [old["value"],
                                                                       r["value"]])
            docs.append({"_id": r["_id"], "value": value})
    if mode == "replace":
        stage: dict[str, Any] = {"$out": {"db": db_name, "coll": target}}
    elif mode in ("merge", "reduce"):
        stage = {"$merge": {"into": {"db": db_name, "coll": target},
                            "whenMatched": "replace", "whenNotMatched": "insert"}}
    else:
        raise ValueError(f"unknown map_reduce output mode {mode!r}")
    if docs or mode == "replace":
        coll.database.command({"aggregate": 1, "pipeline": [
            {"$documents": {"$literal": docs}}, stage], "cursor": {}})
    return database[target]
