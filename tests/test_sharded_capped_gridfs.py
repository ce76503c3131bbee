"""Capped collections, tailable cursors and GridFS through the routers of the shared sharded
cluster (``sharded`` fixture): the refusals, tailing through a shard-primary kill, and GridFS with
``fs.chunks`` sharded by ``_id`` and split across both shards."""

from __future__ import annotations

import hashlib
import io
import threading
from typing import Any

import pymongo
import pytest
from bson import ObjectId

import helogale
from helogale.gridfs import GridFS, GridFSBucket
from node.local_cluster import wait_until
from node.sharded_cluster import ShardedCluster
from tests.sharded_helpers import ok

pytestmark = pytest.mark.cluster
DB = "capgrid"


def r(cluster: ShardedCluster, cmd: dict[str, Any], db: str = DB) -> dict[str, Any]:
    return cluster.router_command(0, cmd, db=db)


def primary_shard(cluster: ShardedCluster, db: str) -> int:
    reply = ok(r(cluster, {"find": "databases", "filter": {"_id": db}}, db="config"))
    return int(reply["cursor"]["firstBatch"][0]["primary"][-1]) - 1


def test_capped_through_the_router_and_its_refusals(sharded: ShardedCluster) -> None:
    ok(r(sharded, {"create": "log", "capped": True, "size": 4096, "max": 3}))
    for i in [5, 3, 9, 1]:
        ok(r(sharded, {"insert": "log", "documents": [{"_id": i}]}))
    got = ok(r(sharded, {"find": "log"}))["cursor"]["firstBatch"]
    assert [d["_id"] for d in got] == [3, 9, 1]
    stats = ok(r(sharded, {"collStats": "log"}))
    assert stats.get("capped") is True or any(
        s.get("capped") for s in (stats.get("shards") or {}).values()), stats
    refused = r(sharded, {"shardCollection": f"{DB}.log", "key": {"_id": 1}}, db="admin")
    assert refused["ok"] == 0.0 and refused["code"] == 72, refused
    ok(r(sharded, {"shardCollection": f"{DB}.spread", "key": {"_id": 1}}, db="admin"))
    refused = r(sharded, {"convertToCapped": "spread", "size": 4096})
    assert refused["ok"] == 0.0 and refused["code"] == 20, refused
    ok(r(sharded, {"insert": "plain", "documents": [{"_id": i} for i in range(10)]}))
    ok(r(sharded, {"convertToCapped": "plain", "size": 4096, "max": 2}))
    got = ok(r(sharded, {"find": "plain"}))["cursor"]["firstBatch"]
    assert [d["_id"] for d in got] == [8, 9]


def test_tailing_through_the_router_across_a_shard_failover(sharded: ShardedCluster) -> None:
    db_name = f"{DB}_tail"
    client = helogale.MongoClient(sharded.uri, serverSelectionTimeoutMS=60000)
    assert sharded.wire_uri is not None
    py = pymongo.MongoClient(sharded.wire_uri, serverSelectionTimeoutMS=60000)
    try:
        db = client[db_name]
        db.create_collection("log", capped=True, size=1 << 24)
        db.log.insert_one({"_id": 0})
        total = 200
        seen: dict[str, list[int]] = {"helogale": [], "pymongo": []}
        done = threading.Event()

        def tail_helogale() -> None:
            cursor = db.log.find(cursor_type=helogale.CursorType.TAILABLE_AWAIT) \
                .max_await_time_ms(200)
            while not done.is_set() and len(seen["helogale"]) < total:
                seen["helogale"].extend(d["_id"] for d in cursor)

        def tail_pymongo() -> None:
            cursor = py[db_name].log.find(
                cursor_type=pymongo.CursorType.TAILABLE_AWAIT).max_await_time_ms(200)
            while not done.is_set() and len(seen["pymongo"]) < total and cursor.alive:
                seen["pymongo"].extend(d["_id"] for d in cursor)

        readers = [threading.Thread(target=tail_helogale), threading.Thread(target=tail_pymongo)]
        for reader in readers:
            reader.start()
        shard = sharded.shards[primary_shard(sharded, db_name)]
        killed = None
        try:
            for i in range(1, total):
                if i == total // 2:
                    killed = shard.wait_for_primary(60)
                    shard.kill(killed)
                db.log.insert_one({"_id": i})
            wait_until(lambda: all(len(v) >= total for v in seen.values()), 90,
                       "both tailing readers to see every insert")
        finally:
            done.set()
            for reader in readers:
                reader.join(30)
            if killed is not None:
                shard.restart(killed)
                shard.wait_ready(killed, 60)
        assert seen["helogale"] == list(range(total))
        assert seen["pymongo"] == list(range(total))
    finally:
        client.close()
        py.close()


def test_gridfs_with_chunks_split_across_both_shards(sharded: ShardedCluster) -> None:
    db_name = f"{DB}_files"
    ns = f"{db_name}.fs.chunks"
    ok(r(sharded, {"shardCollection": ns, "key": {"_id": 1}}, db="admin"))
    # a unique index not prefixed by the shard key is refused, as by mongos
    refused = r(sharded, {"createIndexes": "fs.chunks", "indexes": [
        {"key": {"files_id": 1, "n": 1}, "name": "files_id_1_n_1", "unique": True}]},
        db=db_name)
    assert refused["code"] == 67, refused
    client = helogale.MongoClient(sharded.uri, serverSelectionTimeoutMS=60000)
    assert sharded.wire_uri is not None
    py = pymongo.MongoClient(sharded.wire_uri, serverSelectionTimeoutMS=60000)
    try:
        db = client[db_name]
        data = hashlib.sha256(b"x").digest() * (6 * 1024 * 1024 // 32)
        middle = ObjectId()  # chunks written after this land above the split
        first = GridFSBucket(db).upload_from_stream("before.bin", io.BytesIO(data[:1000000]))
        ok(r(sharded, {"split": ns, "middle": {"_id": middle}}, db="admin"))
        chunk_docs = ok(r(sharded, {"find": "chunks", "filter": {"ns": ns},
                                    "sort": {"min": 1}}, db="config"))["cursor"]["firstBatch"]
        high = chunk_docs[-1]
        target = "shard2" if high["shard"] == "shard1" else "shard1"
        ok(r(sharded, {"moveChunk": ns, "find": {"_id": ObjectId()}, "to": target,
                       "_waitForDelete": True}, db="admin"))
        second = GridFS(db).put(data, filename="after.bin")
        owners = {c["shard"] for c in ok(r(sharded, {"find": "chunks", "filter": {"ns": ns}},
                                            db="config"))["cursor"]["firstBatch"]}
        assert owners == {"shard1", "shard2"}
        assert GridFS(db).get(second).read() == data
        assert GridFSBucket(db).open_download_stream(first).read() == data[:1000000]
        import gridfs as pymongo_gridfs

        assert pymongo_gridfs.GridFS(py[db_name]).get(second).read() == data
        names = {ix["name"]: ix for ix in db["fs.chunks"].list_indexes()}
        assert "files_id_1_n_1" in names and not names["files_id_1_n_1"].get("unique")
    finally:
        client.close()
        py.close()
