"""A sharded cluster end to end, through real routers: metadata shapes, shardCollection,
split, moveChunk, orphans, stale routers, the rules a sharded collection imposes."""

from __future__ import annotations

from typing import Any

import pytest
from bson import MaxKey, MinKey, Timestamp

from node.sharded_cluster import ShardedCluster
from tests.sharded_helpers import ok, shard_docs

pytestmark = pytest.mark.cluster

DB = "basic"


def r(cluster: ShardedCluster, cmd: dict[str, Any], db: str = DB, i: int = 0) -> dict[str, Any]:
    return cluster.router_command(i, cmd, db=db)


def chunks(cluster: ShardedCluster, ns: str, i: int = 0) -> list[dict[str, Any]]:
    reply = ok(r(cluster, {"find": "chunks", "filter": {"ns": ns}, "sort": {"min": 1}},
                 db="config", i=i))
    return reply["cursor"]["firstBatch"]


def ids_on(cluster: ShardedCluster, k: int, coll: str) -> set[Any]:
    return {d["_id"] for d in shard_docs(cluster, k, coll, db=DB)}


def test_shards_and_metadata_have_mongodbs_shapes(sharded: ShardedCluster) -> None:
    shards = ok(r(sharded, {"listShards": 1}, db="admin"))["shards"]
    assert [s["_id"] for s in shards] == ["shard1", "shard2"]
    for s, cluster in zip(shards, sharded.shards, strict=True):
        # drivers and tools open a shard with its wire-protocol addresses
        assert s["host"] == "{}/{}".format(cluster.replset, ",".join(
            m.wire_address or "" for m in cluster.members))
        assert s["grpcHost"].startswith(f"{cluster.replset}/") and s["state"] == 1
    hello = ok(r(sharded, {"hello": 1}, db="admin"))
    assert hello["msg"] == "isdbgrid" and "setName" not in hello and "hosts" not in hello
    ok(r(sharded, {"shardCollection": f"{DB}.shapes", "key": {"_id": 1}}, db="admin"))
    coll = ok(r(sharded, {"find": "collections", "filter": {"_id": f"{DB}.shapes"}},
                db="config"))["cursor"]["firstBatch"][0]
    assert coll["key"] == {"_id": 1} and "lastmodEpoch" in coll and "uuid" in coll
    (only,) = chunks(sharded, f"{DB}.shapes")
    assert only["min"] == {"_id": MinKey()} and only["max"] == {"_id": MaxKey()}
    assert isinstance(only["lastmod"], Timestamp) and only["shard"] in ("shard1", "shard2")
    db = ok(r(sharded, {"find": "databases", "filter": {"_id": DB}}, db="config"))
    assert db["cursor"]["firstBatch"][0]["primary"] in ("shard1", "shard2")


def test_split_and_move_put_each_half_on_its_shard(sharded: ShardedCluster) -> None:
    ns = f"{DB}.halves"
    ok(r(sharded, {"shardCollection": ns, "key": {"_id": 1}}, db="admin"))
    ok(r(sharded, {"insert": "halves", "documents": [{"_id": i, "v": i} for i in range(200)]}))
    ok(r(sharded, {"split": ns, "middle": {"_id": 100}}, db="admin"))
    low, high = chunks(sharded, ns)
    assert low["max"] == {"_id": 100} and high["min"] == {"_id": 100}
    assert low["lastmod"] > Timestamp(1, 0) and high["lastmod"] > Timestamp(1, 0)
    target = "shard2" if high["shard"] == "shard1" else "shard1"
    ok(r(sharded, {"moveChunk": ns, "find": {"_id": 150}, "to": target,
                   "_waitForDelete": True}, db="admin"))
    low, high = chunks(sharded, ns)
    assert high["shard"] == target and low["shard"] != target
    assert high["lastmod"].time == low["lastmod"].time  # the donor's version moved too
    k_low, k_high = int(low["shard"][-1]) - 1, int(high["shard"][-1]) - 1
    assert ids_on(sharded, k_low, "halves") == set(range(100))
    assert ids_on(sharded, k_high, "halves") == set(range(100, 200))
    assert ok(r(sharded, {"count": "halves"}))["n"] == 200
    got = ok(r(sharded, {"find": "halves", "sort": {"v": -1}, "skip": 95, "limit": 10}))
    assert [d["_id"] for d in got["cursor"]["firstBatch"]] == list(range(104, 94, -1))


