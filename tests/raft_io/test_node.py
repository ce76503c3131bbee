"""RaftNode driver, in one process over real gRPC and WALs: futures, group commit, ReadIndex,
write-concern waits, stalled disks, restart, leadership transfer and membership changes."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from raft.node import (
    LeadershipLost,
    NodeFailed,
    NodeStopped,
    NotLeader,
    RaftNode,
    RaftNodeConfig,
    Snapshotter,
)
from raft.types import Entry
from tests.raft_io.kv_cluster import free_port, wait_until


class Machine:
    """A list-of-entries state machine with snapshot hooks."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.data: list[bytes] = []
        self.indexes: list[int] = []

    def apply(self, entries: list[Entry]) -> list[int]:
        with self.lock:
            for e in entries:
                if e.data:
                    self.data.append(e.data)
                self.indexes.append(e.index)
            return [len(self.data)] * len(entries)

    def take(self) -> bytes:
        with self.lock:
            return b"\n".join(self.data)

    def install(self, blob: bytes) -> None:
        with self.lock:
            self.data = blob.split(b"\n") if blob else []


class Group:
    def __init__(self, root: Path, ids: tuple[int, ...] = (1, 2, 3), **cfg: int) -> None:
        self.root = root
        self.peers = {i: f"127.0.0.1:{free_port()}" for i in ids}
        self.cfg = RaftNodeConfig(**cfg)
        self.machines: dict[int, Machine] = {}
        self.nodes: dict[int, RaftNode] = {}
        self.fatal: list[tuple[int, str, BaseException]] = []
        """Every ``on_fatal(where, exc)`` call, with the node id."""
        self.fatal_seen = threading.Event()
        for i in ids:
            self.start(i)

    def start(self, i: int, *, join: bool = False, machine: Machine | None = None
              ) -> RaftNode:
        m = self.machines[i] = machine or Machine()

        def on_fatal(where: str, exc: BaseException, i: int = i) -> None:
            self.fatal.append((i, where, exc))
            self.fatal_seen.set()

        n = RaftNode(i, self.root / f"n{i}", self.peers, m.apply,
                     snapshotter=Snapshotter(m.take, m.install), config=self.cfg, join=join,
                     on_fatal=on_fatal)
        self.nodes[i] = n.start()
        return n

    def leader(self, timeout: float = 15.0) -> RaftNode:
        def one() -> RaftNode | None:
            leads = [n for n in self.nodes.values() if n.is_leader()]
            return leads[0] if len(leads) == 1 else None
        return wait_until(one, timeout, "one leader")

    def stop(self) -> None:
        for n in self.nodes.values():
            n.stop()


@pytest.fixture
def group(tmp_path: Path):
    g = Group(tmp_path)
    yield g
    g.stop()


def test_proposals_commit_apply_everywhere_in_order(group: Group) -> None:
    lead = group.leader()
    futs = [lead.propose(f"e{i}".encode()) for i in range(300)]
    idx = [f.result(timeout=15) for f in futs]
    assert idx == sorted(idx) and len(set(idx)) == 300
    assert futs[-1].result_value == 300  # what apply returned for that entry
    for m in group.machines.values():
        wait_until(lambda m=m: len(m.data) == 300, 15, "every member to apply")
        assert m.data == [f"e{i}".encode() for i in range(300)]


def test_propose_many_takes_consecutive_indexes_in_order(group: Group) -> None:
    lead = group.leader()
    futs = lead.propose_many([f"m{i}".encode() for i in range(100)])
    idx = [f.result(timeout=15) for f in futs]
    assert idx == list(range(idx[0], idx[0] + 100))
    assert lead.propose_many([]) == []
    for m in group.machines.values():
        wait_until(lambda m=m: len(m.data) == 100, 15, "every member to apply")
        assert m.data == [f"m{i}".encode() for i in range(100)]
    follower = next(n for n in group.nodes.values() if n is not lead)
    wait_until(lambda: follower.leader_id() == lead.id, 10, "follower to know the leader")
    for f in follower.propose_many([b"a", b"b"]):
        with pytest.raises(NotLeader):
            f.result(timeout=5)


def test_group_commit_many_proposals_few_fsyncs(group: Group) -> None:
    lead = group.leader()
    lead.propose(b"warm").result(timeout=15)
    before = lead.storage.fsyncs
    futs = [lead.propose(b"x" * 200) for _ in range(1000)]
    for f in futs:
        f.result(timeout=15)
    assert lead.storage.fsyncs - before < 200  # many entries per fsync


