"""Tests for node.engine.planner: bounds, plan choice, results against brute force, sort limits,
geo plans and explain output."""

from __future__ import annotations

import math
import random
import re
from collections.abc import Iterable
from typing import Any

import bson
import pytest
from bson.decimal128 import Decimal128
from bson.int64 import Int64
from bson.min_key import MinKey
from bson.regex import Regex
from hypothesis import given, settings
from hypothesis import strategies as st

from node.engine.errors import MongoError
from node.engine.geo import GeoBounds, compile_geo
from node.engine.keystring import encode_compound, encode_key
from node.engine.matcher import Matcher
from node.engine.memory_store import MemoryStore
from node.engine.paths import key_values
from node.engine.planner import (
    CollectionView,
    FindSpec,
    IndexInfo,
    blocking_sort,
    execute,
    explain,
    filter_predicates,
    raw_prefilter,
    regex_prefix,
    sort_key_for,
)
from node.engine.values import MISSING, UNDEFINED, SortKey

NS = "test.c"
DOCS = "docs:test.c"


def _locate(key: bytes, value: bytes) -> bytes:
    return value


def _index_keys(doc: dict[str, Any], index: IndexInfo) -> list[bytes]:
    """Index keys of one document (test-side model of a btree/2d index: cartesian product over
    fields, arrays unwound, missing as null)."""
    per_field: list[list[Any]] = []
    for name, direction in index.key:
        if direction == "2d":
            assert index.geo is not None
            value = next(iter(v for v in key_values_raw(doc, name)), None)
            per_field.append(index.geo.keys_for(value, doc))
            if not per_field[-1]:
                return []
            continue
        vals = [_keyable(v) for v in key_values(doc, name)]
        per_field.append(vals or [None])
    dirs = [1 if d == "2d" else d for _, d in index.key]
    keys = set()
    for combo in _product(per_field):
        keys.add(encode_compound(list(combo), dirs))
    return sorted(keys)


def _keyable(v: Any) -> Any:
    if v is MISSING:
        return None
    if v is UNDEFINED:  # empty arrays: the test model keys them under MinKey
        return MinKey()
    return v


def key_values_raw(doc: dict[str, Any], name: str) -> list[Any]:
    from node.engine.paths import path_values

    return [v for v in path_values(doc, name) if v is not MISSING]


def _product(lists: list[list[Any]]) -> Iterable[tuple[Any, ...]]:
    import itertools

    return itertools.product(*lists)


class Coll:
    """A tiny collection over a MemoryStore for driving the planner in tests."""

    def __init__(self, indexes: list[tuple[str, list[tuple[str, Any]], dict[str, Any]]]) -> None:
        self.store = MemoryStore()
        self.infos: list[IndexInfo] = []
        self.docs: list[dict[str, Any]] = []
        for name, key, opts in indexes:
            geo = GeoBounds.from_options(opts) if key[0][1] == "2d" else None
            self.infos.append(
                IndexInfo(
                    name,
                    tuple(key),
                    f"idx:{NS}:{name}",
                    sparse=opts.get("sparse", False),
                    multikey=opts.get("multikey", True),
                    geo=geo,
                    locate=_locate,
                )
            )

    def insert(self, docs: list[dict[str, Any]]) -> None:
        with self.store.write() as txn:
            for doc in docs:
                rk = encode_key(doc["_id"])
                txn.put(DOCS, rk, bson.encode(doc))
                for info in self.infos:
                    for key in _index_keys(doc, info):
                        txn.put(info.table, key + rk, rk)
                self.docs.append(doc)

    @property
    def view(self) -> CollectionView:
        return CollectionView(NS, DOCS, tuple(self.infos))

    def find(self, filt: dict[str, Any], **kw: Any) -> Any:
        with self.store.read() as txn:
            return execute(txn, self.view, FindSpec(filt, **kw))

    def explain(self, filt: dict[str, Any], **kw: Any) -> dict[str, Any]:
        with self.store.read() as txn:
            return explain(txn, self.view, FindSpec(filt, **kw))

    def brute(self, filt: dict[str, Any], sort: list[tuple[str, int]] | None = None) -> list[Any]:
        m = Matcher(filt)
        hits = [d for d in self.docs if m.matches(d)]
        if sort:
            hits.sort(key=sort_key_for(sort))
        return hits


