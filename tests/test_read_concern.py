"""Read concerns beyond their parsing, in process: snapshot reads pinned to one point in time
with ``atClusterTime``, ``afterClusterTime`` waits, the member's cluster time and the
``operationTime`` of replies (node.commands.read_concern). The replica set's causal session
(pymongo, read-your-writes on a secondary) is in tests/test_wire_pymongo.py."""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable
from typing import Any

import pytest
from bson import Timestamp

from node.commands.context import RequestContext
from node.commands.deadline import TimeBudget
from node.commands.read_concern import Snapshots, wait_for_cluster_time
from node.engine.errors import MongoError
from node.server.standalone import standalone_dispatcher
from node.server.statemachine import read_cluster_time

CTX = RequestContext()
SNAPSHOT = {"level": "snapshot"}


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def d() -> Any:
    dispatcher = standalone_dispatcher()
    run = runner(dispatcher)
    assert run({"insert": "c", "documents": [{"_id": i} for i in range(6)]})["n"] == 6
    assert run({"insert": "o", "documents": [{"_id": i, "k": i} for i in range(6)]})["n"] == 6
    return dispatcher


def runner(d: Any) -> Callable[[dict[str, Any]], dict[str, Any]]:
    return lambda cmd: d.run("app", cmd, CTX)


def readers(d: Any) -> int:
    """Open snapshots of the in-memory store."""
    return sum(d.services.member.sm.store._readers.values())


def ids(docs: list[dict[str, Any]]) -> list[Any]:
    return [doc["_id"] for doc in docs]


LOOKUP = [{"$lookup": {"from": "o", "localField": "_id", "foreignField": "k", "as": "o"}}]


@pytest.mark.parametrize("level", ["local", "snapshot"])
def test_snapshot_aggregate_reads_one_point_in_time_across_batches(d: Any, level: str
                                                                   ) -> None:
    run = runner(d)
    first = run({"aggregate": "c", "pipeline": LOOKUP, "cursor": {"batchSize": 1},
                 "readConcern": {"level": level}})
    assert len(first["cursor"]["firstBatch"]) == 1
    run({"insert": "o", "documents": [{"_id": "late", "k": 3}]})
    run({"insert": "c", "documents": [{"_id": 99}]})
    rest = run({"getMore": first["cursor"]["id"], "collection": "c"})["cursor"]["nextBatch"]
    late = [o["_id"] for doc in rest for o in doc["o"] if o["_id"] == "late"]
    if level == "snapshot":  # the $lookup of a later batch reads the cursor's snapshot
        assert late == [] and 99 not in ids(rest)
    else:  # a local read's $lookup reads the latest state (what snapshot used to do)
        assert late == ["late"]


def test_snapshot_replies_carry_at_cluster_time(d: Any) -> None:
    run = runner(d)
    now = d.services.member.cluster_time()
    assert now.inc == 2  # two entries applied
    found = run({"find": "c", "batchSize": 2, "readConcern": SNAPSHOT})
    assert found["cursor"]["atClusterTime"] == now == found["operationTime"]
    agg = run({"aggregate": "c", "pipeline": [], "cursor": {}, "readConcern": SNAPSHOT})
    assert agg["cursor"]["atClusterTime"] == now
    values = run({"distinct": "c", "key": "_id", "readConcern": SNAPSHOT})
    assert values["atClusterTime"] == now and values["values"] == list(range(6))
    local = run({"find": "c", "readConcern": {"level": "local"}})
    assert "atClusterTime" not in local["cursor"] and "operationTime" not in local


