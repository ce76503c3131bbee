"""Helpers shared by the multi-process replica-set tests (tests/test_replset_*.py)."""

from __future__ import annotations

from typing import Any

from node.local_cluster import LocalCluster, wait_until

SECONDARY = {"mode": "secondary"}


def ids_on(cluster: LocalCluster, i: int, coll: str = "c", db: str = "app") -> set[Any] | None:
    """The ``_id``s member ``i`` holds (read with secondary preference), None if unreachable."""
    reply = cluster.try_command(i, {"find": coll, "projection": {"_id": 1}, "batchSize": 100000,
                                    "$readPreference": {"mode": "nearest"}}, db=db, timeout=5)
    if not reply or reply.get("ok") != 1.0:
        return None
    return {d["_id"] for d in reply["cursor"]["firstBatch"]}


def wait_has(cluster: LocalCluster, i: int, wanted: set[Any], timeout: float = 30.0,
             coll: str = "c") -> None:
    """Block until member ``i`` holds every ``_id`` in ``wanted``."""
    def ok() -> bool:
        got = ids_on(cluster, i, coll)
        return got is not None and wanted <= got
    wait_until(ok, timeout, f"member {i} to hold {len(wanted)} documents")


def write_primary(cluster: LocalCluster, cmd: dict[str, Any], db: str = "app",
                  timeout: float = 30.0) -> dict[str, Any]:
    """Run a write on whoever is primary, following NotWritablePrimary / failover errors."""
    result: dict[str, Any] = {}

    def attempt() -> bool:
        p = cluster.primary_index()
        if p is None:
            return False
        reply = cluster.try_command(p, cmd, db=db, timeout=10)
        if reply is None or reply.get("code") in (10107, 11602, 13435):
            return False
        result.update(reply)
        return True

    wait_until(attempt, timeout, "a write to be accepted by a primary")
    return result
