"""The aggregation pipeline through the router, on the shared sharded cluster: the split
(every accumulator merged from shard partials), ``$lookup`` from a sharded collection,
``$out``/``$merge`` through the router, explain, ``$geoNear`` across shards, and a randomized
differential of pipelines on a sharded collection vs an unsharded twin (errors included)."""

from __future__ import annotations

import random
from collections.abc import Iterator
from functools import partial
from typing import Any

import pytest

import helogale
from node.sharded_cluster import ShardedCluster
from tests.test_sharded_differential import (
    DB,
    SEED,
    attempt,
    canon,
    gen_filter,
    make_docs,
    make_plain,
    make_sharded,
    multiset,
    normalize,
    router,
)

pytestmark = pytest.mark.cluster

N = 200
PIPELINES = 100
SLOW_PIPELINES = 600


@pytest.fixture(scope="module")
def client(sharded: ShardedCluster) -> Iterator[Any]:
    c = helogale.MongoClient(sharded.uri)
    try:
        yield c
    finally:
        c.close()


@pytest.fixture(scope="module")
def colls(sharded: ShardedCluster, client: Any) -> tuple[Any, Any]:
    docs = make_docs(SEED + 7, N)
    make_sharded(sharded, "agg_sharded", docs)
    make_plain(sharded, "agg_plain", docs)
    return client[DB]["agg_sharded"], client[DB]["agg_plain"]


ALL_ACCUMULATORS = {
    "n": {"$sum": 1}, "s": {"$sum": "$u"}, "sf": {"$sum": "$f"}, "avg": {"$avg": "$u"},
    "lo": {"$min": "$f"}, "hi": {"$max": "$b"}, "cnt": {"$count": {}},
    "set_a": {"$addToSet": "$a"}, "sd": {"$stdDevPop": "$f"}, "sds": {"$stdDevSamp": "$u"},
    "top": {"$top": {"sortBy": {"u": -1}, "output": "$u"}},
    "bot": {"$bottom": {"sortBy": {"u": -1}, "output": ["$u", "$a"]}},
    "topn": {"$topN": {"n": 3, "sortBy": {"f": 1, "u": 1}, "output": "$u"}},
    "botn": {"$bottomN": {"n": 2, "sortBy": {"u": 1}, "output": "$u"}},
    "minn": {"$minN": {"n": 2, "input": "$u"}}, "maxn": {"$maxN": {"n": 2, "input": "$f"}},
    "med": {"$median": {"input": "$u", "method": "approximate"}},
    "pct": {"$percentile": {"input": "$f", "p": [0.25, 0.75], "method": "approximate"}},
}
ORDERED_ACCUMULATORS = {
    "first": {"$first": "$u"}, "last": {"$last": "$u"}, "p": {"$push": "$u"},
    "fn": {"$firstN": {"n": 2, "input": "$u"}}, "ln": {"$lastN": {"n": 2, "input": "$u"}},
    "mo": {"$mergeObjects": {"k": "$u"}},
}


