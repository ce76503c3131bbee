"""Numbers no 64-bit integer can hold (NaN, infinities, 1e30, -1e30) where a command expects
one: refused with BadValue (2), or with MongoDB's own code where it has one ($skip 15972,
$limit 15957), never an InternalError and never an entry that reaches the log. Found by the
command fuzzer (tests/test_commands_fuzz.py)."""

from __future__ import annotations

from typing import Any

import pytest
from bson import Binary

from node.commands.context import RequestContext
from node.commands.dispatcher import Dispatcher
from node.server.standalone import standalone_dispatcher

CTX = RequestContext(connection_id=3)
HOSTILE = [float("nan"), float("inf"), float("-inf"), 1e30, -1e30, 2.0**63]
LSID = {"id": Binary(b"\x01" * 16, 4)}


@pytest.fixture
def d() -> Dispatcher:
    d = standalone_dispatcher()
    assert d.run("t", {"insert": "c", "documents": [{"_id": i} for i in range(3)]}, CTX)["n"] == 3
    return d


def _ins(i: int, **extra: Any) -> dict[str, Any]:
    return {"insert": "c", "documents": [{"_id": 100 + i}], **extra}


def _cases() -> list[tuple[str, Any]]:
    cases: list[tuple[str, Any]] = []
    for x in HOSTILE:
        cases += [
            (f"getMore={x}", {"getMore": x, "collection": "c"}),
            (f"killCursors={x}", {"killCursors": "c", "cursors": [x]}),
            (f"stmtIds={x}", _ins(1, stmtIds=[x], lsid=LSID, txnNumber=1)),
            (f"stmtId={x}", _ins(2, stmtId=x, lsid=LSID, txnNumber=2)),
            (f"txnNumber={x}", _ins(3, lsid=LSID, txnNumber=x)),
            (f"find.limit={x}", {"find": "c", "limit": x}),
            (f"find.skip={x}", {"find": "c", "skip": x}),
            (f"count.limit={x}", {"count": "c", "limit": x}),
        ]
    return cases


@pytest.mark.parametrize("name, cmd", _cases(), ids=[n for n, _ in _cases()])
def test_out_of_range_numbers_are_bad_value(d: Dispatcher, name: str, cmd: Any) -> None:
    before = d.run("t", {"find": "c"}, CTX)["cursor"]["firstBatch"]
    reply = d.run("t", cmd, CTX)
    assert reply["ok"] == 0.0 and reply["code"] == 2, (name, reply)
    assert d.run("t", {"find": "c"}, CTX)["cursor"]["firstBatch"] == before


@pytest.mark.parametrize("x", HOSTILE)
def test_write_concern_numbers_follow_mongodb(d: Dispatcher, x: float) -> None:
    """``w`` out of range is FailedToParse (9) as MongoDB's parser answers; ``wtimeout`` out
    of 32 bits is 9, while NaN and negatives read as 0 (no timeout), as MongoDB's
    ``safeNumberLong`` reads them (tests/conformance_commands.py has the valid cases)."""
    before = d.run("t", {"find": "c"}, CTX)["cursor"]["firstBatch"]
    reply = d.run("t", _ins(4, writeConcern={"w": x}), CTX)
    assert reply["ok"] == 0.0 and reply["code"] == 9, reply
    assert d.run("t", {"find": "c"}, CTX)["cursor"]["firstBatch"] == before
    reply = d.run("t", _ins(5, writeConcern={"w": 1, "wtimeout": x}), CTX)
    if x != x or x < 0:
        assert reply == {"n": 1, "ok": 1.0}, reply
    else:
        assert reply["ok"] == 0.0 and reply["code"] == 9, reply


@pytest.mark.parametrize("stage, code", [("$skip", 15972), ("$limit", 15957)])
@pytest.mark.parametrize("x", HOSTILE)
def test_pipeline_skip_and_limit_refuse_out_of_range(d: Dispatcher, stage: str, code: int,
                                                     x: float) -> None:
    reply = d.run("t", {"aggregate": "c", "pipeline": [{stage: x}], "cursor": {}}, CTX)
    assert reply["ok"] == 0.0 and reply["code"] == code, reply


def test_in_range_values_still_work(d: Dispatcher) -> None:
    assert d.run("t", _ins(6, lsid=LSID, txnNumber=2.0**62, stmtIds=[2**62]), CTX)["n"] == 1
    assert d.run("t", {"find": "c", "limit": 2.0**62, "skip": 1.0}, CTX)["ok"] == 1.0
    reply = d.run("t", {"aggregate": "c", "pipeline": [{"$limit": 2**62}], "cursor": {}}, CTX)
    assert len(reply["cursor"]["firstBatch"]) == 4


class _RecordingMember:
    """Stands in for a primary: records the step-down it was asked for."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.calls: list[tuple[float, float]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def step_down(self, step_down_secs: float, catch_up_secs: float) -> None:
        self.calls.append((step_down_secs, catch_up_secs))


@pytest.mark.parametrize("cmd", [
    {"replSetStepDown": 60, "secondaryCatchUpPeriodSecs": float("nan")},
    {"replSetStepDown": float("nan"), "secondaryCatchUpPeriodSecs": float("nan")},
    {"replSetStepDown": float("inf"), "secondaryCatchUpPeriodSecs": float("inf")},
    {"replSetStepDown": float("inf")},
    {"replSetStepDown": float("nan")},
    {"replSetStepDown": -5, "secondaryCatchUpPeriodSecs": -10},
    {"replSetStepDown": 60, "secondaryCatchUpPeriodSecs": -1},
])
def test_step_down_refuses_nan_infinite_and_negative_periods(d: Dispatcher,
                                                             cmd: dict[str, Any]) -> None:
    """A NaN or infinite secondaryCatchUpPeriodSecs made a primary without a caught-up
    secondary wait forever (its deadline never came), holding the request's thread."""
    member = _RecordingMember(d.services.member)
    d.services.member = member
    reply = d.run("admin", cmd, CTX)
    assert reply["ok"] == 0.0 and reply["code"] == 2, reply
    assert member.calls == []
    assert d.run("admin", {"replSetStepDown": 30, "secondaryCatchUpPeriodSecs": 5.5},
                 CTX)["ok"] == 1.0
    assert member.calls == [(30.0, 5.5)]


@pytest.mark.parametrize("x", HOSTILE)
def test_capped_sizes_refuse_out_of_range_numbers(d: Dispatcher, x: float) -> None:
    """convertToCapped (and create with capped) turned a NaN or infinite size into an
    InternalError; found by the numeric sweep of tests/test_commands_fuzz.py."""
    for cmd in ({"create": "capped", "capped": True, "size": x},
                {"create": "capped2", "capped": True, "size": 4096, "max": x},
                {"convertToCapped": "c", "size": x}):
        reply = d.run("t", cmd, CTX)
        assert reply["ok"] == 0.0 and reply["code"] == 2, (cmd, reply)


@pytest.mark.parametrize("hint", [0, 1.5, True, [1, 2], None, b"x"])
def test_hints_of_the_wrong_type_are_bad_value(d: Dispatcher, hint: Any) -> None:
    """find/count with ``hint: 0`` was an InternalError (found by the command fuzzer)."""
    for cmd in ({"find": "c", "hint": hint}, {"count": "c", "hint": hint}):
        reply = d.run("t", cmd, CTX)
        assert reply["ok"] == 1.0 or reply["code"] == 2, (cmd, reply)
        assert reply.get("code") != 1
