"""Liveness shapes that stalled real Raft clusters, driven through the simulator.

A partitioned node that rejoins must not depose a healthy leader (pre-vote + check-quorum), a
node whose term ran ahead while it was away must still be let back in, and an asymmetric
partition (the leader can send but not hear) must end in a working leader.
"""

from __future__ import annotations

import pytest

from tests.raft.simulator import SimParams, Simulator
from tests.raft.test_sim_slow_fsync import quiet_params, settle


def cut_both_ways(sim: Simulator, nid: int) -> None:
    for other in sim.ids:
        if other != nid:
            sim.blocked |= {(nid, other), (other, nid)}


def run_for(sim: Simulator, ms: int) -> None:
    end = sim.now + ms
    while sim.now < end:
        sim.step()


@pytest.mark.parametrize("seed", range(5))
def test_rejoining_node_does_not_depose_leader(seed: int) -> None:
    sim = Simulator(seed, quiet_params(5))
    leader = settle(sim)
    term = sim.nodes[leader].raw.term
    victim = next(n for n in sim.ids if n != leader)
    cut_both_ways(sim, victim)
    run_for(sim, 2000)
    assert sim.nodes[victim].raw.term == term  # pre-vote: no term inflation while away
    sim.blocked.clear()
    run_for(sim, 1000)
    assert sim.leader_node().id == leader
    assert all(n.raw.term == term for n in sim.nodes.values())
    sim.heal()
    sim.check_liveness()  # ... and the rejoined node applies everything


@pytest.mark.parametrize("seed", range(5))
def test_node_with_runaway_term_is_let_back_in(seed: int) -> None:
    params = quiet_params(3)
    params.pre_vote = False  # so the isolated node inflates its term
    sim = Simulator(seed, params)
    leader = settle(sim)
    victim = next(n for n in sim.ids if n != leader)
    cut_both_ways(sim, victim)
    run_for(sim, 2000)
    assert sim.nodes[victim].raw.term > sim.nodes[leader].raw.term
    sim.heal()
    sim.check_liveness()  # raises if no leader commits and everyone applies within the bound
    terms = {n.raw.term for n in sim.nodes.values()}
    assert len(terms) == 1


@pytest.mark.parametrize("seed", range(5))
def test_leader_that_cannot_hear_is_replaced(seed: int) -> None:
    sim = Simulator(seed, quiet_params(3))
    leader = settle(sim)
    for other in sim.ids:
        if other != leader:
            sim.blocked.add((other, leader))  # the leader sends, but hears nothing back
    run_for(sim, 1500)
    ld = sim.leader_node()
    assert ld is not None and ld.id != leader  # check-quorum stepped the old one down
    sim.heal()
    sim.check_liveness()


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("nodes", [3, 5])
def test_minority_partition_repeatedly(seed: int, nodes: int) -> None:
    p: SimParams = quiet_params(nodes)
    sim = Simulator(seed, p)
    settle(sim)
    for k in range(6):
        ld = sim.leader_node()
        cut_both_ways(sim, ld.id if k % 2 else sim.ids[k % nodes])
        run_for(sim, 600)
        sim.blocked.clear()
        run_for(sim, 300)
    sim.heal()
    sim.check_liveness()
