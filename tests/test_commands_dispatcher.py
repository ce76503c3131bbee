"""The dispatcher: command table, error replies for bad input, admin commands, BSON entry."""

from __future__ import annotations

from typing import Any

import bson
import pytest

from node.commands import dispatcher as dispatcher_module
from node.commands.context import WIRE, RequestContext
from node.commands.dispatcher import Command, Dispatcher
from node.commands.member import WriteConcern, parse_write_concern
from node.engine.errors import MongoError
from node.server.standalone import standalone_dispatcher

CTX = RequestContext(connection_id=7)


@pytest.fixture
def d() -> Dispatcher:
    return standalone_dispatcher()


def test_unknown_and_empty_commands(d: Dispatcher) -> None:
    assert d.run("app", {"frobnicate": 1}, CTX) == {
        "ok": 0.0, "errmsg": "no such command: 'frobnicate'", "code": 59,
        "codeName": "CommandNotFound"}
    assert d.run("app", {}, CTX)["ok"] == 0.0
    assert d.run("bad.db", {"ping": 1}, CTX)["code"] == 73


def test_hello_and_is_master(d: Dispatcher) -> None:
    hello = d.run("admin", {"hello": 1}, CTX)
    assert hello["isWritablePrimary"] is True and hello["connectionId"] == 7
    assert hello["maxBsonObjectSize"] == 16 * 1024 * 1024 and hello["ok"] == 1.0
    assert hello["maxWireVersion"] >= 8
    legacy = d.run("admin", {"isMaster": 1}, RequestContext(transport=WIRE))
    assert legacy["ismaster"] is True and "isWritablePrimary" not in legacy


def test_admin_commands(d: Dispatcher) -> None:
    assert d.run("admin", {"ping": 1}, CTX) == {"ok": 1.0}
    assert d.run("admin", {"buildInfo": 1}, CTX)["versionArray"][0] >= 4
    fcv = d.run("admin", {"getParameter": 1, "featureCompatibilityVersion": 1}, CTX)
    assert fcv["featureCompatibilityVersion"]["version"]
    assert d.run("admin", {"endSessions": [{"id": b"x"}]}, CTX)["ok"] == 1.0
    assert "hello" in d.run("admin", {"listCommands": 1}, CTX)["commands"]
    # a standalone member has no replica set
    assert d.run("admin", {"replSetGetStatus": 1}, CTX)["code"] == 76
    assert d.run("app", {"replSetGetStatus": 1}, CTX)["code"] == 13


def test_run_bson_rejects_garbage_and_keeps_serving(d: Dispatcher) -> None:
    for junk in (b"", b"\x05\x00\x00\x00", b"\xff" * 40, bson.encode({"a": 1})[:-1]):
        reply = bson.decode(d.run_bson("app", junk, CTX))
        assert reply["ok"] == 0.0 and reply["code"] in (22, 59), reply
    reply = bson.decode(d.run_bson("app", bson.encode({"insert": "c", "documents": [{}]}), CTX))
    assert reply == {"n": 1, "ok": 1.0}


def test_handler_bug_is_internal_error_not_a_crash(d: Dispatcher, monkeypatch: Any) -> None:
    def broken(*_: Any) -> dict:
        raise KeyError("oops")

    monkeypatch.setitem(dispatcher_module.COMMANDS, "ping", Command(broken))
    reply = d.run("admin", {"ping": 1}, CTX)
    assert reply["ok"] == 0.0 and reply["code"] == 1 and "KeyError" in reply["errmsg"]
    assert d.run("admin", {"hello": 1}, CTX)["ok"] == 1.0


def test_deeply_nested_query_is_an_error(d: Dispatcher) -> None:
    q: dict[str, Any] = {"a": 1}
    for _ in range(3000):
        q = {"$and": [q]}
    reply = d.run("app", {"find": "c", "filter": q}, CTX)
    assert reply["ok"] == 0.0


def test_write_concern_parsing() -> None:
    assert parse_write_concern({}, 3) == WriteConcern()
    wc = parse_write_concern({"writeConcern": {"w": "majority", "wtimeout": 500, "j": True}}, 3)
    assert wc == WriteConcern("majority", 500, True)
    assert parse_write_concern({"writeConcern": {"w": 0}}, 3).acknowledged is False
    with pytest.raises(MongoError) as err:
        parse_write_concern({"writeConcern": {"w": 4}}, 3)
    assert err.value.code == 100
    with pytest.raises(MongoError):
        parse_write_concern({"writeConcern": {"w": -1}}, 3)
    with pytest.raises(MongoError):
        parse_write_concern({"writeConcern": 1}, 3)
