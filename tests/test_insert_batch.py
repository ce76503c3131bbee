"""The batched insert path (Collection.insert with IndexManager.entries_adder): same results
as one-at-a-time upkeep, failed documents leave nothing behind, field-name checks keep their
MongoDB codes, on both stores."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import bson
import pytest
from bson.dbref import DBRef
from bson.son import SON

from node.engine.collection import ensure_id
from node.engine.database import Engine
from node.engine.errors import MongoError
from node.engine.indexes import IndexManager, index_keys, load_indexes
from node.engine.keystring import encode_compound
from node.engine.lmdb_store import LMDBStore
from node.engine.memory_store import MemoryStore
from node.engine.planner import Planner


@pytest.fixture(params=["memory", "lmdb"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    store: Any = MemoryStore() if request.param == "memory" else LMDBStore(tmp_path / "db")
    yield Engine(store, indexes=IndexManager(), planner=Planner())
    store.close()


def _entries(engine: Engine, table: str) -> list[tuple[bytes, bytes]]:
    with engine.store.read() as r:
        return list(r.scan(table))


def _expected_entries(engine: Engine) -> dict[str, list[tuple[bytes, bytes]]]:
    """Every index's entries recomputed from the stored records."""
    out: dict[str, list[tuple[bytes, bytes]]] = {}
    with engine.store.read() as r:
        specs = [s for s in load_indexes(r, "d", "c") if not s.is_id]
        records = [(k, bson.decode(v)) for k, v in r.scan("docs:d.c")]
    for spec in specs:
        rows = []
        for rk, doc in records:
            for values in index_keys(spec, doc)[0]:
                enc = encode_compound(list(values), spec.directions)
                rows.append((enc if spec.unique else enc + rk, rk))
        out[spec.table("d", "c")] = sorted(rows)
    return out


def _create(engine: Engine, keys: Any, **options: Any) -> None:
    indexes = engine.indexes
    assert isinstance(indexes, IndexManager)
    with engine.store.write() as w:
        engine._ensure_collection(w, "d", "c")
        indexes.create_index(w, "d.c", keys, **options)


def _check_consistent(engine: Engine) -> None:
    for table, rows in _expected_entries(engine).items():
        assert _entries(engine, table) == rows, table


def test_unique_violation_on_a_later_index_leaves_no_entries(engine: Engine) -> None:
    _create(engine, "a")
    _create(engine, "u", unique=True)
    c = engine["d"]["c"]
    res = c.insert(
        [{"_id": 1, "a": 1, "u": 1}, {"_id": 2, "a": 2, "u": 1}, {"_id": 3, "a": 3, "u": 3}],
        ordered=False,
    )
    assert res.n == 2 and res.inserted_ids == [1, 3]
    assert [e.index for e in res.write_errors] == [1]
    assert res.write_errors[0].code == 11000
    assert "index: u_1 dup key: { u: 1 }" in res.write_errors[0].errmsg
    assert [d["_id"] for d in c.find({})] == [1, 3]
    assert [d["_id"] for d in c.find({"a": {"$gte": 0}})] == [1, 3]
    _check_consistent(engine)


def test_ordered_batch_stops_at_first_error_and_keeps_earlier(engine: Engine) -> None:
    _create(engine, "a")
    c = engine["d"]["c"]
    res = c.insert([{"_id": 1, "a": 1}, {"_id": 1, "a": 9}, {"_id": 2, "a": 2}])
    assert res.n == 1 and res.inserted_ids == [1]
    assert res.write_errors[0].index == 1 and res.write_errors[0].code == 11000
    assert [d["a"] for d in c.find({})] == [1]
    _check_consistent(engine)


def test_multikey_marked_mid_batch_then_later_documents_still_indexed(engine: Engine) -> None:
    _create(engine, "tags")
    _create(engine, [("x", 1), ("y", 1)])
    c = engine["d"]["c"]
    docs = [
        {"_id": 1, "tags": "a", "x": 1, "y": 1},
        {"_id": 2, "tags": ["b", "c"], "x": 2, "y": 2},
        {"_id": 3, "tags": ["c", "d"], "x": [1, 2], "y": [3, 4]},  # parallel arrays: refused
        {"_id": 4, "tags": "c", "x": [5, 6], "y": 1},
    ]
    res = c.insert(docs, ordered=False)
    assert res.inserted_ids == [1, 2, 4]
    assert res.write_errors[0].index == 2 and res.write_errors[0].code == 171
    with engine.store.read() as r:
        multikey = {s.name: s.multikey for s in load_indexes(r, "d", "c")}
    assert multikey == {"_id_": False, "tags_1": True, "x_1_y_1": True}
    assert sorted(d["_id"] for d in c.find({"tags": "c"})) == [2, 4]
    _check_consistent(engine)


def test_field_name_rules_keep_their_codes_in_a_batch(engine: Engine) -> None:
    _create(engine, "a")
    c = engine["d"]["c"]
    res = c.insert(
        [
            {"_id": 1, "a": {"$bad": 1}},
            {"_id": 2, "a": [{"x.y": 1}]},
            {"_id": 3, "ref": {"$ref": "other", "$id": 5}},
            {"_id": [1, 2]},
            {"_id": 5, "a": (1, {"ok": 2})},
        ],
        ordered=False,
    )
    assert [(e.index, e.code) for e in res.write_errors] == [(0, 52), (1, 57), (3, 2)]
    assert res.inserted_ids == [3, 5]
    assert c.find_one({"_id": 3}) == {"_id": 3, "ref": DBRef("other", 5)}
    assert c.find_one({"_id": 5}) == {"_id": 5, "a": [1, {"ok": 2}]}
    _check_consistent(engine)


