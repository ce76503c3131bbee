"""Seeds that once found bugs, kept as regression tests (each names what it caught)."""

from __future__ import annotations

import pytest

from tests.raft.simulator import SimParams, run_seed

FOUND = [
    (477, 3, "restarted leader led its term twice: vote requests sent before the term was durable"),
    (754, 3, "stale-log candidate without pre-vote kept resetting everyone's election timer"),
    (45, 3, "snapshot chunk acks reordered: offset moved backwards; duplicate chunk 0 reset"),
    (100477, 5, "leader without quorum grew an unbounded uncommitted backlog"),
    (100644, 5, "follower restarted mid-snapshot: leader ignored its lower offset forever"),
    (200306, 3, "demoted leader with the longest log stepped down: nobody could win"),
]


@pytest.mark.parametrize(("seed", "nodes", "what"), FOUND, ids=[str(f[0]) for f in FOUND])
def test_regression_seed(seed: int, nodes: int, what: str) -> None:
    sim = run_seed(seed, SimParams(nodes=nodes))
    assert sim.max_committed > 0, what
