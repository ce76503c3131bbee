"""The state machine: one transaction per entry (effects + index + session), batches and
grouped inserts equal to one-by-one application, retryable writes, failures, the guard hook."""

from __future__ import annotations

import datetime as dt
from typing import Any

import lmdb
import pytest
from bson import Int64

from node.commands.appliers import APPLIERS, GROUPERS, STATEMENTS
from node.commands.engine_ops import open_engine
from node.engine.errors import MongoError
from node.engine.lmdb_store import LMDBStore
from node.engine.memory_store import MemoryStore
from node.server.statemachine import StateMachine

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def machine(store: Any = None, **kw: Any) -> StateMachine:
    store = store if store is not None else MemoryStore()
    return StateMachine(open_engine(store), store, APPLIERS, groupers=GROUPERS,
                        statements=STATEMENTS, **kw)


def ins(*ids: Any, coll: str = "c", ordered: bool = True) -> dict[str, Any]:
    return {"op": "insert", "db": "app", "coll": coll, "docs": [{"_id": i} for i in ids],
            "ordered": ordered, "now": NOW}


def all_docs(sm: StateMachine, coll: str = "c") -> list[dict[str, Any]]:
    return list(sm.engine.collection("app", coll).find({}))


def test_applied_index_survives_reopen_and_old_entries_are_skipped(tmp_path: Any) -> None:
    store = LMDBStore(str(tmp_path))
    sm = machine(store)
    assert sm.apply(1, ins(1)) == {"n": 1}
    sm.apply_noop(2)
    assert sm.apply(3, ins(2)) == {"n": 1}
    store.close()
    store = LMDBStore(str(tmp_path))
    sm = machine(store)
    assert sm.applied_index == 3
    assert sm.apply(3, ins(99))["alreadyApplied"] is True
    assert [d["_id"] for d in all_docs(sm)] == [1, 2]
    store.close()


def test_grouped_batch_equals_one_by_one() -> None:
    entries: list[dict[str, Any] | None] = [
        ins(1), ins(2), ins(1), None, ins(3, coll="d"), ins(4), ins(5, 5, 6), ins(6),
        ins(7, 7, 8, ordered=False), ins(9), ins(9),
        {"op": "update", "db": "app", "coll": "c", "now": NOW, "ordered": True,
         "updates": [{"q": {"_id": 1}, "u": {"$set": {"x": 1}}, "multi": False,
                      "upsert": False}]},
        ins(10),
    ]
    one, batch = machine(), machine()
    expected = [one.apply(i + 1, e) if e else one.apply_noop(i + 1) for i, e in
                enumerate(entries)]
    got = batch.apply_batch([(i + 1, e) for i, e in enumerate(entries)])
    assert got == expected
    assert got[2]["writeErrors"][0]["index"] == 0 and got[2]["n"] == 0
    for coll in ("c", "d"):
        assert all_docs(batch, coll) == all_docs(one, coll)
    assert batch.applied_index == one.applied_index == len(entries)


def test_retryable_write_recorded_with_its_reply() -> None:
    sm = machine()
    entry = {**ins(1), "lsid": {"id": b"s1"}, "txnNumber": Int64(5)}
    assert sm.apply(1, entry) == {"n": 1}
    assert sm.apply(2, entry) == {"n": 1}  # a retry: recorded reply, nothing applied
    assert sm.recorded_reply(entry) == {"n": 1}
    assert sm.recorded_reply({**entry, "txnNumber": Int64(6)}) is None
    with pytest.raises(MongoError) as err:
        sm.recorded_reply({**entry, "txnNumber": Int64(4)})
    assert err.value.code == 225
    assert [d["_id"] for d in all_docs(sm)] == [1]
    assert sm.apply(3, {**entry, "txnNumber": Int64(3)})["code"] == 225


def test_failing_entry_changes_nothing_but_is_recorded_as_applied() -> None:
    def boom(engine: Any, txn: Any, entry: dict[str, Any]) -> dict[str, Any]:
        txn.put("docs:app.c", b"junk", b"junk")
        raise RuntimeError("bug")

    store = MemoryStore()
    sm = StateMachine(open_engine(store), store, {**APPLIERS, "boom": boom})
    reply = sm.apply(1, {"op": "boom"})
    assert reply["ok"] == 0.0 and reply["code"] == 1
    assert sm.applied_index == 1
    with store.read() as txn:
        assert txn.get("docs:app.c", b"junk") is None
    assert sm.apply(2, {"op": "nope"})["ok"] == 0.0
    assert sm.applied_index == 2