def _ids(docs: list[dict[str, Any]]) -> list[Any]:
    return [d["_id"] for d in docs]


@pytest.fixture(scope="module")
def people() -> Coll:
    rng = random.Random(5)
    c = Coll(
        [
            ("age_1", [("age", 1)], {"multikey": False}),
            ("name_1_age_-1", [("name", 1), ("age", -1)], {"multikey": False}),
            ("tags_1", [("tags", 1)], {}),
            ("opt_1", [("opt", 1)], {"sparse": True, "multikey": False}),
        ]
    )
    names = ["ann", "bob", "cid", "dee", "eve"]
    docs = []
    for i in range(600):
        doc: dict[str, Any] = {
            "_id": i,
            "age": rng.choice([rng.randrange(100), rng.random() * 100, str(rng.randrange(9))]),
            "name": rng.choice(names),
            "tags": rng.sample(["a", "b", "c", "d", 1, 2], rng.randrange(4)),
        }
        if i % 10 == 0:
            doc["opt"] = i
        docs.append(doc)
    c.insert(docs)
    return c


# --- plan choice and results ---------------------------------------------------------------------


def test_equality_uses_index_and_reports_bounds(people: Coll) -> None:
    out = people.explain({"age": 42})
    plan = out["queryPlanner"]["winningPlan"]
    assert plan["stage"] == "FETCH"
    ix = plan["inputStage"]
    assert ix["stage"] == "IXSCAN" and ix["indexName"] == "age_1"
    assert ix["indexBounds"] == {"age": ["[42, 42]"]}
    stats = out["executionStats"]
    expected = people.brute({"age": 42})
    assert stats["nReturned"] == len(expected)
    assert stats["totalDocsExamined"] == len(expected)
    assert stats["totalKeysExamined"] == len(expected)
    stages = stats["executionStages"]
    assert stages["stage"] == "FETCH" and stages["nReturned"] == len(expected)
    assert stages["docsExamined"] == len(expected)
    assert stages["inputStage"]["keysExamined"] == len(expected)
    assert "keysExamined" not in plan["inputStage"]  # the plan itself carries no counters
    assert out["ok"] == 1.0


def test_range_bounds_are_type_bracketed(people: Coll) -> None:
    res = people.find({"age": {"$gte": 10, "$lt": 20}})
    assert sorted(_ids(res.docs)) == sorted(_ids(people.brute({"age": {"$gte": 10, "$lt": 20}})))
    assert res.stats.keys_examined == len(res.docs)
    ix = people.explain({"age": {"$gt": 50}})["queryPlanner"]["winningPlan"]["inputStage"]
    assert ix["indexBounds"] == {"age": ["(50, inf.0]"]}
    ix = people.explain({"age": {"$lt": "5"}})["queryPlanner"]["winningPlan"]["inputStage"]
    assert ix["indexBounds"] == {"age": ['["", "5")']}
    # string ages are never returned by a numeric range
    res = people.find({"age": {"$gt": -1}})
    assert all(isinstance(d["age"], int | float) for d in res.docs)
    assert res.stats.keys_examined == len(res.docs)


def test_collection_scan_fallback(people: Coll) -> None:
    out = people.explain({"name": {"$ne": "ann"}, "zz": {"$exists": False}})
    plan = out["queryPlanner"]["winningPlan"]
    assert plan["stage"] == "COLLSCAN"
    assert out["executionStats"]["totalDocsExamined"] == 600
    assert out["executionStats"]["totalKeysExamined"] == 0


