"""Snapshots: compaction, chunked InstallSnapshot for lagging followers, restart from one."""

from __future__ import annotations

from raft.progress import ProgressState
from raft.types import MessageType
from tests.raft.cluster import Cluster


def _compact(c: Cluster, nid: int, data: bytes) -> None:
    node = c.nodes[nid]
    st = c.storage[nid]
    st.create_snapshot(node.applied, node.conf, data)
    st.compact(node.applied)


def test_lagging_follower_catches_up_by_chunked_snapshot() -> None:
    c = Cluster(max_size_per_msg=100, max_inflight_msgs=2)
    c.elect(1)
    c.isolate(3)
    for i in range(40):
        c.propose(1, b"v%d" % i)
    image = bytes(range(256)) * 4  # 1024 bytes -> 11 chunks of <= 100 bytes
    _compact(c, 1, image)
    c.heal()
    c.tick(1, n=3)
    chunks = [m for m in c.sent_of(MessageType.SNAPSHOT) if m.to == 3]
    assert len({m.offset for m in chunks}) == 11
    assert chunks[-1].done and not chunks[0].done
    assert c.storage[3].snapshot().data == image
    assert c.storage[3].snapshot().meta.index == c.storage[1].snapshot().meta.index
    c.propose(1, b"after")
    assert c.data_applied(3)[-1] == b"after"
    assert c.nodes[1].prs[3].state == ProgressState.REPLICATE


def test_lost_snapshot_chunk_is_resent() -> None:
    c = Cluster(max_size_per_msg=64, max_inflight_msgs=1)
    c.elect(1)
    c.isolate(3)
    for i in range(10):
        c.propose(1, b"w%d" % i)
    _compact(c, 1, b"S" * 300)
    c.heal()
    lost: list[int] = []

    def drop(m):
        if m.type == MessageType.SNAPSHOT and m.offset == 128 and not lost:
            lost.append(m.offset)
            return True
        return False

    c.drop = drop
    c.tick(1, n=1)
    assert lost and c.storage[3].snapshot().meta.index == 0
    c.tick(1, n=4)  # heartbeat responses without progress trigger a resend
    assert c.storage[3].snapshot().data == b"S" * 300


def test_follower_restart_mid_snapshot_starts_over() -> None:
    c = Cluster(max_size_per_msg=50, max_inflight_msgs=1)
    c.elect(1)
    c.isolate(3)
    for i in range(10):
        c.propose(1, b"u%d" % i)
    _compact(c, 1, b"Q" * 400)
    c.heal()
    seen = []

    def crash_on_third(m):
        if m.type == MessageType.SNAPSHOT and m.to == 3:
            seen.append(m.offset)
            if len(seen) == 3:
                c.restart(3)  # partial snapshot buffer is lost
        return False

    c.drop = crash_on_third
    c.tick(1, n=6)
    c.drop = None
    c.tick(1, n=4)
    assert c.storage[3].snapshot().data == b"Q" * 400
    rejects = [m for m in c.sent_of(MessageType.SNAPSHOT_RESP) if m.frm == 3 and m.reject]
    assert rejects


def test_restart_from_snapshot_restores_config_and_log() -> None:
    c = Cluster()
    c.elect(1)
    for i in range(5):
        c.propose(1, b"x%d" % i)
    _compact(c, 2, b"img")
    c.restart(2)
    node = c.nodes[2]
    assert node.log.first_index() == c.storage[2].snapshot().meta.index + 1
    assert node.conf.voters == {1, 2, 3}
    assert node.applied == c.storage[2].snapshot().meta.index
    c.propose(1, b"y")
    assert c.data_applied(2)[-1] == b"y"
