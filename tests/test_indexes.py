"""indexes: specs and names, key generation, unique enforcement, upkeep, catalog, 2d keys."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import bson
import pytest
from bson import SON
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from node.engine.database import Engine
from node.engine.errors import MongoError
from node.engine.geo import GeoBounds
from node.engine.indexes import (
    CATALOG_TABLE,
    IndexManager,
    create_index,
    drop_index,
    drop_indexes,
    find_index,
    gen_index_name,
    index_information,
    index_keys,
    list_indexes,
    load_indexes,
    lookup_unique,
    normalize_key_pattern,
    planner_infos,
    scan_index,
    spec_from_options,
    update_index_entries,
)
from node.engine.keystring import encode_compound, encode_key
from node.engine.lmdb_store import LMDBStore
from node.engine.memory_store import MemoryStore
from node.engine.values import MISSING, UNDEFINED

NS = "db.c"


def make_engine(store: Any = None) -> Engine:
    return Engine(store if store is not None else MemoryStore(), indexes=IndexManager())


def coll(engine: Engine) -> Any:
    return engine["db"]["c"]


def insert(engine: Engine, *docs: dict[str, Any]) -> Any:
    return coll(engine).insert(list(docs))


def ix(engine: Engine, keys: Any, **options: Any) -> str:
    with engine.store.write() as w:
        return create_index(w, "db", "c", keys, **options)


def entries(engine: Engine, name: str) -> list[tuple[bytes, bytes]]:
    with engine.store.read() as r:
        return list(r.scan(f"idx:db.c:{name}"))


def ids_in_index_order(engine: Engine, name: str) -> list[Any]:
    """The _id of each entry's record, in index order."""
    with engine.store.read() as r:
        spec = find_index(r, "db", "c", name)
        assert spec is not None
        out = []
        for _, rk in scan_index(r, "db", "c", spec):
            out.append(bson.decode(r.get("docs:db.c", rk))["_id"])  # type: ignore[arg-type]
        return out


def all_tables(engine: Engine) -> dict[str, list[tuple[bytes, bytes]]]:
    with engine.store.read() as r:
        return {t: list(r.scan(t)) for t in r.tables()}


# --- specs, names, catalog shapes ----------------------------------------------------------------


def test_generated_names_and_key_forms() -> None:
    assert gen_index_name([("first_name", 1), ("last_name", -1)]) == "first_name_1_last_name_-1"
    assert normalize_key_pattern("a") == (("a", 1),)
    assert normalize_key_pattern([("a", 1), ("b", -1)]) == (("a", 1), ("b", -1))
    assert normalize_key_pattern(SON([("a", -1.0), ("loc", 1)])) == (("a", -1), ("loc", 1))
    assert normalize_key_pattern([("loc", "2d"), ("t", 1)]) == (("loc", "2d"), ("t", 1))
    assert spec_from_options([("a", 1), ("b", -1)], {}).name == "a_1_b_-1"
    assert spec_from_options("a", {"name": "mine"}).name == "mine"


@pytest.mark.parametrize(
    ("keys", "code"),
    [
        ([], 67),
        ([("a", 0)], 67),
        ([("a", "text2")], 67),
        ([("a", True)], 67),
        ([("$a", 1)], 67),
        ([("a..b", 1)], 67),
        ([("t", 1), ("loc", "2d")], 16801),
        ([("loc", "2d"), ("l2", "2d")], 16800),
    ],
)
def test_bad_key_patterns(keys: Any, code: int) -> None:
    with pytest.raises(MongoError) as err:
        normalize_key_pattern(keys)
    assert err.value.code == code


def test_unknown_option_rejected() -> None:
    with pytest.raises(MongoError) as err:
        spec_from_options("a", {"uniqe": True})
    assert err.value.code == 197
    assert "The field 'uniqe' is not valid for an index specification" in err.value.errmsg