def test_compound_prefix_and_descending_sort(people: Coll) -> None:
    filt = {"name": "bob", "age": {"$gte": 20, "$lte": 60}}
    out = people.explain(filt, sort=[("age", -1)])
    plan = out["queryPlanner"]["winningPlan"]
    # the compound index bounds both fields and supplies the order: no SORT stage
    assert plan["stage"] == "FETCH"
    assert plan["inputStage"]["indexName"] == "name_1_age_-1"
    assert plan["inputStage"]["indexBounds"] == {"name": ['["bob", "bob"]'], "age": ["[60, 20]"]}
    res = people.find(filt, sort=[("age", -1)])
    assert _ids(res.docs) == _ids(people.brute(filt, [("age", -1)]))
    assert res.stats.keys_examined == len(res.docs)
    res = people.find(filt, sort=[("age", 1)])  # backwards scan (ties in any order)
    assert [d["age"] for d in res.docs] == [d["age"] for d in people.brute(filt, [("age", 1)])]
    assert sorted(_ids(res.docs)) == sorted(_ids(people.brute(filt)))
    ix = people.explain(filt, sort=[("age", 1)])["queryPlanner"]["winningPlan"]["inputStage"]
    assert ix["direction"] == "backward"


def test_in_and_multikey(people: Coll) -> None:
    filt = {"tags": {"$in": ["a", 2]}}
    res = people.find(filt)
    assert sorted(_ids(res.docs)) == sorted(_ids(people.brute(filt)))
    assert len(set(_ids(res.docs))) == len(res.docs)  # no duplicates from multikey entries
    # on a multikey field two range predicates are not intersected
    filt = {"tags": {"$gt": "a", "$lt": "c"}}
    assert sorted(_ids(people.find(filt).docs)) == sorted(_ids(people.brute(filt)))


def test_sparse_index_not_used_for_null(people: Coll) -> None:
    res = people.find({"opt": None})
    assert res.plan.summary == "COLLSCAN"
    assert len(res.docs) == 540
    res = people.find({"opt": {"$gte": 100}})
    assert res.plan.summary == "IXSCAN { opt: 1 }"
    assert sorted(_ids(res.docs)) == list(range(100, 600, 10))


def test_cost_model_picks_selective_index(people: Coll) -> None:
    filt = {"name": "bob", "age": 7}
    out = people.explain(filt)
    assert out["queryPlanner"]["winningPlan"]["inputStage"]["indexName"] in (
        "age_1",
        "name_1_age_-1",
    )
    assert out["executionStats"]["totalKeysExamined"] <= len(people.brute({"age": 7}))
    assert len(out["queryPlanner"]["rejectedPlans"]) == 1
    # a filter only on name: the compound index beats a collection scan
    res = people.find({"name": "eve"})
    assert res.plan.summary == "IXSCAN { name: 1, age: -1 }"


def test_hint(people: Coll) -> None:
    res = people.find({"age": 3}, hint="$natural")
    assert res.plan.summary == "COLLSCAN"
    res = people.find({"age": 3}, hint=[("name", 1), ("age", -1)])
    assert res.plan.summary == "IXSCAN { name: 1, age: -1 }"
    assert sorted(_ids(res.docs)) == sorted(_ids(people.brute({"age": 3})))
    with pytest.raises(MongoError):
        people.find({}, hint="nope_1")


def test_skip_limit_and_index_sort(people: Coll) -> None:
    res = people.find({}, sort=[("age", 1)], skip=5, limit=10)
    assert res.plan.summary == "IXSCAN { age: 1 }"
    assert _ids(res.docs) == _ids(people.brute({}, [("age", 1)])[5:15])
    # the scan stops early: it reads only what it returns
    assert res.stats.docs_examined == 15


FILTER_VALUES = st.one_of(
    st.integers(-5, 105), st.floats(-5, 105, allow_nan=False), st.sampled_from(["1", "5", "a"])
)