def gen_pipeline(rng: random.Random, other: str) -> tuple[list[dict[str, Any]], bool]:
    """A pipeline and whether its output order is defined."""
    match = [{"$match": gen_filter(rng)}] if rng.random() < 0.5 else []
    key = rng.choice(["$a", "$b", None, {"a": "$a", "t": {"$type": "$n"}}, "$c.y"])
    k = rng.randrange(14)
    if k == 0:
        return [*match, {"$group": {"_id": key, **ALL_ACCUMULATORS}}], False
    if k == 1:
        return [*match, {"$sort": {"u": rng.choice([1, -1])}},
                {"$group": {"_id": key, **ORDERED_ACCUMULATORS}}], False
    if k == 2:
        return [*match, {"$sortByCount": rng.choice(["$b", "$a", {"$type": "$n"}])},
                {"$sort": {"count": -1, "_id": 1}}], True
    if k == 3:
        return [*match, {"$bucket": {"groupBy": "$u", "boundaries": [0, 50, 100, 150],
                                     "default": "rest", "output": {
                                         "n": {"$sum": 1}, "avg": {"$avg": "$f"}}}}], True
    if k == 4:
        return [*match, {"$facet": {"count": [{"$count": "n"}],
                                    "top": [{"$sort": {"u": -1}}, {"$limit": 3},
                                            {"$project": {"u": 1}}]}}], True
    if k == 5:
        return [*match, {"$sort": {"u": 1}}, {"$limit": rng.randint(1, 20)},
                {"$lookup": {"from": other, "localField": "a", "foreignField": "u",
                             "as": "lk"}},
                {"$set": {"lk": {"$sortArray": {"input": "$lk.u", "sortBy": 1}}}}], True
    if k == 6:
        return [*match, {"$project": {"x": {"$add": ["$u", 1]}, "t": {"$type": "$n"},
                                      "s": {"$concat": [{"$toString": "$u"}, "-"]},
                                      "big": {"$cond": [{"$gt": ["$f", 0]}, "pos", "neg"]}}},
                {"$sort": {"x": -1}}, {"$skip": rng.randint(0, 50)},
                {"$limit": rng.randint(1, 20)}], True
    if k == 7:
        return [*match, {"$unwind": "$tags"}, {"$count": "n"}], True
    if k == 8:
        return [*match, {"$addFields": {"twice": {"$multiply": ["$u", 2]}}},
                {"$match": {"$expr": {"$gt": ["$twice", rng.randrange(400)]}}},
                {"$group": {"_id": None, "n": {"$sum": 1}, "m": {"$max": "$twice"}}}], True
    if k == 9:
        return [*match, {"$project": {"x": {"$divide": ["$u", 0]}}}], False  # 16608
    if k == 10:
        return [*match, {"$group": {"_id": "$a", "x": {rng.choice(["$bogus", "$sum"]): 1}}},
                {"$sort": {"_id": 1}}], True
    if k == 11:
        return [*match, {"$unionWith": {"coll": other, "pipeline": [{"$match": {"u": {
            "$lt": 20}}}]}}, {"$group": {"_id": "$a", "n": {"$sum": 1}}}], False
    if k == 12:
        return [*match, {"$sort": {"f": -1, "u": 1}}, {"$limit": rng.randint(1, 30)},
                {"$replaceWith": {"u": "$u", "f": "$f"}}], True
    return [*match, {"$sortByCount": "$a"}, {"$limit": 2}, {"$count": "n"}], True


def run_diff(colls: tuple[Any, Any], n: int) -> None:
    sharded, plain = colls
    rng = random.Random(SEED + 99)
    for number in range(n):
        pipeline, ordered = gen_pipeline(rng, rng.choice(["agg_sharded", "agg_plain"]))
        where = f"seed {SEED + 99} pipeline {number}: {pipeline}"
        got = attempt(partial(lambda c, p: [normalize(d) for d in c.aggregate(p)], sharded,
                              pipeline))
        ref = attempt(partial(lambda c, p: [normalize(d) for d in c.aggregate(p)], plain,
                              pipeline))
        if got[0] == "error" or ref[0] == "error":
            assert got == ref, f"{where}: sharded {got}, unsharded {ref}"
            continue
        if ordered:
            assert [canon(d) for d in got[1]] == [canon(d) for d in ref[1]], \
                f"{where}\nsharded {got[1]}\nunsharded {ref[1]}"
        else:
            assert multiset(got[1]) == multiset(ref[1]), \
                f"{where}\nsharded {got[1]}\nunsharded {ref[1]}"


def test_randomized_sharded_vs_unsharded(colls: tuple[Any, Any]) -> None:
    run_diff(colls, PIPELINES)


@pytest.mark.slow
def test_randomized_sharded_vs_unsharded_many(colls: tuple[Any, Any]) -> None:
    run_diff(colls, SLOW_PIPELINES)


