"""Read, index and catalog commands through the dispatcher: cursors, batches, shapes."""

from __future__ import annotations

from typing import Any

import pytest
from bson import Int64

from node.commands.context import RequestContext
from node.server.standalone import standalone_dispatcher

CTX = RequestContext()


@pytest.fixture
def run() -> Any:
    d = standalone_dispatcher()

    def _run(cmd: dict[str, Any], db: str = "app") -> dict[str, Any]:
        return d.run(db, cmd, CTX)

    _run({"insert": "nums", "documents": [{"_id": i, "v": i % 10, "tags": ["t", f"g{i % 3}"]}
                                          for i in range(250)]})
    return _run


def test_find_first_batch_then_get_more(run: Any) -> None:
    reply = run({"find": "nums", "filter": {"v": {"$lt": 5}}, "sort": {"_id": 1},
                 "batchSize": 50})
    cur = reply["cursor"]
    assert cur["ns"] == "app.nums" and isinstance(cur["id"], Int64) and cur["id"] != 0
    seen = [d["_id"] for d in cur["firstBatch"]]
    assert len(seen) == 50
    cid = cur["id"]
    while cid:
        more = run({"getMore": cid, "collection": "nums", "batchSize": 40})
        assert "nextBatch" in more["cursor"]
        seen += [d["_id"] for d in more["cursor"]["nextBatch"]]
        cid = more["cursor"]["id"]
    assert seen == [i for i in range(250) if i % 10 < 5]
    gone = run({"getMore": cur["id"], "collection": "nums"})
    assert gone["ok"] == 0.0 and gone["code"] == 43


def test_find_default_batch_is_101_and_kill_cursors(run: Any) -> None:
    reply = run({"find": "nums"})
    assert len(reply["cursor"]["firstBatch"]) == 101
    cid = reply["cursor"]["id"]
    killed = run({"killCursors": "nums", "cursors": [cid, Int64(42)]})
    assert killed["cursorsKilled"] == [cid] and killed["cursorsNotFound"] == [42]
    assert run({"getMore": cid, "collection": "nums"})["code"] == 43


def test_find_projection_skip_limit_single_batch(run: Any) -> None:
    reply = run({"find": "nums", "filter": {"v": 3}, "projection": {"_id": 1},
                 "sort": {"_id": -1}, "skip": 2, "limit": 3})
    assert reply["cursor"]["firstBatch"] == [{"_id": 223}, {"_id": 213}, {"_id": 203}]
    assert reply["cursor"]["id"] == 0
    reply = run({"find": "nums", "limit": 5, "singleBatch": True})
    assert len(reply["cursor"]["firstBatch"]) == 5 and reply["cursor"]["id"] == 0
    # MongoDB's find command refuses a negative limit (the shell's -n means singleBatch)
    assert run({"find": "nums", "limit": -5})["code"] == 51024


def test_bad_query_is_an_error_reply(run: Any) -> None:
    reply = run({"find": "nums", "filter": {"v": {"$bogus": 1}}})
    assert reply["ok"] == 0.0 and reply["code"] == 2
    reply = run({"find": "nums", "filter": 5})
    assert reply["ok"] == 0.0 and reply["code"] == 14
    reply = run({"find": "nums", "skip": -1})
    assert reply["ok"] == 0.0


def test_count_and_distinct(run: Any) -> None:
    assert run({"count": "nums", "query": {"v": 1}})["n"] == 25
    assert run({"count": "nums", "query": {"v": 1}, "skip": 20, "limit": 10})["n"] == 5
    assert run({"count": "missing"})["n"] == 0
    assert sorted(run({"distinct": "nums", "key": "tags"})["values"]) == ["g0", "g1", "g2", "t"]
    assert run({"distinct": "nums", "key": "v", "query": {"v": {"$gt": 7}}})["values"] in (
        [8, 9], [9, 8])


def test_aggregate_subset(run: Any) -> None:
    reply = run({"aggregate": "nums", "cursor": {}, "pipeline": [
        {"$match": {"v": {"$lt": 3}}},
        {"$group": {"_id": "$v", "count": {"$sum": 1}, "max": {"$max": "$_id"}}},
        {"$sort": {"_id": 1}},
    ]})
    assert reply["cursor"]["firstBatch"] == [
        {"_id": 0, "count": 25, "max": 240}, {"_id": 1, "count": 25, "max": 241},
        {"_id": 2, "count": 25, "max": 242}]
    reply = run({"aggregate": "nums", "cursor": {}, "pipeline": [
        {"$match": {"_id": {"$lt": 2}}}, {"$unwind": "$tags"}, {"$project": {"tags": 1}},
        {"$count": "n"}]})
    assert reply["cursor"]["firstBatch"] == [{"n": 4}]
    bad = run({"aggregate": "nums", "cursor": {}, "pipeline": [{"$lookupz": {}}]})
    assert bad["ok"] == 0.0 and bad["code"] == 40324