@settings(max_examples=60, deadline=None)
@given(
    op1=st.sampled_from(["$gt", "$gte", "$lt", "$lte", "$eq"]),
    v1=FILTER_VALUES,
    op2=st.sampled_from(["$gt", "$gte", "$lt", "$lte", None]),
    v2=FILTER_VALUES,
    name=st.sampled_from([None, "ann", "eve"]),
    sort=st.sampled_from([None, [("age", 1)], [("age", -1)], [("name", 1), ("age", -1)]]),
)
def test_results_match_brute_force(
    people: Coll, op1: str, v1: Any, op2: str | None, v2: Any, name: str | None, sort: Any
) -> None:
    cond = {op1: v1}
    if op2:
        cond[op2] = v2
    filt: dict[str, Any] = {"age": cond}
    if name:
        filt["name"] = name
    res = people.find(filt, sort=sort)
    expected = people.brute(filt, sort)
    if sort:
        assert [sort_key_for(sort)(d) for d in res.docs] == [
            sort_key_for(sort)(d) for d in expected
        ]
    assert sorted(_ids(res.docs)) == sorted(_ids(expected))


# --- bounds details --------------------------------------------------------------------------------


def test_filter_predicates_skip_unboundable() -> None:
    preds = filter_predicates(
        {"a": [1, 2], "b": {"$regex": "x"}, "c": {"$ne": 1}, "$and": [{"d": 4}], "e": {"$in": [1]}}
    )
    assert set(preds) == {"d", "e"}


# --- sorting and the memory limit ------------------------------------------------------------------


def test_in_memory_sort_limit_error() -> None:
    c = Coll([])
    c.insert([{"_id": i, "pad": "x" * 1000, "v": -i} for i in range(200)])
    with pytest.raises(MongoError) as info:
        c.find({}, sort=[("v", 1)], max_sort_bytes=50_000)
    err = info.value
    assert err.code == 292
    assert err.code_name == "QueryExceededMemoryLimitNoDiskUseAllowed"
    assert err.errmsg == (
        "Sort exceeded memory limit of 50000 bytes, but did not opt in to external sorting."
    )
    # a top-k sort holds only k documents, and allowDiskUse lifts the limit
    res = c.find({}, sort=[("v", 1)], limit=10, max_sort_bytes=50_000)
    assert _ids(res.docs) == list(range(199, 189, -1))
    res = c.find({}, sort=[("v", 1)], max_sort_bytes=50_000, allow_disk_use=True)
    assert len(res.docs) == 200
    out = c.explain({}, sort=[("v", -1)], limit=3)
    sort_stage = out["queryPlanner"]["winningPlan"]
    assert sort_stage["stage"] == "SORT" and sort_stage["memLimit"] == 104_857_600
    assert sort_stage["inputStage"]["stage"] == "COLLSCAN"


def test_blocking_sort_arrays_and_missing() -> None:
    rows = [
        (b"1", b"x", {"_id": 1, "a": [5, 1]}, None),
        (b"2", b"x", {"_id": 2}, None),
        (b"3", b"x", {"_id": 3, "a": 3}, None),
        (b"4", b"x", {"_id": 4, "a": [2, 9]}, None),
    ]
    up = blocking_sort(rows, [("a", 1)], keep=0, max_bytes=10**6)
    assert [r[2]["_id"] for r in up] == [2, 1, 4, 3]
    down = blocking_sort(rows, [("a", -1)], keep=2, max_bytes=10**6)
    assert [r[2]["_id"] for r in down] == [4, 1]
    assert SortKey(None) < SortKey(0)


# --- geo -----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def places() -> Coll:
    rng = random.Random(9)
    c = Coll(
        [
            ("loc_2d", [("loc", "2d")], {}),
            ("kind_1", [("kind", 1)], {"multikey": False}),
        ]
    )
    docs = []
    for i in range(3000):
        loc: Any = [rng.uniform(-180, 179.99), rng.uniform(-90, 89.99)]
        if i % 7 == 0:
            loc = {"lng": loc[0], "lat": loc[1]}
        docs.append({"_id": i, "loc": loc, "kind": rng.choice(["cafe", "bar", "park"])})
    docs.append({"_id": "nowhere", "kind": "cafe"})
    c.insert(docs)
    return c


