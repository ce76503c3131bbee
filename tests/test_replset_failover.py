"""Failover: primary SIGKILL under a steady majority write load; retryable writes across it."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator

import pytest
from bson import Binary

from node.local_cluster import LocalCluster, wait_until
from tests.replset_helpers import wait_has, write_primary

pytestmark = pytest.mark.cluster


@pytest.fixture
def cluster() -> Iterator[LocalCluster]:
    with LocalCluster(3) as c:
        yield c


class Writer(threading.Thread):
    """Inserts with w=majority as retryable writes, following the primary; records acks."""

    def __init__(self, cluster: LocalCluster) -> None:
        super().__init__(daemon=True)
        self.cluster = cluster
        self.acked: set[int] = set()
        self.stop = threading.Event()
        self.lsid = {"id": Binary(uuid.uuid4().bytes, 4)}
        self.ack_times: list[float] = []

    def run(self) -> None:
        n = 0
        while not self.stop.is_set():
            n += 1
            cmd = {"insert": "c", "documents": [{"_id": n}], "lsid": self.lsid,
                   "txnNumber": n, "writeConcern": {"w": "majority", "wtimeout": 5000}}
            while not self.stop.is_set():
                p = self.cluster.primary_index()
                reply = None if p is None else self.cluster.try_command(p, cmd, db="app",
                                                                        timeout=5)
                if reply and reply.get("ok") == 1.0 and reply.get("n") == 1 \
                        and "writeConcernError" not in reply:
                    self.acked.add(n)
                    self.ack_times.append(time.monotonic())
                    break
                self.stop.wait(0.02)  # client retry backoff, as drivers do


def test_primary_sigkill_under_load_loses_no_acknowledged_write(cluster: LocalCluster) -> None:
    writer = Writer(cluster)
    writer.start()
    try:
        wait_until(lambda: len(writer.acked) >= 20, 30, "writes before the kill")
        old = cluster.wait_for_primary()
        killed_at = time.monotonic()
        cluster.kill(old)
        new = cluster.wait_for_primary(timeout=15, exclude=old)
        assert new != old
        wait_until(lambda: any(t > killed_at for t in writer.ack_times), 15,
                   "a majority write acknowledged after the kill")
        failover = min(t for t in writer.ack_times if t > killed_at) - killed_at
        assert failover < 10, failover
        count_after = len(writer.acked)
        wait_until(lambda: len(writer.acked) >= count_after + 20, 30, "writes after failover")
    finally:
        writer.stop.set()
        writer.join(30)
    acked = set(writer.acked)
    cluster.restart(old)
    cluster.wait_ready(old)
    for i in range(3):
        wait_has(cluster, i, acked, timeout=60)


def test_retried_write_across_failover_is_applied_once(cluster: LocalCluster) -> None:
    lsid = {"id": Binary(uuid.uuid4().bytes, 4)}
    write_primary(cluster, {"insert": "acct", "documents": [{"_id": 1, "n": 0}],
                            "writeConcern": {"w": 3}})
    inc = {"update": "acct", "updates": [{"q": {"_id": 1}, "u": {"$inc": {"n": 1}}}],
           "lsid": lsid, "txnNumber": 7, "writeConcern": {"w": 3, "wtimeout": 10000}}
    first = write_primary(cluster, inc)
    assert first["nModified"] == 1 and "writeConcernError" not in first
    old = cluster.wait_for_primary()
    cluster.kill(old)
    cluster.wait_for_primary(timeout=15, exclude=old)
    inc["writeConcern"] = {"w": "majority"}
    again = write_primary(cluster, inc)  # the retry a driver sends after a lost reply
    assert again["n"] == 1 and again["nModified"] == 1
    p = cluster.wait_for_primary()
    doc = cluster.command(p, {"find": "acct"}, db="app")["cursor"]["firstBatch"]
    assert doc == [{"_id": 1, "n": 1}]
    nxt = write_primary(cluster, {**inc, "txnNumber": 8})
    assert nxt["nModified"] == 1
    doc = cluster.command(p, {"find": "acct"}, db="app")["cursor"]["firstBatch"]
    assert doc == [{"_id": 1, "n": 2}]
