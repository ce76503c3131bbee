"""The balancer through real routers: chunks split past the chunk size and move until the
shards hold about as much data each; jumbo chunks; mergeChunks; draining a shard."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from node.local_cluster import LocalCluster, wait_until
from node.sharded_cluster import ShardedCluster
from tests.sharded_helpers import ok, shard_docs

pytestmark = pytest.mark.cluster

DB = "bal"
MB = 1024 * 1024


def r(cluster: ShardedCluster, cmd: dict[str, Any], db: str = DB, i: int = 0) -> dict[str, Any]:
    return cluster.router_command(i, cmd, db=db)


def chunks(cluster: ShardedCluster, ns: str) -> list[dict[str, Any]]:
    reply = ok(r(cluster, {"find": "chunks", "filter": {"ns": ns}, "sort": {"min": 1}},
                 db="config"))
    return reply["cursor"]["firstBatch"]


@pytest.fixture
def balancing(sharded: ShardedCluster) -> Iterator[ShardedCluster]:
    """The balancer on with 1 MiB chunks, for the test; off again afterwards."""
    ok(r(sharded, {"update": "settings", "updates": [
        {"q": {"_id": "chunksize"}, "u": {"$set": {"value": 1}}, "upsert": True}]},
        db="config"))
    ok(r(sharded, {"balancerStart": 1}, db="admin"))
    try:
        yield sharded
    finally:
        ok(r(sharded, {"balancerStop": 1}, db="admin"))
        wait_until(lambda: not ok(r(sharded, {"balancerStatus": 1}, db="admin"))[
            "inBalancerRound"], 60, "the balancer round to end")


def test_a_collection_loaded_on_one_shard_ends_balanced(balancing: ShardedCluster) -> None:
    ns = f"{DB}.load"
    ok(r(balancing, {"shardCollection": ns, "key": {"_id": 1}}, db="admin"))
    pad = "x" * 1000
    for start in range(0, 6000, 1000):  # ~6 MiB on the primary shard, in one chunk
        ok(r(balancing, {"insert": "load", "documents": [{"_id": i, "pad": pad}
                                                         for i in range(start, start + 1000)]}))

    def spread() -> bool:
        per = [len(shard_docs(balancing, k, "load", db=DB)) for k in range(2)]
        return min(per) > 1000 and sum(per) == 6000

    wait_until(spread, 120, "the balancer to spread the collection")
    cs = chunks(balancing, ns)
    assert len(cs) >= 4 and {c["shard"] for c in cs} == {"shard1", "shard2"}
    status = ok(r(balancing, {"balancerStatus": 1}, db="admin"))
    assert status["mode"] == "full" and status["numBalancerRounds"] > 0
    assert status["chunksMoved"] > 0 and status["splits"] > 0
    assert ok(r(balancing, {"count": "load"}))["n"] == 6000


def test_a_split_the_shard_has_not_seen_does_not_stall_the_balancer(
        balancing: ShardedCluster) -> None:
    """The balancer's splits are committed on the config servers only, and the router keeps
    writing with the version it had, so the owning shard is not told: it measures the whole
    collection under the first chunk. The balancer must refresh it, not find no split point
    in that small chunk, mark it jumbo and then never move anything."""
    ns = f"{DB}.unseen"
    ok(r(balancing, {"shardCollection": ns, "key": {"_id": 1}}, db="admin"))
    pad = "u" * 1000

    def load(lo: int, hi: int) -> None:
        for start in range(lo, hi, 500):
            ok(r(balancing, {"insert": "unseen", "documents": [
                {"_id": i, "pad": pad} for i in range(start, start + 500)]}))

    def rounds() -> int:
        return int(ok(r(balancing, {"balancerStatus": 1}, db="admin"))["numBalancerRounds"])

    load(0, 2500)  # ~2.4 MiB: split into 1 MiB halves, but under 3 chunk sizes: nothing moves
    wait_until(lambda: len(chunks(balancing, ns)) > 1, 120, "the balancer to split")
    after_split = rounds()
    wait_until(lambda: rounds() >= after_split + 2, 120, "two more balancer rounds")
    load(2500, 6500)  # ~6.2 MiB now: the shards differ by more than 3 chunk sizes
    wait_until(lambda: min(len(shard_docs(balancing, k, "unseen", db=DB))
                           for k in range(2)) > 1000, 120,
               "the balancer to move part of the collection")
    assert not any(c.get("jumbo") for c in chunks(balancing, ns))
    assert ok(r(balancing, {"count": "unseen"}))["n"] == 6500


def test_an_unsplittable_chunk_is_marked_jumbo(balancing: ShardedCluster) -> None:
    ns = f"{DB}.jumbo"
    ok(r(balancing, {"shardCollection": ns, "key": {"_id": 1}}, db="admin"))
    ok(r(balancing, {"insert": "jumbo", "documents": [{"_id": 1, "pad": "j" * (2 * MB)}]}))
    wait_until(lambda: chunks(balancing, ns)[0].get("jumbo"), 120, "the chunk marked jumbo")
    assert len(chunks(balancing, ns)) == 1


def test_merge_chunks_of_one_shard(sharded: ShardedCluster) -> None:
    ns = f"{DB}.merge"
    ok(r(sharded, {"shardCollection": ns, "key": {"_id": 1}}, db="admin"))
    ok(r(sharded, {"insert": "merge", "documents": [{"_id": i} for i in range(30)]}))
    for middle in (10, 20):
        ok(r(sharded, {"split": ns, "middle": {"_id": middle}}, db="admin"))
    assert len(chunks(sharded, ns)) == 3
    merged = r(sharded, {"mergeChunks": ns, "bounds": [{"_id": 0}, {"_id": 20}]}, db="admin")
    assert merged["code"] == 20  # no chunk starts at 0
    bounds = [chunks(sharded, ns)[0]["min"], chunks(sharded, ns)[1]["max"]]
    ok(r(sharded, {"mergeChunks": ns, "bounds": bounds}, db="admin"))
    after = chunks(sharded, ns)
    assert len(after) == 2 and after[0]["max"] == {"_id": 20}
    assert ok(r(sharded, {"count": "merge"}))["n"] == 30


def test_a_drained_shard_is_removed(sharded: ShardedCluster) -> None:
    """A third, one-member shard is added, takes a chunk, and is drained away by the
    balancer after ``removeShard``."""
    extra = LocalCluster(1, replset="shard3", wire=True, extra_args=["--shardsvr"])
    extra.start(60)
    try:
        conn = f"shard3/{extra.members[0].address}"
        ok(r(sharded, {"addShard": conn}, db="admin"))
        ns = f"{DB}.drain"
        ok(r(sharded, {"shardCollection": ns, "key": {"_id": 1}}, db="admin"))
        ok(r(sharded, {"insert": "drain", "documents": [{"_id": i} for i in range(40)]}))
        ok(r(sharded, {"split": ns, "middle": {"_id": 20}}, db="admin"))
        ok(r(sharded, {"moveChunk": ns, "find": {"_id": 30}, "to": "shard3",
                       "_waitForDelete": True}, db="admin"))
        started = ok(r(sharded, {"removeShard": "shard3"}, db="admin"))
        assert started["state"] == "started"
        ok(r(sharded, {"balancerStart": 1}, db="admin"))
        try:
            def drained() -> bool:
                reply = r(sharded, {"removeShard": "shard3"}, db="admin")
                return reply.get("state") == "completed"

            wait_until(drained, 120, "shard3 to drain")
        finally:
            ok(r(sharded, {"balancerStop": 1}, db="admin"))
        names = [s["_id"] for s in ok(r(sharded, {"listShards": 1}, db="admin"))["shards"]]
        assert names == ["shard1", "shard2"]
        assert {c["shard"] for c in chunks(sharded, ns)} <= {"shard1", "shard2"}
        assert ok(r(sharded, {"count": "drain"}))["n"] == 40
    finally:
        extra.stop()
