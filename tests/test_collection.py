"""Tests for collections and the catalog (node.engine.collection, node.engine.database)."""

from __future__ import annotations

import datetime
import itertools
from typing import Any

import bson
import pytest
from bson.objectid import ObjectId
from bson.regex import Regex
from hypothesis import given, settings
from hypothesis import strategies as st

from node.engine.collection import Collection, Savepoint, ensure_id
from node.engine.database import CATALOG, Engine
from node.engine.errors import MongoError
from node.engine.keystring import encode_key
from node.engine.memory_store import MemoryStore


@pytest.fixture(params=["memory", "lmdb", "planned"])
def engine(request: pytest.FixtureRequest, tmp_path: Any) -> Any:
    """The same engine behaviour on the in-memory and the durable store, and with the real
    index maintainer and planner plugged into the seams."""
    if request.param == "memory":
        yield Engine(MemoryStore())
        return
    if request.param == "planned":
        from node.engine.indexes import IndexManager
        from node.engine.planner import Planner

        yield Engine(MemoryStore(), indexes=IndexManager(), planner=Planner())
        return
    from node.engine.lmdb_store import LMDBStore

    store = LMDBStore(tmp_path / "db", map_size=1 << 30, sync=False)
    yield Engine(store)
    store.close()


@pytest.fixture
def coll(engine: Engine) -> Collection:
    return engine["test"]["things"]


def ids(docs: Any) -> list[Any]:
    return [d["_id"] for d in docs]


# --- insert ------------------------------------------------------------------------------------------


def test_insert_puts_id_first_and_creates_collection_lazily(
    engine: Engine, coll: Collection
) -> None:
    assert engine.list_collections("test") == []
    assert list(coll.find()) == []
    res = coll.insert([{"a": 1, "_id": 5}])
    assert (res.n, res.inserted_ids, res.write_errors) == (1, [5], [])
    assert [c["name"] for c in engine.list_collections("test")] == ["things"]
    stored = coll.find_one({})
    assert stored == {"_id": 5, "a": 1} and list(stored) == ["_id", "a"]


def test_ensure_id_fills_missing_ids_first() -> None:
    doc = ensure_id({"a": 1})
    assert isinstance(doc["_id"], ObjectId) and list(doc) == ["_id", "a"]
    assert ensure_id({"a": 1}, new_id=7) == {"_id": 7, "a": 1}
    assert ensure_id({"a": 1, "_id": 3}, new_id=7) == {"_id": 3, "a": 1}


def test_insert_without_id_is_a_caller_bug(coll: Collection) -> None:
    with pytest.raises(ValueError):
        coll.insert([{"a": 1}])


def test_ordered_insert_stops_at_first_error_keeping_earlier(coll: Collection) -> None:
    res = coll.insert([{"_id": 1}, {"_id": 2}, {"_id": 1}, {"_id": 3}])
    assert res.n == 2
    [err] = res.write_errors
    assert (err.index, err.code) == (2, 11000)
    assert (
        err.errmsg
        == "E11000 duplicate key error collection: test.things index: _id_ dup key: { _id: 1 }"
    )
    assert err.to_doc()["keyValue"] == {"_id": 1}
    assert ids(coll.find()) == [1, 2]


def test_unordered_insert_reports_every_error(coll: Collection) -> None:
    res = coll.insert(
        [{"_id": 1}, {"_id": 1.0}, {"_id": 2, "$bad": 1}, {"_id": 3, "a.b": 1}, {"_id": 4}],
        ordered=False,
    )
    assert res.n == 2
    assert [(e.index, e.code) for e in res.write_errors] == [(1, 11000), (2, 52), (3, 57)]
    assert ids(coll.find()) == [1, 4]


def test_insert_rejects_nested_bad_names_array_and_regex_ids(coll: Collection) -> None:
    res = coll.insert(
        [
            {"_id": 1, "a": {"$x": 1}},
            {"_id": 2, "a": [{"b.c": 1}]},
            {"_id": [1, 2]},
            {"_id": Regex("x")},
            {"_id": 3, "r": {"$ref": "c", "$id": 1}},
        ],
        ordered=False,
    )
    assert [(e.index, e.code) for e in res.write_errors] == [(0, 52), (1, 57), (2, 2), (3, 2)]
    assert res.write_errors[2].errmsg == "can't use an array for _id"
    assert ids(coll.find()) == [3]


