"""The short chaos suite: every workload under kill, pause and partition faults against a real
local replica set, checked for anomalies; and a deliberately broken server that must be caught.
"""

from __future__ import annotations

import pytest

from chaos.runner import RunConfig, run

pytestmark = [pytest.mark.chaos, pytest.mark.cluster]

FAULTS = ["kill-primary", "pause-primary", "partition-primary"]


def _short(workload: str, seed: int, **overrides: object) -> RunConfig:
    config = RunConfig(workload=workload, time=18.0, seed=seed, faults=list(FAULTS), processes=4,
                       fault_s=(1.5, 2.5), heal_s=(1.5, 2.5))
    for key, value in overrides.items():
        setattr(config, key, value)
    return config


@pytest.mark.parametrize("workload", ["register", "set", "counter", "append"])
def test_workload_survives_kill_pause_and_partition(workload: str, tmp_path) -> None:
    report = run(_short(workload, seed=11, data_dir=str(tmp_path)))
    injected = {w.kind for w in report.faults}
    assert injected == {"kill", "pause", "partition"}, report.summary()["fault_windows"]
    assert report.acknowledged > 50, "the workload made no progress"
    assert report.anomalies == [], report.anomalies[:3]
    assert report.lost == 0 and report.duplicated == 0


def test_broken_server_that_acknowledges_before_commit_is_caught(tmp_path) -> None:
    config = _short("set", seed=3, faults=["partition-primary"], time=12.0,
                    node_args=["--unsafe-ack-before-commit"], data_dir=str(tmp_path))
    report = run(config)
    assert {w.kind for w in report.faults} == {"partition"}
    assert report.lost > 0, "acknowledged-but-uncommitted writes went unnoticed"
    assert any(a["kind"] == "lost" for a in report.anomalies)
