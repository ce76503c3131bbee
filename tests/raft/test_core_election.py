"""Scripted election scenarios for the Raft core: pre-vote, check-quorum, leases, terms."""

from __future__ import annotations

from raft.types import MessageType, StateRole
from tests.raft.cluster import Cluster


def test_single_node_elects_itself_and_commits() -> None:
    c = Cluster([1])
    c.elect(1)
    idx = c.propose(1, b"a")
    assert c.nodes[1].committed == idx
    assert c.data_applied(1) == [b"a"]


def test_three_nodes_elect_one_leader_and_replicate() -> None:
    c = Cluster()
    c.elect(1)
    assert [c.nodes[n].role for n in (2, 3)] == [StateRole.FOLLOWER] * 2
    assert c.nodes[2].leader == 1 and c.nodes[3].leader == 1
    c.propose(1, b"x")
    for n in (1, 2, 3):
        assert c.data_applied(n) == [b"x"]


def test_election_timeout_fires_after_randomized_ticks() -> None:
    c = Cluster()
    c.tick(n=25)  # every node's randomized timeout is in [10, 20)
    leader = c.leader()
    assert leader is not None
    assert sum(1 for r in c.nodes.values() if r.role == StateRole.LEADER) == 1


def test_prevote_keeps_partitioned_node_term() -> None:
    c = Cluster()
    c.elect(1)
    c.isolate(3)
    term = c.nodes[3].term
    c.tick(3, n=100)
    assert c.nodes[3].term == term  # pre-vote failed: no term inflation
    assert c.nodes[3].role == StateRole.PRE_CANDIDATE
    c.heal()
    c.tick(n=3)
    assert c.leader() == 1 and c.nodes[1].term == term


def test_without_prevote_partitioned_node_inflates_term() -> None:
    c = Cluster(pre_vote=False, check_quorum=False)
    c.elect(1)
    c.isolate(3)
    c.tick(3, n=100)
    assert c.nodes[3].term > c.nodes[1].term


def test_check_quorum_leader_steps_down_when_isolated() -> None:
    c = Cluster()
    c.elect(1)
    c.isolate(1)
    c.tick(1, n=25)
    assert c.nodes[1].role == StateRole.FOLLOWER


def test_lease_rejoining_node_with_higher_term_cannot_depose_then_rejoins() -> None:
    # Without pre-vote but with check-quorum: node 3 inflates its term while isolated.
    c = Cluster(pre_vote=False, check_quorum=True)
    c.elect(1)
    c.isolate(3)
    c.tick(3, n=60)
    high = c.nodes[3].term
    assert high > c.nodes[1].term
    c.heal()
    # node 3's vote requests are ignored by nodes in their lease ...
    c.nodes[3].campaign()
    c.stabilize()
    assert c.nodes[2].term < high and c.nodes[2].leader == 1
    # ... but the leader's heartbeat reaches node 3, which answers with its term: the leader
    # steps down and a new election at a higher term includes node 3 (no permanent exile).
    c.tick(n=60)
    ld = c.leader()
    assert ld is not None
    assert all(r.term == c.nodes[ld].term for r in c.nodes.values())
    c.propose(ld, b"after")
    assert all(c.data_applied(n)[-1:] == [b"after"] for n in c.nodes)


def test_prevote_lower_term_longer_log_candidate_learns_term_and_wins() -> None:
    """Deadlock shape: the only node with the longest log has the lowest term."""
    c = Cluster()
    c.elect(1)
    # node 2 gets an entry nobody else keeps; node 3 inflates its term by campaigning
    c.cut = {(1, 3)}
    c.propose(1, b"only-on-1-and-2")
    assert c.nodes[3].log.last_index() < c.nodes[2].log.last_index()
    c.isolate(1)
    # node 3 runs real elections (simulate an old partition without pre-vote)
    c.nodes[3].cfg.pre_vote = False
    c.cut |= {(3, 2), (2, 3)}
    c.tick(3, n=45)
    c.nodes[3].cfg.pre_vote = True
    assert c.nodes[3].term > c.nodes[2].term
    # 1 is gone; 2 has the longer log but a lower term; 3 has the higher term but cannot win
    c.cut = {(1, 2), (2, 1), (1, 3), (3, 1)}
    c.tick(n=120)
    ld = c.leader()
    assert ld == 2, {n: r.status() for n, r in c.nodes.items()}
    assert c.nodes[2].term >= c.nodes[3].term
    rejects = [m for m in c.sent_of(MessageType.PRE_VOTE_RESP) if m.reject and m.frm == 3]
    assert rejects, "node 3 must answer a lower-term pre-vote with its own term"