def test_document_too_large(coll: Collection) -> None:
    res = coll.insert([{"_id": 1, "big": "x" * (16 * 1024 * 1024)}])
    [err] = res.write_errors
    assert err.code == 10334 and err.errmsg.startswith("object to insert too large")
    assert coll.insert([{"_id": 2, "ok": "x" * (16 * 1024 * 1024 - 100)}]).n == 1
    with pytest.raises(MongoError) as info:
        coll.update({"_id": 2}, {"$set": {"more": "x" * 200}})
    assert info.value.code == 17419
    assert len(coll.find_one({"_id": 2})["ok"]) == 16 * 1024 * 1024 - 100


def test_records_keyed_by_keystring_of_id(engine: Engine, coll: Collection) -> None:
    coll.insert([{"_id": "b"}, {"_id": 2}, {"_id": ObjectId("0" * 24)}, {"_id": 1.5}])
    assert ids(coll.find()) == [1.5, 2, "b", ObjectId("0" * 24)]  # BSON order
    with engine.store.read() as r:
        raw = r.get("docs:test.things", encode_key(2))
    assert raw is not None and bson.decode(raw) == {"_id": 2}


# --- find --------------------------------------------------------------------------------------------


@pytest.fixture
def people(coll: Collection) -> Collection:
    coll.insert(
        [
            {"_id": 1, "name": "ann", "age": 30, "tags": ["a", "b"]},
            {"_id": 2, "name": "bob", "age": 25, "tags": ["b"]},
            {"_id": 3, "name": "cy", "age": 35},
            {"_id": 4, "name": "di", "age": 25, "tags": []},
        ]
    )
    return coll


def test_find_filter_sort_skip_limit(people: Collection) -> None:
    assert ids(people.find({"age": 25})) == [2, 4]
    assert ids(people.find(sort={"age": -1, "_id": 1})) == [3, 1, 2, 4]
    assert ids(people.find(sort=[("age", 1), ("_id", -1)], skip=1, limit=2)) == [2, 1]
    assert ids(people.find(limit=0)) == [1, 2, 3, 4]
    assert ids(people.find(limit=-2)) == [1, 2]
    assert ids(people.find({"tags": "b"}, skip=1)) == [2]


def test_find_projection(people: Collection) -> None:
    assert list(people.find({"_id": 1}, {"name": 1})) == [{"_id": 1, "name": "ann"}]
    assert list(people.find({"_id": 2}, {"tags": 0, "_id": 0})) == [{"name": "bob", "age": 25}]
    assert list(people.find({"tags": "b", "_id": 1}, {"tags.$": 1})) == [{"_id": 1, "tags": ["b"]}]


def test_find_id_point_lookups(people: Collection) -> None:
    assert ids(people.find({"_id": 3})) == [3]
    assert ids(people.find({"_id": 3.0, "age": 35})) == [3]
    assert ids(people.find({"_id": 3, "age": 1})) == []
    assert ids(people.find({"_id": {"$in": [4, 1, 99]}})) == [1, 4]
    assert ids(people.find({"_id": {"$eq": 2}})) == [2]
    assert ids(people.find({"_id": {"$gt": 2}})) == [3, 4]


def test_find_is_lazy_and_snapshot_consistent(people: Collection) -> None:
    it = people.find()
    assert next(it)["_id"] == 1
    people.delete({"_id": 2})
    people.insert([{"_id": 5}])
    assert ids(it) == [2, 3, 4]  # the snapshot taken when the scan started
    assert ids(people.find()) == [1, 3, 4, 5]


def test_find_records_resume_after_key(people: Collection) -> None:
    first = list(people.find_records(limit=2))
    assert [d["_id"] for _, d in first] == [1, 2]
    people.insert([{"_id": 0}, {"_id": 2.5}])  # one before the cursor, one after
    people.delete({"_id": 3})
    rest = list(people.find_records(after_key=first[-1][0]))
    assert [d["_id"] for _, d in rest] == [2.5, 4]
    assert [
        d["_id"] for _, d in people.find_records({"_id": {"$in": [1, 4]}}, after_key=first[0][0])
    ] == [4]
    with pytest.raises(ValueError):
        people.find_records(sort={"a": 1}, after_key=b"x")


def test_bad_query_and_options_raise_mongo_errors(people: Collection) -> None:
    for call in (
        lambda: people.find({"a": {"$bogus": 1}}),
        lambda: people.find(sort={"a": 2}),
        lambda: people.find(skip=-1),
        lambda: people.find({}, {"a": 1, "b": 0}),
        lambda: people.count({"$or": 1}),
    ):
        with pytest.raises(MongoError):
            call()