def test_follower_refuses_with_leader_hint(group: Group) -> None:
    lead = group.leader()
    follower = next(n for n in group.nodes.values() if n is not lead)
    wait_until(lambda: follower.leader_id() == lead.id, 10, "follower to know the leader")
    with pytest.raises(NotLeader) as info:
        follower.propose(b"nope").result(timeout=5)
    assert info.value.leader == lead.id


def test_read_index_and_write_concern(group: Group) -> None:
    lead = group.leader()
    i = lead.propose(b"w").result(timeout=15)
    assert lead.read_index().result(timeout=5) >= i
    assert lead.wait_for_match(i, 3, timeout=10)
    assert not lead.wait_for_match(i + 1000, 2, timeout=0.2)
    follower = next(n for n in group.nodes.values() if n is not lead)
    assert follower.read_index().result(timeout=5) >= i  # forwarded to the leader
    assert not follower.wait_for_match(i, 1, timeout=0.2)  # w=N waits are the leader's
    st = lead.status()
    assert {k: v.match >= i for k, v in st.progress.items()} == {1: True, 2: True, 3: True}


def test_stalled_leader_fsync_does_not_cost_leadership(group: Group) -> None:
    lead = group.leader()
    term = lead.view.term
    real_flush = lead.storage.flush
    stalled = threading.Event()

    def slow_flush() -> None:
        if not stalled.is_set():
            stalled.set()
            time.sleep(1.5)  # the simulated disk stall: several election timeouts long
        real_flush()

    lead.storage.flush = slow_flush  # type: ignore[method-assign]
    fut = lead.propose(b"during-stall")
    wait_until(stalled.is_set, 5, "the stall to begin")
    # Followers hold a majority: the entry commits on their acks while the leader's disk hangs.
    others = [n for n in group.nodes.values() if n is not lead]
    wait_until(lambda: all(n.view.commit >= lead.view.last_index for n in others), 5,
               "followers to commit during the stall")
    fut.result(timeout=10)
    assert lead.is_leader() and lead.view.term == term
    assert all(n.view.term == term and n.leader_id() == lead.id for n in others)


def test_stalled_follower_fsync_keeps_it_following(group: Group) -> None:
    lead = group.leader()
    term = lead.view.term
    slow = next(n for n in group.nodes.values() if n is not lead)
    real_flush = slow.storage.flush
    stalled = threading.Event()

    def slow_flush() -> None:
        if not stalled.is_set():
            stalled.set()
            time.sleep(3.0)  # the simulated disk stall on a follower
        real_flush()

    slow.storage.flush = slow_flush  # type: ignore[method-assign]
    futs = [lead.propose(b"f%d" % i) for i in range(20)]
    wait_until(stalled.is_set, 5, "the follower's stall to begin")
    for f in futs:  # the other follower and the leader form the quorum meanwhile
        f.result(timeout=2.5)
    assert stalled.is_set() and slow.view.term == term and slow.leader_id() == lead.id
    wait_until(lambda: slow.applied_index >= futs[-1].result(), 10, "the slow follower to apply")
    assert lead.is_leader() and lead.view.term == term


def test_restart_replays_and_keeps_serving(tmp_path: Path) -> None:
    g = Group(tmp_path, snapshot_every=50, keep_entries=10)
    try:
        lead = g.leader()
        for f in [lead.propose(f"r{i}".encode()) for i in range(120)]:
            f.result(timeout=15)
        wait_until(lambda: lead.storage.snapshot().meta.index >= 50
                   and lead.storage.first_index() > 1, 10, "a snapshot and compaction")
    finally:
        g.stop()
    g2 = Group(tmp_path, snapshot_every=50, keep_entries=10)
    try:
        g2.peers = g.peers
        lead = g2.leader()
        lead.propose(b"after").result(timeout=15)
        for m in g2.machines.values():
            wait_until(lambda m=m: m.data[-1:] == [b"after"], 15, "restarted members to apply")
            assert m.data == [f"r{i}".encode() for i in range(120)] + [b"after"]
    finally:
        g2.stop()


