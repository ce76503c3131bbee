"""Logical sessions' retryable-write records: pruned after the session timeout (by the
primary's reaper, through the log) and on ``endSessions``/``killSessions``, deterministically."""

from __future__ import annotations

import datetime as dt
from typing import Any

from bson import Binary, Int64

from node.commands.appliers import APPLIERS, STATEMENTS
from node.commands.context import RequestContext
from node.commands.engine_ops import open_engine
from node.commands.sessions import drop_entry, session_count
from node.engine.memory_store import MemoryStore
from node.server.session_reaper import SessionReaper
from node.server.standalone import standalone_dispatcher
from node.server.statemachine import SESSIONS, StateMachine, session_key

CTX = RequestContext()
T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def _lsid(name: str) -> dict[str, Any]:
    return {"id": Binary(name.encode().ljust(16, b"\0"), 4)}


def _retryable_insert(d: Any, name: str, _id: int) -> dict[str, Any]:
    return d.run("app", {"insert": "c", "documents": [{"_id": _id}], "lsid": _lsid(name),
                         "txnNumber": Int64(1)}, CTX)


def _is_recorded(d: Any, name: str, _id: int) -> bool:
    """Whether a retry of the write is answered from the record (else it runs again and hits
    DuplicateKey): the record exists."""
    reply = _retryable_insert(d, name, _id)
    return reply["n"] == 1 and "writeErrors" not in reply


class Clock:
    def __init__(self) -> None:
        self.now = dt.datetime.now(dt.UTC)

    def __call__(self) -> dt.datetime:
        return self.now


def _reaper(d: Any, clock: Clock, primary: bool = True) -> SessionReaper:
    member = d.services.member
    return SessionReaper(d.services.engine.store, lambda e: member.submit(e, None)[0],
                         lambda: primary, timeout_minutes=30, clock=clock)


def test_idle_sessions_are_pruned_after_the_timeout() -> None:
    d = standalone_dispatcher()
    assert _retryable_insert(d, "a", 1)["n"] == 1
    assert _retryable_insert(d, "b", 2)["n"] == 1
    store = d.services.engine.store
    assert session_count(store) == 2
    clock = Clock()
    assert _reaper(d, clock).run_once() == 0  # fresh
    clock.now += dt.timedelta(minutes=20)
    assert _reaper(d, clock, primary=False).run_once() == 0  # only a primary prunes
    assert _reaper(d, clock).run_once() == 0  # idle 20 minutes: kept
    assert _is_recorded(d, "a", 1)
    before = d.services.member.sm.applied_index
    clock.now += dt.timedelta(minutes=11)  # idle 31 minutes
    assert _reaper(d, clock).run_once() == 2
    assert d.services.member.sm.applied_index == before + 1  # one dropSessions entry
    assert session_count(store) == 0
    assert not _is_recorded(d, "a", 1)  # the retry ran again: the record is gone


def test_a_session_used_after_the_reaper_looked_is_kept() -> None:
    store = MemoryStore()
    sm = StateMachine(open_engine(store), store, APPLIERS, statements=STATEMENTS)
    write = {"op": "insert", "db": "app", "coll": "c", "docs": [{"_id": 1}], "ordered": True,
             "lsid": _lsid("a"), "txnNumber": Int64(1), "now": T0}
    sm.apply(1, write)
    sm.apply(2, {**write, "docs": [{"_id": 2}], "lsid": _lsid("b"), "now": T0})
    # b writes again after the primary proposed the drop with idleBefore T0 + 30 min
    sm.apply(3, {**write, "docs": [{"_id": 3}], "lsid": _lsid("b"), "txnNumber": Int64(2),
                 "now": T0 + dt.timedelta(minutes=31)})
    keys = [session_key(_lsid("a")), session_key(_lsid("b")), session_key(_lsid("nobody"))]
    reply = sm.apply(4, drop_entry(keys, T0 + dt.timedelta(minutes=31),
                                   T0 + dt.timedelta(minutes=30)))
    assert reply == {"n": 1}
    with store.read() as r:
        assert r.get(SESSIONS, keys[0]) is None and r.get(SESSIONS, keys[1]) is not None


def test_dropping_is_the_same_on_every_member_whatever_their_clocks() -> None:
    """Apply the same log on two members (one would have a very different wall clock: the
    appliers must not read one) and compare their session tables."""
    entries = []
    for i, minutes in enumerate((0, 10, 40, 50)):
        entries.append({"op": "insert", "db": "app", "coll": "c", "docs": [{"_id": i}],
                        "ordered": True, "lsid": _lsid(f"s{i}"), "txnNumber": Int64(1),
                        "now": T0 + dt.timedelta(minutes=minutes)})
    keys = [session_key(_lsid(f"s{i}")) for i in range(4)]
    entries.append(drop_entry(keys, T0 + dt.timedelta(minutes=45),
                              T0 + dt.timedelta(minutes=15)))
    entries.append(drop_entry([keys[3]], T0 + dt.timedelta(minutes=46)))  # endSessions
    tables = []
    for _ in range(2):
        store = MemoryStore()
        sm = StateMachine(open_engine(store), store, APPLIERS, statements=STATEMENTS)
        replies = sm.apply_batch([(i + 1, e) for i, e in enumerate(entries)])
        assert replies[-2:] == [{"n": 2}, {"n": 1}]
        with store.read() as r:
            tables.append(sorted(r.scan(SESSIONS)))
    assert tables[0] == tables[1]
    assert [k for k, _ in tables[0]] == sorted([keys[2]])


