"""ReadIndex: linearizable read points confirmed by a quorum heartbeat, no log writes."""

from __future__ import annotations

import pytest

from raft.types import MessageType, ProposalDropped
from tests.raft.cluster import Cluster


def test_leader_read_index_after_quorum_ack() -> None:
    c = Cluster()
    c.elect(1)
    idx = c.propose(1, b"a")
    last = c.nodes[1].log.last_index()
    c.nodes[1].read_index(b"r1")
    c.stabilize()
    rs = c.read_states[1]
    assert [(r.index, r.context) for r in rs] == [(idx, b"r1")]
    assert c.nodes[1].log.last_index() == last  # nothing was written to the log


def test_read_index_needs_a_quorum() -> None:
    c = Cluster()
    c.elect(1)
    c.isolate(1)
    c.nodes[1].read_index(b"r")
    c.stabilize()
    assert c.read_states[1] == []
    c.heal()
    c.tick(1, n=1)  # the next heartbeat carries the pending context
    assert [r.context for r in c.read_states[1]] == [b"r"]


def test_follower_read_index_is_forwarded_and_answered() -> None:
    c = Cluster()
    c.elect(1)
    idx = c.propose(1, b"a")
    c.nodes[3].read_index(b"f")
    c.stabilize()
    assert [(r.index, r.context) for r in c.read_states[3]] == [(idx, b"f")]
    assert c.sent_of(MessageType.READ_INDEX_RESP)


def test_new_leader_answers_only_after_committing_in_its_term() -> None:
    c = Cluster()
    c.elect(1)
    c.propose(1, b"a")
    c.drop = lambda m: m.type == MessageType.APPEND_RESP  # the no-op cannot commit
    c.nodes[1].transfer_leader(2)
    c.stabilize()
    assert c.leader() == 2
    c.nodes[2].read_index(b"early")
    c.stabilize()
    assert c.read_states[2] == []
    c.drop = None
    c.tick(2, n=2)
    assert [r.context for r in c.read_states[2]] == [b"early"]
    assert c.read_states[2][0].index == c.nodes[2].committed


def test_read_index_without_leader_raises() -> None:
    c = Cluster()
    with pytest.raises(ProposalDropped):
        c.nodes[1].read_index(b"x")


def test_single_node_read_index_is_immediate() -> None:
    c = Cluster([1])
    c.elect(1)
    c.nodes[1].read_index(b"s")
    c.stabilize()
    assert [r.context for r in c.read_states[1]] == [b"s"]
