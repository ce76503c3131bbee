"""Scripted replication scenarios: commitment rules, conflicts, batching and flow control."""

from __future__ import annotations

import pytest

from raft.progress import ProgressState
from raft.types import Entry, HardState, MessageType, ProposalDropped, StateRole
from tests.raft.cluster import Cluster


def test_old_term_entry_is_not_committed_by_counting_replicas() -> None:
    """Raft's Figure 8: a leader may not commit an entry of an earlier term by replica count."""
    c = Cluster([1, 2, 3, 4, 5], check_quorum=False, pre_vote=False)
    # node 1 holds X (term 2) that nobody else has; everyone has entry 1; terms are at 3
    for nid in c.nodes:  # entry 1 is the bootstrap configuration
        c.storage[nid].set_hard_state(HardState(term=3, commit=1))
    c.storage[1].append([Entry(2, 2, data=b"X")])
    for nid in list(c.nodes):
        c.restart(nid)

    def strip_own_term(m):  # deliver old entries only, never the new leader's no-op
        if m.type == MessageType.APPEND and m.frm == 1:
            m.entries = [e for e in m.entries if e.term != c.nodes[1].term]
        return False

    c.drop = strip_own_term
    c.cut = {(1, 4), (1, 5)}
    c.elect(1)
    leader = c.nodes[1]
    assert leader.term == 4
    assert leader.prs[2].match == 2 and leader.prs[3].match == 2  # X is on 1, 2, 3
    assert leader.committed == 1  # ... but X (term 2) is not committed by counting
    c.heal()
    c.tick(1, n=2)
    assert leader.committed == 3  # the term-4 no-op commits, and X with it
    assert c.data_applied(5) == [b"X"]


def test_follower_truncates_conflicting_tail() -> None:
    c = Cluster(check_quorum=False, pre_vote=False)
    c.elect(1)
    c.isolate(1)
    c.nodes[1].propose(b"lost1")
    c.nodes[1].propose(b"lost2")
    c.stabilize()
    c.elect(2)
    c.propose(2, b"kept")
    c.heal()
    c.tick(2, n=2)  # heartbeats make 1 step down and catch up
    assert c.nodes[1].role == StateRole.FOLLOWER
    c.propose(2, b"more")
    assert c.data_applied(1)[-2:] == [b"kept", b"more"]
    assert b"lost1" not in c.data_applied(1)
    assert [e.data for e in c.storage[1].entries(1, c.storage[1].last_index() + 1)] == \
        [e.data for e in c.storage[2].entries(1, c.storage[2].last_index() + 1)]


def test_many_proposals_between_readies_go_in_one_append_per_peer() -> None:
    c = Cluster()
    c.elect(1)
    leader = c.nodes[1]
    for i in range(50):
        leader.propose(b"p%d" % i)
    rd = leader.ready()
    appends = [m for m in rd.messages if m.type == MessageType.APPEND]
    assert sorted(m.to for m in appends) == [2, 3]
    assert all(len(m.entries) == 50 for m in appends)
    assert len(rd.entries) == 50  # one persistence batch (one fsync) for all of them


def test_propose_batch_returns_last_index() -> None:
    c = Cluster()
    c.elect(1)
    last = c.nodes[1].propose_batch([b"a", b"b", b"c"])
    c.stabilize()
    assert c.nodes[1].log.last_index() == last
    assert c.data_applied(3)[-3:] == [b"a", b"b", b"c"]


def test_inflight_window_bounds_unacknowledged_appends() -> None:
    c = Cluster(max_inflight_msgs=3, max_size_per_msg=1)
    c.elect(1)
    c.drop = lambda m: m.type == MessageType.APPEND_RESP and m.frm == 3  # 3 never acks
    for i in range(20):
        c.nodes[1].propose(b"e%d" % i)
    c.stabilize()
    pr3 = c.nodes[1].prs[3]
    assert pr3.state == ProgressState.REPLICATE
    assert pr3.inflights.count() == 3
    to3 = [m for m in c.sent_of(MessageType.APPEND) if m.to == 3 and m.entries]
    assert len(to3) <= 4  # the window caps in-flight messages (plus the no-op probe)
    # the slow follower did not stall the others: everything committed through node 2
    assert c.nodes[1].committed == c.nodes[1].log.last_index()
    assert len(c.data_applied(2)) == 20