def test_count_and_distinct(people: Collection) -> None:
    assert people.count() == 4
    assert people.count({"age": 25}) == 2
    assert people.count(skip=3) == 1 and people.count(skip=9) == 0
    assert people.count(limit=3) == 3
    assert people.distinct("tags") == ["a", "b"]
    assert people.distinct("age", {"age": {"$lt": 35}}) == [30, 25]
    people.insert(
        [{"_id": 9, "age": 30.0, "x": [{"y": 1}, {"y": [2, 1]}, {"y": None}], "tags": [["z"]]}]
    )
    assert people.distinct("age") == [30, 25, 35]
    assert people.distinct("x.y") == [1, 2, None]
    assert people.distinct("tags") == ["a", "b", ["z"]]


# --- update ------------------------------------------------------------------------------------------


def test_update_single_and_multi(people: Collection) -> None:
    res = people.update({"age": 25}, {"$set": {"flag": True}})
    assert (res.n, res.n_modified, res.upserted_id) == (1, 1, None)
    assert ids(people.find({"flag": True})) == [2]
    res = people.update({"age": 25}, {"$set": {"flag": True}}, multi=True)
    assert (res.n, res.n_modified) == (2, 1)
    res = people.update({"age": 99}, {"$set": {"flag": True}}, multi=True)
    assert (res.n, res.n_modified) == (0, 0)


def test_update_replacement_keeps_id(people: Collection) -> None:
    people.update({"name": "cy"}, {"name": "cyrus"})
    assert people.find_one({"_id": 3}) == {"_id": 3, "name": "cyrus"}
    with pytest.raises(MongoError) as info:
        people.update({}, {"x": 1}, multi=True)
    assert info.value.code == 9


def test_update_noop_counts_matched_not_modified(people: Collection) -> None:
    res = people.update({"_id": 1}, {"$set": {"age": 30}})
    assert (res.n, res.n_modified) == (1, 0)
    res = people.update({"_id": 1}, {"$set": {"age": 30.0}})  # type change is a modification
    assert (res.n, res.n_modified) == (1, 1)


def test_update_positional_from_query(people: Collection) -> None:
    people.update({"_id": 1, "tags": "b"}, {"$set": {"tags.$": "B"}})
    assert people.find_one({"_id": 1})["tags"] == ["a", "B"]
    with pytest.raises(MongoError) as info:
        people.update({"_id": 1}, {"$set": {"tags.$": "x"}})
    assert info.value.code == 2


def test_upsert_inserts_seed_with_caller_id(engine: Engine) -> None:
    c = engine["db"]["new"]
    res = c.update(
        {"name": "z", "n": {"$gt": 1}},
        {"$inc": {"n": 1}, "$setOnInsert": {"at": 1}},
        upsert=True,
        upsert_id=42,
    )
    assert (res.n, res.n_modified, res.upserted_id) == (1, 0, 42)
    assert c.find_one() == {"_id": 42, "name": "z", "n": 1, "at": 1}
    res = c.update(
        {"name": "z"}, {"$inc": {"n": 1}, "$setOnInsert": {"at": 2}}, upsert=True, upsert_id=43
    )
    assert (res.n, res.n_modified, res.upserted_id) == (1, 1, None)
    assert c.find_one() == {"_id": 42, "name": "z", "n": 2, "at": 1}
    res = c.update({"_id": 7}, {"v": 1}, upsert=True, upsert_id=44)
    assert res.upserted_id == 7 and c.find_one({"_id": 7}) == {"_id": 7, "v": 1}
    with pytest.raises(ValueError):
        c.update({"q": 1}, {"$set": {"v": 1}}, upsert=True)


def test_failed_multi_update_changes_nothing(coll: Collection) -> None:
    coll.insert([{"_id": 1, "n": 1}, {"_id": 2, "n": "x"}, {"_id": 3, "n": 3}])
    with pytest.raises(MongoError) as info:
        coll.update({}, {"$inc": {"n": 1}}, multi=True)
    assert info.value.code == 14
    assert [d["n"] for d in coll.find()] == [1, "x", 3]


def test_update_current_date_uses_callers_now(coll: Collection) -> None:
    coll.insert([{"_id": 1}])
    now = datetime.datetime(2020, 2, 3, 4, 5, 6, 7000)
    coll.update({"_id": 1}, {"$currentDate": {"at": True}}, now=now)
    assert coll.find_one()["at"] == now


# --- delete ------------------------------------------------------------------------------------------


def test_delete_limit(people: Collection) -> None:
    assert people.delete({"age": 25}, limit=1) == 1
    assert ids(people.find()) == [1, 3, 4]
    assert people.delete({}) == 3
    assert people.count() == 0
    with pytest.raises(MongoError):
        people.delete({}, limit=2)


