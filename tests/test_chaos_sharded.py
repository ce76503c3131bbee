"""The chaos harness against a sharded cluster (``python -m chaos run --sharded``): the
workloads through two routers, two shards and the config set (three members each) while the
``migrate`` nemesis moves chunks and the scheduled faults hit shards, config members and
routers. Each run starts its own cluster (its Raft links go through the chaos proxies).

The default suite runs the set workload with migrations and primary kills (~40 s idle, 2–6 min
on a heavily loaded machine); ``-m slow`` runs all four workloads with every fault for 60 s
each and asks for committed moves.
"""

from __future__ import annotations

import pytest

from chaos.runner import RunConfig, run
from chaos.sharded import ShardedOptions

pytestmark = [pytest.mark.chaos, pytest.mark.cluster]


def _config(workload: str, seed: int, faults: list[str], time: float, data_dir: str
            ) -> RunConfig:
    return RunConfig(workload=workload, time=time, seed=seed, faults=faults, processes=4,
                     fault_s=(1.5, 2.5), heal_s=(1.5, 2.5), data_dir=data_dir,
                     sharded=ShardedOptions(shards=2, routers=2))


def test_set_workload_survives_migrations_and_primary_kills(tmp_path) -> None:
    report = run(_config("set", 5, ["migrate", "kill-primary"], 15.0, str(tmp_path)))
    summary = report.summary()
    assert {w.kind for w in report.faults} == {"kill"}, summary["fault_windows"]
    assert all(w.target in ("cfg", "shard1", "shard2") for w in report.faults)
    # the nemesis ran; on a machine loaded past ~100 a single move can stall (or be refused
    # while the recipient still holds an earlier migration's record) for the whole run, so
    # committed moves are asserted by the slow test, not here
    assert report.migration_events, "the migrate nemesis attempted nothing"
    assert report.acknowledged > 50, "the workload made no progress"
    assert report.anomalies == [], report.anomalies[:3]
    assert report.lost == 0 and report.duplicated == 0


@pytest.mark.slow
@pytest.mark.parametrize("workload", ["register", "set", "counter", "append"])
def test_workload_survives_every_fault_and_migrations(workload: str, tmp_path) -> None:
    report = run(_config(workload, 21, ["all"], 60.0, str(tmp_path)))
    kinds = {w.kind for w in report.faults}
    assert {"kill", "pause", "partition", "kill-router"} <= kinds, kinds
    assert {w.target for w in report.faults} >= {"cfg", "router"}
    assert report.migrations is not None and report.migrations["moved"] >= 5
    assert report.acknowledged > 50
    assert report.anomalies == [], report.anomalies[:3]
    assert report.lost == 0 and report.duplicated == 0