def test_vote_refused_to_candidate_with_stale_log() -> None:
    c = Cluster(check_quorum=False)  # no lease: node 2 must judge the log
    c.elect(1)
    c.cut = {(1, 3)}
    c.propose(1, b"a")
    c.heal()
    c.isolate(1)
    c.nodes[3].cfg.pre_vote = False
    c.nodes[3].campaign()
    c.stabilize()
    assert c.nodes[3].role != StateRole.LEADER
    resp = [m for m in c.sent_of(MessageType.VOTE_RESP) if m.frm == 2 and m.to == 3]
    assert resp and resp[-1].reject


def test_own_vote_counts_only_after_persistence() -> None:
    c = Cluster([1])
    node = c.nodes[1]
    node.campaign()
    rd = node.ready()
    assert node.role == StateRole.CANDIDATE
    assert rd.hard_state is not None and rd.hard_state.vote == 1
    assert [m.type for m in rd.self_messages] == [MessageType.VOTE_RESP]
    assert node.role == StateRole.CANDIDATE  # not leader before the vote is durable
    c.storage[1].set_hard_state(rd.hard_state)
    node.advance(rd)
    assert node.role == StateRole.LEADER


def test_restart_preserves_term_vote_and_log() -> None:
    c = Cluster()
    c.elect(1)
    c.propose(1, b"a")
    before = c.nodes[2].term, c.nodes[2].vote, c.nodes[2].log.last_index()
    c.restart(2)
    r = c.nodes[2]
    assert (r.term, r.vote, r.log.last_index()) == before
    c.propose(1, b"b")
    assert c.data_applied(2)[-1] == b"b"


def test_vote_requests_wait_for_the_candidates_durable_term() -> None:
    c = Cluster(pre_vote=False)
    node = c.nodes[1]
    node.campaign()
    rd = node.ready()
    assert not [m for m in rd.messages if m.type == MessageType.VOTE]
    votes = [m for m in rd.persisted_messages if m.type == MessageType.VOTE]
    assert sorted(m.to for m in votes) == [2, 3]
    assert rd.hard_state is not None and rd.hard_state.term == votes[0].term


def test_prevote_requests_go_out_at_once() -> None:
    c = Cluster()
    node = c.nodes[1]
    node.campaign()
    rd = node.ready()
    assert sorted(m.to for m in rd.messages if m.type == MessageType.PRE_VOTE) == [2, 3]


def test_a_member_that_answered_in_the_last_check_quorum_window_stays_active() -> None:
    """Check-quorum clears every follower's ``recent_active`` at the end of each window; the
    status must still report a member that answered during the window just closed (else
    replSetGetStatus shows live members as unreachable right after each check)."""
    from raft.types import Message

    c = Cluster()
    c.elect(1)
    c.propose(1, b"x")
    c.stabilize()
    leader = c.nodes[1]
    assert all(leader.status().progress[n].recent_active for n in (2, 3))
    leader.step(Message(MessageType.CHECK_QUORUM))  # a window closes
    assert leader.role == StateRole.LEADER
    assert all(leader.status().progress[n].recent_active for n in (2, 3))
    c.isolate(3)
    c.propose(1, b"y")
    c.stabilize()
    leader.step(Message(MessageType.CHECK_QUORUM))  # a whole window without node 3
    assert leader.role == StateRole.LEADER
    progress = leader.status().progress
    assert progress[2].recent_active and not progress[3].recent_active


