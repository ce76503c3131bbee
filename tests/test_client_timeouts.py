"""Client fault rules against scripted servers: default timeouts (a stuck server never blocks a
caller forever) and writes re-sent only with the same ``lsid`` / ``txnNumber``."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

import helogale
from helogale.errors import AutoReconnect, NetworkTimeout, is_retryable
from tests.client_scripted_server import UNAVAILABLE, ScriptedServer, wait_for


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    srv = ScriptedServer()
    yield srv
    srv.stop()


@pytest.fixture
def release() -> Iterator[threading.Event]:
    event = threading.Event()
    yield event
    event.set()  # let the stuck handlers return so the server can stop


def _hang(release: threading.Event) -> Any:
    def step(db: str, cmd: dict[str, Any]) -> dict[str, Any]:
        release.wait(30)  # a stuck server: the connection is up, the reply never comes
        return {"ok": 1.0, "n": 1}
    return step


# --- timeouts ------------------------------------------------------------------------------------
def test_default_timeouts_are_finite() -> None:
    client = helogale.MongoClient("helogale://127.0.0.1:1/?replicaSet=rs0", connect=False)
    try:
        opts = client.options
        assert opts["socketTimeoutMS"] == 600_000
        assert opts["serverSelectionTimeoutMS"] == 30_000
        assert opts["connectTimeoutMS"] == 20_000
        assert client.topology.server_selection_timeout == 30.0
        assert client.topology.connect_timeout == 20.0
        assert client._channels.get(("127.0.0.1", 1)).timeout == 600.0
    finally:
        client.close()


def test_timeouts_from_uri_and_keywords() -> None:
    uri = ("helogale://127.0.0.1:1/?replicaSet=rs0&socketTimeoutMS=250&connectTimeoutMS=300"
           "&serverSelectionTimeoutMS=400")
    for client in (helogale.MongoClient(uri, connect=False),
                   helogale.MongoClient("helogale://127.0.0.1:1/?replicaSet=rs0", connect=False,
                                        sockettimeoutms=250, connectTimeoutMS=300,
                                        serverSelectionTimeoutMS=400)):
        try:
            assert client._channels.get(("127.0.0.1", 1)).timeout == 0.25
            assert client.topology.connect_timeout == 0.3
            assert client.topology.server_selection_timeout == 0.4
        finally:
            client.close()
    # 0 turns the socket timeout off explicitly (pymongo's meaning), never by default
    off = helogale.MongoClient("helogale://127.0.0.1:1/?socketTimeoutMS=0", connect=False)
    try:
        assert off._channels.get(("127.0.0.1", 1)).timeout is None
    finally:
        off.close()


def test_a_timed_out_request_is_not_retryable() -> None:
    assert not is_retryable(NetworkTimeout("timed out"))
    assert is_retryable(AutoReconnect("connection reset"))


def test_stuck_server_fails_an_operation_within_the_socket_timeout(
        server: ScriptedServer, release: threading.Event) -> None:
    server.script("insert", _hang(release))
    server.script("find", _hang(release))
    uri = f"helogale://{server.host}/?replicaSet=rs0&socketTimeoutMS=400"
    with helogale.MongoClient(uri, heartbeatFrequencyMS=200) as client:
        wait_for(lambda: client.primary == server.address)
        started = time.monotonic()
        with pytest.raises(NetworkTimeout):
            client.db.c.insert_one({"x": 1})  # a retryable write
        took = time.monotonic() - started
        assert took < 2.0, took
        # not re-sent: the server may still be running it, and the caller asked for a bound
        assert len(server.commands("insert")) == 1
        # a timeout says nothing about the server's role: it stays the known primary
        assert client.primary == server.address
        started = time.monotonic()
        with pytest.raises(NetworkTimeout):
            client.db.c.find_one({})  # a retryable read
        assert time.monotonic() - started < 2.0
        assert len(server.commands("find")) == 1
        assert client.db.c.insert_one({"y": 1}).acknowledged  # the server answers again


# --- never re-send a write without its session ---------------------------------------------------
def test_write_to_standalone_is_not_resent_without_a_session() -> None:
    server = ScriptedServer(set_name=None)  # hello without setName: a standalone member
    try:
        server.script("insert", UNAVAILABLE, {"ok": 1.0, "n": 1})
        with helogale.MongoClient(server.host, serverSelectionTimeoutMS=3000,
                                  heartbeatFrequencyMS=200) as client:
            with pytest.raises(AutoReconnect):
                client.db.c.insert_one({"x": 1})
            assert client.executor.retries == 0
        [insert] = server.commands("insert")  # sent once: a retry could apply it twice
        assert "lsid" not in insert and "txnNumber" not in insert
    finally:
        server.stop()


def test_retry_refused_by_a_server_without_sessions_keeps_the_first_error() -> None:
    """The first attempt went with lsid/txnNumber; the server then turns out standalone (it
    would take the write without them): the write is not sent again, the first error stands."""
    server = ScriptedServer()

    def fail_and_turn_standalone(db: str, cmd: dict[str, Any]) -> Any:
        server.set_name = None
        server.primary(True)
        return {"ok": 0.0, "errmsg": "not primary", "code": 10107,
                "codeName": "NotWritablePrimary"}

    try:
        server.script("insert", fail_and_turn_standalone, {"ok": 1.0, "n": 1})
        with helogale.MongoClient(server.host, directConnection=True,
                                  serverSelectionTimeoutMS=3000,
                                  heartbeatFrequencyMS=200) as client, \
                pytest.raises(AutoReconnect, match="not primary"):
            client.db.c.insert_one({"x": 1})
        inserts = server.commands("insert")
        assert len(inserts) == 1 and "lsid" in inserts[0] and "txnNumber" in inserts[0]
    finally:
        server.stop()
