"""Thousands of simulator seeds: Raft safety after every step, liveness after healing.

Each seed draws its own fault profile (loss, duplication, delays, partitions incl. asymmetric,
crashes incl. freshly elected leaders, slow/stalled fsync, clock skew, membership changes incl.
removing the leader, transfers, ReadIndex). A failure names its seed and how to replay it.
"""

from __future__ import annotations

import pytest

from tests.raft.simulator import SimParams, run_seed

CHUNK = 100
SEEDS_3 = 1200
SEEDS_5 = 800


def _run_chunk(nodes: int, start: int, count: int) -> dict[str, int]:
    totals: dict[str, int] = {}
    for seed in range(start, start + count):
        sim = run_seed(seed, SimParams(nodes=nodes))
        for k, v in sim.stats.items():
            totals[k] = totals.get(k, 0) + v
        totals["committed"] = totals.get("committed", 0) + sim.max_committed
    return totals


@pytest.mark.parametrize("start", range(0, SEEDS_3, CHUNK))
def test_three_nodes(start: int) -> None:
    totals = _run_chunk(3, start, CHUNK)
    # the faults really happened (a simulator that injects nothing proves nothing)
    assert totals["crashes"] > CHUNK and totals["elections"] > CHUNK
    assert totals["snapshots_installed"] > 0 and totals["conf_changes"] > 0
    assert totals["committed"] > 20 * CHUNK


@pytest.mark.parametrize("start", range(100_000, 100_000 + SEEDS_5, CHUNK))
def test_five_nodes(start: int) -> None:
    totals = _run_chunk(5, start, CHUNK)
    assert totals["crashes"] > CHUNK and totals["elections"] > CHUNK
    assert totals["snapshots_installed"] > 0 and totals["conf_changes"] > 0
    assert totals["committed"] > 20 * CHUNK


@pytest.mark.slow
@pytest.mark.parametrize("nodes", [3, 5])
@pytest.mark.parametrize("start", range(1_000_000, 1_020_000, 1000))
def test_soak(nodes: int, start: int) -> None:
    _run_chunk(nodes, start, 1000)


@pytest.mark.slow
@pytest.mark.parametrize("nodes", [3, 5])
@pytest.mark.parametrize("start", range(2_000_000, 2_002_000, 200))
def test_soak_long_fault_phase(nodes: int, start: int) -> None:
    """Fewer seeds, four times longer under faults (more elections, snapshots, changes)."""
    for seed in range(start, start + 200):
        run_seed(seed, SimParams(nodes=nodes, fault_time=6000))