def test_large_entries_snapshot_and_compact_by_bytes(tmp_path: Path) -> None:
    """Entry counts alone would keep 1000 entries of 8 KiB; the byte bounds snapshot every
    64 KiB applied and keep at most 32 KiB of entries behind the snapshot."""
    g = Group(tmp_path, snapshot_every=100000, keep_entries=1000, snapshot_bytes=64 << 10,
              keep_bytes=32 << 10)
    try:
        lead = g.leader()
        payload = [bytes([65 + i % 26]) * (8 << 10) for i in range(40)]  # no "\n": see take()
        for f in [lead.propose(p) for p in payload]:
            f.result(timeout=15)

        def compacted() -> bool:
            kept = lead.storage.last_index() - lead.storage.first_index() + 1
            return lead.storage.snapshot().meta.index >= 8 and kept <= 12
        wait_until(compacted, 10, "a snapshot by bytes and compaction by bytes")
    finally:
        g.stop()
    g2 = Group(tmp_path, snapshot_every=100000, keep_entries=1000, snapshot_bytes=64 << 10,
               keep_bytes=32 << 10)
    try:
        g2.peers = g.peers
        lead = g2.leader()
        lead.propose(b"after").result(timeout=15)
        for m in g2.machines.values():
            wait_until(lambda m=m: m.data[-1:] == [b"after"], 15, "restarted members to apply")
            assert m.data == [*payload, b"after"]
    finally:
        g2.stop()


def test_transfer_leadership(group: Group) -> None:
    lead = group.leader()
    target = next(i for i in group.nodes if i != lead.id)
    wait_until(lambda: lead.status().progress[target].match >= lead.view.commit, 10, "catch-up")
    lead.transfer_leadership(target)
    wait_until(lambda: group.nodes[target].is_leader(), 10, "the transferee to lead")
    group.nodes[target].propose(b"new-leader").result(timeout=10)


def test_add_and_remove_member(tmp_path: Path) -> None:
    g = Group(tmp_path)
    try:
        lead = g.leader()
        for f in [lead.propose(f"m{i}".encode()) for i in range(20)]:
            f.result(timeout=15)
        g.peers[4] = f"127.0.0.1:{free_port()}"
        new = g.start(4, join=True)
        lead.add_member(4, g.peers[4]).result(timeout=15)
        wait_until(lambda: len(g.machines[4].data) == 20, 20, "the new member to catch up")
        i = lead.propose(b"four").result(timeout=15)
        assert lead.wait_for_match(i, 4, timeout=15)
        assert 4 in lead.view.voters
        lead.remove_member(4).result(timeout=15)
        wait_until(lambda: 4 not in lead.view.voters, 10, "the removal to apply")
        lead.propose(b"three-again").result(timeout=15)
        new.stop()
    finally:
        g.stop()


def test_learner_catches_up_without_voting(tmp_path: Path) -> None:
    g = Group(tmp_path)
    try:
        def committed_all() -> bool:  # a loaded machine may change leaders meanwhile
            try:
                for f in [g.leader().propose(f"l{i}".encode()) for i in range(10)]:
                    f.result(timeout=15)
            except (LeadershipLost, NotLeader):
                return False
            return True

        wait_until(committed_all, 60, "ten entries committed")
        lead = g.leader()
        g.peers[5] = f"127.0.0.1:{free_port()}"
        g.start(5, join=True)
        lead.add_member(5, g.peers[5], learner=True).result(timeout=15)
        wanted = g.machines[lead.id].data
        wait_until(lambda: g.machines[5].data == wanted, 20, "the learner to catch up")
        assert 5 not in lead.view.voters and 5 not in lead.view.match  # no vote, no w=N count
        assert lead.status().progress[5].is_learner
        lead.add_member(5, g.peers[5]).result(timeout=15)  # promotion
        wait_until(lambda: 5 in lead.view.voters, 10, "the promotion to apply")
        remembered = json.loads((tmp_path / f"n{lead.id}" / "peers.json").read_text())
        assert remembered["5"] == g.peers[5]  # reachable after a restart from a snapshot
    finally:
        g.stop()


def test_stop_fails_pending_futures(tmp_path: Path) -> None:
    g = Group(tmp_path, ids=(1, 2, 3))
    lead = g.leader()
    for n in list(g.nodes.values()):
        if n is not lead:
            n.stop()
    fut = lead.propose(b"never-committed")  # no quorum left
    lead.stop()
    with pytest.raises((NodeStopped, NotLeader)):
        fut.result(timeout=5)
    with pytest.raises(NodeStopped):
        lead.propose(b"after-stop").result(timeout=1)
    g.stop()


