"""helogale.errors (reply -> exception mapping) and the retry policy in helogale.retry, exercised
through a real in-process gRPC server that answers from a script."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import helogale
from helogale.errors import (
    AutoReconnect,
    BulkWriteError,
    ConnectionFailure,
    CursorNotFound,
    DocumentTooLarge,
    DuplicateKeyError,
    ExecutionTimeout,
    NotPrimaryError,
    OperationFailure,
    PyMongoError,
    ServerSelectionTimeoutError,
    WriteConcernError,
    WriteError,
    check_reply,
    check_write_reply,
    error_for_reply,
    is_retryable,
)
from tests.client_scripted_server import UNAVAILABLE, ScriptedServer, wait_for

NOT_PRIMARY = {"ok": 0.0, "errmsg": "not primary", "code": 10107, "codeName": "NotWritablePrimary"}


# --- mapping ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "code, cls",
    [
        (10107, NotPrimaryError), (11600, NotPrimaryError), (11602, NotPrimaryError),
        (13435, NotPrimaryError), (13436, NotPrimaryError), (189, NotPrimaryError),
        (91, NotPrimaryError), (11000, DuplicateKeyError), (43, CursorNotFound),
        (50, ExecutionTimeout), (10334, DocumentTooLarge), (2, OperationFailure),
        (59, OperationFailure),
    ],
)
def test_error_for_reply_by_code(code: int, cls: type) -> None:
    reply = {"ok": 0.0, "errmsg": f"boom {code}", "code": code, "codeName": "X"}
    error = error_for_reply(reply, ("h", 1))
    assert type(error) is cls
    assert isinstance(error, PyMongoError)
    assert "boom" in str(error)
    if isinstance(error, OperationFailure):
        assert error.code == code
        assert error.details == reply


def test_hierarchy() -> None:
    assert issubclass(ServerSelectionTimeoutError, AutoReconnect)
    assert issubclass(AutoReconnect, ConnectionFailure)
    assert issubclass(DuplicateKeyError, WriteError)
    assert issubclass(WriteError, OperationFailure)
    assert issubclass(WriteConcernError, OperationFailure)
    assert issubclass(BulkWriteError, OperationFailure)
    assert helogale.errors.InvalidOperation.__mro__[1] is PyMongoError


def test_check_reply_and_write_reply() -> None:
    check_reply({"ok": 1.0})
    with pytest.raises(OperationFailure) as info:
        check_reply({"ok": 0, "errmsg": "no such cmd", "code": 59})
    assert info.value.code == 59 and info.value.details["errmsg"] == "no such cmd"
    check_reply({"ok": 0, "errmsg": "ns not found", "code": 26}, allowable_errors=(26,))
    dup = {"ok": 1, "n": 0, "writeErrors": [{"index": 0, "code": 11000, "errmsg": "E11000 dup"}]}
    with pytest.raises(DuplicateKeyError) as dup_info:
        check_write_reply(dup)
    assert dup_info.value.code == 11000 and dup_info.value.details["index"] == 0
    wce = {"ok": 1, "n": 1, "writeConcernError": {"code": 64, "errmsg": "waiting timed out"}}
    with pytest.raises(WriteConcernError) as wce_info:
        check_write_reply(wce)
    assert wce_info.value.code == 64
    with pytest.raises(NotPrimaryError):
        check_write_reply({"ok": 1, "n": 1, "writeConcernError": {"code": 11602, "errmsg": "x"}})


def test_is_retryable() -> None:
    assert is_retryable(AutoReconnect("x"))
    assert is_retryable(error_for_reply(NOT_PRIMARY))
    assert is_retryable(OperationFailure("x", 262))
    assert not is_retryable(OperationFailure("x", 2))
    assert not is_retryable(DuplicateKeyError("dup", 11000))
    assert not is_retryable(WriteConcernError("timeout", 64))


# --- retry policy against scripted servers ------------------------------------------------------
@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    srv = ScriptedServer()
    yield srv
    srv.stop()


def _client(*servers: ScriptedServer, **options: object) -> helogale.MongoClient:
    hosts = ",".join(s.host for s in servers)
    options.setdefault("serverSelectionTimeoutMS", 3000)
    options.setdefault("heartbeatFrequencyMS", 200)
    return helogale.MongoClient(f"helogale://{hosts}/?replicaSet=rs0", **options)


def test_retryable_write_retried_with_same_session(server: ScriptedServer) -> None:
    server.script("insert", NOT_PRIMARY, UNAVAILABLE, {"ok": 1.0, "n": 1})
    with _client(server) as client:
        result = client.db.c.insert_one({"x": 1})
    inserts = server.commands("insert")
    assert len(inserts) == 3
    assert result.acknowledged and result.inserted_id == inserts[0]["documents"][0]["_id"]
    assert {repr(c["lsid"]) for c in inserts} == {repr(inserts[0]["lsid"])}
    assert {c["txnNumber"] for c in inserts} == {inserts[0]["txnNumber"]}
    assert client.executor.retries == 2


def test_txn_numbers_increase_per_session(server: ScriptedServer) -> None:
    server.default = lambda db, cmd: {"ok": 1.0, "n": 1}
    with _client(server) as client:
        for i in range(3):
            client.db.c.insert_one({"i": i})
    numbers = [c["txnNumber"] for c in server.commands("insert")]
    assert numbers == sorted(numbers) and len(set(numbers)) == 3


def test_multi_update_is_not_retried(server: ScriptedServer) -> None:
    server.script("update", UNAVAILABLE, {"ok": 1.0, "n": 5, "nModified": 5})
    with _client(server) as client:
        with pytest.raises(AutoReconnect):
            client.db.c.update_many({}, {"$set": {"a": 1}})
        assert "txnNumber" not in server.commands("update")[0]
        assert client.db.c.update_many({}, {"$set": {"a": 1}}).modified_count == 5


def test_retry_writes_off(server: ScriptedServer) -> None:
    server.script("delete", NOT_PRIMARY)
    with _client(server, retryWrites=False) as client, pytest.raises(NotPrimaryError):
        client.db.c.delete_one({"a": 1})
    assert len(server.commands("delete")) == 1
    assert "lsid" not in server.commands("delete")[0]


def test_write_error_is_not_retried(server: ScriptedServer) -> None:
    server.script("insert", {"ok": 1.0, "n": 0, "writeErrors": [
        {"index": 0, "code": 11000, "errmsg": "E11000 duplicate key error"}]})
    with _client(server) as client, pytest.raises(DuplicateKeyError):
        client.db.c.insert_one({"_id": 1})
    assert len(server.commands("insert")) == 1


def test_not_primary_write_concern_error_is_retried(server: ScriptedServer) -> None:
    server.script(
        "update",
        {"ok": 1.0, "n": 1, "nModified": 1,
         "writeConcernError": {"code": 11602, "errmsg": "interrupted due to step down"}},
        {"ok": 1.0, "n": 1, "nModified": 0},
    )
    with _client(server) as client:
        assert client.db.c.update_one({"_id": 1}, {"$set": {"a": 1}}).matched_count == 1
    first, second = server.commands("update")
    assert first["txnNumber"] == second["txnNumber"]


def test_read_retried_after_network_error(server: ScriptedServer) -> None:
    batch = {"ok": 1.0, "cursor": {"firstBatch": [{"_id": 1}], "id": 0, "ns": "db.c"}}
    server.script("find", UNAVAILABLE, batch)
    with _client(server) as client:
        assert list(client.db.c.find()) == [{"_id": 1}]
    with _client(server, retryReads=False) as client:
        server.script("find", UNAVAILABLE)
        with pytest.raises(AutoReconnect):
            list(client.db.c.find())


def test_failover_to_new_primary() -> None:
    a, b = ScriptedServer(), ScriptedServer()
    try:
        hosts = [a.host, b.host]
        a.primary(True, hosts)
        b.primary(False, hosts, primary=a.host)
        b.default = lambda db, cmd: {"ok": 1.0, "n": 1}

        def step_down(db: str, cmd: dict) -> dict:
            a.primary(False, hosts, primary=b.host)
            b.primary(True, hosts)
            return NOT_PRIMARY

        a.script("insert", {"ok": 1.0, "n": 1}, step_down)
        with _client(a, b) as client:
            wait_for(lambda: client.primary == a.address and b.address in client.nodes)
            client.db.c.insert_one({"n": 1})
            client.db.c.insert_one({"n": 2})
            assert client.primary == b.address
        [moved] = b.commands("insert")
        failed = a.commands("insert")[1]
        assert moved["txnNumber"] == failed["txnNumber"]
        assert moved["documents"] == failed["documents"]
    finally:
        a.stop()
        b.stop()


def test_server_selection_timeout_without_primary(server: ScriptedServer) -> None:
    server.primary(False)
    with _client(server, serverSelectionTimeoutMS=300) as client, \
            pytest.raises(ServerSelectionTimeoutError, match="primary"):
        client.db.c.insert_one({"x": 1})
    with _client(server, serverSelectionTimeoutMS=300, readPreference="secondary") as client:
        server.script("count", {"ok": 1.0, "n": 7})
        assert client.db.c.count_documents({}) == 7
        assert server.commands("count")[-1]["$readPreference"] == {"mode": "secondary"}


def test_connection_raises_connection_failure_when_nothing_answers() -> None:
    srv = ScriptedServer()
    address = srv.host
    srv.stop()
    with pytest.raises(ConnectionFailure):
        helogale.Connection(address, serverSelectionTimeoutMS=300)


def test_command_passthrough_and_operation_failure(server: ScriptedServer) -> None:
    server.script("replSetGetStatus", {"ok": 1.0, "set": "rs0", "members": []},
                  {"ok": 0.0, "errmsg": "no replset config", "code": 94, "codeName": "NotYetInitialized"})
    with _client(server) as client:
        assert client.admin.command("replSetGetStatus") == {"ok": 1.0, "set": "rs0", "members": []}
        with pytest.raises(OperationFailure) as info:
            client.admin.command("replSetGetStatus")
        assert info.value.code == 94 and info.value.details["codeName"] == "NotYetInitialized"
        assert client.admin.command("hello")["isWritablePrimary"] is True
    assert server.received[0][0] == "admin"


def test_close_stops_monitor_threads(server: ScriptedServer) -> None:
    import threading

    client = _client(server)
    wait_for(lambda: client.primary is not None)
    assert any(t.name.startswith("helogale-monitor") for t in threading.enumerate())
    client.close()
    assert not any(t.name.startswith("helogale-monitor") for t in threading.enumerate())
    with pytest.raises(helogale.errors.InvalidOperation):
        client.db.c.find_one()


def test_document_too_large_is_refused_before_sending(server: ScriptedServer) -> None:
    with _client(server) as client, pytest.raises(DocumentTooLarge):
        client.db.c.insert_one({"big": "x" * (17 * 1024 * 1024)})
    assert server.commands("insert") == []


def test_request_to_unreachable_server_is_abandoned_and_retried(server: ScriptedServer) -> None:
    import threading

    release = threading.Event()

    def hang(db: str, cmd: dict) -> dict:
        release.wait(10)  # a frozen server: no reply until the test ends
        return {"ok": 1.0, "n": 1}

    server.script("insert", hang, {"ok": 1.0, "n": 1})
    with _client(server) as client:
        results: list[object] = []
        writer = threading.Thread(target=lambda: results.append(client.db.c.insert_one({"x": 1})))
        writer.start()
        wait_for(lambda: len(server.commands("insert")) == 1)
        # the monitor's hello to the server failed: in-flight requests are handed to the retry
        client.topology.on_check_failed(server.address, AutoReconnect("hello timed out"))
        writer.join(10)
        release.set()
        assert results and results[0].acknowledged
        assert client.executor.retries == 1
    first, second = server.commands("insert")
    assert first["txnNumber"] == second["txnNumber"]


def test_removed_members_monitors_are_joined_on_close(server: ScriptedServer) -> None:
    import threading

    other = ScriptedServer(set_name="another-set")
    try:
        # a seed that belongs to another replica set: its monitor is retired, then joined
        client = _client(server, other)
        wait_for(lambda: client.nodes == {server.address})
        client.close()
        assert not any(t.name.startswith("helogale-monitor") for t in threading.enumerate())
    finally:
        other.stop()