def _brute_near(c: Coll, spec: dict[str, Any], extra: dict[str, Any], limit: int) -> list[Any]:
    q = compile_geo(spec)
    m = Matcher(extra)
    hits = [
        (q.distance(d["loc"]), d["_id"])
        for d in c.docs
        if "loc" in d and q.matches(d["loc"]) and m.matches(d)
    ]
    hits.sort(key=lambda h: (h[0], encode_key(h[1])))
    return [h[1] for h in hits[:limit]]


def test_near_with_max_distance_uses_index(places: Coll) -> None:
    spec = {"$near": [10, 20], "$maxDistance": 15}
    res = places.find({"loc": spec})
    assert res.plan.summary == 'GEO_NEAR_2D { loc: "2d" }'
    assert _ids(res.docs) == _brute_near(places, spec, {}, 100)
    assert res.stats.docs_examined < 400  # far from the 3001 documents
    out = places.explain({"loc": spec}, limit=5)
    plan = out["queryPlanner"]["winningPlan"]
    assert plan["stage"] == "LIMIT" and plan["limitAmount"] == 5
    assert plan["inputStage"]["inputStage"]["stage"] == "GEO_NEAR_2D"


@pytest.mark.parametrize(
    "spec",
    [
        {"$near": [0, 0]},
        {"$near": [170, -80]},
        {"$nearSphere": [-179, 5]},
        {"$nearSphere": [40, 40], "$maxDistance": 0.3},
        {"$near": {"x": -50, "y": 60}, "$maxDistance": 40, "$minDistance": 10},
    ],
)
def test_near_matches_brute_force(places: Coll, spec: dict[str, Any]) -> None:
    res = places.find({"loc": spec, "kind": "cafe"}, limit=30)
    assert _ids(res.docs) == _brute_near(places, spec, {"kind": "cafe"}, 30)
    res = places.find({"loc": spec})
    assert len(res.docs) == min(100, len(_brute_near(places, spec, {}, 10**9)))
    assert _ids(res.docs) == _brute_near(places, spec, {}, 100)


def test_unbounded_near_reads_only_around_the_point(places: Coll) -> None:
    res = places.find({"loc": {"$near": [0, 0]}}, limit=5)
    assert _ids(res.docs) == _brute_near(places, {"$near": [0, 0]}, {}, 5)
    # the index keys bound each entry's distance: hardly a document beyond the five is read
    assert res.stats.docs_examined <= 10
    assert res.stats.keys_examined < 0.1 * len(places.docs)
    assert res.plan.radii and res.plan.radii == sorted(res.plan.radii)


def test_near_without_2d_index_fails(people: Coll) -> None:
    with pytest.raises(MongoError) as info:
        people.find({"loc": {"$near": [0, 0]}})
    assert info.value.code == 291
    assert "unable to find index for $geoNear query" in info.value.errmsg


@pytest.mark.parametrize(
    "shape",
    [
        {"$box": [[-20, -20], [30, 10]]},
        {"$center": [[100, 45], 25]},
        {"$polygon": [[0, 0], [60, 0], [60, 60], [30, 20], [0, 60]]},
        {"$centerSphere": [[-120, 60], 0.4]},
    ],
)
def test_within_uses_covering(places: Coll, shape: dict[str, Any]) -> None:
    filt = {"loc": {"$geoWithin": shape}}
    res = places.find(filt)
    assert res.plan.summary == 'IXSCAN { loc: "2d" }'
    assert sorted(_ids(res.docs)) == sorted(_ids(places.brute(filt)))
    assert res.stats.docs_examined < 0.5 * len(places.docs)
    # without the index the matcher alone answers the same
    res2 = places.find(filt, hint="$natural")
    assert sorted(_ids(res2.docs)) == sorted(_ids(res.docs))