def test_rejected_append_backtracks_by_term_and_recovers() -> None:
    c = Cluster(check_quorum=False, pre_vote=False)
    c.elect(1)
    c.isolate(3)
    for i in range(30):
        c.nodes[1].propose(b"a%d" % i)
    c.stabilize()
    c.heal()
    c.tick(1, n=1)
    assert c.nodes[3].log.last_index() == c.nodes[1].log.last_index()
    assert c.nodes[1].prs[3].state == ProgressState.REPLICATE


def test_lost_append_is_recovered_by_heartbeat() -> None:
    c = Cluster()
    c.elect(1)
    dropped = []

    def drop(m):
        if m.type == MessageType.APPEND and m.to == 2 and m.entries and not dropped:
            dropped.append(m)
            return True
        return False

    c.drop = drop
    c.propose(1, b"z")
    assert dropped
    # the commit broadcast's empty append exposed the gap and the entry was resent
    assert c.data_applied(2)[-1] == b"z"
    c.drop = lambda m: m.type == MessageType.APPEND and m.to == 2  # now lose every append
    c.propose(1, b"y")
    assert c.nodes[2].log.last_index() < c.nodes[1].log.last_index()
    c.drop = None
    c.tick(1, n=2)  # the heartbeat response reveals the follower is behind
    assert c.data_applied(2)[-1] == b"y"


def test_status_exposes_match_indexes_for_write_concern() -> None:
    c = Cluster()
    c.elect(1)
    c.cut = {(1, 3)}
    idx = c.propose(1, b"w")
    st = c.nodes[1].status()
    assert st.progress[1].match == idx and st.progress[2].match == idx
    assert st.progress[3].match < idx
    assert c.nodes[1].match_index(2) == idx
    assert st.commit == idx and st.role == StateRole.LEADER and st.leader == 1


def test_leader_self_ack_waits_for_its_own_fsync() -> None:
    c = Cluster([1])
    c.elect(1)
    node = c.nodes[1]
    idx = node.propose(b"d")
    rd = node.ready()
    assert rd.entries[-1].index == idx
    assert node.committed < idx  # not durable yet
    c.storage[1].append(rd.entries)
    node.advance(rd)
    assert node.committed == idx


def test_follower_restart_keeps_only_persisted_entries() -> None:
    c = Cluster()
    c.elect(1)
    c.propose(1, b"a")
    node2 = c.nodes[2]
    c.nodes[1].propose(b"b")
    rd = c.nodes[1].ready()
    c.storage[1].append(rd.entries)
    for m in rd.messages:
        if m.to == 2:
            node2.step(m)
    rd2 = node2.ready()
    assert rd2.entries and not rd2.messages  # the ack waits for persistence
    assert [m.type for m in rd2.persisted_messages] == [MessageType.APPEND_RESP]
    # crash before persisting: restart loses "b"
    c.restart(2)
    assert c.nodes[2].log.last_index() == c.storage[2].last_index()
    assert c.nodes[2].log.last_index() < c.nodes[1].log.last_index()
    c.tick(1, n=2)
    assert c.data_applied(2)[-1] == b"b"


def test_uncommitted_backlog_is_bounded() -> None:
    c = Cluster(max_uncommitted_entries=5)
    c.elect(1)
    c.isolate(1)
    for i in range(5):
        c.nodes[1].propose(b"q%d" % i)
    with pytest.raises(ProposalDropped):
        c.nodes[1].propose(b"one too many")
    c.heal()
    c.tick(1, n=2)
    c.propose(1, b"accepted again")
