"""Membership changes: learners, promotion, removal (incl. the leader), joint consensus."""

from __future__ import annotations

import random

import pytest

from raft import confchange
from raft.core import Config, RawNode
from raft.memory_storage import MemoryStorage
from raft.types import (
    ConfChange,
    ConfChangeSingle,
    ConfChangeTransition,
    ConfChangeType,
    ConfState,
    Entry,
    EntryType,
    Message,
    MessageType,
    ProposalDropped,
    StateRole,
)
from tests.raft.cluster import Cluster

A, R, L = ConfChangeType.ADD_NODE, ConfChangeType.REMOVE_NODE, ConfChangeType.ADD_LEARNER


def cc(*changes: tuple[ConfChangeType, int], transition=ConfChangeTransition.AUTO) -> ConfChange:
    return ConfChange(tuple(ConfChangeSingle(t, n) for t, n in changes), transition)


def test_encode_decode_roundtrip() -> None:
    x = cc((A, 4), (L, 2), transition=ConfChangeTransition.JOINT_EXPLICIT)
    assert confchange.decode(confchange.encode(x)) == x


def test_simple_and_joint_transitions() -> None:
    cs = ConfState(voters=frozenset({1, 2, 3}))
    simple = confchange.apply(cs, cc((A, 4)))
    assert simple.voters == {1, 2, 3, 4} and not simple.joint
    joint = confchange.apply(cs, cc((A, 4), (R, 1)))
    assert joint.joint and joint.voters_outgoing == {1, 2, 3} and joint.voters == {2, 3, 4}
    assert joint.auto_leave
    left = confchange.apply(joint, ConfChange())
    assert left == ConfState(voters=frozenset({2, 3, 4}))
    demote = confchange.apply(cs, cc((L, 3), (A, 4)))
    assert 3 in demote.learners_next and 3 not in demote.learners
    assert confchange.apply(demote, ConfChange()).learners == {3}
    with pytest.raises(confchange.ConfChangeError):
        confchange.apply(joint, cc((A, 5)))
    with pytest.raises(confchange.ConfChangeError):
        confchange.apply(cs, ConfChange())
    with pytest.raises(confchange.ConfChangeError):
        confchange.apply(ConfState(voters=frozenset({1})), cc((R, 1)))


def test_learner_catches_up_without_voting_then_is_promoted() -> None:
    c = Cluster()
    c.elect(1)
    for i in range(5):
        c.propose(1, b"a%d" % i)
    c.add_node(4)
    c.nodes[1].propose_conf_change(cc((L, 4)))
    c.stabilize()
    assert c.nodes[1].conf.learners == {4}
    assert c.data_applied(4) == c.data_applied(1)
    # a learner never counts toward commitment nor campaigns
    c.tick(4, n=50)
    assert c.nodes[4].role == StateRole.FOLLOWER
    c.nodes[1].propose_conf_change(cc((A, 4)))
    c.stabilize()
    assert c.nodes[1].conf.voters == {1, 2, 3, 4} and not c.nodes[1].conf.learners
    assert c.nodes[4].conf.voters == {1, 2, 3, 4}
    c.isolate(2)
    c.isolate(3)
    c.cut -= {(1, 4), (4, 1)}
    before = c.nodes[1].committed
    c.nodes[1].propose(b"needs 3 of 4")
    c.stabilize()
    assert c.nodes[1].committed == before  # 1 and 4 are not a majority of 4


def test_only_one_pending_change_at_a_time() -> None:
    c = Cluster()
    c.elect(1)
    c.isolate(2)
    c.isolate(3)
    c.nodes[1].propose_conf_change(cc((L, 4)))
    with pytest.raises(ProposalDropped):
        c.nodes[1].propose_conf_change(cc((L, 5)))
    with pytest.raises(ProposalDropped):
        c.heal() or c.nodes[1].propose_conf_change(cc((R, 9), (R, 8), (R, 7), (R, 1),
                                                      (R, 2), (R, 3)))


def test_removing_the_leader_hands_over() -> None:
    c = Cluster()
    c.elect(1)
    c.propose(1, b"before")
    c.nodes[1].propose_conf_change(cc((R, 1)))
    c.stabilize()
    assert c.nodes[1].role == StateRole.FOLLOWER
    c.tick(n=30)
    ld = c.leader()
    assert ld in (2, 3)
    assert c.nodes[ld].conf.voters == {2, 3}
    c.propose(ld, b"after")
    assert c.data_applied(2)[-1] == b"after" and c.data_applied(3)[-1] == b"after"
    c.tick(1, n=100)  # the removed node stays quiet: it cannot campaign
    assert c.nodes[1].role == StateRole.FOLLOWER
    assert c.leader() == ld


def test_joint_consensus_replaces_two_voters_and_leaves_automatically() -> None:
    c = Cluster([1, 2, 3])
    c.elect(1)
    for nid in (4, 5):
        c.add_node(nid)
    c.nodes[1].propose_conf_change(cc((L, 4)))
    c.stabilize()
    c.nodes[1].propose_conf_change(cc((L, 5)))
    c.stabilize()
    c.nodes[1].propose_conf_change(cc((A, 4), (A, 5), (R, 2), (R, 3)))
    c.stabilize()
    conf = c.nodes[1].conf
    assert not conf.joint, "the leader proposes leaving the joint config by itself"
    assert conf.voters == {1, 4, 5}
    for nid in (1, 4, 5):
        assert c.nodes[nid].conf == conf
    c.propose(1, b"new config")
    assert c.data_applied(5)[-1] == b"new config"


def test_joint_explicit_waits_for_leave() -> None:
    c = Cluster([1, 2, 3])
    c.elect(1)
    c.add_node(4)
    c.nodes[1].propose_conf_change(cc((L, 4)))
    c.stabilize()
    c.nodes[1].propose_conf_change(
        cc((A, 4), (R, 3), transition=ConfChangeTransition.JOINT_EXPLICIT))
    c.stabilize()
    assert c.nodes[1].conf.joint
    # in the joint config both majorities are needed: old {1,2,3} and new {1,2,4}
    c.isolate(2)
    c.isolate(4)
    before = c.nodes[1].committed
    c.nodes[1].propose(b"x")
    c.stabilize()
    assert c.nodes[1].committed == before  # {1,3} is a majority of old, {1} not of new
    c.heal()
    c.tick(1, n=2)
    c.nodes[1].propose_conf_change(ConfChange())
    c.stabilize()
    assert c.nodes[1].conf == ConfState(voters=frozenset({1, 2, 4}))


def test_joiner_without_known_configuration_never_campaigns() -> None:
    """A node that joins with empty storage and only sees a later change ("add node 4") must
    not invent a membership from it (it would think it is alone and elect itself)."""
    joiner = RawNode(Config(4, rng=random.Random(4)), MemoryStorage())
    add4 = Entry(2, 1, EntryType.CONF_CHANGE, confchange.encode(cc((A, 4))))
    joiner.step(Message(MessageType.APPEND, to=4, frm=1, term=2, entries=[add4], commit=1))
    rd = joiner.ready()
    assert [e.index for e in rd.committed_entries] == [1]
    joiner.advance(rd)
    assert joiner.conf.voters == frozenset()  # unknown, not {4}
    sent = []
    for _ in range(100):
        joiner.tick()
        if joiner.has_ready():
            rd = joiner.ready()
            sent += rd.messages + rd.persisted_messages
            joiner.advance(rd)
    assert joiner.role == StateRole.FOLLOWER
    assert not [m for m in sent if m.type in (MessageType.PRE_VOTE, MessageType.VOTE)]
