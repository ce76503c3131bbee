"""Leadership transfer: TimeoutNow after catch-up, leases bypassed, proposals paused."""

from __future__ import annotations

import pytest

from raft.types import MessageType, ProposalDropped, StateRole
from tests.raft.cluster import Cluster


def test_transfer_to_caught_up_follower() -> None:
    c = Cluster()
    c.elect(1)
    c.propose(1, b"a")
    term = c.nodes[1].term
    c.nodes[1].transfer_leader(2)
    c.stabilize()
    assert c.leader() == 2 and c.nodes[2].term == term + 1
    assert c.nodes[1].role == StateRole.FOLLOWER
    # the transfer campaign bypassed node 3's lease (it had just heard from leader 1)
    assert [m for m in c.sent_of(MessageType.TIMEOUT_NOW) if m.to == 2]


def test_transfer_waits_for_lagging_target_to_catch_up() -> None:
    c = Cluster()
    c.elect(1)
    c.isolate(3)
    for i in range(5):
        c.propose(1, b"x%d" % i)
    c.nodes[1].transfer_leader(3)
    c.stabilize()
    assert c.leader() == 1
    with pytest.raises(ProposalDropped):
        c.nodes[1].propose(b"during transfer")
    c.heal()
    c.tick(1, n=1)
    assert c.leader() == 3
    assert c.data_applied(3)[-5:] == [b"x%d" % i for i in range(5)]


def test_transfer_aborts_after_election_timeout() -> None:
    c = Cluster()
    c.elect(1)
    c.isolate(3)
    c.cut -= {(1, 3), (3, 1)}
    c.drop = lambda m: m.to == 3 or m.frm == 3
    c.nodes[1].transfer_leader(3)
    c.stabilize()
    assert c.nodes[1].lead_transferee == 3
    c.tick(1, n=12)
    assert c.nodes[1].lead_transferee == 0
    assert c.leader() == 1
    c.propose(1, b"ok again")


def test_transfer_request_on_follower_is_forwarded() -> None:
    c = Cluster()
    c.elect(1)
    c.nodes[2].transfer_leader(3)
    c.stabilize()
    assert c.leader() == 3