def test_every_accumulator_splits_and_explain(sharded: ShardedCluster,
                                              colls: tuple[Any, Any]) -> None:
    s, p = colls
    pipeline = [{"$group": {"_id": None, **ALL_ACCUMULATORS}}]
    got = [normalize(d) for d in s.aggregate(pipeline)]
    assert got == [normalize(d) for d in p.aggregate(pipeline)] and got[0]["n"] == N
    reply = router(sharded, {"aggregate": "agg_sharded", "explain": True, "pipeline": [
        {"$match": {"u": {"$gte": 10}}}, {"$group": {"_id": "$a", "n": {"$sum": 1}}},
        {"$sort": {"n": -1}}]}, db=DB)
    split = reply["splitPipeline"]
    assert split["shardsPart"] == [{"$match": {"u": {"$gte": 10}}},
                                   {"$_groupPartial": {"_id": "$a", "n": {"$sum": 1}}}]
    assert [next(iter(st)) for st in split["mergerPart"]] == ["$_groupMerge", "$sort"]
    assert len(reply["shards"]) == 2
    reply = router(sharded, {"aggregate": "agg_sharded", "explain": True, "pipeline": [
        {"$sort": {"u": 1}}, {"$skip": 5}, {"$limit": 3}]}, db=DB)
    assert reply["splitPipeline"]["shardsPart"] == [{"$sort": {"u": 1}}, {"$limit": 8}]
    assert reply["splitPipeline"]["mergeType"] == "mergeSort"
    assert [d["u"] for d in s.aggregate([{"$sort": {"u": 1}}, {"$skip": 5}, {"$limit": 3}])
            ] == [5, 6, 7]


def test_out_and_merge_through_the_router(sharded: ShardedCluster,
                                          colls: tuple[Any, Any], client: Any) -> None:
    s, _ = colls
    db = client[DB]
    list(s.aggregate([{"$group": {"_id": "$a", "n": {"$sum": 1}}}, {"$out": "agg_out"}]))
    got = {d["_id"]: d["n"] for d in db["agg_out"].find()}
    want = {d["_id"]: d["n"] for d in s.aggregate([{"$group": {"_id": "$a",
                                                               "n": {"$sum": 1}}}])}
    assert got == want and sum(got.values()) == N
    with pytest.raises(helogale.errors.OperationFailure) as info:
        list(db["agg_plain"].aggregate([{"$out": "agg_sharded"}]))
    assert info.value.code == 28769
    # $merge into the sharded collection: each document lands on the shard owning its _id
    list(db["agg_plain"].aggregate([{"$match": {"u": {"$lt": 30}}},
                                    {"$project": {"merged": {"$literal": True}}},
                                    {"$merge": {"into": "agg_sharded"}}]))
    assert s.count_documents({"merged": True}) == 30
    assert s.count_documents({}) == N


