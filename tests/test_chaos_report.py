"""The run report's JSON summary and timeline picture."""

from __future__ import annotations

import itertools
import json
import math

import pytest

from chaos.history import Operation
from chaos.report import FaultWindow, RunReport
from chaos.schedule import expand_kinds, plan


def _ops() -> list[Operation]:
    ops = [Operation(0, "add", None, i, "ok", i * 0.1, i * 0.1 + 0.01, i, i) for i in range(50)]
    ops.append(Operation(1, "add", None, 99, "info", 2.0, math.inf, 60, None))
    return ops


def test_summary_counts_faults_and_outcomes(tmp_path) -> None:
    report = RunReport("set", 7, 5.0, [FaultWindow("kill", 1.0, 2.0, "member 1"),
                                       FaultWindow("partition", 3.0, 4.0)],
                       _ops(), acknowledged=50, lost=0, duplicated=0, anomalies=[])
    path = tmp_path / "summary.json"
    report.write_json(str(path))
    summary = json.loads(path.read_text())
    assert summary["faults"] == {"kill": 1, "partition": 1}
    assert summary["ops"] == {"ok": 50, "fail": 0, "info": 1}
    assert (summary["anomalies"], summary["lost"], summary["duplicated"]) == (0, 0, 0)
    assert summary["valid"] is True


def test_timeline_png_is_written(tmp_path) -> None:
    report = RunReport("set", 7, 5.0, [FaultWindow("pause", 1.0, 2.0)], _ops(), 50, 0, 0, [])
    path = tmp_path / "timeline.png"
    report.write_timeline(str(path))
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_schedule_is_seeded_and_covers_every_kind_first() -> None:
    kinds = expand_kinds(["kill", "pause"])
    assert kinds == ("kill-primary", "kill-random", "pause-primary", "pause-random")
    first = plan(5, 60, kinds)
    assert first == plan(5, 60, kinds)
    assert {f.kind for f in first[:4]} == set(kinds)
    assert all(a.at + a.duration < b.at for a, b in itertools.pairwise(first))


def test_sharded_summary_carries_migrations_and_fault_targets(tmp_path) -> None:
    events = [{"kind": "move", "start": 0.5, "end": 1.5, "min": "0", "max": "10",
               "from": "shard1", "to": "shard2", "outcome": "ok", "error": None},
              {"kind": "split", "start": 2.0, "end": 2.1, "min": "10", "max": "MaxKey()",
               "from": "shard2", "to": "20", "outcome": "failed", "error": "StaleConfig"}]
    report = RunReport("set", 7, 5.0, [FaultWindow("kill", 1.0, 2.0, "member 1", "shard2"),
                                       FaultWindow("kill-router", 3.0, 4.0, "router 1", "router")],
                       _ops(), 50, 0, 0, [], migrations={"moved": 1, "split": 0},
                       migration_events=events)
    summary = report.summary()
    assert summary["migrations"] == {"moved": 1, "split": 0}
    assert summary["migration_events"] == events
    assert [w["target"] for w in summary["fault_windows"]] == ["shard2", "router"]
    path = tmp_path / "timeline.png"
    report.write_timeline(str(path))  # with the lane of moves and splits
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    plain = RunReport("set", 7, 5.0, [FaultWindow("kill", 1.0, 2.0)], _ops(), 50, 0, 0, [])
    assert "migrations" not in plain.summary()
    assert "target" not in plain.summary()["fault_windows"][0]


def test_kill_router_only_with_a_sharded_cluster() -> None:
    assert "kill-router" not in expand_kinds(["all"])
    assert "kill-router" in expand_kinds(["all"], sharded=True)
    assert expand_kinds(["router"], sharded=True) == ("kill-router",)
    with pytest.raises(ValueError, match="sharded"):
        expand_kinds(["kill-router"])