def test_sphere_distances_in_radians(places: Coll) -> None:
    res = places.find({"loc": {"$nearSphere": [0, 0], "$maxDistance": math.radians(20)}})
    q = compile_geo({"$nearSphere": [0, 0]})
    dists = [q.distance(d["loc"]) for d in res.docs]
    assert dists == sorted(dists) and all(d <= math.radians(20) for d in dists)


# --- the raw-bytes prefilter of collection scans --------------------------------------------------

SCALARS = st.one_of(
    st.integers(-(2**40), 2**40),
    st.sampled_from([0, 1, -1, 7, 2**31, 2**53, -(2**63)]),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([0.0, -0.0, 7.0, 0.5, 1e300]),
    st.text(max_size=6),
    st.booleans(),
    st.none(),
)
STORED = st.one_of(
    SCALARS,
    st.integers(-(2**62), 2**62).map(Int64),
    st.sampled_from(["7", "7.0", "-0", "0", "1E+1"]).map(Decimal128),
    st.lists(SCALARS, max_size=3),
    st.fixed_dictionaries({"b": SCALARS}),
)


def _stored_forms(wanted: Any) -> list[Any]:
    """Ways a document can hold a value equal to ``wanted``."""
    forms: list[Any] = [wanted, [0, wanted], {"b": wanted}, [{"b": wanted}]]
    if isinstance(wanted, int | float) and not isinstance(wanted, bool):
        if float(wanted).is_integer() and abs(wanted) < 2**62:
            forms += [Int64(int(wanted)), float(wanted), int(wanted)]
        if math.isfinite(wanted):
            forms.append(Decimal128(repr(float(wanted)) if isinstance(wanted, float) else str(wanted)))
    return forms


@settings(max_examples=200, deadline=None)
@given(stored=STORED, wanted=SCALARS, path=st.sampled_from(["a", "a.b"]), op=st.booleans())
def test_raw_prefilter_never_rejects_a_match(stored: Any, wanted: Any, path: str, op: bool) -> None:
    filt = {path: {"$eq": wanted} if op else wanted}
    test = raw_prefilter(filt)
    m = Matcher(filt)
    for value in [stored, *_stored_forms(wanted)]:
        doc = {"_id": 1, "a": value}
        if m.matches(doc) and test is not None:
            assert test(bson.encode(doc)), (filt, doc)


def test_raw_prefilter_zero_and_negative_zero() -> None:
    for stored in (0, -0.0, 0.0, Int64(0)):
        for wanted in (0, -0.0, 0.0):
            test = raw_prefilter({"a": wanted})
            assert test is not None and test(bson.encode({"a": stored}))


def test_raw_prefilter_rejects_obvious_misses() -> None:
    test = raw_prefilter({"name": "bob", "n": 7})
    assert test is not None
    assert not test(bson.encode({"name": "ann", "n": 7}))
    assert not test(bson.encode({"name": "bob", "n": 8}))
    assert test(bson.encode({"name": ["x", "bob"], "n": 7.0}))
    assert raw_prefilter({"a": {"$gt": 1}}) is None


# --- $near over many points reads only a small part of the collection ---------------------------


def _bulk_points(n: int, seed: int) -> tuple[MemoryStore, IndexInfo, list[tuple[float, float]]]:
    """A records table and a 2d index of ``n`` random points, written directly."""
    rng = random.Random(seed)
    store = MemoryStore()
    bounds = GeoBounds()
    info = IndexInfo("loc_2d", (("loc", "2d"),), f"idx:{NS}:loc_2d", multikey=False, geo=bounds)
    points = [(rng.uniform(-180, 179.999), rng.uniform(-90, 89.999)) for _ in range(n)]
    with store.write() as txn:
        for i, (x, y) in enumerate(points):
            rk = encode_key(i)
            txn.put(DOCS, rk, bson.encode({"_id": i, "loc": [x, y]}))
            txn.put(info.table, encode_key(bounds.key((x, y))) + rk, rk)
    return store, info, points


