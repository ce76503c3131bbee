"""A migration's registration on the config servers is idempotent by migration id: the donor
re-sends it when the reply was lost (a network error, a config failover), and the re-send must
be recognised as the same migration, not refused as a conflict with itself (which left
``config.migrations`` with an active record its donor had forgotten, blocking every later
move of the collection)."""

from __future__ import annotations

from typing import Any

import pytest
from bson import ObjectId

from node.sharded_cluster import ShardedCluster
from tests.sharded_helpers import ok

pytestmark = pytest.mark.cluster

DB = "regretry"


def cfg(cluster: ShardedCluster, cmd: dict[str, Any]) -> dict[str, Any]:
    p = cluster.config.wait_for_primary()
    return cluster.config.command(p, cmd)


def test_registering_the_same_migration_twice_is_one_registration(sharded: ShardedCluster
                                                                   ) -> None:
    ns = f"{DB}.c"
    ok(sharded.router_command(0, {"shardCollection": ns, "key": {"_id": 1}}))
    chunks = ok(sharded.router_command(0, {"find": "chunks", "filter": {"ns": ns}},
                                       db="config"))["cursor"]["firstBatch"]
    [chunk] = chunks
    donor = chunk["shard"]
    to = "shard2" if donor == "shard1" else "shard1"
    mid = ObjectId()
    register = {"_configsvrRegisterMigration": ns, "migrationId": mid,
                "min": chunk["min"]["_id"], "max": chunk["max"]["_id"],
                "fromShard": donor, "toShard": to}
    try:
        ok(cfg(sharded, register))
        again = cfg(sharded, register)  # the donor's re-send after a lost reply
        assert again.get("ok") == 1.0, again
        other = cfg(sharded, {**register, "migrationId": ObjectId()})
        assert other.get("codeName") == "ConflictingOperationInProgress", other
        active = ok(sharded.router_command(0, {"find": "migrations", "filter": {
            "ns": ns, "state": "active"}}, db="config"))["cursor"]["firstBatch"]
        assert [d["_id"] for d in active] == [mid]
        # once decided, a late re-send cannot bring it back to life
        outcome = ok(cfg(sharded, {"_configsvrMigrationOutcome": mid, "abort": True}))
        assert outcome["state"] == "aborted"
        late = cfg(sharded, register)
        assert late.get("ok") == 0.0 and late.get("codeName") == "ConflictingOperationInProgress"
        # a donor that never heard back aborts an id the config servers never saw: a
        # registration still in flight must not start it afterwards
        late_id = ObjectId()
        gone = ok(cfg(sharded, {"_configsvrMigrationOutcome": late_id, "abort": True}))
        assert gone["state"] == "unknown"
        refused = cfg(sharded, {**register, "migrationId": late_id})
        assert refused.get("codeName") == "ConflictingOperationInProgress", refused
    finally:
        cfg(sharded, {"_configsvrMigrationOutcome": mid, "abort": True})
    # the collection's chunks move again
    ok(sharded.router_command(0, {"moveChunk": ns, "find": {"_id": 0}, "to": to}))