# --- transactions and savepoints -----------------------------------------------------------------------


def test_operations_inside_callers_transaction_roll_back_per_statement(engine: Engine) -> None:
    c = engine["db"]["c"]
    with engine.store.write() as txn:
        c.insert([{"_id": 1, "n": 1}], txn=txn)
        with pytest.raises(MongoError):
            c.update({}, {"$set": {"n": 2, "m": {"$bad": 1}}}, txn=txn)
        assert c.insert_one({"_id": 2}, txn=txn) == 2
        with pytest.raises(MongoError):
            c.insert_one({"_id": 2}, txn=txn)
        assert ids(c.find(txn=txn)) == [1, 2]
        with engine.store.read() as r:  # nothing visible before the caller commits
            assert list(c.find(txn=r)) == []
    assert list(c.find()) == [{"_id": 1, "n": 1}, {"_id": 2}]


def test_savepoint_rollback_restores_puts_deletes_and_drops(engine: Engine) -> None:
    with engine.store.write() as txn:
        txn.put("t", b"a", b"1")
        txn.put("u", b"x", b"9")
        sp = Savepoint(txn)
        sp.put("t", b"a", b"2")
        sp.put("t", b"b", b"3")
        assert sp.delete("t", b"zz") is False
        sp.drop_table("u")
        sp.rollback()
        assert list(txn.scan("t")) == [(b"a", b"1")]
        assert list(txn.scan("u")) == [(b"x", b"9")]


class RecordingIndexes:
    def __init__(self) -> None:
        self.calls: list[tuple[str, Any, Any]] = []
        self.dropped: list[str] = []

    def on_write(self, txn: Any, ns: str, old: Any, new: Any, key: bytes) -> None:
        self.calls.append((ns, old and old["_id"], new and dict(new)))
        if new is not None and new.get("fail"):
            txn.put("idx:side", key, b"partial")
            raise MongoError(11000, "E11000 simulated")

    def on_drop(self, txn: Any, ns: str) -> None:
        self.dropped.append(ns)


def test_index_seam_sees_every_change_and_failures_undo_partial_writes() -> None:
    indexes = RecordingIndexes()
    engine = Engine(MemoryStore(), indexes=indexes)
    c = engine["d"]["c"]
    c.insert([{"_id": 1}])
    c.update({"_id": 1}, {"$set": {"a": 1}})
    res = c.insert([{"_id": 2, "fail": True}])
    assert res.write_errors[0].code == 11000
    c.delete({"_id": 1})
    assert indexes.calls == [
        ("d.c", None, {"_id": 1}),
        ("d.c", 1, {"_id": 1, "a": 1}),
        ("d.c", None, {"_id": 2, "fail": True}),
        ("d.c", 1, None),
    ]
    with engine.store.read() as r:
        assert list(r.scan("idx:side")) == []
    engine.drop_collection("d", "c")
    assert indexes.dropped == ["d.c"]


class ReversePlanner:
    def __init__(self) -> None:
        self.seen: list[Any] = []

    def execute(self, txn: Any, query: Any) -> Any:
        self.seen.append((query.ns, query.sort))
        rows = []
        for key, raw in txn.scan(f"docs:{query.ns}", reverse=True):
            doc = bson.decode(raw)
            matched, pos = query.matcher.match_position(doc)
            if matched:
                rows.append((key, doc, pos))
        return iter(rows)


def test_planner_seam_replaces_the_collection_scan() -> None:
    planner = ReversePlanner()
    engine = Engine(MemoryStore(), planner=planner)
    c = engine["d"]["c"]
    c.insert([{"_id": 1}, {"_id": 2}, {"_id": 3}])
    assert ids(c.find({"_id": {"$gte": 2}})) == [3, 2]
    # with a planner installed, producing the sort order is the planner's job
    assert ids(c.find(sort={"_id": 1}, limit=2)) == [3, 2]
    assert planner.seen == [("d.c", None), ("d.c", [("_id", 1)])]


# --- catalog -----------------------------------------------------------------------------------------


