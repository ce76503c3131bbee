"""The planner installed in a real Engine with real indexes (node.engine.indexes)."""

from __future__ import annotations

import random
from typing import Any

import pytest

from node.engine.database import Engine
from node.engine.errors import MongoError
from node.engine.indexes import IndexManager
from node.engine.matcher import Matcher
from node.engine.memory_store import MemoryStore
from node.engine.planner import Planner
from node.engine.sorting import sort_documents

NS = "shop.items"


@pytest.fixture(scope="module")
def engine() -> Engine:
    rng = random.Random(1)
    eng = Engine(MemoryStore(), indexes=IndexManager(), planner=Planner(max_sort_bytes=200_000))
    coll = eng.collection("shop", "items")
    docs: list[dict[str, Any]] = []
    for i in range(1500):
        docs.append(
            {
                "_id": i,
                "sku": f"s{i:05d}",
                "price": rng.randrange(1000),
                "tags": rng.sample(["red", "blue", "big", "small"], rng.randrange(3)),
                "loc": [rng.uniform(-100, 100), rng.uniform(-60, 60)],
                "pad": "x" * 200,
            }
        )
    coll.insert(docs)
    with eng.store.write() as txn:
        assert eng.indexes is not None
        eng.indexes.create_index(txn, NS, [("price", 1)])
        eng.indexes.create_index(txn, NS, "tags")
        eng.indexes.create_index(txn, NS, [("loc", "2d")])
        eng.indexes.create_index(txn, NS, [("sku", -1)], unique=True)
    eng.docs = docs  # type: ignore[attr-defined]
    return eng


def _explain(engine: Engine, filt: dict[str, Any], **kw: Any) -> dict[str, Any]:
    assert isinstance(engine.planner, Planner)
    with engine.store.read() as txn:
        return engine.planner.explain(txn, NS, filt, **kw)


def _brute(engine: Engine, filt: dict[str, Any]) -> list[Any]:
    m = Matcher(filt)
    return [d["_id"] for d in engine.docs if m.matches(d)]  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "filt",
    [
        {"price": 17},
        {"price": {"$gte": 100, "$lt": 140}},
        {"tags": "red", "price": {"$lt": 300}},
        {"tags": {"$in": ["big", "small"]}},
        {"sku": {"$gt": "s01400"}},
        {"_id": {"$in": [3, 99, 1499, 5000]}},
        {"loc": {"$within": {"$box": [[0, 0], [20, 20]]}}},
        {"pad": {"$ne": "y"}, "price": {"$gt": 990}},
    ],
)
def test_find_through_the_collection_matches_brute_force(
    engine: Engine, filt: dict[str, Any]
) -> None:
    coll = engine.collection("shop", "items")
    got = [d["_id"] for d in coll.find(filt)]
    assert got == sorted(_brute(engine, filt))  # record (_id) order without a sort
    out = _explain(engine, filt)
    assert out["executionStats"]["nReturned"] == len(got)
    assert out["queryPlanner"]["winningPlan"]["stage"] == "FETCH"  # an index was used
    assert out["executionStats"]["totalDocsExamined"] < 1500


def test_sorted_find_uses_index_order(engine: Engine) -> None:
    coll = engine.collection("shop", "items")
    got = list(coll.find({"price": {"$lt": 50}}, sort={"price": -1}))
    expected = sort_documents(
        [d for d in engine.docs if d["price"] < 50], {"price": -1}  # type: ignore[attr-defined]
    )
    assert [d["price"] for d in got] == [d["price"] for d in expected]
    plan = _explain(engine, {}, sort={"sku": 1}, limit=3)["queryPlanner"]["winningPlan"]
    assert plan["stage"] == "LIMIT"
    assert plan["inputStage"]["inputStage"]["indexName"] == "sku_-1"
    assert plan["inputStage"]["inputStage"]["direction"] == "backward"


def test_sort_memory_limit_through_the_collection(engine: Engine) -> None:
    coll = engine.collection("shop", "items")
    with pytest.raises(MongoError) as info:
        list(coll.find({}, sort={"pad": 1, "price": 1}))
    assert info.value.code == 292
    assert "Sort exceeded memory limit of 200000 bytes" in info.value.errmsg


def test_near_through_the_collection(engine: Engine) -> None:
    coll = engine.collection("shop", "items")
    got = list(coll.find({"loc": {"$near": [10, 10], "$maxDistance": 12}}))
    dists = [((d["loc"][0] - 10) ** 2 + (d["loc"][1] - 10) ** 2) ** 0.5 for d in got]
    assert dists == sorted(dists) and all(x <= 12 for x in dists)
    assert len(got) == len(_brute(engine, {"loc": {"$geoWithin": {"$center": [[10, 10], 12]}}}))
    out = _explain(engine, {"loc": {"$near": [10, 10]}})
    assert out["executionStats"]["nReturned"] == 100  # the default $near limit
    assert out["queryPlanner"]["winningPlan"]["inputStage"]["inputStage"]["stage"] == "GEO_NEAR_2D"


def test_after_key_resumes_in_record_order(engine: Engine) -> None:
    coll = engine.collection("shop", "items")
    filt = {"price": {"$gte": 500, "$lt": 600}}
    first = list(coll.find_records(filt, limit=5))
    rest = list(coll.find_records(filt, after_key=first[-1][0]))
    ids = [d["_id"] for _, d in first + rest]
    assert ids == sorted(_brute(engine, filt))
