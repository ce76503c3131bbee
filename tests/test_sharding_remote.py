"""RemoteSet's retry modes against a scripted server: ``refused`` re-sends a command only when
the server refused it before running it, never after a network error (the command may have
run); ``safe`` re-sends after either."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from helogale.errors import AutoReconnect
from node.sharding.remote import RemoteSet, link_address
from tests.client_scripted_server import UNAVAILABLE, ScriptedServer

NOT_PRIMARY = {"ok": 0.0, "code": 10107, "codeName": "NotWritablePrimary", "errmsg": "not primary"}


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    s = ScriptedServer("rs0")
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture
def remote(server: ScriptedServer) -> Iterator[RemoteSet]:
    r = RemoteSet(f"rs0/{server.host}", server_selection_timeout_ms=3000)
    try:
        yield r
    finally:
        r.close()


def test_refused_is_not_resent_after_a_network_error(server: ScriptedServer,
                                                     remote: RemoteSet) -> None:
    server.script("_shardsvrMoveRange", UNAVAILABLE, {"ok": 1.0, "again": True})
    with pytest.raises(AutoReconnect):
        remote.command("admin", {"_shardsvrMoveRange": "db.c"}, retry="refused")
    assert len(server.commands("_shardsvrMoveRange")) == 1


def test_refused_is_resent_after_not_primary(server: ScriptedServer, remote: RemoteSet) -> None:
    server.script("insert", NOT_PRIMARY, {"ok": 1.0, "n": 1})
    reply = remote.command("db", {"insert": "c", "documents": [{"_id": 1}]}, retry="refused")
    assert reply == {"ok": 1.0, "n": 1}
    assert len(server.commands("insert")) == 2


def test_safe_is_resent_after_a_network_error(server: ScriptedServer, remote: RemoteSet) -> None:
    server.script("find", UNAVAILABLE, {"ok": 1.0, "cursor": {"id": 0, "firstBatch": []}})
    reply = remote.command("db", {"find": "c"}, retry="safe")
    assert reply["ok"] == 1.0
    assert len(server.commands("find")) == 2


def test_never_is_not_resent(server: ScriptedServer, remote: RemoteSet) -> None:
    server.script("insert", NOT_PRIMARY, {"ok": 1.0, "n": 1})
    reply = remote.command("db", {"insert": "c", "documents": [{"_id": 1}]}, retry="never")
    assert reply["code"] == 10107
    assert len(server.commands("insert")) == 1


def test_a_wildcard_link_host_is_the_host_the_member_was_reached_at() -> None:
    assert link_address("0.0.0.0:9001", ("10.0.0.5", 9000)) == "10.0.0.5:9001"
    assert link_address("[::]:9001", ("::1", 9000)) == "[::1]:9001"
    assert link_address("10.0.0.7:9001", ("10.0.0.5", 9000)) == "10.0.0.7:9001"
