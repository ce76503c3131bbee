"""The dispatcher's operations hook in process: currentOp, killOp, top, opcounters, command
counts and latencies, the slow-operation log."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from node.commands.context import RequestContext
from node.engine import interrupt
from node.ops.current import INTERRUPTED
from node.server.standalone import standalone_dispatcher

CTX = RequestContext(connection_id=7, peer="127.0.0.1:5000")


@pytest.fixture
def disp() -> Any:
    d = standalone_dispatcher()
    d.run("t", {"insert": "c", "documents": [{"_id": i, "x": i % 10} for i in range(2000)]},
          CTX)
    return d


def test_opcounters_count_statements_and_commands(disp: Any) -> None:
    before = disp.ops.stats.opcounters_doc()
    disp.run("t", {"insert": "c", "documents": [{"_id": f"a{i}"} for i in range(5)]}, CTX)
    disp.run("t", {"find": "c", "filter": {"x": 1}}, CTX)
    disp.run("t", {"update": "c", "updates": [{"q": {"_id": 1}, "u": {"$set": {"y": 1}}}]},
             CTX)
    disp.run("t", {"delete": "c", "deletes": [{"q": {"_id": 2}, "limit": 1}]}, CTX)
    disp.run("t", {"ping": 1}, CTX)
    after = disp.ops.stats.opcounters_doc()
    assert {k: after[k] - before[k] for k in after} == {
        "insert": 5, "query": 1, "update": 1, "delete": 1, "getmore": 0, "command": 1}


def test_outcomes_and_latency_histograms(disp: Any) -> None:
    disp.run("t", {"find": "c", "filter": {"$bogus": 1}}, CTX)
    disp.run("t", {"find": "c"}, CTX)
    outcomes, hists = disp.ops.stats.snapshot()
    assert outcomes[("find", "ok")] == 1
    assert outcomes[("find", "BadValue")] == 1
    assert hists["find"].count == 2
    assert hists["find"].cumulative()[-1] == ("+Inf", 2)
    status = disp.run("admin", {"serverStatus": 1}, CTX)
    assert status["opLatencies"]["reads"]["ops"] == 2
    assert status["opcounters"]["query"] == 2


def test_top_counts_time_per_namespace(disp: Any) -> None:
    disp.run("t", {"find": "c", "filter": {"x": 3}}, CTX)
    totals = disp.run("admin", {"top": 1}, CTX)["totals"]
    assert totals["t.c"]["queries"]["count"] == 1
    assert totals["t.c"]["insert"]["count"] == 1
    assert totals["t.c"]["total"]["count"] == 2
    assert totals["t.c"]["readLock"]["time"] >= 0


def test_current_op_lists_itself_and_filters(disp: Any) -> None:
    inprog = disp.run("admin", {"currentOp": 1}, CTX)["inprog"]
    assert [d["command"]["currentOp"] for d in inprog] == [1]
    assert inprog[0]["client"] == "127.0.0.1:5000" and inprog[0]["connectionId"] == 7
    assert disp.run("admin", {"currentOp": 1, "op": "query"}, CTX)["inprog"] == []
    assert disp.run("t", {"currentOp": 1}, CTX)["code"] == 13  # admin only


def _kill_when_planned(disp: Any, monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Another client kills the read as soon as it has chosen its plan (what it saw first)."""
    seen: list[dict[str, Any]] = []
    sink = interrupt.plan_sink

    def kill_now(summary: str, stats: Any) -> None:
        assert sink is not None
        sink(summary, stats)
        ops = disp.run("admin", {"currentOp": 1, "op": {"$in": ["query", "getmore"]}},
                       CTX)["inprog"]
        seen.extend(ops)
        for o in ops:
            assert disp.run("admin", {"killOp": 1, "op": o["opid"]}, CTX)["found"] is True

    monkeypatch.setattr(interrupt, "plan_sink", kill_now)
    return seen


