"""Retry history that moved with its chunk, beyond the update case of
``test_sharded_migration.py``: a retried insert and a retried findAndModify are answered from
the history, not applied again; a retry of a transaction the session has since superseded
is refused (TransactionTooOld); a retry through a router that has not heard of the move yet
finds its way to the recipient and is still applied once.
"""

from __future__ import annotations

from typing import Any

import pytest
from bson import Binary, Int64

from node.sharded_cluster import ShardedCluster
from tests.sharded_helpers import ok

pytestmark = pytest.mark.cluster

DB = "rhist"


def r(cluster: ShardedCluster, cmd: dict[str, Any], db: str = DB, i: int = 0) -> dict[str, Any]:
    return cluster.router_command(i, cmd, db=db)


def docs(cluster: ShardedCluster, coll: str, filt: dict[str, Any]) -> list[dict[str, Any]]:
    return list(ok(r(cluster, {"find": coll, "filter": filt}))["cursor"]["firstBatch"])


def setup(cluster: ShardedCluster, coll: str) -> str:
    """A collection split at 100, both chunks filled; returns the owner of [100, MaxKey)."""
    ns = f"{DB}.{coll}"
    ok(r(cluster, {"shardCollection": ns, "key": {"_id": 1}}, db="admin"))
    ok(r(cluster, {"insert": coll, "documents": [{"_id": i, "n": 0} for i in range(200)]}))
    ok(r(cluster, {"split": ns, "middle": {"_id": 100}}, db="admin"))
    # both routers route to the current owner (router 2's table is fresh before the move)
    ok(r(cluster, {"find": coll, "filter": {"_id": 150}}, i=1))
    found = ok(r(cluster, {"find": "chunks", "filter": {"ns": ns, "min": {"_id": 100}}},
                 db="config"))["cursor"]["firstBatch"]
    return str(found[0]["shard"])


def move(cluster: ShardedCluster, coll: str, src: str) -> dict[str, Any]:
    to = "shard2" if src == "shard1" else "shard1"
    return ok(r(cluster, {"moveChunk": f"{DB}.{coll}", "find": {"_id": 150}, "to": to,
                          "_waitForDelete": True}, db="admin"))


def session(tag: bytes) -> dict[str, Any]:
    return {"id": Binary(tag.ljust(16, b"-"), 4)}


def test_retried_insert_after_the_move_is_not_applied_twice(sharded: ShardedCluster) -> None:
    src = setup(sharded, "ins")
    insert = {"insert": "ins", "lsid": session(b"ins"), "txnNumber": Int64(3),
              "documents": [{"_id": 500, "n": 1}]}
    assert ok(r(sharded, insert))["n"] == 1
    assert move(sharded, "ins", src)["sessions"] >= 1
    again = r(sharded, insert, i=1)  # router 2 has not heard of the move: stale
    assert again.get("ok") == 1.0 and not again.get("writeErrors"), again  # no duplicate key
    assert again["n"] == 1
    assert docs(sharded, "ins", {"_id": 500}) == [{"_id": 500, "n": 1}]


def test_retried_find_and_modify_after_the_move_returns_the_first_answer(
        sharded: ShardedCluster) -> None:
    src = setup(sharded, "fam")
    fam = {"findAndModify": "fam", "lsid": session(b"fam"), "txnNumber": Int64(5),
           "query": {"_id": 150}, "update": {"$inc": {"n": 10}}, "new": True}
    first = ok(r(sharded, fam))
    assert first["value"] == {"_id": 150, "n": 10}
    move(sharded, "fam", src)
    again = ok(r(sharded, fam, i=1))
    assert again["value"] == {"_id": 150, "n": 10}  # the recorded answer, not n: 20
    assert docs(sharded, "fam", {"_id": 150}) == [{"_id": 150, "n": 10}]


def test_a_superseded_transaction_is_refused_after_the_move(sharded: ShardedCluster) -> None:
    src = setup(sharded, "old")
    lsid = session(b"old")
    for txn in (1, 2):
        ok(r(sharded, {"update": "old", "lsid": lsid, "txnNumber": Int64(txn),
                       "updates": [{"q": {"_id": 150}, "u": {"$inc": {"n": 1}}}]}))
    move(sharded, "old", src)
    stale = r(sharded, {"update": "old", "lsid": lsid, "txnNumber": Int64(1),
                        "updates": [{"q": {"_id": 150}, "u": {"$inc": {"n": 1}}}]}, i=1)
    codes = {stale.get("code")} | {e.get("code") for e in stale.get("writeErrors", [])}
    assert 225 in codes, stale  # TransactionTooOld: the recipient knows txnNumber 2
    assert docs(sharded, "old", {"_id": 150}) == [{"_id": 150, "n": 2}]