def test_leadership_loss_fails_pending_proposals_at_once(tmp_path: Path) -> None:
    """A leader cut off from its followers steps down (check-quorum) within an election
    timeout; what it proposed and had not seen committed fails right then with a retryable
    LeadershipLost, instead of waiting for a log index that may come much later or never."""
    g = Group(tmp_path)
    try:
        lead = g.leader()
        lead.propose(b"warm").result(timeout=15)
        for n in list(g.nodes.values()):
            if n is not lead:
                n.stop()
        futs = [lead.propose(b"p%d" % i) for i in range(5)]
        started = time.monotonic()
        for f in futs:
            with pytest.raises(LeadershipLost) as info:
                f.result(timeout=10)
            assert isinstance(info.value, NotLeader)
        # election_tick 10 x 20 ms: the step-down comes within a few hundred milliseconds
        assert time.monotonic() - started < 2.0
        assert not lead.is_leader()
    finally:
        g.stop()


def _others_elect_and_serve(group: Group, failed: RaftNode) -> None:
    others = [n for n in group.nodes.values() if n is not failed]
    new = wait_until(lambda: next((n for n in others if n.is_leader()), None), 10,
                     "the others to elect a leader")
    new.propose(b"after-the-failure").result(timeout=10)


def test_wal_write_failure_is_fatal(group: Group) -> None:
    """The leader's disk fills: ONE fatal call; at once the node no longer says it leads, what
    it had pending fails (retryable NodeFailed), new requests fail at once; once it halts the
    others elect a leader and go on."""
    lead = group.leader()
    lead.propose(b"warm").result(timeout=15)

    def disk_full(*args: Any, **kwargs: Any) -> None:
        raise OSError(28, "No space left on device")

    lead.storage.save = disk_full  # type: ignore[method-assign]
    futs = [lead.propose(b"f%d" % i) for i in range(3)]
    assert group.fatal_seen.wait(5)
    assert not lead.is_leader()
    for f in futs:
        with pytest.raises(NodeFailed, match="No space left"):
            f.result(timeout=1)
    with pytest.raises(NodeFailed):
        lead.propose(b"late").result(timeout=1)
    with pytest.raises(NodeFailed):
        lead.read_index().result(timeout=1)
    assert lead.failure is not None and isinstance(lead.failure, NodeStopped)
    lead.halt()  # what a member does once it stepped down (or could not): it goes quiet
    _others_elect_and_serve(group, lead)
    assert [(i, where, type(exc)) for i, where, exc in group.fatal] == [
        (lead.id, "persist", OSError)]


def test_apply_failure_is_fatal(group: Group) -> None:
    lead = group.leader()
    follower = next(n for n in group.nodes.values() if n is not lead)
    lead.propose(b"warm").result(timeout=15)

    def broken_apply(entries: list[Entry]) -> list[int]:
        raise RuntimeError("store failed")

    follower._apply_fn = broken_apply  # type: ignore[method-assign]
    lead.propose(b"x").result(timeout=10)  # the leader and the other follower commit it
    assert group.fatal_seen.wait(5)
    assert [(i, where) for i, where, _ in group.fatal] == [(follower.id, "persist")]
    assert lead.is_leader()


def test_raft_loop_failure_is_fatal(group: Group) -> None:
    lead = group.leader()
    lead.propose(b"warm").result(timeout=15)

    def bug() -> Any:
        raise RuntimeError("a bug in the loop")

    lead.raw.ready = bug  # type: ignore[method-assign]
    fut = lead.propose(b"p")
    assert group.fatal_seen.wait(5)
    assert [(i, where) for i, where, _ in group.fatal] == [(lead.id, "raft loop")]
    assert not lead.is_leader() and not lead.loop_alive
    with pytest.raises(NodeStopped):
        fut.result(timeout=1)
    _others_elect_and_serve(group, lead)


def test_snapshot_install_failure_is_fatal(tmp_path: Path) -> None:
    """A lagging member gets a snapshot it cannot install (a bad image, a full disk): fatal,
    never a member that goes on with a log that no longer matches its state."""
    g = Group(tmp_path, snapshot_every=20, keep_entries=5)
    try:
        lead = g.leader()
        lagging = next(i for i in g.nodes if i != lead.id)
        g.nodes[lagging].stop()
        for f in [lead.propose(b"s%d" % i) for i in range(60)]:
            f.result(timeout=15)
        wait_until(lambda: lead.storage.first_index() > 10, 10, "the leader to compact")

        class BadImage(Machine):
            def install(self, blob: bytes) -> None:
                raise ValueError("snapshot image is corrupt")

        n = g.start(lagging, machine=BadImage())
        assert g.fatal_seen.wait(15)
        assert [(i, where, type(exc)) for i, where, exc in g.fatal] == [
            (lagging, "persist", ValueError)]
        assert n.failure is not None and n.snapshots_installed == 0
        lead.propose(b"still-serving").result(timeout=10)  # the other two go on
    finally:
        g.stop()