def test_at_cluster_time_reads_the_snapshot_it_names_or_refuses(d: Any) -> None:
    run = runner(d)
    then = run({"find": "c", "batchSize": 0, "readConcern": SNAPSHOT})["cursor"]["atClusterTime"]
    run({"insert": "c", "documents": [{"_id": 6}]})
    again = run({"find": "c", "readConcern": {**SNAPSHOT, "atClusterTime": then}})
    assert again["cursor"]["atClusterTime"] == then
    assert ids(again["cursor"]["firstBatch"]) == list(range(6))  # not the newer insert
    newest = run({"find": "c", "readConcern": {**SNAPSHOT, "atClusterTime":
                                               d.services.member.cluster_time()}})
    assert ids(newest["cursor"]["firstBatch"]) == list(range(7))
    never = Timestamp(then.time, then.inc - 1)  # a time no snapshot read pinned
    refused = run({"find": "c", "readConcern": {**SNAPSHOT, "atClusterTime": never}})
    assert refused["code"] == 239 and refused["codeName"] == "SnapshotTooOld"
    refused = run({"distinct": "c", "key": "_id",
                   "readConcern": {**SNAPSHOT, "atClusterTime": never}})
    assert refused["code"] == 239


def test_kept_snapshots_expire_and_are_bounded() -> None:
    clock = FakeClock()
    d = standalone_dispatcher()
    d.services.snapshots = Snapshots(clock, history_s=60, history_max=2)
    run = runner(d)
    times = []
    for i in range(3):
        run({"insert": "c", "documents": [{"_id": i}]})
        times.append(run({"find": "c", "readConcern": SNAPSHOT})["cursor"]["atClusterTime"])
    assert readers(d) == 2  # the newest two are kept, the oldest was let go
    oldest = run({"find": "c", "readConcern": {**SNAPSHOT, "atClusterTime": times[0]}})
    assert oldest["code"] == 239
    run({"insert": "c", "documents": [{"_id": 3}]})
    assert run({"find": "c", "readConcern": {**SNAPSHOT, "atClusterTime": times[1]}})["ok"]
    clock.now += 61
    d.services.snapshots.expire()
    assert readers(d) == 0
    gone = run({"find": "c", "readConcern": {**SNAPSHOT, "atClusterTime": times[2]}})
    assert gone["code"] == 239


def test_a_snapshot_cursor_lets_its_snapshot_go_when_it_ends() -> None:
    d = standalone_dispatcher(cursor_timeout_s=60)
    d.services.snapshots = Snapshots(history_max=0)  # nothing kept: only cursors pin
    run = runner(d)
    run({"insert": "c", "documents": [{"_id": i} for i in range(10)]})
    killed = run({"find": "c", "batchSize": 2, "readConcern": SNAPSHOT})["cursor"]["id"]
    drained = run({"find": "c", "batchSize": 2, "readConcern": SNAPSHOT})["cursor"]["id"]
    single = run({"find": "c", "batchSize": 2, "singleBatch": True, "readConcern": SNAPSHOT})
    assert single["cursor"]["id"] == 0
    assert readers(d) == 2
    assert run({"killCursors": "c", "cursors": [killed]})["cursorsKilled"] == [killed]
    assert run({"getMore": drained, "collection": "c"})["cursor"]["id"] == 0
    assert readers(d) == 0
    idle = run({"find": "c", "batchSize": 2, "readConcern": SNAPSHOT})["cursor"]["id"]
    assert idle and readers(d) == 1
    registry = d.services.cursors
    registry.idle_timeout_s = 0.0
    registry._clock = lambda: float("inf")  # every cursor is past its idle timeout
    assert registry.reap() == 1 and readers(d) == 0


def test_after_cluster_time_applied_is_served_and_a_future_one_refused(d: Any) -> None:
    run = runner(d)
    now = d.services.member.cluster_time()
    for level in ("local", "majority", "snapshot"):
        ok = run({"find": "c", "readConcern": {"level": level, "afterClusterTime": now}})
        assert ids(ok["cursor"]["firstBatch"]) == list(range(6))
    future = Timestamp(now.time, now.inc + 1)
    for cmd in ({"find": "c"}, {"count": "c"}, {"distinct": "c", "key": "_id"},
                {"aggregate": "c", "pipeline": [], "cursor": {}}):
        refused = run({**cmd, "readConcern": {"afterClusterTime": future}})
        assert refused["code"] == 72, refused
        assert "must not be greater than the current clusterTime" in refused["errmsg"]