def test_index_information_and_list_indexes_shapes() -> None:
    e = make_engine()
    insert(e, {"_id": 1, "a": 1})
    assert ix(e, [("a", 1), ("b", -1)], unique=True, background=True) == "a_1_b_-1"
    assert ix(e, "s", sparse=True, name="s_sparse") == "s_sparse"
    assert ix(e, [("loc", "2d")], min=-500, max=500, bits=20) == "loc_2d"
    with e.store.read() as r:
        info = index_information(r, "db", "c")
        listed = list_indexes(r, "db", "c")
    assert info == {
        "_id_": {"v": 2, "key": [("_id", 1)]},
        "a_1_b_-1": {"v": 2, "key": [("a", 1), ("b", -1)], "unique": True, "background": True},
        "s_sparse": {"v": 2, "key": [("s", 1)], "sparse": True},
        "loc_2d": {"v": 2, "key": [("loc", "2d")], "min": -500, "max": 500, "bits": 20},
    }
    assert [d["name"] for d in listed] == ["_id_", "a_1_b_-1", "s_sparse", "loc_2d"]
    assert listed[1] == SON(
        [("v", 2), ("key", SON([("a", 1), ("b", -1)])), ("name", "a_1_b_-1"), ("unique", True),
         ("background", True)]
    )
    assert isinstance(listed[0]["key"], SON)


def test_existing_index_conflicts() -> None:
    e = make_engine()
    assert ix(e, "a") == "a_1"
    assert ix(e, "a") == "a_1"  # identical: no-op
    assert ix(e, "_id") == "_id_"
    assert ix(e, "_id", name="_id_1", unique=True) == "_id_"  # as pymongo sends it
    with pytest.raises(MongoError) as err:
        ix(e, [("a", -1)], name="a_1")
    assert err.value.code == 86
    with pytest.raises(MongoError) as err:
        ix(e, "a", name="other")
    assert err.value.code == 85
    assert "Index already exists with a different name: a_1" in err.value.errmsg
    with pytest.raises(MongoError) as err:
        ix(e, "a", unique=True)
    assert err.value.code == 85
    with e.store.read() as r:
        assert [s.name for s in load_indexes(r, "db", "c")] == ["_id_", "a_1"]


# --- key generation ------------------------------------------------------------------------------


def keys_of(keys: Any, doc: dict[str, Any], **options: Any) -> tuple[list[tuple], bool]:
    return index_keys(spec_from_options(keys, options), doc)


def test_key_generation_rules() -> None:
    assert keys_of("a", {"a": 5}) == ([(5,)], False)
    assert keys_of("a", {}) == ([(MISSING,)], False)  # missing indexes as null
    assert keys_of("a", {"a": None}) == ([(None,)], False)
    assert keys_of("a", {"a": [1, 2, 2.0, 1]}) == ([(1,), (2,)], True)  # deduplicated
    assert keys_of("a", {"a": [7]}) == ([(7,)], True)  # an array makes it multikey
    assert keys_of("a", {"a": []}) == ([(UNDEFINED,)], True)
    assert keys_of("a", {"a": [[1, 2], 3]}) == ([([1, 2],), (3,)], True)
    assert keys_of("a", {"a": {"b": 1}}) == ([({"b": 1},)], False)
    emails = {"emails": [{"email": "x@a"}, {"email": "y@b"}, {"other": 1}]}
    assert keys_of("emails.email", emails) == ([("x@a",), ("y@b",), (MISSING,)], True)
    assert keys_of("a.b.c", {"a": {"b": {"c": "deep"}}}) == ([("deep",)], False)
    assert keys_of("a.1", {"a": [10, 20]}) == ([(20,)], False)


def test_compound_keys_and_parallel_arrays() -> None:
    keys, multi = keys_of([("a", 1), ("b", -1)], {"a": [1, 2], "b": "x"})
    assert (keys, multi) == ([(1, "x"), (2, "x")], True)
    keys, _ = keys_of([("a.x", 1), ("a.y", 1)], {"a": [{"x": 1, "y": 2}, {"x": 3, "y": 4}]})
    assert sorted(keys) == [(1, 2), (1, 4), (3, 2), (3, 4)]  # same array: cartesian product
    for doc in (
        {"a": [1, 2], "b": [3, 4]},
        {"a": [1], "b": []},
        {"x": {"a": [1], "b": [2]}},
    ):
        pattern = [("x.a", 1), ("x.b", 1)] if "x" in doc else [("a", 1), ("b", 1)]
        with pytest.raises(MongoError) as err:
            keys_of(pattern, doc)
        assert err.value.code == 171
        assert "cannot index parallel arrays" in err.value.errmsg