def test_geo_near_merges_by_distance(sharded: ShardedCluster, client: Any) -> None:
    ns = f"{DB}.agg_geo"
    router(sharded, {"shardCollection": ns, "key": {"_id": 1}})
    router(sharded, {"split": ns, "middle": {"_id": 50}})
    router(sharded, {"createIndexes": "agg_geo", "indexes": [{"key": {"loc": "2d"},
                                                              "name": "loc_2d"}]}, db=DB)
    router(sharded, {"insert": "agg_geo", "documents": [
        {"_id": i, "loc": [i % 10, i // 10]} for i in range(100)]}, db=DB)
    chunks = router(sharded, {"find": "chunks", "filter": {"ns": ns}}, db="config")
    first = chunks["cursor"]["firstBatch"][0]
    other = next(x["_id"] for x in router(sharded, {"listShards": 1})["shards"]
                 if x["_id"] != first["shard"])
    hi = next(c for c in chunks["cursor"]["firstBatch"] if c["min"] == {"_id": 50})
    router(sharded, {"moveChunk": ns, "bounds": [hi["min"], hi["max"]], "to": other,
                     "_waitForDelete": True})
    out = list(client[DB]["agg_geo"].aggregate([
        {"$geoNear": {"near": [4.2, 4.9], "distanceField": "d", "maxDistance": 2}},
        {"$limit": 5}]))
    dists = [d["d"] for d in out]
    assert dists == sorted(dists) and out[0]["_id"] == 54 and len(out) == 5


def test_validators_on_every_shard(sharded: ShardedCluster, colls: tuple[Any, Any]) -> None:
    assert colls
    router(sharded, {"collMod": "agg_sharded", "validator": {"u": {"$type": "number"}}},
           db=DB)
    try:
        for doc_id in (1, "s0200", 300):  # owned by different shards
            reply = sharded.router_command(0, {"insert": "agg_sharded", "documents": [
                {"_id": doc_id if doc_id != 1 else 10_001, "u": "text"}]}, db=DB)
            assert reply["writeErrors"][0]["code"] == 121, reply
        reply = sharded.router_command(0, {"insert": "agg_sharded", "documents": [
            {"_id": 10_002, "u": "text"}], "bypassDocumentValidation": True}, db=DB)
        assert reply["n"] == 1
    finally:
        router(sharded, {"collMod": "agg_sharded", "validationLevel": "off"}, db=DB)
        router(sharded, {"delete": "agg_sharded", "deletes": [{"q": {"_id": 10_002},
                                                                "limit": 1}]}, db=DB)


def test_map_reduce_in_the_client(sharded: ShardedCluster, colls: tuple[Any, Any],
                                  client: Any) -> None:
    s, p = colls

    def by_a(doc: Any) -> Any:
        yield doc.get("a"), 1

    def add(key: Any, values: list[Any]) -> Any:
        return sum(values)

    want = {d["_id"]: d["n"] for d in p.aggregate([{"$group": {"_id": "$a",
                                                               "n": {"$sum": 1}}}])}
    inline = s.inline_map_reduce(by_a, add)
    assert {d["_id"]: d["value"] for d in inline} == want
    out = s.map_reduce(by_a, add, "agg_mr")
    assert {d["_id"]: d["value"] for d in out.find()} == want
    s.map_reduce(by_a, add, {"reduce": "agg_mr"}, query={"u": {"$lt": 10}})
    again = {d["_id"]: d["value"] for d in client[DB]["agg_mr"].find()}
    extra = {d["_id"]: d["n"] for d in p.aggregate([{"$match": {"u": {"$lt": 10}}}, {
        "$group": {"_id": "$a", "n": {"$sum": 1}}}])}
    assert again == {k: v + extra.get(k, 0) for k, v in want.items()}
    s.map_reduce(by_a, add, {"merge": "agg_mr"}, query={"u": {"$lt": 10}},
                 finalize=lambda k, v: v * 100)
    merged = {d["_id"]: d["value"] for d in client[DB]["agg_mr"].find()}
    assert all(merged[k] == v * 100 for k, v in extra.items())
    reply = sharded.router_command(0, {"mapReduce": "agg_sharded", "map": "function(){}",
                                       "reduce": "function(){}", "out": {"inline": 1}}, db=DB)
    assert reply["code"] == 115 and "aggregation pipeline" in reply["errmsg"]


def test_validator_from_create_reaches_a_shard_that_receives_chunks_later(
        sharded: ShardedCluster) -> None:
    ns = f"{DB}.agg_valid"
    router(sharded, {"create": "agg_valid", "validator": {"u": {"$type": "number"}}}, db=DB)
    router(sharded, {"shardCollection": ns, "key": {"_id": 1}})
    router(sharded, {"split": ns, "middle": {"_id": 50}})
    chunks = router(sharded, {"find": "chunks", "filter": {"ns": ns}}, db="config")
    hi = next(c for c in chunks["cursor"]["firstBatch"] if c["min"] == {"_id": 50})
    other = next(x["_id"] for x in router(sharded, {"listShards": 1})["shards"]
                 if x["_id"] != hi["shard"])
    router(sharded, {"moveChunk": ns, "bounds": [hi["min"], hi["max"]], "to": other,
                     "_waitForDelete": True})
    for doc_id in (10, 60):
        reply = sharded.router_command(0, {"insert": "agg_valid", "documents": [
            {"_id": doc_id, "u": "text"}]}, db=DB)
        assert reply["writeErrors"][0]["code"] == 121, reply
