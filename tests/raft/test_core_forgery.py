"""Forged or malformed messages that reach the core: what they used to break, and that they no
longer do. (The transport refuses unauthenticated senders before any of this; these tests are
about what an authenticated but wrong message could still do, and about the core's own rules.)"""

from __future__ import annotations

from raft.types import (
    ConfChange,
    ConfState,
    Entry,
    EntryType,
    Message,
    MessageType,
    Snapshot,
    SnapshotMeta,
    StateRole,
)
from tests.raft.cluster import Cluster

MT = MessageType


def test_append_resp_beyond_the_leaders_log_commits_nothing_later() -> None:
    """An APPEND_RESP acknowledging an index the leader does not hold yet used to set the
    follower's match there: once the leader's own log reached that index, it counted the
    follower and committed entries that only the leader held."""
    c = Cluster(check_quorum=False)
    leader = c.elect(1)
    c.isolate(1)
    last = leader.log.last_index()
    leader.step(Message(MT.APPEND_RESP, to=1, frm=2, term=leader.term, index=last + 3))
    for i in range(5):
        leader.propose(b"only-on-the-leader-%d" % i)
    c.stabilize()
    assert leader.prs[2].match <= last
    assert leader.committed == last  # nobody else holds the new entries
    c.heal()
    c.tick(1, n=3)
    assert leader.committed == leader.log.last_index()  # they commit once really replicated


def test_forged_heartbeat_commit_does_not_commit_an_unmatched_tail() -> None:
    """A follower used to honour a heartbeat's commit up to its own last index, so a forged
    heartbeat with a huge commit made it apply its uncommitted, conflicting tail."""
    c = Cluster(check_quorum=False, pre_vote=False)
    c.elect(1)
    c.isolate(1)
    old = c.nodes[1]
    old.propose(b"lost1")
    old.propose(b"lost2")
    c.stabilize()
    committed_before = old.committed
    new_leader = c.elect(2)
    c.propose(2, b"kept")
    old.step(Message(MT.HEARTBEAT, to=1, frm=2, term=new_leader.term, commit=10**9))
    c.process(1)
    assert old.role == StateRole.FOLLOWER
    assert old.committed == committed_before  # nothing of the old tail matches leader 2
    assert b"lost1" not in c.data_applied(1)
    c.heal()
    c.tick(2, n=3)
    c.propose(2, b"more")
    assert c.data_applied(1)[-2:] == [b"kept", b"more"]
    assert b"lost1" not in c.data_applied(1) and b"lost2" not in c.data_applied(1)


def test_heartbeat_commit_is_honoured_up_to_the_matched_index() -> None:
    """The honest path still works: entries acknowledged in this term commit by heartbeat."""
    c = Cluster(check_quorum=False)
    c.elect(1)
    c.propose(1, b"a")

    def strip_commit(m: Message) -> bool:  # appends carry no commit: only heartbeats may
        if m.type == MT.APPEND:
            m.commit = 0
        return False

    c.drop = strip_commit
    c.propose(1, b"b")
    follower = c.nodes[3]
    assert follower.committed < c.nodes[1].committed
    c.tick(1, n=1)
    assert follower.committed == c.nodes[1].committed
    assert c.data_applied(3)[-1] == b"b"


def test_snapshot_refused_by_the_application_check_is_never_installed() -> None:
    """A SNAPSHOT whose data fails ``Config.snapshot_ok`` never reaches a Ready (so the driver
    never writes a .snap file for it); the follower keeps its log."""
    checked: list[bytes] = []

    def ok(data: bytes) -> bool:
        checked.append(data)
        return data.startswith(b"GOOD")

    c = Cluster(check_quorum=False, snapshot_ok=ok)
    leader = c.elect(1)
    c.propose(1, b"x")
    f = c.nodes[2]
    before = (f.committed, f.log.last_index())
    meta = SnapshotMeta(before[1] + 100, leader.term, ConfState(voters=frozenset({1, 2, 3})))
    f.step(Message(MT.SNAPSHOT, to=2, frm=1, term=leader.term, index=meta.index,
                   log_term=meta.term, snapshot=Snapshot(meta, b"garbage"), done=True))
    rd = f.ready() if f.has_ready() else None
    assert rd is None or rd.snapshot is None
    assert checked == [b"garbage"]
    assert (f.committed, f.log.last_index()) == before
    if rd is not None:
        resp = [m for m in rd.messages if m.type == MT.SNAPSHOT_RESP]
        assert resp and resp[0].reject and resp[0].reject_hint == 0
        f.advance(rd)
    c.queue.clear()
    c.propose(1, b"y")
    assert c.data_applied(2)[-1] == b"y"


def test_gapped_append_is_refused_by_the_follower() -> None:
    """An APPEND whose entries are not contiguous after ``index`` is ignored by the core; the
    log (and so the WAL the driver writes) never holds a gap."""
    c = Cluster(check_quorum=False)
    leader = c.elect(1)
    f = c.nodes[2]
    last = f.log.last_index()
    f.step(Message(MT.APPEND, to=2, frm=1, term=leader.term, index=last,
                   log_term=f.log.last_term(),
                   entries=[Entry(leader.term, last + 1, EntryType.NORMAL, b"a"),
                            Entry(leader.term, last + 3, EntryType.NORMAL, b"c")]))
    assert f.log.last_index() == last
    rd = f.ready()
    assert rd.entries == []
    f.advance(rd)


def test_restarted_follower_of_an_idle_leader_still_learns_the_commit() -> None:
    """The clamp above must not strand a follower whose durable commit lags (it restarted
    before persisting the last commit) when the leader has nothing new to append: its
    heartbeat response says the commit was held back and the leader sends an append."""
    c = Cluster(check_quorum=False)
    leader = c.elect(1)
    c.propose(1, b"a")
    c.propose(1, b"b")
    st = c.storage[3]
    hs = st.initial_state()[0]
    st.set_hard_state(type(hs)(hs.term, hs.vote, hs.commit - 2))
    f = c.restart(3)
    assert f.committed == leader.committed - 2
    c.tick(1, n=1)
    assert f.committed == leader.committed


def test_committed_conf_change_that_does_not_decode_or_apply_changes_nothing() -> None:
    """A conf-change entry whose data does not decode (or that names member 0, or would
    remove every voter) used to raise inside ``advance`` once committed, on every member and
    again at each restart. Validation now refuses such entries on the wire; one committed
    anyway (an old log) is skipped the same way everywhere, and the configuration stays."""
    from raft import confchange

    c = Cluster(ids=(1,))
    leader = c.elect(1)
    conf = leader.conf
    bad = [b"garbage", b'{"c":[[0,0]],"t":0,"x":""}', b'{"c":[[2,1]],"t":0,"x":""}',
           confchange.encode(ConfChange())]  # the last: leaving a joint config we are not in
    for data in bad:
        leader._append([(EntryType.CONF_CHANGE, data)])
        c.stabilize()
        assert leader.conf == conf
    assert leader.committed == leader.log.last_index()
    c.propose(1, b"after")
    assert b"after" in c.data_applied(1)
    restarted = c.restart(1)  # replays the configuration from the log
    assert restarted.conf == conf