def test_sparse_skips_documents_without_any_field() -> None:
    assert keys_of("a", {"b": 1}, sparse=True) == ([], False)
    assert keys_of("a", {"a": None}, sparse=True) == ([(None,)], False)
    assert keys_of([("a", 1), ("b", 1)], {"b": 2}, sparse=True) == ([(MISSING, 2)], False)
    assert keys_of([("a", 1), ("b", 1)], {"c": 2}, sparse=True) == ([], False)


def test_2d_keys_come_from_geo() -> None:
    spec = spec_from_options([("loc", "2d"), ("t", 1)], {"min": 0, "max": 100, "bits": 10})
    bounds = GeoBounds(10, 0.0, 100.0)
    assert index_keys(spec, {"loc": [1, 2], "t": "a"})[0] == [(bounds.key((1, 2)), "a")]
    assert index_keys(spec, {"loc": {"x": 50, "y": 60}, "t": "a"})[0] == [
        (bounds.key((50, 60)), "a")
    ]
    assert index_keys(spec, {"t": "a"})[0] == []  # no location: not in the index
    keys, multikey = index_keys(spec, {"loc": [[1, 2], [90, 90]], "t": ["a", "b"]})
    assert len(keys) == 4 and multikey
    with pytest.raises(MongoError) as err:
        index_keys(spec, {"loc": [500, 2]})
    assert err.value.code == 16755


# --- entries and upkeep through the collection ---------------------------------------------------


def test_entries_layout_and_order() -> None:
    e = make_engine()
    docs = [{"_id": i, "v": v} for i, v in enumerate([3, "s", None, 1.5, [0, 9], {"k": 1}])]
    insert(e, *docs, {"_id": 99})
    ix(e, "v")
    rows = entries(e, "v_1")
    for key, value in rows:
        assert key.endswith(value)  # non-unique: key = encoded values + record key
        assert value.startswith(encode_key(0)[:1])  # record keys are encode_key(_id) of ints
    # scan order follows values.compare (null/missing first, then numbers, strings, docs)
    assert ids_in_index_order(e, "v_1") == [2, 99, 4, 3, 0, 4, 1, 5]
    ix(e, [("v", -1), ("_id", 1)])
    assert ids_in_index_order(e, "v_-1__id_1") == [5, 1, 4, 0, 3, 4, 2, 99]


def test_unique_index_entries_hold_the_record_key_as_value() -> None:
    e = make_engine()
    insert(e, {"_id": "a", "email": "x@y"})
    ix(e, "email", unique=True)
    assert entries(e, "email_1") == [(encode_key("x@y"), encode_key("a"))]
    with e.store.read() as r:
        spec = find_index(r, "db", "c", "email_1")
        assert spec is not None
        assert lookup_unique(r, "db", "c", spec, ["x@y"]) == encode_key("a")
        assert lookup_unique(r, "db", "c", spec, ["nope"]) is None


def test_upkeep_follows_updates_and_deletes() -> None:
    e = make_engine()
    ix(e, "tags")
    insert(e, {"_id": 1, "tags": ["a", "b"]}, {"_id": 2, "tags": "b"})
    c = coll(e)
    c.update({"_id": 1}, {"$set": {"tags": ["b", "c"]}})
    with e.store.read() as r:
        spec = find_index(r, "db", "c", "tags_1")
        assert spec is not None and spec.multikey
        got = [(k, rk) for k, rk in scan_index(r, "db", "c", spec)]
    want = sorted(
        encode_key(t) + encode_key(i) for i, t in [(1, "b"), (1, "c"), (2, "b")]
    )
    assert [k for k, _ in got] == want
    c.delete({"_id": 1})
    assert [v for _, v in entries(e, "tags_1")] == [encode_key(2)]


