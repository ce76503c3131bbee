"""MongoDB 8's ``sort`` on one-document updates, and ``hint`` honoured on update, delete and
findAndModify (MongoDB's BadValue for an index that does not exist), in the engine's command
layer and through a router."""

from __future__ import annotations

from typing import Any

import pymongo
import pytest
from pymongo.errors import OperationFailure, WriteError

from node.commands.requests import parse_update
from node.engine.errors import MongoError
from node.sharded_cluster import ShardedCluster
from tests.sharded_helpers import ok


def test_sort_with_multi_is_refused_and_a_bad_hint_type_too() -> None:
    with pytest.raises(MongoError) as info:
        parse_update("d", {"update": "c", "updates": [
            {"q": {}, "u": {"$set": {"a": 1}}, "multi": True, "sort": {"a": 1}}]})
    assert info.value.code == 72
    with pytest.raises(MongoError) as info2:
        parse_update("d", {"update": "c", "updates": [
            {"q": {}, "u": {"$set": {"a": 1}}, "hint": 5}]})
    assert info2.value.code == 14


@pytest.mark.cluster
def test_sorted_update_one_and_hints_through_a_router(sharded: ShardedCluster) -> None:
    ok(sharded.router_command(0, {"shardCollection": "wsh.c", "key": {"_id": 1}}, db="admin"))
    ok(sharded.router_command(0, {"split": "wsh.c", "middle": {"_id": 50}}, db="admin"))
    chunks = sharded.router_command(0, {"find": "chunks", "filter": {"ns": "wsh.c"}},
                                    db="config")["cursor"]["firstBatch"]
    if len({c["shard"] for c in chunks}) == 1:
        other = "shard2" if chunks[0]["shard"] == "shard1" else "shard1"
        ok(sharded.router_command(0, {"moveChunk": "wsh.c", "find": {"_id": 50},
                                      "to": other}, db="admin"))
    client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(sharded.wire_uri)
    try:
        coll = client.wsh.c
        coll.create_index("score", name="score_1")
        coll.insert_many([{"_id": i, "score": (i * 37) % 100, "g": "x"} for i in range(100)])
        top = max(coll.find(), key=lambda d: d["score"])
        low = min(coll.find(), key=lambda d: d["score"])
        # the highest and the lowest score, on whichever shard they live
        coll.update_one({"g": "x"}, {"$set": {"top": True}}, sort={"score": -1})
        coll.update_one({"g": "x"}, {"$set": {"low": True}}, sort={"score": 1})
        assert [d["_id"] for d in coll.find({"top": True})] == [top["_id"]]
        assert [d["_id"] for d in coll.find({"low": True})] == [low["_id"]]
        # a hint naming an index (by name or by pattern) runs; one naming none is refused
        assert coll.update_many({"score": {"$lt": 10}}, {"$set": {"h": 1}},
                                hint="score_1").modified_count == 10
        assert coll.delete_one({"score": {"$gte": 0}}, hint=[("score", 1)]).deleted_count == 1
        assert coll.find_one_and_update({"g": "x"}, {"$inc": {"k": 1}}, hint="score_1")
        with pytest.raises(WriteError) as info:
            coll.update_one({"_id": 3}, {"$set": {"z": 1}}, hint="nope_1")
        assert info.value.code == 2
        assert "hint provided does not correspond to an existing index" in str(info.value)
        with pytest.raises(WriteError):
            coll.delete_many({"_id": 3}, hint={"nope": 1})
        with pytest.raises(OperationFailure) as info3:
            coll.find_one_and_delete({"_id": 3}, hint="nope_1")
        assert info3.value.code == 2
        assert coll.find_one({"_id": 3}) is not None  # nothing was touched
        assert coll.count_documents({"z": 1}) == 0
    finally:
        client.close()