class LaggingMember:
    """A member whose log holds ``known`` entries, of which ``applied`` have applied."""

    def __init__(self, applied: int, known: int, grace: float = 0.0) -> None:
        self.applied = applied
        self.known = known
        self.grace = grace
        self.changed = threading.Condition()

    def advance(self, applied: int) -> None:
        with self.changed:
            self.applied = applied
            self.known = max(self.known, applied)
            self.changed.notify_all()

    def cluster_time(self) -> Timestamp:
        return Timestamp(1, self.applied)

    def applied_index(self) -> int:
        return self.applied

    def log_index(self) -> int:
        return self.known

    def follower_grace_s(self) -> float:
        return self.grace

    def wait_for(self, pred: Callable[[], bool], timeout: float) -> bool:
        with self.changed:
            return self.changed.wait_for(pred, timeout)


def test_after_cluster_time_waits_until_applied() -> None:
    member = LaggingMember(applied=5, known=9)
    done = threading.Event()

    def read() -> None:
        wait_for_cluster_time(member, Timestamp(1, 8), "afterClusterTime", TimeBudget(0))
        done.set()

    reader = threading.Thread(target=read)
    reader.start()
    member.advance(7)
    assert not done.wait(0.05)  # 7 < 8: still waiting
    member.advance(8)
    reader.join(10)
    assert done.is_set()


def test_after_cluster_time_wait_is_bounded_by_max_time_ms() -> None:
    member = LaggingMember(applied=5, known=9)
    with pytest.raises(MongoError) as exc:
        wait_for_cluster_time(member, Timestamp(1, 8), "afterClusterTime", TimeBudget(30))
    assert exc.value.code == 50


def test_a_secondary_gives_an_unseen_time_its_grace_then_refuses_it() -> None:
    member = LaggingMember(applied=5, known=5, grace=10.0)
    threading.Timer(0.05, member.advance, args=(8,)).start()  # the log catches up in time
    wait_for_cluster_time(member, Timestamp(1, 8), "afterClusterTime", TimeBudget(0))
    member = LaggingMember(applied=5, known=5, grace=0.05)
    with pytest.raises(MongoError) as exc:
        wait_for_cluster_time(member, Timestamp(1, 8), "afterClusterTime", TimeBudget(0))
    assert exc.value.code == 72


def test_cluster_time_orders_as_the_log_and_each_snapshot_knows_its_own() -> None:
    d = standalone_dispatcher()
    sm = d.services.member.sm
    later = dt.datetime(2030, 1, 1, tzinfo=dt.UTC)
    earlier = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
    sm.apply(1, {"op": "noop", "now": later})
    first = sm.cluster_time
    sm.apply(2, {"op": "noop", "now": earlier})  # a primary whose clock went back
    second = sm.cluster_time
    assert first == Timestamp(int(later.timestamp()), 1)
    assert second == Timestamp(int(later.timestamp()), 2) and second > first
    with sm.store.read() as txn:
        assert read_cluster_time(txn) == second


def test_operation_time_on_replies_to_commands_with_a_session(d: Any) -> None:
    run = runner(d)
    assert "operationTime" not in run({"find": "c", "lsid": {"id": 1}})  # standalone: none
    d.services.cluster_time = d.services.member.cluster_time  # as a replica-set member
    wrote = run({"insert": "c", "documents": [{"_id": 50}], "lsid": {"id": 1}})
    assert wrote["operationTime"] == d.services.member.cluster_time()
    assert run({"find": "nope", "lsid": {"id": 1}})["operationTime"].inc == 3
    failed = run({"find": "c", "filter": {"$bogus": 1}, "lsid": {"id": 1}})
    assert failed["ok"] == 0.0 and failed["operationTime"].inc == 3
    assert "operationTime" not in run({"find": "c"})