def test_unique_treats_missing_as_null() -> None:
    e = make_engine()
    ix(e, "name", unique=True)
    assert insert(e, {"_id": 1}).n == 1
    res = insert(e, {"_id": 2, "other": 1})
    assert res.n == 0
    err = res.write_errors[0]
    assert err.code == 11000
    assert err.errmsg == "E11000 duplicate key error collection: db.c index: name_1 dup key: { name: null }"
    assert err.details == {"keyPattern": {"name": 1}, "keyValue": {"name": None}}
    assert insert(e, {"_id": 3, "name": None}).n == 0  # explicit null clashes too


def test_unique_sparse_allows_many_missing() -> None:
    e = make_engine()
    ix(e, "name", unique=True, sparse=True)
    assert insert(e, {"_id": 1}, {"_id": 2}, {"_id": 3, "name": "x"}).n == 3
    assert insert(e, {"_id": 4, "name": "x"}).n == 0
    assert len(entries(e, "name_1")) == 1


def test_duplicate_insert_changes_nothing_else() -> None:
    e = make_engine()
    ix(e, "a")  # a non-unique index that sorts before the unique one
    ix(e, "name", unique=True)
    ix(e, "z")
    insert(e, {"_id": 1, "name": "x", "a": 1, "z": 1})
    before = all_tables(e)
    res = insert(e, {"_id": 2, "name": "x", "a": 2, "z": 2})
    assert res.n == 0 and res.write_errors[0].code == 11000
    assert 'dup key: { name: "x" }' in res.write_errors[0].errmsg
    assert all_tables(e) == before


def test_ordered_insert_keeps_the_documents_before_the_duplicate() -> None:
    e = make_engine()
    ix(e, "k", unique=True)
    res = insert(e, {"_id": 1, "k": 1}, {"_id": 2, "k": 2}, {"_id": 3, "k": 1}, {"_id": 4, "k": 4})
    assert res.n == 2 and res.write_errors[0].index == 2
    assert [v for _, v in entries(e, "k_1")] == [encode_key(1), encode_key(2)]


def test_duplicate_update_is_rejected_and_changes_nothing() -> None:
    e = make_engine()
    ix(e, "name", unique=True)
    ix(e, "n")
    insert(e, {"_id": 1, "name": "x", "n": 1}, {"_id": 2, "name": "y", "n": 2})
    before = all_tables(e)
    with pytest.raises(MongoError) as err:
        coll(e).update({"_id": 2}, {"$set": {"name": "x", "n": 5}})
    assert err.value.code == 11000
    assert all_tables(e) == before
    coll(e).update({"_id": 2}, {"$set": {"n": 7}})  # unique field unchanged: fine
    coll(e).update({"_id": 1}, {"$set": {"name": "z"}})
    assert insert(e, {"_id": 3, "name": "x"}).n == 1  # the freed key can be reused


def test_multikey_unique_within_one_document_is_fine() -> None:
    e = make_engine()
    ix(e, "tags", unique=True)
    assert insert(e, {"_id": 1, "tags": ["a", "a", "b"]}).n == 1
    res = insert(e, {"_id": 2, "tags": ["c", "b"]})
    assert res.n == 0
    assert 'dup key: { tags: "b" }' in res.write_errors[0].errmsg


def test_unique_numbers_compare_across_types() -> None:
    e = make_engine()
    ix(e, "n", unique=True)
    insert(e, {"_id": 1, "n": 1})
    assert insert(e, {"_id": 2, "n": 1.0}).n == 0
    assert insert(e, {"_id": 3, "n": bson.Int64(1)}).n == 0
    assert insert(e, {"_id": 4, "n": bson.Decimal128("1.00")}).n == 0
    assert insert(e, {"_id": 5, "n": "1"}).n == 1


