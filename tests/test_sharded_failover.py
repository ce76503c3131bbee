"""Migrations that survive any failover: the donor's, the recipient's or the config servers'
primary is killed while a chunk migration waits at a chosen phase, under a write load
through the routers. The migration must end committed or rolled back -- the chunk has
exactly one owner, no critical section is left, and every acknowledged write is present
exactly once.

The default suite runs three points of the matrix; ``-m slow`` runs all of it.
"""

from __future__ import annotations

import threading
from typing import Any

import pymongo
import pytest

from node.local_cluster import LocalCluster, wait_until
from node.sharded_cluster import ShardedCluster
from tests.sharded_helpers import WriteLoad, ok, shard_docs

pytestmark = pytest.mark.cluster

DB = "failover"
PHASES = ["cloning", "catching up", "critical section", "committing", "committed"]
VICTIMS = ["donor", "recipient", "config"]
DEFAULT = [("donor", "critical section"), ("recipient", "cloning"), ("config", "committing"),
           ("donor", "committed")]


def r(cluster: ShardedCluster, cmd: dict[str, Any], db: str = DB, i: int = 0) -> dict[str, Any]:
    return cluster.router_command(i, cmd, db=db)


def chunk_owner(cluster: ShardedCluster, ns: str, lo: Any) -> str:
    reply = ok(r(cluster, {"find": "chunks", "filter": {"ns": ns, "min": {"_id": lo}}},
                 db="config"))
    return str(reply["cursor"]["firstBatch"][0]["shard"])


def fail_point(cluster: LocalCluster, member: int, name: str, mode: str) -> int:
    reply = ok(cluster.command(member, {"configureFailPoint": name, "mode": mode}))
    return int(reply["count"])


def settled(cluster: ShardedCluster, ns: str) -> bool:
    """No shard has a migration record or a critical section for ``ns``."""
    for shard in cluster.shards:
        p = shard.primary_index()
        if p is None:
            return False
        status = shard.try_command(p, {"_shardsvrMigrationStatus": 1})
        version = shard.try_command(p, {"getShardVersion": ns})
        if not status or not version or status.get("active") or status.get("recorded") \
                or version.get("inCriticalSection"):
            return False
    return True


def run_case(cluster: ShardedCluster, victim: str, phase: str, tag: str) -> None:
    coll_name = f"c_{tag}"
    ns = f"{DB}.{coll_name}"
    ok(r(cluster, {"shardCollection": ns, "key": {"_id": 1}}, db="admin"))
    ok(r(cluster, {"insert": coll_name, "documents": [{"_id": i, "n": 0} for i in range(200)]}))
    ok(r(cluster, {"split": ns, "middle": {"_id": 100}}, db="admin"))
    donor_name = chunk_owner(cluster, ns, 100)
    to = "shard2" if donor_name == "shard1" else "shard1"
    donor = cluster.shards[int(donor_name[-1]) - 1]
    recipient = cluster.shards[int(to[-1]) - 1]
    point = f"migrationHang.{phase}"
    dp = donor.wait_for_primary()
    fail_point(donor, dp, point, "alwaysOn")

    client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(
        cluster.wire_uri, retryWrites=True, serverSelectionTimeoutMS=60000)
    coll = client[DB][coll_name]
    load = WriteLoad(coll, 1000, range(100, 200))
    mover_result: dict[str, Any] = {}

    def mover() -> None:
        mover_result["reply"] = cluster.try_router(
            0, {"moveChunk": ns, "find": {"_id": 150}, "to": to}, timeout=180) or {}

    mover_thread = threading.Thread(target=mover)
    load.start()
    mover_thread.start()
    killed: tuple[LocalCluster, int] | None = None
    try:
        wait_until(lambda: fail_point(donor, dp, point, "alwaysOn") > 0, 60,
                   f"the migration to reach {phase}")
        if victim == "donor":
            donor.kill(dp)
            killed = (donor, dp)
        else:
            target_set = recipient if victim == "recipient" else cluster.config
            vp = target_set.wait_for_primary()
            target_set.kill(vp)
            killed = (target_set, vp)
            fail_point(donor, dp, point, "off")
        wait_until(lambda: not mover_thread.is_alive(), 120, "moveChunk to return")
        # the killed member comes back; the set it left has elected another primary
        assert killed is not None
        killed[0].restart(killed[1])
        killed[0].wait_ready(killed[1], 60)
        wait_until(lambda: settled(cluster, ns), 120, "the migration to be finished or undone")
    finally:
        load.stop()
        mover_thread.join(120)
        if victim != "donor":
            member = donor.primary_index()
            if member is not None:
                donor.try_command(member, {"configureFailPoint": point, "mode": "off"})
        client.close()
    owner = chunk_owner(cluster, ns, 100)
    assert owner in (donor_name, to)
    # every document is visible on exactly one shard, and on the chunk's owner
    both = load.check(cluster, coll_name, DB, set(range(200)))
    owner_ids = {d["_id"] for d in shard_docs(cluster, int(owner[-1]) - 1, coll_name, db=DB)}
    assert set(range(100, 200)) <= owner_ids
    assert ok(r(cluster, {"count": coll_name}, i=1))["n"] == len(both)


@pytest.mark.parametrize("victim, phase", DEFAULT)
def test_a_migration_survives_a_failover(sharded: ShardedCluster, victim: str,
                                         phase: str) -> None:
    run_case(sharded, victim, phase, f"{victim}_{phase.replace(' ', '_')}")


@pytest.mark.slow
@pytest.mark.parametrize("victim, phase", [(v, p) for v in VICTIMS for p in PHASES
                                           if (v, p) not in DEFAULT])
def test_the_rest_of_the_failover_matrix(sharded: ShardedCluster, victim: str,
                                         phase: str) -> None:
    run_case(sharded, victim, phase, f"m_{victim}_{phase.replace(' ', '_')}")