def test_orphans_left_by_a_move_are_invisible(sharded: ShardedCluster) -> None:
    ns = f"{DB}.orphans"
    ok(r(sharded, {"shardCollection": ns, "key": {"_id": 1}}, db="admin"))
    ok(r(sharded, {"insert": "orphans", "documents": [{"_id": i} for i in range(50)]}))
    ok(r(sharded, {"split": ns, "middle": {"_id": 25}}, db="admin"))
    high = chunks(sharded, ns)[1]
    donor = high["shard"]
    target = "shard2" if donor == "shard1" else "shard1"
    ok(r(sharded, {"moveChunk": ns, "find": {"_id": 30}, "to": target}, db="admin"))
    k_donor = int(donor[-1]) - 1
    # whether or not the range deleter got there yet, the donor shows only what it owns
    assert ids_on(sharded, k_donor, "orphans") == set(range(25))
    assert ok(r(sharded, {"count": "orphans"}))["n"] == 50
    multi = ok(r(sharded, {"update": "orphans", "updates": [
        {"q": {}, "u": {"$set": {"touched": True}}, "multi": True}]}))
    assert multi["n"] == 50  # multi-writes never touch the donor's orphans
    assert ok(r(sharded, {"count": "orphans", "query": {"touched": True}}))["n"] == 50


def test_a_stale_router_reads_and_writes_where_the_chunk_went(sharded: ShardedCluster) -> None:
    ns = f"{DB}.stale"
    ok(r(sharded, {"shardCollection": ns, "key": {"_id": 1}}, db="admin"))
    ok(r(sharded, {"insert": "stale", "documents": [{"_id": i, "n": 0} for i in range(40)]}))
    ok(r(sharded, {"split": ns, "middle": {"_id": 20}}, db="admin"))
    assert ok(r(sharded, {"count": "stale"}, i=1))["n"] == 40  # router 1 caches the table
    high = chunks(sharded, ns)[1]
    target = "shard2" if high["shard"] == "shard1" else "shard1"
    ok(r(sharded, {"moveChunk": ns, "find": {"_id": 30}, "to": target,
                   "_waitForDelete": True}, db="admin", i=0))
    # router 1 still routes with the old table: every answer must be right anyway
    got = ok(r(sharded, {"find": "stale", "filter": {"_id": 30}}, i=1))
    assert got["cursor"]["firstBatch"] == [{"_id": 30, "n": 0}]
    upd = ok(r(sharded, {"update": "stale", "updates": [
        {"q": {"_id": 31}, "u": {"$inc": {"n": 1}}}]}, i=1))
    assert upd["n"] == 1 and upd["nModified"] == 1
    ok(r(sharded, {"insert": "stale", "documents": [{"_id": 35.5, "n": 7}]}, i=1))
    k = int(target[-1]) - 1
    assert {31, 35.5} <= ids_on(sharded, k, "stale")
    assert ok(r(sharded, {"count": "stale"}, i=1))["n"] == 41
    assert ok(r(sharded, {"count": "stale", "query": {"n": 1}}, i=0))["n"] == 1


def test_what_a_sharded_collection_refuses(sharded: ShardedCluster) -> None:
    ns = f"{DB}.rules"
    ok(r(sharded, {"shardCollection": ns, "key": {"_id": 1}}, db="admin"))
    upsert = r(sharded, {"update": "rules", "updates": [
        {"q": {"x": 1}, "u": {"$set": {"y": 1}}, "upsert": True}]})
    assert upsert["writeErrors"][0]["code"] == 61 or upsert.get("code") == 61, upsert
    ok(r(sharded, {"update": "rules", "updates": [
        {"q": {"_id": 5}, "u": {"$set": {"y": 1}}, "upsert": True}]}))
    unique = r(sharded, {"createIndexes": "rules", "indexes": [
        {"key": {"email": 1}, "name": "email_1", "unique": True}]})
    assert unique["code"] == 67, unique
    ok(r(sharded, {"createIndexes": "rules", "indexes": [{"key": {"email": 1},
                                                            "name": "email_1"}]}))
    rename = r(sharded, {"renameCollection": ns, "to": f"{DB}.other"}, db="admin")
    assert rename["code"] == 20, rename
    other_key = r(sharded, {"shardCollection": f"{DB}.k", "key": {"email": 1}}, db="admin")
    assert other_key["code"] == 72, other_key