def test_end_sessions_and_kill_sessions_drop_the_records() -> None:
    d = standalone_dispatcher()
    for i, name in enumerate(("a", "b", "c")):
        assert _retryable_insert(d, name, i)["n"] == 1
    applied = d.services.member.sm.applied_index
    reply = d.run("admin", {"endSessions": [_lsid("a"), _lsid("unknown")]}, CTX)
    assert reply == {"ok": 1.0}
    assert d.services.member.sm.applied_index == applied + 1
    assert not _is_recorded(d, "a", 0) and _is_recorded(d, "b", 1)
    assert d.run("admin", {"killSessions": [_lsid("b")]}, CTX) == {"ok": 1.0}
    assert not _is_recorded(d, "b", 1)
    # sessions without a record propose nothing
    applied = d.services.member.sm.applied_index
    assert d.run("admin", {"endSessions": [_lsid("zzz")]}, CTX) == {"ok": 1.0}
    assert d.services.member.sm.applied_index == applied
    bad = d.run("admin", {"endSessions": "a"}, CTX)
    assert bad["ok"] == 0.0 and bad["code"] == 14


def test_hello_reports_the_session_timeout() -> None:
    d = standalone_dispatcher()
    assert d.run("admin", {"hello": 1}, CTX)["logicalSessionTimeoutMinutes"] == 30
    d.services.session_timeout_minutes = 0.05
    assert d.run("admin", {"hello": 1}, CTX)["logicalSessionTimeoutMinutes"] == 1


def test_a_transaction_number_reused_for_another_kind_of_write_is_refused() -> None:
    """A session's transaction number whose statements were recorded by one kind of write
    (insert, say) and then sent with another (update) made the update fold in the insert's
    results and fail with InternalError (KeyError 'm') inside the apply path; found by
    tests/test_commands_fuzz.py. It is refused (40606), consistently, and changes nothing."""
    d = standalone_dispatcher()
    lsid = _lsid("reuse")
    q = {"_id": 1}
    writes = [
        {"insert": "c", "documents": [{"_id": 2, "v": 0}]},
        {"update": "c", "updates": [{"q": q, "u": {"$inc": {"v": 1}}}]},
        {"delete": "c", "deletes": [{"q": q, "limit": 1}]},
        {"findAndModify": "c", "query": q, "update": {"$inc": {"v": 1}}},
    ]
    for n, first in enumerate(writes):
        d.run("app", {"delete": "c", "deletes": [{"q": {}, "limit": 0}]}, CTX)
        d.run("app", {"insert": "c", "documents": [{"_id": 1, "v": 0}]}, CTX)
        reply = d.run("app", {**first, "lsid": lsid, "txnNumber": Int64(10 + n)}, CTX)
        assert reply["ok"] == 1.0 and "writeErrors" not in reply, reply
        state = d.run("app", {"find": "c"}, CTX)["cursor"]["firstBatch"]
        for other in writes:
            if next(iter(other)) == next(iter(first)):
                continue
            reply = d.run("app", {**other, "lsid": lsid, "txnNumber": Int64(10 + n)}, CTX)
            assert reply["ok"] == 0.0 and reply["code"] == 40606, (first, other, reply)
            assert d.run("app", {"find": "c"}, CTX)["cursor"]["firstBatch"] == state
        # the same kind of write is still a retry, answered from the record
        assert d.run("app", {**first, "lsid": lsid, "txnNumber": Int64(10 + n)}, CTX)["ok"] == 1.0


def test_one_transaction_may_mix_kinds_of_write_on_distinct_statements() -> None:
    """bulkWrite runs its inserts, updates and deletes as separate writes with one
    ``txnNumber`` and distinct statement ids: retrying it applies each operation once."""
    d = standalone_dispatcher()
    cmd = {"bulkWrite": 1, "ops": [{"insert": 0, "document": {"_id": 50, "n": 0}},
                                   {"update": 0, "filter": {"_id": 50},
                                    "updateMods": {"$inc": {"n": 1}}},
                                   {"delete": 0, "filter": {"_id": 51}},
                                   {"insert": 0, "document": {"_id": 52, "n": 0}}],
           "nsInfo": [{"ns": "app.c"}], "lsid": _lsid("bulk"), "txnNumber": Int64(1)}
    for _ in range(2):
        reply = d.run("admin", cmd, CTX)
        assert reply["ok"] == 1.0 and reply["nErrors"] == 0, reply
    docs = d.run("app", {"find": "c"}, CTX)["cursor"]["firstBatch"]
    assert docs == [{"_id": 50, "n": 1}, {"_id": 52, "n": 0}]