def test_catalog_listing_and_drops(engine: Engine) -> None:
    engine["a"]["x"].insert([{"_id": 1, "v": "abc"}])
    engine["a"]["y"].insert([{"_id": 1}])
    engine["b"]["z"].update({"k": 1}, {"$set": {"v": 1}}, upsert=True, upsert_id=1)
    engine["c"]["none"].update({"k": 1}, {"$set": {"v": 1}})  # no upsert: not created
    engine["c"]["none"].delete({})
    assert [d["name"] for d in engine.list_databases()] == ["a", "b"]
    assert all(d["sizeOnDisk"] > 0 for d in engine.list_databases())
    assert engine["a"].collection_names() == ["x", "y"]
    assert engine.drop_collection("a", "x") is True
    assert engine.drop_collection("a", "x") is False
    assert engine["a"].collection_names() == ["y"]
    assert list(engine["a"]["x"].find()) == []
    assert engine["a"].drop() is True
    assert engine["a"].drop() is False
    assert [d["name"] for d in engine.list_databases()] == ["b"]
    with engine.store.read() as r:
        assert [t for t in r.tables() if t.startswith("docs:a.")] == []
        assert list(r.scan(CATALOG)) != []


def test_create_collection_explicitly(engine: Engine) -> None:
    engine["db"].create_collection("c", {"capped": False})
    assert engine.list_collections("db")[0]["options"] == {"capped": False}
    with pytest.raises(MongoError) as info:
        engine["db"].create_collection("c")
    assert info.value.code == 48


@pytest.mark.parametrize("db", ["", "a.b", "a b", "a$", "x" * 64])
def test_invalid_database_names(engine: Engine, db: str) -> None:
    with pytest.raises(MongoError) as info:
        engine.database(db)
    assert info.value.code == 73


@pytest.mark.parametrize("name", ["", ".x", "a$b", "a\0b"])
def test_invalid_collection_names(engine: Engine, name: str) -> None:
    with pytest.raises(MongoError) as info:
        engine["db"][name]
    assert info.value.code == 73


def test_database_prefix_does_not_leak_into_listing(engine: Engine) -> None:
    engine["ab"]["c"].insert([{"_id": 1}])
    engine["a"]["c"].insert([{"_id": 1}])
    assert engine["a"].collection_names() == ["c"]
    engine["a"].drop()
    assert engine["ab"].collection_names() == ["c"]


def test_real_unique_index_through_the_seams() -> None:
    from node.engine.indexes import IndexManager
    from node.engine.planner import Planner

    indexes = IndexManager()
    engine = Engine(MemoryStore(), indexes=indexes, planner=Planner())
    c = engine["d"]["users"]
    c.insert([{"_id": 1, "name": "a"}, {"_id": 2, "name": "b"}])
    with engine.store.write() as txn:
        indexes.create_index(txn, "d.users", [("name", 1)], unique=True)
    res = c.insert([{"_id": 3, "name": "a"}, {"_id": 4, "name": "c"}], ordered=False)
    assert [(e.index, e.code) for e in res.write_errors] == [(0, 11000)]
    with pytest.raises(MongoError) as info:
        c.update({"_id": 4}, {"$set": {"name": "b"}})
    assert info.value.code == 11000
    assert c.find_one({"name": "c"}) == {"_id": 4, "name": "c"}
    c.delete({"_id": 2})
    c.update({"_id": 4}, {"$set": {"name": "b"}})
    assert ids(c.find({"name": {"$gte": "a"}}, sort={"name": -1})) == [4, 1]
    assert engine.drop_collection("d", "users")
    with engine.store.read() as r:
        assert [t for t in r.tables() if t.startswith("idx:d.users")] == []


@settings(max_examples=40, deadline=None)
@given(
    st.sets(st.integers(0, 60), max_size=30),
    st.lists(st.tuples(st.booleans(), st.integers(0, 60)), max_size=20),
    st.integers(1, 5),
)
def test_paging_by_record_key_returns_survivors_once(
    initial: set[int], churn: list[tuple[bool, int]], page: int
) -> None:
    """Documents present for the whole scan come back exactly once, in _id order, however the
    collection changes between pages."""
    c = Engine(MemoryStore())["p"]["c"]
    c.insert([{"_id": i} for i in sorted(initial)])
    touched: set[int] = set()
    seen: list[int] = []
    after: bytes | None = None
    churn_iter = iter(churn)
    while True:
        batch = list(c.find_records(limit=page, after_key=after))
        if not batch:
            break
        seen.extend(d["_id"] for _, d in batch)
        after = batch[-1][0]
        for insert, i in itertools.islice(churn_iter, 2):
            touched.add(i)
            if insert:
                c.insert([{"_id": i}])
            else:
                c.delete({"_id": i})
    assert seen == sorted(seen) and len(seen) == len(set(seen))
    survivors = initial - touched
    assert survivors <= set(seen)
    assert set(seen) <= initial | touched