def test_near_is_merged_by_distance_across_shards(sharded: ShardedCluster) -> None:
    ns = f"{DB}.places"
    ok(r(sharded, {"shardCollection": ns, "key": {"_id": 1}}, db="admin"))
    docs = [{"_id": i, "loc": [float(i % 13), float(i % 7)]} for i in range(120)]
    for coll in ("places", "places_flat"):
        ok(r(sharded, {"insert": coll, "documents": docs}))
        ok(r(sharded, {"createIndexes": coll, "indexes": [{"key": {"loc": "2d"},
                                                           "name": "loc_2d"}]}))
    ok(r(sharded, {"split": ns, "middle": {"_id": 60}}, db="admin"))
    high = chunks(sharded, ns)[1]
    ok(r(sharded, {"moveChunk": ns, "find": {"_id": 90}, "to": other_shard(high["shard"]),
                   "_waitForDelete": True}, db="admin"))
    query = {"loc": {"$near": [6.2, 3.1]}}
    by_id = {d["_id"]: d["loc"] for d in docs}

    def dist(i: int) -> float:
        x, y = by_id[i]
        return float(((x - 6.2) ** 2 + (y - 3.1) ** 2) ** 0.5)

    for limit in (7, 0):
        cmd = {"filter": query, "projection": {"_id": 1}, **({"limit": limit} if limit else {})}
        sharded_ids = [d["_id"] for d in ok(r(sharded, {"find": "places", **cmd, "batchSize":
                                                         500}))["cursor"]["firstBatch"]]
        flat_ids = [d["_id"] for d in ok(r(sharded, {"find": "places_flat", **cmd,
                                                      "batchSize": 500}))["cursor"]["firstBatch"]]
        assert len(sharded_ids) == len(flat_ids) == (limit or len(docs))
        assert [dist(i) for i in sharded_ids] == [dist(i) for i in flat_ids]


def other_shard(shard: str) -> str:
    return "shard2" if shard == "shard1" else "shard1"


def test_presplit_by_objectid_time(sharded: ShardedCluster) -> None:
    import datetime as dt

    from bson import ObjectId

    ns = f"{DB}.presplit"
    ok(r(sharded, {"shardCollection": ns, "key": {"_id": 1}, "numInitialChunks": 4,
                   "presplitWindowSecs": 3600}, db="admin"))
    cs = chunks(sharded, ns)
    assert len(cs) == 4 and [c["shard"] for c in cs][:2] != [cs[0]["shard"]] * 2
    assert {c["shard"] for c in cs} == {"shard1", "shard2"}
    later = ObjectId.from_datetime(dt.datetime.now(dt.UTC) + dt.timedelta(hours=2, minutes=30))
    ok(r(sharded, {"insert": "presplit", "documents": [{"_id": later}, {"_id": ObjectId()}]}))
    k = int(cs[2]["shard"][-1]) - 1
    assert later in {d["_id"] for d in shard_docs(sharded, k, "presplit", db=DB)}
    assert ok(r(sharded, {"count": "presplit"}))["n"] == 2
    again = r(sharded, {"shardCollection": f"{DB}.halves_too_many", "key": {"_id": 1},
                        "numInitialChunks": 9000}, db="admin")
    assert again["code"] == 72


def test_coll_stats_sees_migrations_another_router_made(sharded: ShardedCluster) -> None:
    """Router 1 cached the routing table (one chunk, one shard) before router 0 split the
    collection and moved half of it: router 1's collStats still reports both shards."""
    ns = "app.stats"
    ok(sharded.router_command(0, {"shardCollection": ns, "key": {"_id": 1}}))
    ok(sharded.router_command(0, {"insert": "stats", "documents": [{"_id": i} for i in range(10)]},
                              db="app"))
    before = ok(sharded.router_command(1, {"collStats": "stats"}, db="app"))
    assert before["nchunks"] == 1 and len(before["shards"]) == 1 and before["count"] == 10
    ok(sharded.router_command(0, {"split": ns, "middle": {"_id": 5}}))
    owner = next(iter(before["shards"]))
    other = next(s.replset for s in sharded.shards if s.replset != owner)
    ok(sharded.router_command(0, {"moveChunk": ns, "find": {"_id": 5}, "to": other,
                                  "_waitForDelete": True}))
    after = ok(sharded.router_command(1, {"collStats": "stats"}, db="app"))
    assert after["nchunks"] == 2
    assert set(after["shards"]) == {owner, other}
    assert after["count"] == 10
    assert {s: v["count"] for s, v in after["shards"].items()} == {owner: 5, other: 5}