@pytest.mark.parametrize("failure", [
    lmdb.MapFullError("mdb_put: MDB_MAP_FULL"), lmdb.ReadersFullError("MDB_READERS_FULL"),
    lmdb.DiskError("EIO"), OSError(28, "No space left on device"), MemoryError(),
])
def test_environmental_failure_propagates_and_is_not_recorded(failure: BaseException) -> None:
    """A failure of this member's store or disk is not the entry's: recording the index as
    applied (with an error reply) would make this member silently diverge from the others.
    It propagates (the member stops) and nothing is recorded: a restart applies it again."""
    def fail(engine: Any, txn: Any, entry: dict[str, Any]) -> dict[str, Any]:
        txn.put("docs:app.c", b"junk", b"junk")
        raise failure

    store = MemoryStore()
    sm = StateMachine(open_engine(store), store, {**APPLIERS, "fail": fail},
                      groupers=GROUPERS)
    assert sm.apply(1, ins(1)) == {"n": 1}
    with pytest.raises(type(failure)):
        sm.apply(2, {"op": "fail"})
    assert sm.applied_index == 1
    with pytest.raises(type(failure)):
        sm.apply_batch([(2, ins(2)), (3, {"op": "fail"}), (4, ins(4))])
    assert sm.applied_index == 1
    assert [d["_id"] for d in all_docs(sm)] == [1]
    with store.read() as txn:
        assert txn.get("docs:app.c", b"junk") is None
    assert machine(store).applied_index == 1  # what a restart reads back
    sm.appliers["fail"] = lambda engine, txn, entry: {"n": 0}  # the condition went away
    assert sm.apply_batch([(2, ins(2)), (3, {"op": "fail"})]) == [{"n": 1}, {"n": 0}]


def test_environmental_cause_behind_another_exception_propagates() -> None:
    def fail(engine: Any, txn: Any, entry: dict[str, Any]) -> dict[str, Any]:
        try:
            raise lmdb.MapFullError("MDB_MAP_FULL")
        except lmdb.Error as exc:
            raise RuntimeError("index maintenance failed") from exc

    store = MemoryStore()
    sm = StateMachine(open_engine(store), store, {**APPLIERS, "fail": fail})
    with pytest.raises(RuntimeError):
        sm.apply(1, {"op": "fail"})
    assert sm.applied_index == 0


def test_real_map_full_stops_applying_and_a_larger_map_resumes(tmp_path: Any) -> None:
    store = LMDBStore(str(tmp_path), map_size=256 * 1024, sync=False)
    sm = machine(store)
    index = 0
    with pytest.raises(lmdb.MapFullError):
        for index in range(1, 1000):
            sm.apply(index, {**ins(index), "docs": [{"_id": index, "pad": "x" * 4000}]})
    last_good = index - 1
    assert sm.applied_index == last_good > 0
    store.close()
    store = LMDBStore(str(tmp_path), map_size=8 << 20, sync=False)
    sm = machine(store)
    assert sm.applied_index == last_good
    assert sm.apply(index, {**ins(index), "docs": [{"_id": index, "pad": "x"}]}) == {"n": 1}
    assert len(all_docs(sm)) == index
    store.close()


def test_guard_refuses_entries_before_they_apply() -> None:
    class Guard:
        def check_entry(self, txn: Any, entry: Any) -> None:
            if entry.get("coll") == "foreign":
                raise MongoError(13388, "stale routing version", code_name="StaleConfig")

    sm = machine(guard=Guard())
    assert sm.apply(1, ins(1, coll="foreign"))["code"] == 13388
    assert sm.apply_batch([(2, ins(2)), (3, ins(3)), (4, ins(4, coll="foreign"))])[2][
        "code"] == 13388
    assert [d["_id"] for d in all_docs(sm)] == [2, 3]
    assert all_docs(sm, "foreign") == []


LSID = {"id": b"s2"}


