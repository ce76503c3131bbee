"""Write concern against real processes: w=N blocking, wtimeout, w larger than the set."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import bson
import grpc
import pytest

from node.local_cluster import CHANNEL_OPTIONS, LocalCluster
from proto import helogale_pb2, helogale_pb2_grpc
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
        # maxTimeMS bounds the same wait: the write applied, w=3 is short, code 50
        reply = cluster.command(p, {"insert": "c", "documents": [{"_id": "mt"}],
                                    "writeConcern": {"w": 3}, "maxTimeMS": 500}, db="app")
        assert reply["ok"] == 1.0 and reply["n"] == 1
        assert reply["writeConcernError"]["code"] == 50
        # a majority write still succeeds with one member down
        ok = cluster.command(p, {"insert": "c", "documents": [{"_id": "maj"}],
                                 "writeConcern": {"w": "majority", "wtimeout": 5000}},
                             db="app")
        assert ok == {"n": 1, "ok": 1.0}
    finally:
        cluster.restart(down)
    cluster.wait_ready(down)
    wait_has(cluster, down, {"wc", "mt", "maj"})
    p = cluster.wait_for_primary()
    reply = cluster.command(p, {"insert": "c", "documents": [{"_id": "all3"}],
                                "writeConcern": {"w": 3, "wtimeout": 20000}}, db="app")
    assert reply == {"n": 1, "ok": 1.0}


def _stream(cluster: LocalCluster, i: int, commands: list[dict[str, Any]]) -> list[tuple[int, dict]]:
    """Send ``commands`` in one batch on a command stream to member ``i``; the replies as
    ``(request id, reply)`` in the order they arrived (request ids count from 1)."""
    batch = helogale_pb2.CommandBatch(commands=[
        helogale_pb2.StreamCommand(request_id=k, db="app", command=bson.encode(cmd))
        for k, cmd in enumerate(commands, start=1)])
    with grpc.insecure_channel(cluster.members[i].address, options=CHANNEL_OPTIONS) as chan:
        stub = helogale_pb2_grpc.CommandStub(chan)
        return [(r.request_id, bson.decode(r.reply))
                for rb in stub.Stream(iter([batch]), timeout=30) for r in rb.replies]


def test_stream_writes_wait_for_their_own_write_concern_only(cluster: LocalCluster) -> None:
    """On one stream, a w=3 write stuck behind a stopped member does not hold up the writes
    sent after it; each reply carries its own write concern's outcome."""
    p = cluster.wait_for_primary()
    down = (p + 1) % 3
    cluster.kill(down)
    try:
        replies = _stream(cluster, p, [
            {"insert": "s", "documents": [{"_id": "w3"}],
             "writeConcern": {"w": 3, "wtimeout": 1500}},
            {"insert": "s", "documents": [{"_id": "w1"}], "writeConcern": {"w": 1}},
            {"update": "s", "updates": [{"q": {"_id": "w1"}, "u": {"$set": {"x": 1}}}],
             "writeConcern": {"w": "majority"}},
            {"insert": "s", "documents": [{"_id": "w0"}], "writeConcern": {"w": 0}},
            {"insert": "s", "documents": [{"_id": "w1"}]},  # duplicate key
            {"count": "s"},
        ])
    finally:
        cluster.restart(down)
    order = [rid for rid, _ in replies]
    by_id = dict(replies)
    assert sorted(order) == [1, 2, 3, 4, 5, 6]
    assert order[-1] == 1  # the w=3 write answered last, after its wtimeout
    assert by_id[1]["n"] == 1 and by_id[1]["writeConcernError"]["code"] == 64
    assert by_id[2] == {"n": 1, "ok": 1.0}
    assert by_id[3] == {"n": 1, "nModified": 1, "ok": 1.0}
    assert by_id[4] == {"ok": 1.0}
    assert by_id[5]["n"] == 0 and by_id[5]["writeErrors"][0]["code"] == 11000
    assert by_id[6]["ok"] == 1.0
    cluster.wait_ready(down)
    wait_has(cluster, down, {"w3", "w1", "w0"}, coll="s")


def test_stream_write_to_a_secondary_is_refused_with_the_primary(cluster: LocalCluster) -> None:
    p = cluster.wait_for_primary()
    s = (p + 1) % 3
    [(_, reply)] = _stream(cluster, s, [{"insert": "s", "documents": [{"_id": "no"}]}])
    assert reply["ok"] == 0.0 and reply["code"] == 10107
    assert reply["primary"] == cluster.members[p].address


def test_writes_waiting_for_w3_do_not_hold_up_other_write_concerns(
        cluster: LocalCluster) -> None:
    """Many w=3 writes stuck behind a stopped member (no wtimeout) take no thread each: a
    majority write with a wtimeout sent after them is answered at once; the w=3 writes are
    answered, without error, once the member is back."""
    p = cluster.wait_for_primary()
    down = (p + 1) % 3
    cluster.kill(down)
    stuck = 100
    commands = [{"insert": "q", "documents": [{"_id": f"w3-{k}"}], "writeConcern": {"w": 3}}
                for k in range(stuck)]
    commands += [{"insert": "q", "documents": [{"_id": "maj"}],
                  "writeConcern": {"w": "majority", "wtimeout": 5000}},
                 {"insert": "q", "documents": [{"_id": "w1"}]}]
    batch = helogale_pb2.CommandBatch(commands=[
        helogale_pb2.StreamCommand(request_id=k, db="app", command=bson.encode(cmd))
        for k, cmd in enumerate(commands, start=1)])
    replies: dict[int, dict[str, Any]] = {}
    try:
        with grpc.insecure_channel(cluster.members[p].address, options=CHANNEL_OPTIONS) as ch:
            stream = helogale_pb2_grpc.CommandStub(ch).Stream(iter([batch]), timeout=60)
            for rb in stream:
                for r in rb.replies:
                    replies[r.request_id] = bson.decode(r.reply)
                if {stuck + 1, stuck + 2} <= set(replies) and down is not None:
                    assert len(replies) == 2  # the w=3 writes still wait
                    assert replies[stuck + 1] == {"n": 1, "ok": 1.0}
                    assert replies[stuck + 2] == {"n": 1, "ok": 1.0}
                    cluster.restart(down)
                    down = None
    finally:
        if down is not None:
            cluster.restart(down)
    assert len(replies) == stuck + 2
    assert all(replies[k] == {"n": 1, "ok": 1.0} for k in range(1, stuck + 1))
