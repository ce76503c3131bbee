"""Progress of long work (terminal bar, periodic lines, currentOp) and the log line format."""

from __future__ import annotations

import io
import json
import logging
from typing import Any

import pytest

from node.commands.context import RequestContext
from node.ops.current import TASKS
from node.ops.progress import Progress
from node.server.standalone import standalone_dispatcher

CTX = RequestContext()


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_lines_at_most_every_interval_and_one_at_the_end(caplog: pytest.LogCaptureFixture
                                                         ) -> None:
    clock = Clock()
    with caplog.at_level(logging.INFO, logger="helogale.progress"), Progress(
            "rangeDeletion", total=100, unit="docs", ns="d.c", every_s=5, clock=clock,
            migrationId="m1") as work:
        for _ in range(10):
            clock.now += 1
            work.advance(10)
    lines = [r for r in caplog.records if r.name == "helogale.progress"]
    assert [r.fields["done"] for r in lines] == [50, 100, 100]  # type: ignore[attr-defined]
    last = lines[-1].fields  # type: ignore[attr-defined]
    assert last["final"] is True and last["migrationId"] == "m1" and last["c"] == "PROGRESS"
    assert lines[-1].getMessage() == "rangeDeletion: 100/100 docs (100%) in 10.0s"


def test_a_bar_on_a_terminal() -> None:
    out = Tty()
    clock = Clock()
    with Progress("bench preload", total=4, unit="docs", stream=out, clock=clock) as work:
        clock.now += 1
        work.advance(2)
    text = out.getvalue()
    assert "\r[" + "#" * 15 + "." * 15 + "] bench preload: 2/4 docs (50%)" in text
    assert text.endswith("\n")


def test_running_work_is_listed_by_current_op_and_can_be_killed() -> None:
    disp = standalone_dispatcher()
    with Progress("migration", unit="docs", ns="d.c", migrationId="abc") as work:
        work.advance(7)
        inprog = disp.run("admin", {"currentOp": 1, "op": "migration"}, CTX)["inprog"]
        assert len(inprog) == 1
        op = inprog[0]
        assert op["type"] == "task" and op["ns"] == "d.c"
        assert op["progress"] == {"done": 7, "total": None, "unit": "docs"}
        assert op["msg"].startswith("migration: 7 docs")
        assert disp.run("admin", {"killOp": 1, "op": op["opid"]}, CTX)["found"] is True
        assert work.killed
    assert all(o.op != "migration" for o in TASKS.ops())


def test_index_builds_report_progress(caplog: pytest.LogCaptureFixture) -> None:
    disp = standalone_dispatcher()
    disp.run("t", {"insert": "c", "documents": [{"x": 1}]}, CTX)
    with caplog.at_level(logging.INFO, logger="helogale.progress"):
        disp.run("t", {"createIndexes": "c", "indexes": [{"key": {"x": 1}, "name": "x_1"}]},
                 CTX)
    done = [r.fields for r in caplog.records  # type: ignore[attr-defined]
            if r.name == "helogale.progress" and r.fields.get("final")]
    assert done and done[0]["work"] == "indexBuild" and done[0]["indexes"] == "x_1"


def test_log_lines_carry_severity_component_thread_and_ids() -> None:
    from node.server.logs import JsonFormatter

    fmt = JsonFormatter({"member": 2})
    rec = logging.LogRecord("helogale.migration", logging.WARNING, __file__, 1,
                            "migration aborted", None, None)
    rec.fields = {"migrationId": "m9", "term": 4}  # type: ignore[attr-defined]
    doc: dict[str, Any] = json.loads(fmt.format(rec))
    assert doc["s"] == "W" and doc["c"] == "SHARDING" and doc["msg"] == "migration aborted"
    assert doc["ctx"] and doc["migrationId"] == "m9" and doc["term"] == 4
    assert doc["member"] == 2 and doc["level"] == "WARNING"
    rec2 = logging.LogRecord("helogale.command", logging.INFO, __file__, 1, "Slow query",
                             None, None)
    rec2.fields = {"c": "COMMAND", "opid": 3}  # type: ignore[attr-defined]
    doc2 = json.loads(fmt.format(rec2))
    assert doc2["s"] == "I" and doc2["c"] == "COMMAND" and doc2["opid"] == 3


def test_lag_seconds_follow_the_leader_log_and_forget_overwritten_entries() -> None:
    from node.ops.raft_metrics import RaftMetrics

    m = RaftMetrics()
    m.on_append(5, 9, 1, leader=False)  # a follower records nothing
    assert m.written_at(5) is None
    m.on_append(10, 12, 2, leader=True)
    m.on_append(13, 20, 2, leader=True)
    at10, at13 = m.written_at(10), m.written_at(13)
    assert at10 is not None and at13 is not None and at10 <= at13
    assert m.written_at(12) == at10 and m.written_at(20) == at13
    assert m.written_at(9) is None and m.written_at(21) is None  # before we led; not written
    assert m.lag_seconds(20, 20) == 0.0
    assert m.lag_seconds(12, 20, now=at13 + 3) == pytest.approx(3.0)
    assert m.lag_seconds(5, 20) is None  # the oldest missing entry predates this leader
    m.on_append(15, 16, 3, leader=True)  # a new term overwrote 15..20
    assert m.written_at(18) is None and m.written_at(16) is not None


def test_snapshot_transfers_are_long_work() -> None:
    from node.ops.raft_metrics import RaftMetrics

    m = RaftMetrics()
    for done in (False, False, True):
        m.on_snapshot_sent(2, done)
        m.on_snapshot_received(1, done)
        if not done:
            kinds = {o.op: o.progress for o in TASKS.ops()}
            assert kinds["snapshotSend"]["unit"] == "chunks"
            assert "snapshotReceive" in kinds
    assert m.snapshots_sent == 1 and m.snapshot_chunks_sent == 3
    assert not [o for o in TASKS.ops() if o.op.startswith("snapshot")]
