"""Real processes: a 3-member KV cluster over gRPC on loopback, killed with SIGKILL."""

from __future__ import annotations

import struct
import threading
from pathlib import Path

import bson
import pytest

from tests.raft_io.kv_cluster import KVCluster, wait_until

pytestmark = pytest.mark.cluster


def converged(c: KVCluster, i: int, keys: dict[str, bytes]) -> bool:
    st = c.status(i)
    if not st or st["keys"] < len(keys):
        return False
    return all(c.get(i, k) == v for k, v in keys.items())


def test_elect_kill_leader_restart_catch_up(tmp_path: Path) -> None:
    c = KVCluster(tmp_path, 3).start_all()
    try:
        lead = c.wait_leader()
        keys = {f"a{i}": f"v{i}".encode() for i in range(30)}
        for k, v in keys.items():
            c.put(k, v)
        for i in c.ids:
            wait_until(lambda i=i: converged(c, i, keys), 20, f"member {i} to converge")
        c.kill(lead)
        new = c.wait_leader(exclude=lead)
        assert new != lead
        for k, v in keys.items():  # every acknowledged write survived the leader's death
            assert c.get(new, k) == v
        more = {f"b{i}": f"w{i}".encode() for i in range(30)}
        for k, v in more.items():
            c.put(k, v)
        c.start(lead)
        keys.update(more)
        wait_until(lambda: converged(c, lead, keys), 30, "the restarted member to catch up")
        st_new = c.status(new)
        st_old = c.status(lead)
        assert st_old is not None and st_new is not None
        assert st_old["term"] == st_new["term"] and st_old["role"] == "FOLLOWER"
        wait_until(lambda: c.status(lead)["applied"] >= st_new["commit"], 20, "applied index")
    finally:
        c.stop_all()


def test_lagging_member_is_brought_back_by_snapshot(tmp_path: Path) -> None:
    c = KVCluster(tmp_path, 3, extra_args=["--snapshot-every", "40", "--keep-entries", "5"])
    c.start_all()
    try:
        lead = c.wait_leader()
        lag = next(i for i in c.ids if i != lead)
        c.put("first", b"1")
        wait_until(lambda: converged(c, lag, {"first": b"1"}), 20, "lagging member to start")
        lag_last = c.status(lag)["last_index"]
        c.kill(lag)
        keys = {f"k{i}": str(i).encode() for i in range(200)}
        for k, v in keys.items():
            c.put(k, v)
        wait_until(lambda: c.status(c.wait_leader())["first_index"] > lag_last + 1, 20,
                   "the leader to compact past the lagging member's log")
        c.start(lag)
        keys["first"] = b"1"
        wait_until(lambda: converged(c, lag, keys), 30, "the lagging member to catch up")
        st = c.status(lag)
        assert st["snapshots_installed"] >= 1
        assert st["snapshot_index"] > lag_last
        c.put("after", b"yes")  # and it keeps replicating normally afterwards
        wait_until(lambda: converged(c, lag, {"after": b"yes"}), 20, "replication after install")
    finally:
        c.stop_all()


def test_acknowledged_writes_survive_leader_sigkill_under_load(tmp_path: Path) -> None:
    c = KVCluster(tmp_path, 3).start_all()
    acked: dict[str, bytes] = {}
    lock = threading.Lock()
    stop = threading.Event()

    def writer(w: int) -> None:
        seq = 0
        while not stop.is_set():
            key, value = f"w{w}-{seq}", f"{w}:{seq}".encode()
            try:
                c.put(key, value, timeout=5)
            except TimeoutError:
                continue
            with lock:
                acked[key] = value
            seq += 1

    try:
        lead = c.wait_leader()
        threads = [threading.Thread(target=writer, args=(w,), daemon=True) for w in range(4)]
        for t in threads:
            t.start()
        wait_until(lambda: len(acked) >= 40, 30, "writes before the kill")
        c.kill(lead)
        new = c.wait_leader(exclude=lead)
        n_at_kill = len(acked)
        wait_until(lambda: len(acked) >= n_at_kill + 40, 30, "writes after the kill")
        c.start(lead)
        stop.set()
        for t in threads:
            t.join(timeout=30)
        with lock:
            final = dict(acked)
        for i in c.ids:  # every acknowledged write is on every member, the killed one included
            wait_until(lambda i=i: converged(c, i, final), 30, f"member {i} to hold every ack")
        assert c.status(new)["commit"] >= len(final)
    finally:
        stop.set()
        c.stop_all()


def test_streaming_puts_reply_in_order_and_followers_refuse(tmp_path: Path) -> None:
    c = KVCluster(tmp_path, 3).start_all()
    try:
        lead = c.wait_leader()
        items = [(f"s{i}", f"x{i}".encode()) for i in range(50)]
        replies = c.clients[lead].stream_puts(items)
        assert [r[0] for r in replies] == [1] * 50
        idx = [struct.unpack(">Q", r[1:])[0] for r in replies]
        assert idx == sorted(idx) and len(set(idx)) == 50
        assert all(c.get(lead, k) == v for k, v in items)
        follower = next(i for i in c.ids if i != lead)
        wait_until(lambda: c.status(follower)["leader"] == lead, 10, "follower to know the leader")
        [refused] = c.clients[follower].stream_puts([("nope", b"v")])
        assert refused[0] == 0
        err = bson.decode(refused[1:])
        assert err["code"] == 10107 and err["leader"] == lead
    finally:
        c.stop_all()