def test_kill_op_interrupts_a_running_read(disp: Any, monkeypatch: pytest.MonkeyPatch
                                           ) -> None:
    seen = _kill_when_planned(disp, monkeypatch)
    reply = disp.run("t", {"find": "c", "filter": {"x": 99}}, CTX)
    assert reply["ok"] == 0.0 and reply["code"] == INTERRUPTED, reply
    assert reply["codeName"] == "Interrupted"
    assert [o["ns"] for o in seen] == ["t.c"] and seen[0]["planSummary"] == "COLLSCAN"
    outcomes, _ = disp.ops.stats.snapshot()
    assert outcomes[("find", "Interrupted")] == 1
    monkeypatch.undo()
    assert disp.run("t", {"count": "c", "query": {"x": 1}}, CTX)["n"] == 200
    assert disp.run("admin", {"currentOp": 1, "op": "query"}, CTX)["inprog"] == []


def test_kill_op_of_an_unknown_op(disp: Any) -> None:
    assert disp.run("admin", {"killOp": 1, "op": 12345}, CTX)["found"] is False
    assert disp.run("admin", {"killOp": 1, "op": "x"}, CTX)["code"] == 2
    assert disp.run("admin", {"killOp": 1}, CTX)["code"] == 2


def test_slow_operations_are_logged_with_their_plan(disp: Any,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    disp.ops.slow_ms = 0
    disp.run("t", {"createIndexes": "c", "indexes": [{"key": {"x": 1}, "name": "x_1"}]}, CTX)
    with caplog.at_level(logging.INFO, logger="helogale.command"):
        disp.run("t", {"find": "c", "filter": {"x": 4}}, CTX)
        disp.run("t", {"ping": 1}, CTX)
    slow = [r for r in caplog.records if r.getMessage() == "Slow query"]
    assert len(slow) == 1
    fields = slow[0].fields  # type: ignore[attr-defined]
    assert fields["planSummary"] == "IXSCAN { x: 1 }"
    assert fields["keysExamined"] == 200 and fields["docsExamined"] == 200
    assert fields["ns"] == "t.c" and fields["c"] == "COMMAND"
    disp.ops.slow_ms = 100_000
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="helogale.command"):
        disp.run("t", {"find": "c", "filter": {"x": 4}}, CTX)
    assert not [r for r in caplog.records if r.getMessage() == "Slow query"]


def test_coll_stats_and_db_stats_report_sizes(disp: Any) -> None:
    import bson

    stats = disp.run("t", {"collStats": "c"}, CTX)
    size = sum(len(bson.encode({"_id": i, "x": i % 10})) for i in range(2000))
    assert (stats["count"], stats["size"]) == (2000, size)
    assert stats["avgObjSize"] == size // 2000
    db = disp.run("t", {"dbStats": 1}, CTX)
    assert (db["objects"], db["dataSize"]) == (2000, size)
    assert disp.run("t", {"collStats": "missing"}, CTX)["size"] == 0


def test_made_up_names_and_namespaces_keep_the_statistics_bounded(
        disp: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """Unknown command names count as one ``<UNKNOWN>`` row, ``top`` keeps a bounded number of
    namespaces and never one with a NUL (it could not be answered: the fuzzer's find)."""
    from node.ops import stats

    monkeypatch.setattr(stats, "MAX_TOP_NAMESPACES", 50)
    for i in range(300):
        assert disp.run("t", {f"noSuchCommand{i}": 1}, CTX)["code"] == 59
        disp.run("t", {"find": f"coll{i}"}, CTX)
    assert disp.run("t", {"find": "\x00"}, CTX)["ok"] == 0.0
    names = {name for name, _ in disp.ops.stats.outcomes}
    assert "<UNKNOWN>" in names and not any(n.startswith("noSuchCommand") for n in names)
    top = disp.run("admin", {"top": 1}, CTX)
    assert top["ok"] == 1.0
    assert len(top["totals"]) <= 51 and not any("\x00" in ns for ns in top["totals"])