def test_leader_unreachable_ends_the_lease_and_campaigns_within_one_timeout() -> None:
    """Told that the leader's connection ended, the followers campaign within one election
    timeout (9 ticks here, where their timers alone would wait 10 to 19)."""
    c = Cluster()
    c.elect(1)
    term = c.nodes[1].term
    c.isolate(1)
    for n in (2, 3):
        c.nodes[n].leader_unreachable(1)
    c.tick(2, n=9)
    c.tick(3, n=9)
    assert c.leader() in (2, 3) and c.nodes[c.leader()].term > term


def test_leader_unreachable_campaigns_within_half_an_election_timeout() -> None:
    """After the leader's connection ended, each follower waits at most half of its random
    spread (0 to 4 ticks here, where the election timeout is 10), so a set whose leader died
    has a new one after 5 ticks, whatever the spreads drawn."""
    for seed in range(20):
        c = Cluster(seed=seed)
        c.elect(1)
        term = c.nodes[1].term
        c.isolate(1)
        for n in (2, 3):
            c.nodes[n].leader_unreachable(1)
        for _ in range(5):
            c.tick(2)
            c.tick(3)
        assert c.leader() in (2, 3) and c.nodes[c.leader()].term > term, seed


def test_leader_unreachable_alone_does_not_depose_a_leader_others_hear() -> None:
    """Only the link 1 -> 2 is cut: node 2 campaigns early, node 3 is still in its lease and
    refuses, so the leader and the term stay."""
    c = Cluster()
    c.elect(1)
    term = c.nodes[1].term
    c.cut.add((1, 2))
    c.nodes[2].leader_unreachable(1)
    c.tick(n=30)
    assert c.leader() == 1 and c.nodes[1].term == term
    assert c.nodes[3].leader == 1


def test_leader_unreachable_for_another_peer_changes_nothing() -> None:
    c = Cluster()
    c.elect(1)
    c.nodes[2].leader_unreachable(3)
    c.tick(2, n=9)
    assert c.leader() == 1 and c.nodes[2].leader == 1


def test_colliding_pre_candidates_with_equal_logs_do_not_split_the_vote() -> None:
    """The leader dies and both followers start pre-votes at the same moment: the lower id
    wins the pre-vote tie, so one real election (one term) elects it."""
    c = Cluster()
    c.elect(1)
    term = c.nodes[2].term
    c.isolate(1)
    for n in (2, 3):  # both become pre-candidates before either hears the other
        c.nodes[n].campaign()
    c.stabilize()
    assert c.nodes[2].role == StateRole.LEADER and c.nodes[2].term == term + 1
    assert c.nodes[3].leader == 2 and c.nodes[3].term == term + 1


def test_pre_candidate_resends_a_pre_vote_the_voter_dropped_in_its_lease() -> None:
    """The leader dies; node 2 notices first and asks for pre-votes while node 3 still counts
    the leader alive (in its lease: the request is dropped unanswered). Once node 3 notices
    too, node 2's next heartbeat-interval retry wins, instead of waiting a whole random
    election timeout (10 to 19 ticks here) to ask again."""
    c = Cluster()
    c.elect(1)
    term = c.nodes[1].term
    c.isolate(1)
    c.nodes[2].campaign()
    c.stabilize()
    assert c.nodes[2].role == StateRole.PRE_CANDIDATE and c.nodes[3].leader == 1
    c.nodes[3].leader_unreachable(1)
    c.tick(2, n=2)
    assert c.leader() == 2 and c.nodes[2].term == term + 1


def test_pre_candidate_resends_only_to_voters_that_did_not_answer() -> None:
    """Node 3 answered node 2's pre-vote (granted); the dead leader 1 and nodes 4 and 5 (in
    their lease) did not: the retry asks only those three."""
    c = Cluster(ids=(1, 2, 3, 4, 5))
    c.elect(1)
    c.isolate(1)
    c.nodes[3].leader_unreachable(1)
    c.nodes[2].campaign()
    c.stabilize()
    assert c.nodes[2].role == StateRole.PRE_CANDIDATE
    before = len(c.sent_of(MessageType.PRE_VOTE))
    c.tick(2, n=1)
    resent = [m for m in c.sent_of(MessageType.PRE_VOTE)[before:] if m.frm == 2]
    assert sorted(m.to for m in resent) == [1, 4, 5]
