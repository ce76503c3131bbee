"""A slow or stalled fsync must not cause elections: heartbeats never wait behind the disk.

This is the most common cause of spurious elections in etcd and Consul. Only the disk of one
node misbehaves here (no loss, no partitions), so any new term is a spurious election.
"""

from __future__ import annotations

import pytest

from raft.types import StateRole
from tests.raft.simulator import SimParams, Simulator


def quiet_params(nodes: int) -> SimParams:
    return SimParams(nodes=nodes, randomize=False, loss=0.0, dup=0.0, delay=(1, 5),
                     fsync_ms=(1, 2), partitions=False, crashes=False, slow_disk=False,
                     conf_changes=False, transfers=False, reads=False, crash_new_leader=0.0,
                     heal_rate=0.0)


def settle(sim: Simulator) -> int:
    for _ in range(2000):
        sim.step()
        ld = sim.leader_node()
        if ld is not None and sim.now > 500:
            return ld.id
    raise AssertionError("no leader")


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("who", ["leader", "follower"])
def test_stalled_disk_causes_no_election(seed: int, who: str) -> None:
    sim = Simulator(seed, quiet_params(3))
    leader = settle(sim)
    term = sim.nodes[leader].raw.term
    victim = leader if who == "leader" else next(n for n in sim.ids if n != leader)
    committed_before = sim.max_committed
    stall_ms = 3000  # 15-30 election timeouts
    sim.nodes[victim].stall_until = sim.now + stall_ms
    end = sim.now + stall_ms
    while sim.now < end:
        sim.step()
    assert sim.leader_node().id == leader
    assert all(n.raw.term == term for n in sim.nodes.values()), "spurious election"
    # the two healthy disks form a majority: writes kept committing during the stall
    assert sim.max_committed > committed_before + 50
    if who == "follower":
        assert sim.nodes[leader].applied > committed_before + 50
    # the stalled node catches up once its disk returns
    sim.nodes[victim].stall_until = 0
    sim.heal()
    sim.check_liveness()
    assert sim.nodes[victim].raw.role in (StateRole.LEADER, StateRole.FOLLOWER)


@pytest.mark.parametrize("seed", range(4))
def test_slow_disk_on_leader_of_five(seed: int) -> None:
    sim = Simulator(seed, quiet_params(5))
    leader = settle(sim)
    term = sim.nodes[leader].raw.term
    sim.nodes[leader].fsync_ms = 400  # every fsync takes 2-4 election timeouts
    end = sim.now + 3000
    before = sim.max_committed
    while sim.now < end:
        sim.step()
    assert all(n.raw.term == term for n in sim.nodes.values()), "spurious election"
    assert sim.max_committed > before + 50
