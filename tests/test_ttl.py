"""TTL indexes: ``expireAfterSeconds`` validation, the monitor's deletes (in process), and a
replica set where the primary's deletes reach every member (and, in the same set, the
primary's pruning of idle sessions' retryable-write records)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest

from node.commands.context import RequestContext
from node.commands.dispatcher import Dispatcher
from node.local_cluster import LocalCluster
from node.server.standalone import standalone_dispatcher
from node.server.ttl import TTLMonitor, ttl_indexes
from tests.replset_helpers import ids_on, wait_has

CTX = RequestContext()
NOW = dt.datetime(2026, 11, 27, 12, 0, tzinfo=dt.UTC)


def _ago(seconds: float) -> dt.datetime:
    return NOW - dt.timedelta(seconds=seconds)


@pytest.fixture
def d() -> Dispatcher:
    return standalone_dispatcher()


def _create(d: Dispatcher, key: dict[str, Any], **options: Any) -> dict[str, Any]:
    name = "_".join(f"{k}_{v}" for k, v in key.items())
    return d.run("app", {"createIndexes": "c", "indexes": [{"key": key, "name": name,
                                                           **options}]}, CTX)


def _ids(d: Dispatcher) -> list[Any]:
    reply = d.run("app", {"find": "c", "sort": {"_id": 1}}, CTX)
    return [doc["_id"] for doc in reply["cursor"]["firstBatch"]]


def _monitor(d: Dispatcher, primary: bool = True) -> TTLMonitor:
    return TTLMonitor(d.services.engine, d.run, lambda: primary, clock=lambda: NOW)


def test_expired_documents_go_and_nothing_else(d: Dispatcher) -> None:
    assert _create(d, {"at": 1}, expireAfterSeconds=60)["ok"] == 1.0
    docs = [
        {"_id": "old", "at": _ago(3600)},
        {"_id": "just-expired", "at": _ago(61)},
        {"_id": "fresh", "at": _ago(30)},
        {"_id": "future", "at": NOW + dt.timedelta(days=1)},
        {"_id": "array-earliest-old", "at": [NOW + dt.timedelta(days=1), _ago(3600)]},
        {"_id": "array-all-fresh", "at": [_ago(1), NOW]},
        {"_id": "string", "at": "2000-01-01"},
        {"_id": "number", "at": 0},
        {"_id": "missing"},
    ]
    assert d.run("app", {"insert": "c", "documents": docs}, CTX)["n"] == len(docs)
    monitor = _monitor(d)
    assert monitor.run_once() == 3
    assert _ids(d) == sorted(["fresh", "future", "array-all-fresh", "string", "number",
                              "missing"])
    assert monitor.run_once() == 0 and monitor.deleted == 3 and monitor.passes == 2


def test_only_a_primary_deletes(d: Dispatcher) -> None:
    _create(d, {"at": 1}, expireAfterSeconds=0)
    d.run("app", {"insert": "c", "documents": [{"_id": 1, "at": _ago(10)}]}, CTX)
    monitor = _monitor(d, primary=False)
    assert monitor.run_once() == 0 and monitor.passes == 0
    assert _ids(d) == [1]


def test_compound_and_geo_indexes_are_not_ttl(d: Dispatcher) -> None:
    assert _create(d, {"at": 1, "b": 1}, expireAfterSeconds=1)["ok"] == 1.0
    assert _create(d, {"at": -1}, expireAfterSeconds=5)["ok"] == 1.0
    assert ttl_indexes(d.services.engine) == [("app", "c", "at", 5.0)]
    listed = d.run("app", {"listIndexes": "c"}, CTX)["cursor"]["firstBatch"]
    assert {i["name"]: i.get("expireAfterSeconds") for i in listed} == {
        "_id_": None, "at_1_b_1": 1, "at_-1": 5}


@pytest.mark.parametrize("value,code", [(-1, 67), (2**31, 67), (float("nan"), 67),
                                        ("60", 67), (True, 67)])
def test_bad_expire_after_seconds_is_refused(d: Dispatcher, value: Any, code: int) -> None:
    d.run("app", {"insert": "c", "documents": [{"_id": 1, "at": _ago(10)}]}, CTX)
    reply = _create(d, {"at": 1}, expireAfterSeconds=value)
    assert reply["ok"] == 0.0 and reply["code"] == code
    assert "expireAfterSeconds" in reply["errmsg"]
    assert [i["name"] for i in d.run("app", {"listIndexes": "c"}, CTX)["cursor"]["firstBatch"]
            ] == ["_id_"]
    assert _ids(d) == [1]


def test_ttl_on_id_is_refused(d: Dispatcher) -> None:
    reply = d.run("app", {"createIndexes": "c", "indexes": [
        {"key": {"_id": 1}, "name": "_id_", "expireAfterSeconds": 10}]}, CTX)
    assert reply["ok"] == 0.0 and reply["code"] == 197


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    with LocalCluster(3, extra_args=["--ttl-monitor-secs", "0.2",
                                     "--session-timeout-minutes", "0.05",  # 3 s
                                     "--session-refresh-secs", "0.2"]) as c:
        yield c


@pytest.mark.cluster
def test_primary_expires_documents_on_every_member(cluster: LocalCluster) -> None:
    p = cluster.wait_for_primary()
    now = dt.datetime.now(dt.UTC)
    assert cluster.command(p, {"createIndexes": "c", "indexes": [
        {"key": {"at": 1}, "name": "at_1", "expireAfterSeconds": 1}]}, db="app")["ok"] == 1.0
    docs = [{"_id": "old", "at": now - dt.timedelta(hours=1)},
            {"_id": "keep", "at": now + dt.timedelta(hours=1)},
            {"_id": "soon", "at": now}]
    assert cluster.command(p, {"insert": "c", "documents": docs,
                               "writeConcern": {"w": 3}}, db="app")["n"] == 3
    from node.local_cluster import wait_until

    for i in range(3):
        wait_until(lambda i=i: ids_on(cluster, i) == {"keep"}, 30,
                   f"member {i} to drop the expired documents")
    wait_has(cluster, p, {"keep"})


@pytest.mark.cluster
def test_idle_sessions_records_are_pruned_on_every_member(cluster: LocalCluster) -> None:
    from bson import Binary, Int64

    from node.local_cluster import wait_until

    p = cluster.wait_for_primary()
    assert cluster.command(p, {"hello": 1})["logicalSessionTimeoutMinutes"] == 1

    def insert(_id: int) -> dict[str, Any]:
        return cluster.command(p, {"insert": "sessions", "documents": [{"_id": _id}],
                                   "lsid": {"id": Binary(b"s" * 16, 4)}, "txnNumber": Int64(1),
                                   "writeConcern": {"w": 3}}, db="app")

    def records(i: int) -> int:
        status = cluster.command(i, {"serverStatus": 1})
        return int(status["logicalSessionRecordCache"]["activeSessionsCount"])

    assert insert(1)["n"] == 1
    again = insert(1)  # a retry: answered from the record
    again.pop("operationTime", None)  # a session's reply carries the member's cluster time
    assert again == {"n": 1, "ok": 1.0}
    for i in range(3):  # the record reaches every member (w: 3, then applied)
        wait_until(lambda i=i: records(i) == 1, 3, f"member {i} to record the session")
    for i in range(3):
        wait_until(lambda i=i: records(i) == 0, 30, f"member {i} to drop the idle session")
    retry = insert(1)  # the record is gone: the retry runs again
    assert retry["n"] == 0 and retry["writeErrors"][0]["code"] == 11000
