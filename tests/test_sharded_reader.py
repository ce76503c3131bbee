"""A concurrent reader during migrations (issue 14's proof): while chunks move back and forth
between the shards and writers insert through the routers, a reader on each router counts
and scans the collection over and over. Documents are only ever inserted, so a reader's count
of visible documents must never go backwards, and no scan may return an ``_id`` twice (a
document seen on both the donor and the recipient) or miss one that was acknowledged before
the scan began."""

from __future__ import annotations

import threading
from typing import Any

import pymongo
import pytest
from pymongo.errors import PyMongoError

from node.sharded_cluster import ShardedCluster
from tests.sharded_helpers import ok

pytestmark = pytest.mark.cluster

DB = "reader"
COLL = "c"
NS = f"{DB}.{COLL}"
MOVES = 6


def test_counts_never_go_backwards_and_scans_never_repeat_while_chunks_move(
        sharded: ShardedCluster) -> None:
    ok(sharded.router_command(0, {"shardCollection": NS, "key": {"_id": 1}}))
    ok(sharded.router_command(0, {"insert": COLL, "documents": [
        {"_id": i, "pad": "x" * 200} for i in range(0, 3000)]}, db=DB))
    for middle in (1000, 2000):
        ok(sharded.router_command(0, {"split": NS, "middle": {"_id": middle}}))
    stop = threading.Event()
    acked: list[int] = []  # inserted and acknowledged, in order
    acked_lock = threading.Lock()
    problems: list[str] = []
    reads = [0, 0]

    def writer(w: int) -> None:
        client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(
            sharded.wire_uri, w="majority", retryWrites=True)
        k = 0
        try:
            while not stop.is_set():
                _id = 10_000 + w * 100_000 + k
                k += 1
                try:
                    client[DB][COLL].insert_one({"_id": _id})
                except PyMongoError as exc:
                    problems.append(f"insert {_id}: {exc}")
                    continue
                with acked_lock:
                    acked.append(_id)
        finally:
            client.close()

    def reader(i: int) -> None:
        router = sharded.routers[i]
        client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(
            f"mongodb://{router.wire_address}/")
        coll = client[DB][COLL]
        last = 0
        try:
            while not stop.is_set():
                with acked_lock:
                    before = set(acked)
                n = coll.count_documents({})
                if n < last:
                    problems.append(f"router {i + 1}: count went {last} -> {n}")
                last = max(last, n)
                ids = [d["_id"] for d in coll.find({}, {"_id": 1}).batch_size(500)]
                if len(ids) != len(set(ids)):
                    problems.append(f"router {i + 1}: a scan returned "
                                    f"{len(ids) - len(set(ids))} _ids twice")
                if len(ids) < last:
                    problems.append(f"router {i + 1}: scan saw {len(ids)} after count {last}")
                last = max(last, len(ids))
                missing = before - set(ids)
                if missing or not set(range(3000)) <= set(ids):
                    problems.append(f"router {i + 1}: scan missed {len(missing)} acknowledged")
                reads[i] += 1
        finally:
            client.close()

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(2)]
    threads += [threading.Thread(target=reader, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    try:
        chunks = ok(sharded.router_command(0, {"find": "chunks", "filter": {"ns": NS}},
                                           db="config"))["cursor"]["firstBatch"]
        for m in range(MOVES):
            chunk = chunks[m % len(chunks)]
            current = ok(sharded.router_command(0, {"find": "chunks", "filter": {
                "ns": NS, "min": chunk["min"]}}, db="config"))["cursor"]["firstBatch"][0]
            to = "shard2" if current["shard"] == "shard1" else "shard1"
            ok(sharded.router_command(m % 2, {"moveChunk": NS, "to": to,
                                              "bounds": [chunk["min"], chunk["max"]]}))
    finally:
        stop.set()
        for t in threads:
            t.join(60)
    assert not problems, problems[:10]
    assert min(reads) >= MOVES, reads  # the readers really ran during the moves
    final = ok(sharded.router_command(1, {"count": COLL}, db=DB))["n"]
    assert final == 3000 + len(acked)