def _check_near_scales(n: int, radius: float) -> None:
    store, info, points = _bulk_points(n, seed=n)
    view = CollectionView(NS, DOCS, (info,))
    center = (12.5, -33.0)
    with store.read() as txn:
        res = execute(txn, view, FindSpec({"loc": {"$near": list(center), "$maxDistance": radius}}))
    expected = sorted(
        (math.dist(p, center), i) for i, p in enumerate(points) if math.dist(p, center) <= radius
    )
    assert [d["_id"] for d in res.docs] == [i for _, i in expected][:100]
    assert expected
    # only the cells around the circle are read: a tiny fraction of the collection
    assert res.stats.docs_examined < 4 * len(expected) + 50
    assert res.stats.keys_examined < 0.01 * n


def test_near_with_max_distance_reads_a_small_fraction() -> None:
    _check_near_scales(40_000, 3.0)


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_near_with_max_distance_over_a_million_points() -> None:
    _check_near_scales(1_000_000, 1.5)


# --- $or and regex prefixes ----------------------------------------------------------------------


def test_or_of_indexed_clauses_uses_an_or_plan(people: Coll) -> None:
    filt = {"$or": [{"age": {"$lt": 5}}, {"name": "eve", "age": {"$gt": 90}}, {"tags": "d"}]}
    res = people.find(filt)
    assert res.plan.summary == "OR IXSCAN { age: 1 }, IXSCAN { name: 1, age: -1 }, IXSCAN { tags: 1 }"
    assert sorted(_ids(res.docs)) == sorted(_ids(people.brute(filt)))
    assert len(set(_ids(res.docs))) == len(res.docs)
    assert res.stats.docs_examined < 600
    plan = people.explain(filt)["queryPlanner"]["winningPlan"]
    assert plan["stage"] == "FETCH" and plan["inputStage"]["stage"] == "OR"
    assert [s["stage"] for s in plan["inputStage"]["inputStages"]] == ["IXSCAN"] * 3
    # combined with a top-level condition, and with a clause no index serves
    filt2 = {"name": "ann", "$or": [{"age": 3}, {"tags": "a"}]}
    assert sorted(_ids(people.find(filt2).docs)) == sorted(_ids(people.brute(filt2)))
    filt3 = {"$or": [{"age": 3}, {"zz": 1}]}
    res3 = people.find(filt3)
    assert res3.plan.summary == "COLLSCAN"
    assert sorted(_ids(res3.docs)) == sorted(_ids(people.brute(filt3)))


@pytest.mark.parametrize(
    ("filt", "indexed"),
    [
        ({"name": {"$regex": "^bo"}}, True),
        ({"name": {"$regex": "^e.e"}}, True),
        ({"name": {"$regex": "^c", "$options": "s"}}, True),
        ({"name": re.compile("^de*")}, True),
        ({"name": Regex("^an")}, True),
        ({"name": {"$regex": "^B", "$options": "i"}}, False),
        ({"name": {"$regex": "ve$"}}, False),
        ({"name": {"$regex": "^a|^b"}}, False),
    ],
)
def test_regex_prefix_bounds(people: Coll, filt: dict[str, Any], indexed: bool) -> None:
    res = people.find(filt)
    assert sorted(_ids(res.docs)) == sorted(_ids(people.brute(filt)))
    if indexed:
        assert res.plan.summary == "IXSCAN { name: 1, age: -1 }"
        assert res.stats.docs_examined == len(res.docs)
    else:
        assert res.plan.summary == "COLLSCAN"


