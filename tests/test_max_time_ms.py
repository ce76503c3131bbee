"""``maxTimeMS``: parsing, the running-time budget, and reads that stop when it is spent."""

from __future__ import annotations

from typing import Any

import pytest

from node.commands.context import RequestContext
from node.commands.cursors import CursorRegistry
from node.commands.deadline import TimeBudget
from node.commands.requests import parse_max_time_ms
from node.engine import interrupt
from node.engine.errors import MongoError
from node.server.standalone import standalone_dispatcher

CTX = RequestContext()


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize("value, expected", [(None, 0), (0, 0), (5, 5), (5.0, 5),
                                             (2**31 - 1, 2**31 - 1)])
def test_parse_accepts_non_negative_int32(value: Any, expected: int) -> None:
    cmd = {} if value is None else {"maxTimeMS": value}
    assert parse_max_time_ms(cmd) == expected


@pytest.mark.parametrize("value, message", [
    ("10", "maxTimeMS must be a number"), (True, "maxTimeMS must be a number"),
    (-1, "maxTimeMS is out of range"), (2**31, "maxTimeMS is out of range"),
    (1.5, "maxTimeMS has non-integral value"), (float("nan"), "maxTimeMS is out of range"),
])
def test_parse_refuses_what_mongod_refuses(value: Any, message: str) -> None:
    with pytest.raises(MongoError) as err:
        parse_max_time_ms({"maxTimeMS": value})
    assert err.value.code == 2 and err.value.errmsg == message


def test_budget_counts_running_time_only() -> None:
    clock = FakeClock()
    budget = TimeBudget(100, clock)
    with budget.running():
        clock.now += 0.06
    clock.now += 10.0  # the client is away between batches: not counted
    with budget.running():
        clock.now += 0.03
        budget.check()  # 90 ms used
        clock.now += 0.02
        with pytest.raises(MongoError) as err:
            budget.check()
    assert err.value.code == 50 and err.value.code_name == "MaxTimeMSExpired"


def test_the_engine_check_is_the_budget_of_this_context_only() -> None:
    clock = FakeClock()
    budget = TimeBudget(1, clock)
    interrupt.check()  # no budget installed: nothing happens
    with pytest.raises(MongoError), budget.running():
        clock.now += 1.0
        interrupt.check()  # the engine's interrupt point sees this budget
    interrupt.check()  # left the context: nothing happens


def test_a_cursor_spends_its_budget_across_get_mores() -> None:
    clock = FakeClock()
    budget = TimeBudget(100, clock)
    registry = CursorRegistry(clock=clock)

    def slow_docs() -> Any:
        for i in range(10):
            clock.now += 0.02  # each document costs 20 ms of running time
            interrupt.check()
            yield {"_id": i}

    batch, cid = registry.first_batch("db.c", slow_docs(), 2, budget)
    assert [d["_id"] for d in batch] == [0, 1] and cid
    clock.now += 60.0  # idle between batches
    batch, cid = registry.get_more(cid, "db.c", 1)
    assert [d["_id"] for d in batch] == [2]
    with pytest.raises(MongoError) as err:
        registry.get_more(cid, "db.c", 5)
    assert err.value.code == 50
    with pytest.raises(MongoError) as gone:  # the failed cursor was closed
        registry.get_more(cid, "db.c", 1)
    assert gone.value.code == 43


@pytest.fixture(scope="module")
def big() -> Any:
    d = standalone_dispatcher()
    for start in range(0, 20_000, 5_000):
        docs = [{"_id": i, "s": "x" * 50, "n": i % 7} for i in range(start, start + 5_000)]
        assert d.run("app", {"insert": "big", "documents": docs}, CTX)["n"] == 5_000
    return d


@pytest.mark.parametrize("cmd", [
    {"find": "big", "filter": {"s": {"$regex": "y"}}, "maxTimeMS": 1},
    {"count": "big", "query": {"s": "nothing"}, "maxTimeMS": 1},
    {"distinct": "n", "key": "n", "query": {"s": {"$gt": "y"}}, "maxTimeMS": 1},
    {"aggregate": "big", "pipeline": [{"$match": {"s": "z"}}], "cursor": {}, "maxTimeMS": 1},
])
def test_long_reads_stop_with_max_time_ms_expired(big: Any, cmd: dict[str, Any]) -> None:
    if "distinct" in cmd:
        cmd = {"distinct": "big", **{k: v for k, v in cmd.items() if k != "distinct"}}
    reply = big.run("app", cmd, CTX)
    assert reply["ok"] == 0.0 and reply["code"] == 50, reply
    assert reply["codeName"] == "MaxTimeMSExpired"


def test_a_generous_budget_changes_nothing(big: Any) -> None:
    reply = big.run("app", {"count": "big", "query": {"n": 3}, "maxTimeMS": 600_000}, CTX)
    assert reply == {"n": 2857, "ok": 1.0}
    reply = big.run("app", {"find": "big", "filter": {"n": 3}, "maxTimeMS": 600_000,
                            "batchSize": 10}, CTX)
    assert reply["ok"] == 1.0 and len(reply["cursor"]["firstBatch"]) == 10


def test_get_more_refuses_its_own_max_time_ms(big: Any) -> None:
    reply = big.run("app", {"find": "big", "batchSize": 1}, CTX)
    cid = reply["cursor"]["id"]
    more = big.run("app", {"getMore": cid, "collection": "big", "maxTimeMS": 10}, CTX)
    assert more["ok"] == 0.0 and more["code"] == 2
    assert "non-awaitData" in more["errmsg"]


def test_writes_with_a_generous_budget_apply(big: Any) -> None:
    reply = big.run("app", {"update": "big", "updates": [{"q": {"_id": 1}, "u": {"$set": {
        "k": 1}}}], "maxTimeMS": 60_000}, CTX)
    assert reply == {"n": 1, "nModified": 1, "ok": 1.0}


def test_the_shared_unlimited_budget_is_safe_across_threads() -> None:
    """Every read without maxTimeMS runs under the one shared ``UNLIMITED`` budget; with an
    operation current (killOp) many threads at once must not trip over each other's timing
    (a router once answered InternalError: float - NoneType)."""
    import threading

    from node.commands.deadline import UNLIMITED
    from node.ops import current as ops_current

    errors: list[BaseException] = []
    start = threading.Barrier(8)

    def reader(i: int) -> None:
        op = ops_current.Op(opid=i, op="query", ns="db.c", command={"find": "c"})
        with ops_current.running(op):
            start.wait()
            try:
                for _ in range(2000):
                    with UNLIMITED.running():
                        UNLIMITED.check()
            except BaseException as exc:
                errors.append(exc)

    threads = [threading.Thread(target=reader, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
