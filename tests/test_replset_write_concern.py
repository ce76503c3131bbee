"""Write concern against real processes: w=N blocking, wtimeout, w larger than the set."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from node.local_cluster import LocalCluster
from tests.replset_helpers import wait_has

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    with LocalCluster(3) as c:
        yield c


def test_w_larger_than_the_set_fails_at_once(cluster: LocalCluster) -> None:
    p = cluster.wait_for_primary()
    reply = cluster.command(p, {"insert": "c", "documents": [{"_id": "big"}],
                                "writeConcern": {"w": 4}}, db="app")
    assert reply["ok"] == 0.0 and reply["code"] == 100
    assert cluster.command(p, {"count": "c", "query": {"_id": "big"}}, db="app")["n"] == 0


def test_w0_w1_majority_all_acknowledge(cluster: LocalCluster) -> None:
    p = cluster.wait_for_primary()
    for i, w in enumerate([1, "majority", 3]):
        reply = cluster.command(p, {"insert": "c", "documents": [{"_id": f"w{i}"}],
                                    "writeConcern": {"w": w}}, db="app")
        assert reply == {"n": 1, "ok": 1.0}
    assert cluster.command(p, {"insert": "c", "documents": [{"_id": "w0"}],
                               "writeConcern": {"w": 0}}, db="app") == {"ok": 1.0}
    wait_has(cluster, p, {"w0", "w1", "w2"})


def test_w3_with_a_member_down_times_out_and_the_write_stays(cluster: LocalCluster) -> None:
    p = cluster.wait_for_primary()
    down = (p + 1) % 3
    cluster.kill(down)
    try:
        started = time.monotonic()
        reply = cluster.command(p, {"insert": "c", "documents": [{"_id": "wc"}],
                                    "writeConcern": {"w": 3, "wtimeout": 800}}, db="app")
        elapsed = time.monotonic() - started
        assert reply["ok"] == 1.0 and reply["n"] == 1
        wce = reply["writeConcernError"]
        assert wce["code"] == 64 and wce["errInfo"]["wtimeout"] is True
        assert 0.7 <= elapsed < 10
        # not undone: the primary and the other secondary hold it
        other = 3 - p - down
        wait_has(cluster, p, {"wc"})
        wait_has(cluster, other, {"wc"})
        # a majority write still succeeds with one member down
        ok = cluster.command(p, {"insert": "c", "documents": [{"_id": "maj"}],
                                 "writeConcern": {"w": "majority", "wtimeout": 5000}},
                             db="app")
        assert ok == {"n": 1, "ok": 1.0}
    finally:
        cluster.restart(down)
    cluster.wait_ready(down)
    wait_has(cluster, down, {"wc", "maj"})
    p = cluster.wait_for_primary()
    reply = cluster.command(p, {"insert": "c", "documents": [{"_id": "all3"}],
                                "writeConcern": {"w": 3, "wtimeout": 20000}}, db="app")
    assert reply == {"n": 1, "ok": 1.0}