def test_unique_build_refused_over_duplicates() -> None:
    e = make_engine()
    insert(e, {"_id": 1, "name": "x"}, {"_id": 2, "name": "y"}, {"_id": 3, "name": "x"})
    ix(e, "other")
    before = all_tables(e)
    with pytest.raises(MongoError) as err:
        ix(e, "name", unique=True)
    assert err.value.code == 11000
    assert err.value.errmsg == (
        'E11000 duplicate key error collection: db.c index: name_1 dup key: { name: "x" }'
    )
    assert all_tables(e) == before
    # compound: duplicates only on the whole key
    assert ix(e, [("name", 1), ("_id", 1)], unique=True) == "name_1__id_1"


def test_unique_build_refused_over_two_missing() -> None:
    e = make_engine()
    insert(e, {"_id": 1}, {"_id": 2})
    with pytest.raises(MongoError) as err:
        ix(e, [("a", 1), ("b", 1)], unique=True)
    assert "dup key: { a: null, b: null }" in err.value.errmsg


def test_drop_dups_keeps_the_first_document_per_key() -> None:
    e = make_engine()
    ix(e, "other")
    insert(
        e,
        {"_id": 1, "k": "a", "other": 1},
        {"_id": 2, "k": "b", "other": 2},
        {"_id": 3, "k": "a", "other": 3},
        {"_id": 4, "other": 4},
        {"_id": 5, "other": 5},
    )
    assert ix(e, "k", unique=True, dropDups=True) == "k_1"
    assert [d["_id"] for d in coll(e).find({})] == [1, 2, 4]
    assert [v for _, v in entries(e, "other_1")] == [encode_key(i) for i in (1, 2, 4)]
    assert sorted(v for _, v in entries(e, "k_1")) == sorted(encode_key(i) for i in (1, 2, 4))
    with e.store.read() as r:
        assert "dropDups" not in index_information(r, "db", "c")["k_1"]


def test_drop_dups_with_pymongo2_spelling_and_collection_delete() -> None:
    e = make_engine()
    insert(e, {"_id": 1, "k": 1}, {"_id": 2, "k": 1})
    deleted: list[bytes] = []
    with e.store.write() as w:

        def delete_record(record_key: bytes, doc: Any) -> None:
            deleted.append(record_key)
            w.delete("docs:db.c", record_key)

        create_index(w, "db", "c", "k", unique=True, drop_dups=True, delete_record=delete_record)
    assert deleted == [encode_key(2)]
    assert [d["_id"] for d in coll(e).find({})] == [1]


def test_parallel_arrays_rejected_at_insert_and_build() -> None:
    e = make_engine()
    ix(e, [("a", 1), ("b", 1)])
    res = insert(e, {"_id": 1, "a": [1, 2], "b": [3, 4]})
    assert res.n == 0 and res.write_errors[0].code == 171
    insert(e, {"_id": 2, "a": [1, 2], "b": 3})
    with pytest.raises(MongoError) as err:
        coll(e).update({"_id": 2}, {"$set": {"b": [5, 6]}})
    assert err.value.code == 171
    e2 = make_engine()
    insert(e2, {"_id": 1, "x": [1], "y": [2]})
    with pytest.raises(MongoError) as err:
        ix(e2, [("x", 1), ("y", 1)])
    assert err.value.code == 171
    assert entries(e2, "x_1_y_1") == []


def test_key_too_long_rejected() -> None:
    e = make_engine()
    ix(e, "s")
    res = insert(e, {"_id": 1, "s": "x" * 600})
    assert res.n == 0 and res.write_errors[0].code == 17280
    assert insert(e, {"_id": 2, "s": "x" * 300}).n == 1
    # the record key counts too: a long _id pushes the entry over the limit
    res = insert(e, {"_id": "i" * 250, "s": "x" * 250})
    assert res.n == 0 and res.write_errors[0].code == 17280
    assert "key too large to index, failing db.c.$s_1" in res.write_errors[0].errmsg


def test_key_limit_fits_the_lmdb_store(tmp_path: Path) -> None:
    with LMDBStore(tmp_path / "db", sync=False) as store:
        e = make_engine(store)
        ix(e, "s")
        for n in range(480, 501):
            res = insert(e, {"_id": n, "s": "x" * n})
            assert res.n == 1 or res.write_errors[0].code == 17280


# --- 2d through the collection -------------------------------------------------------------------


