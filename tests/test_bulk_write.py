"""MongoDB 8's bulkWrite command (pymongo's ``MongoClient.bulk_write``) through a router on
sharded and unsharded collections: per-operation results, ordered and unordered errors,
and a retried command that applies each operation once."""

from __future__ import annotations

import uuid
from typing import Any

import pymongo
import pytest
from bson.binary import Binary, UuidRepresentation
from pymongo import DeleteMany, DeleteOne, InsertOne, ReplaceOne, UpdateMany, UpdateOne
from pymongo.errors import ClientBulkWriteException

from node.sharded_cluster import ShardedCluster
from tests.sharded_helpers import ok

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def client(sharded: ShardedCluster) -> Any:
    ok(sharded.router_command(0, {"shardCollection": "bw.sh", "key": {"_id": 1}}, db="admin"))
    ok(sharded.router_command(0, {"split": "bw.sh", "middle": {"_id": 100}}, db="admin"))
    chunks = sharded.router_command(0, {"find": "chunks", "filter": {"ns": "bw.sh"}},
                                    db="config")["cursor"]["firstBatch"]
    owners = {c["shard"] for c in chunks}
    if len(owners) == 1:
        other = "shard2" if owners == {"shard1"} else "shard1"
        ok(sharded.router_command(0, {"moveChunk": "bw.sh", "find": {"_id": 100},
                                      "to": other}, db="admin"))
    c: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(sharded.wire_uri)
    yield c
    c.close()


def test_bulk_write_over_several_namespaces_with_verbose_results(client: Any) -> None:
    sh, plain = client.bw.sh, client.bw.plain
    result = client.bulk_write([
        InsertOne({"_id": 1, "x": 1}, namespace="bw.sh"),
        InsertOne({"_id": 150, "x": 1}, namespace="bw.sh"),  # the other shard
        InsertOne({"_id": "a", "x": 1}, namespace="bw.plain"),
        UpdateOne({"_id": 150}, {"$inc": {"x": 5}}, namespace="bw.sh"),
        UpdateMany({"x": 1}, {"$set": {"y": True}}, namespace="bw.sh"),
        UpdateOne({"_id": 7}, {"$set": {"x": 7}}, upsert=True, namespace="bw.sh"),
        ReplaceOne({"_id": "a"}, {"x": 2}, namespace="bw.plain"),
        DeleteOne({"_id": 1}, namespace="bw.sh"),
        DeleteMany({"x": {"$gte": 100}}, namespace="bw.plain"),
    ], verbose_results=True)
    assert (result.inserted_count, result.matched_count, result.modified_count,
            result.upserted_count, result.deleted_count) == (3, 3, 3, 1, 1)
    assert result.update_results[3].modified_count == 1
    assert result.update_results[4].matched_count == 1  # only _id 1 still has x: 1
    assert result.update_results[5].upserted_id == 7
    assert result.delete_results[7].deleted_count == 1
    assert result.delete_results[8].deleted_count == 0
    assert sorted((d["_id"], d["x"]) for d in sh.find()) == [(7, 7), (150, 6)]
    assert plain.find_one({"_id": "a"}) == {"_id": "a", "x": 2}


def test_ordered_stops_at_the_first_error_unordered_goes_on(client: Any) -> None:
    coll = client.bw.errs
    coll.insert_one({"_id": 1})
    with pytest.raises(ClientBulkWriteException) as info:
        client.bulk_write([InsertOne({"_id": 2}, namespace="bw.errs"),
                           InsertOne({"_id": 1}, namespace="bw.errs"),
                           InsertOne({"_id": 3}, namespace="bw.errs")])
    assert [e["idx"] for e in info.value.write_errors] == [1]
    assert info.value.write_errors[0]["code"] == 11000
    assert sorted(d["_id"] for d in coll.find()) == [1, 2]
    with pytest.raises(ClientBulkWriteException) as info2:
        client.bulk_write([InsertOne({"_id": 1}, namespace="bw.errs"),
                           UpdateOne({"_id": 2}, {"$inc": {"n": 1}}, namespace="bw.errs"),
                           InsertOne({"_id": 4}, namespace="bw.errs")], ordered=False)
    assert [e["idx"] for e in info2.value.write_errors] == [0]
    assert info2.value.partial_result.inserted_count == 1
    assert sorted(d["_id"] for d in coll.find()) == [1, 2, 4]
    assert coll.find_one({"_id": 2})["n"] == 1


def test_a_retried_bulk_write_applies_each_operation_once(sharded: ShardedCluster,
                                                           client: Any) -> None:
    lsid = {"id": Binary.from_uuid(uuid.uuid4(), UuidRepresentation.STANDARD)}
    cmd = {"bulkWrite": 1, "ops": [{"insert": 0, "document": {"_id": 50, "n": 0}},
                                   {"update": 0, "filter": {"_id": 50},
                                    "updateMods": {"$inc": {"n": 1}}},
                                   {"insert": 0, "document": {"_id": 250, "n": 0}},
                                   {"update": 0, "filter": {"_id": 250},
                                    "updateMods": {"$inc": {"n": 1}}}],
           "nsInfo": [{"ns": "bw.sh"}], "lsid": lsid, "txnNumber": 1}
    first = ok(sharded.router_command(0, cmd, db="admin"))
    again = ok(sharded.router_command(1, cmd, db="admin"))  # the other router, as on failover
    assert first["nErrors"] == again["nErrors"] == 0
    assert first["nInserted"] == again["nInserted"] == 2
    docs = {d["_id"]: d["n"] for d in client.bw.sh.find({"_id": {"$in": [50, 250]}})}
    assert docs == {50: 1, 250: 1}


def test_bad_bulk_writes_are_refused(sharded: ShardedCluster) -> None:
    def code(cmd: dict[str, Any], db: str = "admin") -> int:
        reply = sharded.router_command(0, cmd, db=db)
        assert reply["ok"] == 0.0, reply
        return int(reply["code"])

    assert code({"bulkWrite": 1, "ops": [{"insert": 0, "document": {}}],
                 "nsInfo": [{"ns": "bw.x"}]}, db="bw") == 13
    assert code({"bulkWrite": 1, "ops": [], "nsInfo": [{"ns": "bw.x"}]}) == 16
    assert code({"bulkWrite": 1, "ops": [{"insert": 3, "document": {}}],
                 "nsInfo": [{"ns": "bw.x"}]}) == 2
    assert code({"bulkWrite": 1, "ops": [{"upsert": 0}], "nsInfo": [{"ns": "bw.x"}]}) == 9
    assert code({"bulkWrite": 1, "ops": [{"delete": 0}], "nsInfo": [{"ns": "bw.x"}]}) == 40414
