"""Chunk migrations under load, and cursors across a shard's failover, through real routers
and MongoDB's own driver (pymongo on the routers' wire ports)."""

from __future__ import annotations

from typing import Any

import pymongo
import pytest
from pymongo.errors import PyMongoError

from node.sharded_cluster import ShardedCluster
from tests.sharded_helpers import WriteLoad, ok

pytestmark = pytest.mark.cluster

DB = "mig"


def r(cluster: ShardedCluster, cmd: dict[str, Any], db: str = DB, i: int = 0) -> dict[str, Any]:
    return cluster.router_command(i, cmd, db=db)


def owner(cluster: ShardedCluster, ns: str, _id: Any) -> str:
    reply = ok(r(cluster, {"find": "chunks", "filter": {"ns": ns}}, db="config"))
    from router.routing_table import RoutingTable

    coll = ok(r(cluster, {"find": "collections", "filter": {"_id": ns}}, db="config"))
    table = RoutingTable.build(ns, coll["cursor"]["firstBatch"][0],
                               reply["cursor"]["firstBatch"])
    return table.shard_for_id(_id)


def other(shard: str) -> str:
    return "shard2" if shard == "shard1" else "shard1"


def test_move_chunk_under_concurrent_writes_loses_and_duplicates_nothing(
        sharded: ShardedCluster) -> None:
    ns = f"{DB}.load"
    ok(r(sharded, {"shardCollection": ns, "key": {"_id": 1}}, db="admin"))
    ok(r(sharded, {"insert": "load", "documents": [{"_id": i, "n": 0} for i in range(300)]}))
    ok(r(sharded, {"split": ns, "middle": {"_id": 150}}, db="admin"))
    client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(
        sharded.wire_uri, retryWrites=True, serverSelectionTimeoutMS=30000)
    coll = client[DB]["load"]
    caught_up = 0
    try:
        with WriteLoad(coll, 1000, range(150, 300), inc_threads=2) as load:
            for _ in range(2):  # there and back again, with the writers running
                src = owner(sharded, ns, 200)
                moved = ok(r(sharded, {"moveChunk": ns, "find": {"_id": 200},
                                       "to": other(src)}, db="admin"))
                caught_up += moved["modsSent"]
                assert owner(sharded, ns, 200) == other(src)
    finally:
        client.close()
    assert load.inserted and sum(load.incs.values()) > 0
    assert caught_up > 0, "no write landed during a clone: the catch-up was not exercised"
    # routers wait out the critical sections: no write failed while the chunk moved
    assert not load.failed, (load.unknown_inserts[:5], load.unknown_incs)
    ids = set(load.check(sharded, "load", DB, set(range(300))))
    assert ok(r(sharded, {"count": "load"}, i=1))["n"] == len(ids)


def test_a_scatter_cursor_when_a_shard_primary_dies(sharded: ShardedCluster) -> None:
    ns = f"{DB}.cursor"
    ok(r(sharded, {"shardCollection": ns, "key": {"_id": 1}}, db="admin"))
    ok(r(sharded, {"insert": "cursor", "documents": [{"_id": i, "s": i % 10}
                                                     for i in range(400)]}))
    ok(r(sharded, {"split": ns, "middle": {"_id": 200}}, db="admin"))
    src = owner(sharded, ns, 300)
    ok(r(sharded, {"moveChunk": ns, "find": {"_id": 300}, "to": other(src),
                   "_waitForDelete": True}, db="admin"))
    client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(sharded.wire_uri)
    seen: list[int] = []
    victim = sharded.shards[0]
    p = victim.wait_for_primary()
    try:
        cursor = client[DB]["cursor"].find({}, batch_size=50).sort([("s", 1), ("_id", 1)])
        for doc in cursor:
            seen.append(doc["_id"])
            if len(seen) == 120:
                victim.kill(p)
        completed = True
    except PyMongoError as exc:  # a clear error, never a silent gap or a repeat
        completed = False
        assert str(exc)
    finally:
        client.close()
        victim.restart(p)
        victim.wait_ready(p, 60)
        victim.wait_for_primary(60)
    assert len(seen) == len(set(seen)), "a document came back twice"
    if completed:
        assert sorted(seen) == list(range(400))
    expected = sorted(range(400), key=lambda i: (i % 10, i))
    assert seen == expected[:len(seen)]


def test_retry_history_moves_with_the_chunk(sharded: ShardedCluster) -> None:
    """A retryable write applied on the donor and retried after its chunk moved is answered
    from the history that moved with the chunk, not applied again; a retry that adds a
    statement to that transaction is refused with IncompleteTransactionHistory (217)."""
    from bson import Binary, Int64

    ns = f"{DB}.history"
    ok(r(sharded, {"shardCollection": ns, "key": {"_id": 1}}, db="admin"))
    ok(r(sharded, {"insert": "history", "documents": [{"_id": i, "n": 0} for i in range(200)]}))
    ok(r(sharded, {"split": ns, "middle": {"_id": 100}}, db="admin"))
    lsid = {"id": Binary(b"0123456789abcdef", 4)}
    inc = {"update": "history", "lsid": lsid, "txnNumber": Int64(7),
           "updates": [{"q": {"_id": 150}, "u": {"$inc": {"n": 1}}}]}
    assert ok(r(sharded, inc)) == {"n": 1, "nModified": 1, "ok": 1.0}
    src = owner(sharded, ns, 150)
    moved = ok(r(sharded, {"moveChunk": ns, "find": {"_id": 150}, "to": other(src),
                           "_waitForDelete": True}, db="admin"))
    assert moved["sessions"] >= 1
    assert ok(r(sharded, inc, i=1)) == {"n": 1, "nModified": 1, "ok": 1.0}  # the same reply
    doc = ok(r(sharded, {"find": "history", "filter": {"_id": 150}}))["cursor"]["firstBatch"]
    assert doc == [{"_id": 150, "n": 1}]  # applied once
    wider = {**inc, "updates": [*inc["updates"], {"q": {"_id": 160}, "u": {"$inc": {"n": 1}}}]}
    refused = r(sharded, wider)
    assert refused.get("code") == 217 or refused["writeErrors"][0]["code"] == 217, refused
    doc = ok(r(sharded, {"find": "history", "filter": {"_id": 160}}))["cursor"]["firstBatch"]
    assert doc == [{"_id": 160, "n": 0}]