def test_router_writes_reach_the_shard_over_its_command_link(sharded: ShardedCluster) -> None:
    """The shared cluster's processes hold one key file, so the router runs its shard commands
    over the members' command links (node.server.command_link), not gRPC."""

    def link_commands(k: int) -> int:
        shard = sharded.shards[k]
        status = ok(shard.command(shard.wait_for_primary(), {"serverStatus": 1}))
        return int(status["metrics"]["commandLinks"]["commands"])

    for shard in sharded.shards:
        assert ok(shard.command(shard.wait_for_primary(), {"hello": 1}))["internalCommandLink"]
    ok(r(sharded, {"create": "linked"}))
    before = [link_commands(k) for k in range(len(sharded.shards))]
    ok(r(sharded, {"insert": "linked", "documents": [{"_id": k} for k in range(3)]}))
    owner = next(k for k in range(len(sharded.shards)) if ids_on(sharded, k, "linked"))
    assert link_commands(owner) > before[owner]


def test_snapshot_reads_through_the_router_re_read_each_shard_at_its_token(
        sharded: ShardedCluster) -> None:
    """Each shard pins its own snapshot; the router's atClusterTime names those snapshots,
    so a read at it sees every shard as the first read did (router.snapshots)."""
    ns = f"{DB}.snap"
    ok(r(sharded, {"shardCollection": ns, "key": {"_id": 1}}, db="admin"))
    ok(r(sharded, {"insert": "snap", "documents": [{"_id": i} for i in range(40)]}))
    ok(r(sharded, {"split": ns, "middle": {"_id": 20}}, db="admin"))
    _, high = chunks(sharded, ns)
    target = "shard2" if high["shard"] == "shard1" else "shard1"
    ok(r(sharded, {"moveChunk": ns, "find": {"_id": 30}, "to": target,
                   "_waitForDelete": True}, db="admin"))
    snapshot = {"level": "snapshot"}
    first = ok(r(sharded, {"find": "snap", "sort": {"_id": 1}, "batchSize": 5,
                           "readConcern": snapshot}))
    token = first["cursor"]["atClusterTime"]
    assert isinstance(token, Timestamp) and "operationTime" not in first
    ok(r(sharded, {"insert": "snap", "documents": [{"_id": 10.5}, {"_id": 30.5}]}))
    rest = ok(r(sharded, {"getMore": first["cursor"]["id"], "collection": "snap"}))
    seen = first["cursor"]["firstBatch"] + rest["cursor"]["nextBatch"]
    assert [d["_id"] for d in seen] == list(range(40))
    again = ok(r(sharded, {"find": "snap", "sort": {"_id": 1},
                           "readConcern": {**snapshot, "atClusterTime": token}}))
    assert [d["_id"] for d in again["cursor"]["firstBatch"]] == list(range(40))
    assert again["cursor"]["atClusterTime"] == token
    values = ok(r(sharded, {"distinct": "snap", "key": "_id",
                            "readConcern": {**snapshot, "atClusterTime": token}}))
    assert sorted(values["values"]) == list(range(40)) and values["atClusterTime"] == token
    latest = ok(r(sharded, {"find": "snap", "readConcern": snapshot}))
    assert len(latest["cursor"]["firstBatch"]) == 42
    unknown = r(sharded, {"find": "snap", "readConcern": {**snapshot, "atClusterTime":
                                                          Timestamp(token.time, 0)}})
    assert unknown["code"] == 239 and unknown["codeName"] == "SnapshotTooOld"
    # another router did not issue the token
    elsewhere = r(sharded, {"find": "snap", "readConcern": {**snapshot,
                                                            "atClusterTime": token}}, i=1)
    assert elsewhere["code"] == 239
    # shards' cluster times are not the router's: afterClusterTime is not forwarded to them
    after = ok(r(sharded, {"find": "snap", "readConcern": {"afterClusterTime":
                                                           Timestamp(2**31, 2**31)}}))
    assert len(after["cursor"]["firstBatch"]) == 42