def update_entry(*ids: Any, stmt_ids: list[int] | None = None, txn: int = 1) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "op": "update", "db": "app", "coll": "c", "now": NOW, "ordered": True,
        "lsid": LSID, "txnNumber": Int64(txn),
        "updates": [{"q": {"_id": i}, "u": {"$inc": {"k": 1}}, "multi": False,
                     "upsert": False} for i in ids]}
    if stmt_ids is not None:
        entry["stmtIds"] = stmt_ids
    return entry


def test_retry_split_differently_applies_each_statement_once() -> None:
    """A router splits one retryable batch per shard with the client's statement ids; a
    retry that groups the statements differently runs only those not yet recorded."""
    sm = machine()
    sm.apply(1, ins(1, 2, 3))
    first = update_entry(1, 2, stmt_ids=[0, 1])
    assert sm.apply(2, first) == {"n": 2, "nModified": 2}
    retry = update_entry(1, 2, 3, stmt_ids=[0, 1, 2])
    assert sm.recorded_reply(retry) is None  # statement 2 is new: it must be proposed
    assert sm.apply(3, retry) == {"n": 3, "nModified": 3}
    assert sm.recorded_reply(retry) == {"n": 3, "nModified": 3}
    assert sm.apply(4, retry) == {"n": 3, "nModified": 3}
    assert [d.get("k") for d in all_docs(sm)] == [1, 1, 1]


def test_retried_insert_skips_recorded_documents_and_keeps_indexes() -> None:
    sm = machine()
    entry = {**ins(1, 2, 2, 3), "lsid": LSID, "txnNumber": Int64(1)}
    reply = sm.apply(1, entry)
    assert reply["n"] == 2 and reply["writeErrors"][0]["index"] == 2  # ordered: stops at 2
    again = sm.apply(2, {**entry, "docs": [{"_id": 1}, {"_id": 2}, {"_id": 4}, {"_id": 3}]})
    # statements 0 and 1 were recorded; 2 and 3 run now
    assert again == {"n": 4}
    assert [d["_id"] for d in all_docs(sm)] == [1, 2, 3, 4]


def test_find_and_modify_retry_returns_the_first_reply() -> None:
    sm = machine()
    sm.apply(1, ins(1))
    fam = {"op": "findAndModify", "db": "app", "coll": "c", "query": {"_id": 1}, "sort": {},
           "fields": None, "remove": False, "new": True, "upsert": False,
           "update": {"$inc": {"k": 5}}, "now": NOW, "lsid": LSID, "txnNumber": Int64(9)}
    first = sm.apply(2, fam)
    assert first["value"] == {"_id": 1, "k": 5}
    assert sm.apply(3, fam) == first
    assert all_docs(sm) == [{"_id": 1, "k": 5}]


class _NoReads(MemoryStore):
    """A store whose read snapshots can be forbidden (as when every LMDB reader slot is held)."""

    forbid = False

    def read(self) -> Any:
        if self.forbid:
            raise AssertionError("a read transaction was opened")
        return super().read()


def _config(version: int) -> dict[str, Any]:
    return {"op": "replSetConfig", "now": NOW,
            "config": {"_id": "rs0", "version": version, "members": [{"_id": 1, "host": "a:1"}]}}


def test_replset_config_is_served_from_memory(tmp_path: Any) -> None:
    """``hello`` reads the config on every call: it must not need a store reader slot."""
    store = _NoReads()
    sm = machine(store)
    assert sm.replset_config() is None
    sm.apply(1, _config(2))
    sm.apply_batch([(2, ins(1)), (3, _config(3)), (4, ins(2))])
    store.forbid = True
    assert sm.replset_config()["version"] == 3
    store.forbid = False
    # a failing batch falls back to one by one: the config still follows what committed
    sm.apply_batch([(5, _config(4)), (6, {"op": "nope"})])
    store.forbid = True
    assert sm.replset_config()["version"] == 4
    store.forbid = False
    # reopened (or a snapshot installed, which reloads): read back from the store once
    lmdb = LMDBStore(str(tmp_path))
    first = machine(lmdb)
    first.apply(1, _config(7))
    lmdb.close()
    lmdb = LMDBStore(str(tmp_path))
    again = machine(lmdb)
    assert again.replset_config()["version"] == 7
    lmdb.close()