def test_2d_index_entries_and_bounds() -> None:
    e = make_engine()
    insert(e, {"_id": 1, "loc": [10, 20]}, {"_id": 2, "name": "no location"})
    assert ix(e, [("loc", "2d")]) == "loc_2d"
    bounds = GeoBounds()
    assert entries(e, "loc_2d") == [(encode_key(bounds.key((10, 20))) + encode_key(1), encode_key(1))]
    res = insert(e, {"_id": 3, "loc": [200, 0]})
    assert res.n == 0 and res.write_errors[0].code == 16755
    assert "point not in interval of [ -180, 180 )" in res.write_errors[0].errmsg
    e2 = make_engine()
    insert(e2, {"_id": 1, "loc": [200, 0]})
    with pytest.raises(MongoError) as err:
        ix(e2, [("loc", "2d")])
    assert err.value.code == 16755
    assert ix(e2, [("loc", "2d")], min=-500, max=500) == "loc_2d"
    with e2.store.read() as r:
        info = planner_infos(r, "db", "c")
    assert info[1].geo == GeoBounds(26, -500.0, 500.0)
    assert info[1].table == "idx:db.c:loc_2d" and info[0].table == "docs:db.c"


# --- drop ------------------------------------------------------------------------------------------


def test_drop_index_by_name_and_key_and_errors() -> None:
    e = make_engine()
    insert(e, {"_id": 1, "a": 1, "b": 2})
    ix(e, "a")
    ix(e, [("b", -1)])
    ix(e, "c")
    with e.store.write() as w:
        drop_index(w, "db", "c", "a_1")
        drop_index(w, "db", "c", [("b", -1)])
    with e.store.read() as r:
        assert list(index_information(r, "db", "c")) == ["_id_", "c_1"]
        assert "idx:db.c:a_1" not in r.tables()
    for target, code, message in (
        ("nope", 27, "index not found with name [nope]"),
        ([("z", 1)], 27, "can't find index with key: { z: 1 }"),
        ("_id_", 72, "cannot drop _id index"),
    ):
        with pytest.raises(MongoError) as err, e.store.write() as w:
            drop_index(w, "db", "c", target)
        assert (err.value.code, err.value.errmsg) == (code, message)
    with e.store.write() as w:
        drop_indexes(w, "db", "c")
    with e.store.read() as r:
        assert list(index_information(r, "db", "c")) == ["_id_"]
        assert not any(t.startswith("idx:") for t in r.tables())
        assert r.get(CATALOG_TABLE, b"db.c") is None


def test_drop_collection_drops_its_indexes() -> None:
    e = make_engine()
    insert(e, {"_id": 1, "a": 1})
    ix(e, "a")
    e["db"].drop_collection("c")
    with e.store.read() as r:
        assert not any(t.startswith("idx:") for t in r.tables())
        assert r.get(CATALOG_TABLE, b"db.c") is None
        assert list(index_information(r, "db", "c")) == ["_id_"]


# --- scanning ------------------------------------------------------------------------------------


def test_scan_index_ranges_in_index_order() -> None:
    e = make_engine()
    insert(e, *({"_id": i, "a": i % 3, "b": i} for i in range(12)))
    ix(e, [("a", 1), ("b", -1)])
    with e.store.read() as r:
        spec = find_index(r, "db", "c", "a_1_b_-1")
        assert spec is not None

        def ids(*args: Any, **kw: Any) -> list[int]:
            return [
                bson.decode(r.get("docs:db.c", rk))["_id"]  # type: ignore[arg-type]
                for _, rk in scan_index(r, "db", "c", spec, *args, **kw)
            ]

        assert ids((1,), (1,)) == [10, 7, 4, 1]
        assert ids((1, 7), (1, 1)) == [7, 4, 1]
        assert ids((1, 7), (1, 1), start_inclusive=False, end_inclusive=False) == [4]
        assert ids((1,), (2,), start_inclusive=False) == [11, 8, 5, 2]
        assert ids((2,), (), reverse=True) == [2, 5, 8, 11]
        assert ids((), (0,), end_inclusive=False) == []
        id_spec = find_index(r, "db", "c", "_id_")
        assert id_spec is not None
        got = [rk for _, rk in scan_index(r, "db", "c", id_spec, (3,), (5,))]
        assert got == [encode_key(i) for i in (3, 4, 5)]


