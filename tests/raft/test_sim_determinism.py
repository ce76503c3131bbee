"""The simulator replays a seed exactly, and its checkers do catch broken cores."""

from __future__ import annotations

import pytest

import raft.log
from tests.raft.simulator import SafetyViolation, SimParams, Simulator, run_seed


def _fingerprint(sim: Simulator) -> tuple:
    return (sim.now, sim.max_committed, sim.proposals, sim.reads_done, sorted(sim.stats.items()),
            sorted(sim.hash_at.items()), sorted(sim.leaders.items()))


@pytest.mark.parametrize("seed", [7, 12345])
def test_same_seed_replays_exactly(seed: int) -> None:
    assert _fingerprint(run_seed(seed, SimParams(nodes=5))) == \
        _fingerprint(run_seed(seed, SimParams(nodes=5)))


def test_different_seeds_differ() -> None:
    assert _fingerprint(run_seed(1)) != _fingerprint(run_seed(2))


def test_broken_election_restriction_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """Grant votes regardless of log freshness: the checkers must report a violation."""
    monkeypatch.setattr(raft.log.RaftLog, "is_up_to_date", lambda self, i, t: True)
    with pytest.raises(SafetyViolation) as info:
        for seed in range(200):
            run_seed(seed)
    msg = str(info.value)
    assert "replay: python -m tests.raft.simulator --seed" in msg


def test_failure_message_names_seed_and_replays() -> None:
    sim = Simulator(3)
    with pytest.raises(SafetyViolation) as info:
        sim.fail("synthetic")
    assert "seed=3" in str(info.value) and "--seed 3" in str(info.value)
