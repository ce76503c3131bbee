"""The run report's JSON summary and timeline picture."""

from __future__ import annotations

import itertools
import json
import math

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