def test_regex_prefix_extraction() -> None:
    assert regex_prefix("^abc") == "abc"
    assert regex_prefix("^ab*c") == "a"
    assert regex_prefix("^abc?") == "ab"
    assert regex_prefix("^ab+c") == "ab"
    assert regex_prefix("^a.c") == "a"
    assert regex_prefix("\\Aabc") == "abc"
    assert regex_prefix("abc") is None
    assert regex_prefix("^a|b") is None


def test_geo_inside_or(places: Coll) -> None:
    filt = {"$or": [{"loc": {"$within": {"$box": [[0, 0], [5, 5]]}}}, {"kind": "park"}]}
    res = places.find(filt)
    assert sorted(_ids(res.docs), key=str) == sorted(_ids(places.brute(filt)), key=str)
    assert any(d["kind"] == "park" for d in res.docs)
    with pytest.raises(MongoError) as info:
        places.find({"$or": [{"loc": {"$near": [0, 0]}}, {"kind": "park"}]})
    assert "geoNear must be top-level expr" in info.value.errmsg
    both = {"$and": [{"loc": {"$geoWithin": {"$center": [[0, 0], 30]}}}, {"kind": "bar"}]}
    res = places.find(both)
    assert res.plan.summary in ('IXSCAN { loc: "2d" }', "IXSCAN kind_1")
    assert sorted(_ids(res.docs)) == sorted(_ids(places.brute(both)))


def test_hinted_2d_index_without_a_geo_predicate(places: Coll) -> None:
    filt = {"loc": [10, 20], "kind": "cafe"}
    res = places.find(filt, hint="loc_2d")
    assert res.plan.summary == 'IXSCAN { loc: "2d" }'
    assert _ids(res.docs) == _ids(places.brute(filt))
    some = places.docs[3]
    res = places.find({"loc": some["loc"]}, hint="loc_2d")
    assert _ids(res.docs) == [some["_id"]]


def test_trial_picks_the_index_with_fewest_keys() -> None:
    c = Coll(
        [
            ("a_1", [("a", 1)], {"multikey": False}),
            ("b_1", [("b", 1)], {"multikey": False}),
            ("a_1_c_1", [("a", 1), ("c", 1)], {"multikey": False}),
        ]
    )
    c.insert([{"_id": i, "a": int(i % 10 != 0), "b": i, "c": i % 3} for i in range(2000)])
    for filt, winner in [
        ({"a": 1, "b": 7}, {"b_1"}),
        ({"a": 0, "b": {"$gte": 100}}, {"a_1", "a_1_c_1"}),  # 200 keys on a, b has 1900
        ({"a": 1, "c": 2, "b": {"$lt": 1500}}, {"a_1_c_1"}),
    ]:
        out = c.explain(filt)
        assert out["queryPlanner"]["winningPlan"]["inputStage"]["indexName"] in winner, filt
        assert len(out["queryPlanner"]["rejectedPlans"]) == 2
        res = c.find(filt)
        assert sorted(_ids(res.docs)) == sorted(_ids(c.brute(filt)))


def test_elem_match_bounds_intersect_on_multikey() -> None:
    c = Coll([("v_1", [("v", 1)], {})])
    rng = random.Random(4)
    c.insert([{"_id": i, "v": [rng.randrange(100) for _ in range(3)]} for i in range(400)])
    filt = {"v": {"$elemMatch": {"$gte": 40, "$lt": 42}}}
    res = c.find(filt)
    assert sorted(_ids(res.docs)) == sorted(_ids(c.brute(filt)))
    assert res.plan.bounds == {"v": ["[40, 42)"]}
    # without $elemMatch a multikey field keeps one predicate only
    loose = {"v": {"$gte": 40, "$lt": 42}}
    res2 = c.find(loose)
    assert sorted(_ids(res2.docs)) == sorted(_ids(c.brute(loose)))
    assert res2.plan.bounds == {"v": ["[40, inf.0]"]}
    assert not c.find({"v": {"$elemMatch": {"$gt": 5, "$lt": 3}}}).docs
