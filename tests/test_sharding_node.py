"""The shard and config-server roles in process: ownership as replicated state, the ownership
filter below every plan, version checks where entries apply, applyOps preconditions, the
migration entries and the range deleter's entry."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from bson import MaxKey, MinKey, ObjectId, Timestamp

from node.commands.appliers import APPLIERS, GROUPERS, STATEMENTS
from node.commands.engine_ops import open_engine
from node.engine.errors import MongoError
from node.engine.memory_store import MemoryStore
from node.server.statemachine import StateMachine
from node.sharding import ownership as own
from node.sharding.chunks import ChunkVersion, KeyRange, RangeSet
from node.sharding.shard_state import MODS_TABLE, ShardState

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
EPOCH = ObjectId()
NS = "app.c"


class FakeMember:
    def __init__(self, sm: StateMachine) -> None:
        self.sm = sm

    def require_writable(self) -> None:
        return None

    def submit(self, entry: dict[str, Any], wc: Any) -> tuple[dict[str, Any], None]:
        return apply(self.sm, entry), None


@pytest.fixture
def shard() -> tuple[StateMachine, ShardState]:
    store = MemoryStore()
    engine = open_engine(store)
    sm = StateMachine(engine, store, APPLIERS, groupers=GROUPERS, statements=STATEMENTS)
    state = ShardState(engine, store, FakeMember(sm))
    sm.guard = state
    return sm, state


def apply(sm: StateMachine, entry: dict[str, Any]) -> dict[str, Any]:
    """Apply ``entry`` at the next log index (what committing it would do)."""
    return sm.apply(sm.applied_index + 1, entry)


def set_ownership(state: ShardState, chunks: list[tuple[Any, Any, Timestamp]],
                  top: ChunkVersion | None = None) -> None:
    doc = own.ownership_doc(NS, EPOCH, None, chunks, top or ChunkVersion(2, 0, EPOCH))
    state.propose({"op": "shardOwnership", "ns": NS, "ownership": doc})


def ins(*ids: Any, version: ChunkVersion | None = None) -> dict[str, Any]:
    entry: dict[str, Any] = {"op": "insert", "db": "app", "coll": "c", "now": NOW,
                             "docs": [{"_id": i, "v": i} for i in ids], "ordered": True}
    if version is not None:
        entry["shardVersion"] = version.to_doc()
    return entry


def visible(sm: StateMachine, **kw: Any) -> list[Any]:
    return [d["_id"] for d in sm.engine.collection("app", "c").find({}, **kw)]


def test_range_sets_and_bounds() -> None:
    owned = RangeSet([KeyRange.of(10, 20), KeyRange.of(MinKey(), 5), KeyRange.of(30, MaxKey())])
    from node.engine.keystring import encode_key

    hits = [v for v in (-1, 4, 5, 9, 10, 19, 20, 29, 30, 10**9, "s") if
            owned.contains(encode_key(v))]
    assert hits == [-1, 4, 10, 19, 30, 10**9, "s"]  # strings sort above every number


def test_orphans_are_invisible_even_under_limits_and_top_k_sorts(
        shard: tuple[StateMachine, ShardState]) -> None:
    sm, state = shard
    apply(sm, ins(*range(20)))  # unrouted: before the collection is sharded here
    set_ownership(state, [(5, 15, Timestamp(2, 0))])
    assert visible(sm) == list(range(5, 15))
    # a limit or a top-k sort must count only owned documents
    assert visible(sm, limit=3) == [5, 6, 7]
    assert visible(sm, sort=[("v", -1)], limit=2) == [14, 13]
    assert visible(sm, sort=[("v", 1)], skip=8, limit=5) == [13, 14]
    coll = sm.engine.collection("app", "c")
    assert coll.count({}) == 10 and coll.count({"v": {"$lt": 7}}) == 2
    assert sorted(coll.distinct("v")) == list(range(5, 15))
    # multi-writes never touch orphans
    assert coll.update({}, {"$set": {"t": 1}}, multi=True, now=NOW).n == 10
    assert coll.delete({"v": {"$gte": 0}}) == 10
    state.propose({"op": "shardOwnership", "ns": NS, "ownership": None})
    assert visible(sm) == [0, 1, 2, 3, 4, 15, 16, 17, 18, 19]  # not sharded: all visible


def test_routed_writes_are_checked_where_they_apply(
        shard: tuple[StateMachine, ShardState]) -> None:
    sm, state = shard
    set_ownership(state, [(MinKey(), 100, Timestamp(3, 1))], ChunkVersion(3, 1, EPOCH))
    mine = ChunkVersion(3, 1, EPOCH)
    assert apply(sm, ins(1, 2, version=mine)) == {"n": 2}
    stale = apply(sm, ins(3, version=ChunkVersion(2, 5, EPOCH)))
    assert stale["code"] == 13388 and stale["vWanted"] == mine.to_doc()
    foreign = apply(sm, ins(4, 150, version=mine))  # 150 is not owned: nothing applies
    assert foreign["code"] == 13388 and "150" in foreign["errmsg"]
    other_epoch = apply(sm, ins(5, version=ChunkVersion(3, 1, ObjectId())))
    assert other_epoch["code"] == 13388
    state.propose({"op": "shardCriticalSection", "ns": NS, "enter": True, "reason": {}})
    blocked = apply(sm, ins(6, version=mine))
    assert blocked["code"] == 13388 and blocked["criticalSection"] is True
    unrouted = apply(sm, ins(7))  # direct writes wait for the critical section too
    assert unrouted["code"] == 13388
    state.propose({"op": "shardCriticalSection", "ns": NS, "enter": False})
    assert apply(sm, ins(6, version=mine)) == {"n": 1}
    assert visible(sm) == [1, 2, 6]
    upsert = {"op": "update", "db": "app", "coll": "c", "now": NOW, "ordered": True,
              "shardVersion": mine.to_doc(), "updates": [
                  {"q": {"_id": 500}, "u": {"$set": {"x": 1}}, "upsert": True, "multi": False,
                   "upsertId": ObjectId()}]}
    assert apply(sm, upsert)["code"] == 13388  # the upsert would create an unowned _id


def test_a_refresh_never_goes_back_to_an_older_version(
        shard: tuple[StateMachine, ShardState]) -> None:
    _, state = shard
    set_ownership(state, [(0, 10, Timestamp(4, 0))], ChunkVersion(4, 0, EPOCH))
    set_ownership(state, [(0, 20, Timestamp(3, 0))], ChunkVersion(3, 0, EPOCH))
    current = state.ownership(NS)
    assert current is not None and current.version == ChunkVersion(4, 0, EPOCH)


def test_writes_in_a_donated_range_are_recorded_in_their_transaction(
        shard: tuple[StateMachine, ShardState]) -> None:
    sm, state = shard
    set_ownership(state, [(MinKey(), MaxKey(), Timestamp(1, 0))], ChunkVersion(1, 0, EPOCH))
    mig = ObjectId()
    state.propose({"op": "migrationState", "set": {"id": mig, "ns": NS, "min": 50,
                                                   "max": MaxKey(), "role": "donor"}})
    apply(sm, ins(10, 60, 70))
    apply(sm, {"op": "delete", "db": "app", "coll": "c", "now": NOW, "ordered": True,
                 "deletes": [{"q": {"_id": 60}, "limit": 1}]})
    from node.engine.keystring import encode_key

    with sm.store.read() as txn:
        recorded = [bytes(v) for _, v in txn.scan(MODS_TABLE)]
    assert recorded == [encode_key(60), encode_key(70), encode_key(60)]
    with pytest.raises(MongoError) as err:
        state.propose({"op": "migrationState", "set": {"id": ObjectId(), "ns": NS, "min": 0,
                                                       "max": 5, "role": "donor"}})
    assert err.value.code == 117
    state.propose({"op": "migrationState", "clear": mig})
    with sm.store.read() as txn:
        assert list(txn.scan(MODS_TABLE)) == []


def test_migrate_apply_and_delete_range_never_touch_owned_records(
        shard: tuple[StateMachine, ShardState]) -> None:
    sm, state = shard
    set_ownership(state, [(MinKey(), 100, Timestamp(2, 1))], ChunkVersion(2, 1, EPOCH))
    apply(sm, ins(1, 2))
    mig = ObjectId()
    state.propose({"op": "migrationState", "set": {"id": mig, "ns": NS, "min": 100,
                                                   "max": MaxKey(), "role": "recipient"}})
    out = state.propose({"op": "migrateApply", "ns": NS, "migrationId": mig,
                         "docs": [{"_id": 150, "v": 1}, {"_id": 160, "v": 2}], "deletes": []})
    assert out["n"] == 2
    assert visible(sm) == [1, 2]  # incoming documents wait for the commit
    with pytest.raises(MongoError) as err:  # an owned _id is never overwritten
        state.propose({"op": "migrateApply", "ns": NS, "migrationId": mig,
                       "docs": [{"_id": 1, "v": "evil"}], "deletes": []})
    assert err.value.code == 20
    task = {"id": mig, "ns": NS, "min": MinKey(), "max": MaxKey()}
    state.propose({"op": "migrationState", "clear": mig, "rangeDeletion": task})
    first = state.propose({"op": "deleteRange", "ns": NS, "min": MinKey(), "max": MaxKey(),
                           "limit": 1, "task": mig})
    assert first == {"n": 1, "done": False}
    last = state.propose({"op": "deleteRange", "ns": NS, "min": MinKey(), "max": MaxKey(),
                          "limit": 10, "task": mig})
    assert last == {"n": 1, "done": True}
    state.propose({"op": "shardOwnership", "ns": NS, "ownership": None})
    assert visible(sm) == [1, 2]  # the owned records survived the deletion of the range


def test_apply_ops_preconditions_are_checked_where_it_applies(
        shard: tuple[StateMachine, ShardState]) -> None:
    sm, _ = shard
    entry = {"op": "applyOps", "now": NOW, "preCondition": [
        {"ns": "config.chunks", "q": {"_id": "a"}, "res": None}],
        "ops": [{"op": "i", "ns": "config.chunks", "o": {"_id": "a", "shard": "s1"}},
                {"op": "i", "ns": "config.chunks", "o": {"_id": "b", "shard": "s1"}}]}
    assert apply(sm, entry) == {"applied": 2, "results": [True, True]}
    again = apply(sm, entry)
    assert again["code"] == 2 and again["errmsg"] == "preCondition failed"
    move = {"op": "applyOps", "now": NOW, "preCondition": [
        {"ns": "config.chunks", "q": {"_id": "a"}, "res": {"shard": "s1"}}],
        "ops": [{"op": "u", "ns": "config.chunks", "o2": {"_id": "a"},
                 "o": {"$set": {"shard": "s2"}}},
                {"op": "i", "ns": "config.chunks", "o": {"_id": "b"}}]}  # duplicate: undone
    assert apply(sm, move)["code"] == 11000
    docs = list(sm.engine.collection("config", "chunks").find({}, sort=[("_id", 1)]))
    assert docs == [{"_id": "a", "shard": "s1"}, {"_id": "b", "shard": "s1"}]