def test_background_snapshot_does_not_hold_up_applying(tmp_path: Path) -> None:
    """With ``Snapshotter.capture`` the image is fixed on the apply thread and produced on
    another: entries keep committing and applying while it is produced, and the log is
    compacted behind it only once it is saved. The image is the state as of capture."""
    release = threading.Event()
    captured: list[int] = []

    class Capturing(Machine):
        def capture(self) -> Any:
            with self.lock:
                image = b"\n".join(self.data)
                captured.append(len(self.data))

            def produce() -> bytes:
                release.wait(20)
                return image
            return produce

    g = Group.__new__(Group)
    g.root, g.peers = tmp_path, {i: f"127.0.0.1:{free_port()}" for i in (1, 2, 3)}
    g.cfg = RaftNodeConfig(snapshot_every=30, keep_entries=5)
    g.machines, g.nodes = {}, {}
    for i in (1, 2, 3):
        m = g.machines[i] = Capturing()
        g.nodes[i] = RaftNode(i, tmp_path / f"n{i}", g.peers, m.apply,
                              snapshotter=Snapshotter(m.take, m.install, m.capture),
                              config=g.cfg).start()
    try:
        lead = g.leader()
        for f in [lead.propose(f"b{i}".encode()) for i in range(40)]:
            f.result(timeout=15)
        wait_until(lambda: len(captured) >= 3, 10, "every member to capture an image")
        # the images are still being produced: applying goes on, nothing is compacted yet
        for f in [lead.propose(f"c{i}".encode()) for i in range(100)]:
            f.result(timeout=15)
        assert all(n.storage.first_index() == 1 for n in g.nodes.values())
        assert all(n.storage.snapshot().meta.index == 0 for n in g.nodes.values())
        release.set()
        for n in g.nodes.values():
            wait_until(lambda n=n: n.storage.snapshot().meta.index >= 30, 10, "snapshot saved")
        lead.propose(b"after").result(timeout=15)  # the next apply compacts behind it
        everything = [f"b{i}".encode() for i in range(40)] + [f"c{i}".encode() for i in range(100)]
        for n in g.nodes.values():
            wait_until(lambda n=n: n.storage.first_index() > 1, 10, "compaction")
            image = n.storage.snapshot().data.split(b"\n")
            assert image == everything[:len(image)]  # a prefix: the state as of its capture
    finally:
        g.stop()


def test_the_observer_sees_elections_appends_fsyncs_and_proposals(tmp_path: Path) -> None:
    """The driver's optional Observer (the metrics of node/ops/raft_metrics.py)."""
    from node.ops.raft_metrics import RaftMetrics
    from raft.types import StateRole

    class Recorder(RaftMetrics):
        def __init__(self) -> None:
            super().__init__()
            self.roles: list[StateRole] = []
            self.appends: list[tuple[int, int, bool]] = []

        def on_role(self, role: StateRole, term: int) -> None:
            super().on_role(role, term)
            self.roles.append(role)

        def on_append(self, first_index: int, last_index: int, term: int, leader: bool
                      ) -> None:
            super().on_append(first_index, last_index, term, leader)
            self.appends.append((first_index, last_index, leader))

    obs = Recorder()
    m = Machine()
    node = RaftNode(1, tmp_path / "n1", {1: f"127.0.0.1:{free_port()}"}, m.apply,
                    observer=obs).start()
    try:
        wait_until(node.is_leader, 15, "the single member to lead")
        futs = [node.propose(f"p{i}".encode()) for i in range(20)]
        last = max(f.result(timeout=15) for f in futs)
        wait_until(lambda: obs.proposals.count == 20, 15, "every proposal observed")
        assert StateRole.CANDIDATE in obs.roles and obs.roles[-1] == StateRole.LEADER
        assert node.elections >= 1 and node.leader_terms == 1
        assert obs.became_leader == 1 and obs.last_election is not None
        assert obs.fsync.count >= 1 and obs.proposals_failed == 0
        assert max(hi for _, hi, _ in obs.appends) == last
        assert any(leader for _, _, leader in obs.appends)
        written = obs.written_at(last)
        assert written is not None and written <= time.time()
        assert obs.lag_seconds(last, last) == 0.0
        assert obs.lag_seconds(last - 1, last) is not None
        assert obs.written_at(last + 1) is None
    finally:
        node.stop()
