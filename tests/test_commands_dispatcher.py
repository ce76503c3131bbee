"""The dispatcher: command table, error replies for bad input, admin commands, BSON entry."""

from __future__ import annotations

import gc
import weakref
from concurrent.futures import Future
from typing import Any

import bson
import pytest

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

    monkeypatch.setitem(d.commands, "ping", Command(broken))  # type: ignore[index]
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
    # w 0 and 1 ignore wtimeout, as MongoDB does (the write itself is the wait)
    for w in (0, 1):
        wc = parse_write_concern({"writeConcern": {"w": w, "wtimeout": 1}}, 3)
        assert wc.wtimeout_ms == 0 and wc.settles_on_apply
    assert parse_write_concern({"writeConcern": {"wtimeout": 1}}, 3).wtimeout_ms == 0
    with pytest.raises(MongoError) as err:
        parse_write_concern({"writeConcern": {"w": 4}}, 3)
    assert err.value.code == 100
    with pytest.raises(MongoError):
        parse_write_concern({"writeConcern": {"w": -1}}, 3)
    with pytest.raises(MongoError):
        parse_write_concern({"writeConcern": 1}, 3)


class _HeldMember:
    """Wraps the standalone member: ``submit_async`` hands out a future the test completes."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.held: list[tuple[Future[Any], dict[str, Any], WriteConcern]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def submit_async(self, entry: dict[str, Any], wc: WriteConcern) -> Future[Any]:
        fut: Future[Any] = Future()
        self.held.append((fut, entry, wc))
        return fut


DEFERRED = RequestContext(connection_id=8, deferred_replies=True)


def test_deferred_write_is_answered_once_when_its_future_completes(d: Dispatcher) -> None:
    member = _HeldMember(d.services.member)
    d.services.member = member
    answers: list[dict[str, Any]] = []
    cmd = {"insert": "c", "documents": [{"_id": 1}], "writeConcern": {"w": "majority"}}
    d.run_bson_async("app", bson.encode(cmd), DEFERRED, lambda r: answers.append(bson.decode(r)))
    assert answers == [] and len(member.held) == 1
    fut, entry, wc = member.held[0]
    assert entry["op"] == "insert" and entry["docs"] == [{"_id": 1}] and wc.w == "majority"
    fut.set_result(({"n": 1}, None))
    assert answers == [{"n": 1, "ok": 1.0}]
    # a write concern error rides along with the result
    d.run_bson_async("app", bson.encode(cmd), DEFERRED, lambda r: answers.append(bson.decode(r)))
    member.held[1][0].set_result(({"n": 1}, {"code": 64, "errmsg": "timed out"}))
    assert answers[1] == {"n": 1, "writeConcernError": {"code": 64, "errmsg": "timed out"},
                          "ok": 1.0}


def test_a_settled_deferred_write_leaves_no_reference_cycle(d: Dispatcher) -> None:
    """Once answered, a deferred write's objects are freed by reference counting alone: a
    cycle per write (future -> callback -> pending reply -> future) left ~30 objects per write
    for the garbage collector on a busy primary."""
    member = _HeldMember(d.services.member)
    d.services.member = member
    answers: list[bytes] = []
    cmd = bson.encode({"insert": "c", "documents": [{"_id": 1}], "writeConcern": {"w": 1}})
    gc.collect()
    gc.disable()
    try:
        d.run_bson_async("app", cmd, DEFERRED, answers.append)
        fut = member.held.pop()[0]
        fut.set_result(({"n": 1}, None))
        freed = weakref.ref(fut)
        del fut
        assert len(answers) == 1 and freed() is None
    finally:
        gc.enable()


def test_deferred_write_failures_become_error_replies(d: Dispatcher) -> None:
    member = _HeldMember(d.services.member)
    d.services.member = member
    answers: list[dict[str, Any]] = []
    for _ in range(2):
        d.run_bson_async("app", bson.encode({"delete": "c", "deletes": [{"q": {}, "limit": 0}]}),
                         DEFERRED, lambda r: answers.append(bson.decode(r)))
    member.held[0][0].set_exception(MongoError(10107, "not primary"))
    member.held[1][0].set_exception(RuntimeError("a bug"))
    assert answers[0]["ok"] == 0.0 and answers[0]["code"] == 10107
    assert answers[1]["ok"] == 0.0 and answers[1]["code"] == 1 and "a bug" in answers[1]["errmsg"]


def test_async_entry_answers_at_once_what_needs_no_wait(d: Dispatcher) -> None:
    answers: list[dict[str, Any]] = []
    for raw in (b"\xff" * 12, bson.encode({"noSuchCommand": 1}), bson.encode({"count": "c"}),
                bson.encode({"insert": "c", "documents": []})):
        d.run_bson_async("app", raw, DEFERRED, lambda r: answers.append(bson.decode(r)))
    assert [a.get("code") for a in answers] == [22, 59, None, 16]
    # the standalone member completes writes at once: the reply comes before the call returns
    d.run_bson_async("app", bson.encode({"insert": "c", "documents": [{"_id": 2}]}), DEFERRED,
                     lambda r: answers.append(bson.decode(r)))
    assert answers[-1] == {"n": 1, "ok": 1.0}
    # run() with a deferring context waits for the reply itself
    assert d.run("app", {"insert": "c", "documents": [{"_id": 3}]}, DEFERRED) == {"n": 1,
                                                                                   "ok": 1.0}
    assert d.run("app", {"count": "c"}, CTX)["n"] == 2