# --- persistence ---------------------------------------------------------------------------------


def test_indexes_persist_across_reopen_without_rebuild(tmp_path: Path) -> None:
    path = tmp_path / "db"
    with LMDBStore(path, sync=False) as store:
        e = make_engine(store)
        insert(e, *({"_id": i, "k": i} for i in range(100)))
        ix(e, "k", unique=True)
        before = all_tables(e)
    with LMDBStore(path, sync=False) as store:
        e = make_engine(store)
        assert all_tables(e) == before  # nothing rebuilt or rewritten on open
        res = insert(e, {"_id": 1000, "k": 5})
        assert res.n == 0 and res.write_errors[0].code == 11000
        with e.store.read() as r:
            assert list(index_information(r, "db", "c")) == ["_id_", "k_1"]


# --- model-based consistency ----------------------------------------------------------------------

_vals = st.one_of(
    st.integers(-3, 3), st.sampled_from(["a", "b", None, 1.0]),
    st.lists(st.integers(0, 3), max_size=3),
)
_docs = st.fixed_dictionaries(
    {"_id": st.integers(0, 6)}, optional={"a": _vals, "b": st.integers(0, 2), "s": _vals}
)
_ops = st.lists(
    st.one_of(
        st.tuples(st.just("insert"), _docs),
        st.tuples(st.just("set"), st.integers(0, 6), st.sampled_from(["a", "b", "s"]), _vals),
        st.tuples(st.just("delete"), st.integers(0, 6)),
    ),
    max_size=25,
)


def _expected_entries(e: Engine) -> dict[str, set[bytes]]:
    out: dict[str, set[bytes]] = {}
    with e.store.read() as r:
        specs = [s for s in load_indexes(r, "db", "c") if not s.is_id]
        docs = [(rk, bson.decode(raw)) for rk, raw in r.scan("docs:db.c")]
    for spec in specs:
        keys = out.setdefault(spec.name, set())
        for rk, doc in docs:
            for values in index_keys(spec, doc)[0]:
                enc = encode_compound(values, spec.directions)
                keys.add(enc if spec.unique else enc + rk)
    return out


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_ops)
def test_index_entries_always_match_the_documents(ops: list[tuple]) -> None:
    e = make_engine()
    ix(e, [("a", 1), ("b", -1)])
    ix(e, "b", unique=True, sparse=True)
    ix(e, "s", sparse=True)
    c = coll(e)
    for op in ops:
        try:
            if op[0] == "insert":
                c.insert([op[1]])
            elif op[0] == "set":
                c.update({"_id": op[1]}, {"$set": {op[2]: op[3]}})
            else:
                c.delete({"_id": op[1]})
        except MongoError as err:
            assert err.code in (11000, 171)
    expected = _expected_entries(e)
    for name, keys in expected.items():
        assert {k for k, _ in entries(e, name)} == keys
    # unique index: no two records share a key (sparse: records without b hold none)
    with e.store.read() as r:
        spec = find_index(r, "db", "c", "b_1")
        assert spec is not None
        per_doc = [index_keys(spec, bson.decode(v))[0] for _, v in r.scan("docs:db.c")]
    assert sum(len(keys) for keys in per_doc) == len(entries(e, "b_1"))


def test_update_index_entries_direct_call_is_checked_before_writing() -> None:
    store = MemoryStore()
    e = make_engine(store)
    ix(e, "u", unique=True)
    ix(e, "v")
    insert(e, {"_id": 1, "u": 1, "v": 1})
    before = all_tables(e)
    with store.write() as w:  # the error is caught inside the transaction, which then commits
        with pytest.raises(MongoError) as err:
            update_index_entries(w, "db", "c", encode_key(2), None, {"_id": 2, "u": 1, "v": 2})
        assert err.value.code == 11000
    assert all_tables(e) == before
