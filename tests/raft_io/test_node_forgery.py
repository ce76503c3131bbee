"""A forged InstallSnapshot handed to a running RaftNode (past the transport, as if from an
authenticated peer): it used to be written as a .snap file, fail to install, stop the member,
and stop it again on every restart. Now the application's check refuses it in the core."""

from __future__ import annotations

from pathlib import Path

from raft.node import RaftNode, Snapshotter
from raft.types import ConfState, Message, MessageType, Snapshot, SnapshotMeta
from tests.raft_io.kv_cluster import wait_until
from tests.raft_io.test_node import Group, Machine

MAGIC = b"M1|"


class CheckedMachine(Machine):
    """A state machine whose images carry a magic prefix; ``install`` refuses anything else
    (as the replica's LMDB loader refuses a stream with a bad magic or checksum)."""

    def take(self) -> bytes:
        return MAGIC + super().take()

    def install(self, blob: bytes) -> None:
        if not self.check(blob):
            raise ValueError("not a state-machine image")
        super().install(blob[len(MAGIC):])

    @staticmethod
    def check(blob: bytes) -> bool:
        return blob.startswith(MAGIC)


class CheckedGroup(Group):
    def start(self, i: int, *, join: bool = False) -> RaftNode:
        m = self.machines[i] = CheckedMachine()
        n = RaftNode(i, self.root / f"n{i}", self.peers, m.apply,
                     snapshotter=Snapshotter(m.take, m.install, check=m.check),
                     config=self.cfg, join=join)
        self.nodes[i] = n.start()
        return n


def test_forged_snapshot_is_refused_and_the_member_restarts(tmp_path: Path) -> None:
    g = CheckedGroup(tmp_path)
    try:
        lead = g.leader()
        for f in [lead.propose(b"v%d" % i) for i in range(5)]:
            f.result(timeout=15)
        fid = next(i for i in g.nodes if i != lead.id)
        f = g.nodes[fid]
        wait_until(lambda: f.applied_index >= lead.view.commit, 10, "follower to catch up")
        term = lead.view.term
        meta = SnapshotMeta(10_000, term, ConfState(voters=frozenset(g.nodes)))
        f._receive([Message(MessageType.SNAPSHOT, to=fid, frm=lead.id, term=term,
                            index=meta.index, log_term=term, snapshot=Snapshot(meta, b"junk"),
                            done=True)])
        lead.propose(b"after").result(timeout=15)
        wait_until(lambda: g.machines[fid].data[-1:] == [b"after"], 15,
                   "the follower to keep applying")
        assert not list((tmp_path / f"n{fid}" / "snap").glob("*.snap"))
        assert f.snapshots_installed == 0
        f.stop()
        g.start(fid)  # restarts from its own log
        lead.propose(b"after-restart").result(timeout=15)
        wait_until(lambda: g.machines[fid].data[-1:] == [b"after-restart"], 15,
                   "the restarted follower to apply")
    finally:
        g.stop()