def test_indexes_commands(run: Any) -> None:
    reply = run({"createIndexes": "nums", "indexes": [{"key": {"v": 1}, "name": "v_1"}]})
    assert reply["numIndexesBefore"] == 1 and reply["numIndexesAfter"] == 2
    assert reply["createdCollectionAutomatically"] is False
    again = run({"createIndexes": "nums", "indexes": [{"key": {"v": 1}, "name": "v_1"}]})
    assert again["numIndexesAfter"] == 2 and "note" in again
    names = [i["name"] for i in run({"listIndexes": "nums"})["cursor"]["firstBatch"]]
    assert names == ["_id_", "v_1"]
    dup = run({"createIndexes": "nums", "indexes": [{"key": {"v": 1}, "name": "u",
                                                      "unique": True}]})
    assert dup["ok"] == 0.0
    assert run({"dropIndexes": "nums", "index": "v_1"})["nIndexesWas"] == 2
    assert run({"dropIndexes": "nums", "index": "nope"})["code"] == 27
    assert run({"listIndexes": "missing"})["code"] == 26


def test_catalog_commands(run: Any) -> None:
    assert run({"create": "empty"})["ok"] == 1.0
    assert run({"create": "empty"})["code"] == 48
    names = {c["name"] for c in run({"listCollections": 1})["cursor"]["firstBatch"]}
    assert names == {"nums", "empty"}
    only = run({"listCollections": 1, "filter": {"name": "nums"}, "nameOnly": True})
    assert only["cursor"]["firstBatch"] == [{"name": "nums", "type": "collection"}]
    dbs = run({"listDatabases": 1}, db="admin")
    assert [d["name"] for d in dbs["databases"]] == ["app"]
    assert run({"listDatabases": 1})["code"] == 13
    assert run({"drop": "empty"})["ok"] == 1.0
    assert run({"dropDatabase": 1}) == {"dropped": "app", "ok": 1.0}
    assert run({"listCollections": 1})["cursor"]["firstBatch"] == []


# --- blocking sorts and groups are bounded (MongoDB's 100 MiB, 292 past it) ----------------------


@pytest.fixture
def small() -> Any:
    """A dispatcher whose blocking sorts may hold 20,000 bytes, over 100 documents of ~1 KB."""
    d = standalone_dispatcher(max_sort_bytes=20_000)

    def _run(cmd: dict[str, Any], db: str = "app") -> dict[str, Any]:
        return d.run(db, cmd, CTX)

    _run({"insert": "big", "documents": [{"_id": i, "v": -i, "g": i % 50, "pad": "x" * 1000}
                                         for i in range(100)]})
    return _run


SORT_292 = "Sort exceeded memory limit of 20000 bytes, but did not opt in to external sorting."


def test_find_blocking_sort_over_the_limit_is_292(small: Any) -> None:
    reply = small({"find": "big", "sort": {"v": 1}})
    assert (reply["ok"], reply["code"], reply["errmsg"]) == (0.0, 292, SORT_292)
    assert reply["codeName"] == "QueryExceededMemoryLimitNoDiskUseAllowed"
    top = small({"find": "big", "sort": {"v": 1}, "limit": 3, "projection": {"_id": 1}})
    assert top["cursor"]["firstBatch"] == [{"_id": 99}, {"_id": 98}, {"_id": 97}]


def test_aggregate_sort_over_the_limit_is_292_and_sort_limit_keeps_top_k(small: Any) -> None:
    reply = small({"aggregate": "big", "cursor": {}, "pipeline": [{"$sort": {"v": 1}}]})
    assert (reply["ok"], reply["code"], reply["errmsg"]) == (0.0, 292, SORT_292)
    for pipeline in ([{"$sort": {"v": 1}}, {"$limit": 3}],
                     [{"$sort": {"v": 1}}, {"$skip": 1}, {"$limit": 2}]):
        top = small({"aggregate": "big", "cursor": {},
                     "pipeline": [*pipeline, {"$project": {"_id": 1}}]})
        assert top["ok"] == 1.0, top
        assert top["cursor"]["firstBatch"] == [{"_id": 99}, {"_id": 98}, {"_id": 97}][
            3 - len(top["cursor"]["firstBatch"]):]
    # a small sort after a $group that shrank the data is fine
    ok = small({"aggregate": "big", "cursor": {}, "pipeline": [
        {"$group": {"_id": "$g", "n": {"$sum": 1}}}, {"$sort": {"_id": -1}}, {"$limit": 1}]})
    assert ok["cursor"]["firstBatch"] == [{"_id": 49, "n": 2}]


def test_aggregate_group_over_the_limit_is_292(small: Any) -> None:
    reply = small({"aggregate": "big", "cursor": {}, "pipeline": [
        {"$group": {"_id": None, "all": {"$push": "$pad"}}}]})
    assert (reply["ok"], reply["code"]) == (0.0, 292)
    assert reply["errmsg"] == ("Exceeded memory limit for $group, but didn't allow external "
                               "sort. Pass allowDiskUse:true to opt in.")
    many = small({"aggregate": "big", "cursor": {}, "pipeline": [
        {"$group": {"_id": "$pad", "ids": {"$addToSet": "$_id"}}}]})
    assert many["ok"] == 1.0  # one group, 100 small ids