def test_mappings_and_id_order_are_normalised(engine: Engine) -> None:
    c = engine["d"]["c"]
    son = SON([("b", 1), ("_id", 7)])
    plain = {"z": 1, "_id": 8}
    res = c.insert([son, plain, ensure_id({"q": 1}, 9)])
    assert res.inserted_ids == [7, 8, 9]
    assert [list(d) for d in c.find({})] == [["_id", "b"], ["_id", "z"], ["_id", "q"]]
    assert list(plain) == ["z", "_id"]  # the caller's document is not reordered


def test_batch_without_secondary_indexes_or_maintainer(tmp_path: Path) -> None:
    for engine in (Engine(MemoryStore()), Engine(MemoryStore(), indexes=IndexManager())):
        c = engine["d"]["c"]
        res = c.insert([{"_id": i, "v": i} for i in range(5)] + [{"_id": 2}], ordered=False)
        assert res.n == 5 and [e.index for e in res.write_errors] == [5]
        assert [d["v"] for d in c.find({})] == [0, 1, 2, 3, 4]


def test_batch_inside_callers_transaction_is_undone_with_it(engine: Engine) -> None:
    _create(engine, "a")
    c = engine["d"]["c"]
    with pytest.raises(RuntimeError), engine.store.write() as w:
        res = c.insert([{"_id": 1, "a": 1}, {"_id": 2, "a": 2}], txn=w)
        assert res.n == 2
        raise RuntimeError("abort")
    assert list(c.find({})) == []
    _check_consistent(engine)


def test_lmdb_put_many_and_replace(tmp_path: Path) -> None:
    store = LMDBStore(tmp_path / "db")
    try:
        with store.write() as w:
            w.put("t", b"b", b"old")
            w.put_many("t", [(b"a", b"1"), (b"b", b"2"), (b"c", b"3")])
            w.put_many("new", [(b"x", b"9")])  # creates the table
            w.put_many("t", [])
            assert w.replace("t", b"c", b"33") == b"3"
            assert w.replace("t", b"d", b"4") is None
            with pytest.raises(ValueError):
                w.put_many("t", [(b"e", b"5"), (b"k" * 600, b"x")])
        with store.read() as r:
            assert list(r.scan("t")) == [(b"a", b"1"), (b"b", b"2"), (b"c", b"33"), (b"d", b"4")]
            assert list(r.scan("new")) == [(b"x", b"9")]
    finally:
        store.close()


def test_index_entries_visible_after_batch_and_to_the_next_batch(engine: Engine) -> None:
    _create(engine, "k")
    _create(engine, [("loc", "2d")])
    c = engine["d"]["c"]
    first = [{"_id": i, "k": i % 3, "loc": [float(i), float(-i)]} for i in range(30)]
    assert c.insert(first).n == 30
    assert sorted(d["_id"] for d in c.find({"k": 1})) == list(range(1, 30, 3))
    assert c.insert([{"_id": 100, "k": 1, "loc": [0.5, 0.5]}]).n == 1
    near = list(c.find({"loc": {"$near": [0.0, 0.0], "$maxDistance": 1.0}}))
    assert [d["_id"] for d in near] == [0, 100]
    _check_consistent(engine)


def test_geo_batch_mixes_fast_and_general_locations_and_skips_bad_ones(engine: Engine) -> None:
    _create(engine, [("loc", "2d")])
    _create(engine, "k")
    c = engine["d"]["c"]
    docs = [
        {"_id": 1, "k": 1, "loc": [10.5, -20.25]},  # two floats: the fast path
        {"_id": 2, "k": 2, "loc": [10, 20]},  # ints: the general path
        {"_id": 3, "k": 3, "loc": {"x": 1.5, "y": 2.5}},
        {"_id": 4, "k": 4, "loc": [500.0, 0.0]},  # out of bounds: refused, writes nothing
        {"_id": 1, "k": 5, "loc": [1.0, 1.0]},  # duplicate _id inside the batch
        {"_id": 6, "k": 6, "loc": [179.99999999999997, -180.0]},  # the top edge
        {"_id": 7, "k": 7},  # no location: not in the 2d index
    ]
    res = c.insert(docs, ordered=False)
    assert res.inserted_ids == [1, 2, 3, 6, 7]
    assert [(e.index, e.code) for e in res.write_errors] == [(3, 16755), (4, 11000)]
    _check_consistent(engine)
    near = c.find({"loc": {"$near": [10.0, -20.0], "$maxDistance": 1.0}})
    assert [d["_id"] for d in near] == [1]
    assert [d["_id"] for d in c.find({"k": {"$gte": 4}})] == [6, 7]


def test_an_id_too_long_for_the_id_index_is_refused_alone(engine: Engine) -> None:
    """Same limit on both stores: 17280 KeyTooLong for that document, the others go in."""
    c = engine["d"]["c"]
    long_id = "x" * 600
    res = c.insert([{"_id": 1}, {"_id": long_id}, {"_id": 2}], ordered=False)
    assert res.inserted_ids == [1, 2]
    [err] = res.write_errors
    assert err.index == 1 and err.code == 17280
    assert err.errmsg.startswith("key too large to index, failing d.c.$_id_ ")
    with pytest.raises(MongoError) as exc:
        c.insert_one({"_id": long_id})
    assert exc.value.code == 17280
    assert [d["_id"] for d in c.find({})] == [1, 2]
