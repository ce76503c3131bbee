"""The one sharded cluster the sharded tests share (a session fixture in ``conftest.py``):
config servers (3), two shards (3 members each) and two routers, all real processes."""

from __future__ import annotations

import os
from typing import Any

from node.sharded_cluster import ShardedCluster


def start_shared_cluster() -> ShardedCluster:
    """``HELOGALE_TEST_CLUSTER_DIR`` keeps its data and logs there (to read after a failure).
    The balancer runs a round a second when started, and is stopped: tests that want it
    start it (``balancerStart``) and stop it again."""
    cluster = ShardedCluster(shards=2, members=3, routers=2, wire=True, metrics=True,
                             data_dir=os.environ.get("HELOGALE_TEST_CLUSTER_DIR"),
                             extra_args=["--enable-test-commands",
                                         "--balancer-interval-secs", "0.5"]).start(timeout=120)
    ok(cluster.router_command(0, {"balancerStop": 1}))
    return cluster


def ok(reply: dict[str, Any]) -> dict[str, Any]:
    assert reply.get("ok") == 1.0, reply
    return reply


def shard_docs(cluster: ShardedCluster, k: int, coll: str, db: str = "app",
               filt: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """What shard ``k``'s primary returns for a direct (unrouted) find."""
    shard = cluster.shards[k]
    p = shard.wait_for_primary()
    reply = ok(shard.command(p, {"find": coll, "filter": filt or {}, "batchSize": 1_000_000},
                             db=db))
    return list(reply["cursor"]["firstBatch"])
