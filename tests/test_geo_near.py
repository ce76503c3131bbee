"""``$near`` through the engine against a brute-force scan: same documents, same order.

The best-first search (node/engine/geo_near.py) must return exactly what sorting every
matching document by (distance, record key) and cutting at skip/limit returns: on random
points (with duplicates and grid points, so distances tie), random centers, ``$near`` and
``$nearSphere``, ``$maxDistance`` / ``$minDistance``, other predicates, multi-location documents and coarse or custom-bounded
2d indexes (few bits: many entries per full-resolution cell).
"""

from __future__ import annotations

import math
import random
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from node.engine.database import Engine
from node.engine.geo import compile_geo, sphere_box_bound, sphere_distance
from node.engine.indexes import IndexManager
from node.engine.keystring import encode_key
from node.engine.matcher import Matcher
from node.engine.memory_store import MemoryStore
from node.engine.planner import Planner

BOUNDS = st.sampled_from([(26, -180.0, 180.0), (4, -180.0, 180.0), (10, -8.0, 8.0), (1, -8.0, 8.0)])


@st.composite
def scenario(draw: st.DrawFn) -> dict[str, Any]:
    bits, lo, hi = draw(BOUNDS)
    span = hi - lo
    grid = st.integers(0, 16).map(lambda i: lo + i * span / 16 * 0.999)
    free = st.floats(lo, hi, allow_nan=False, exclude_max=True)
    coord = st.one_of(grid, free)
    point = st.tuples(coord, coord).map(list)
    location = st.one_of(point, point, st.lists(point, min_size=1, max_size=3))
    docs = draw(
        st.lists(
            st.fixed_dictionaries({"loc": location, "tag": st.integers(0, 2)}),
            min_size=0,
            max_size=60,
        )
    )
    for i, doc in enumerate(docs):
        doc["_id"] = i
    op = draw(st.sampled_from(["$near", "$nearSphere"]))
    reach = span * 1.5 if op == "$near" else math.pi  # $nearSphere: radians
    spec: dict[str, Any] = {op: draw(point)}
    max_d = draw(st.one_of(st.none(), st.floats(0, reach, allow_nan=False)))
    if max_d is not None:
        spec["$maxDistance"] = max_d
    if draw(st.booleans()):
        spec["$minDistance"] = draw(st.floats(0, reach / 3, allow_nan=False))
    extra = draw(st.sampled_from([{}, {"tag": 1}, {"tag": {"$ne": 0}}]))
    return {
        "bounds": (bits, lo, hi),
        "docs": docs,
        "spec": spec,
        "extra": extra,
        "skip": draw(st.integers(0, 5)),
        "limit": draw(st.integers(0, 30)),
    }


def brute_force(docs: list[dict[str, Any]], spec: dict[str, Any], extra: dict[str, Any],
                skip: int, limit: int) -> list[Any]:
    """Every matching document, sorted by (distance, record key), then skip and limit."""
    q = compile_geo(spec)
    m = Matcher(extra)
    hits = [(q.distance(d["loc"]), encode_key(d["_id"]), d["_id"])
            for d in docs if q.matches(d["loc"]) and m.matches(d)]
    hits.sort()
    return [i for _, _, i in hits][skip : skip + (limit or 100)]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenario())
def test_near_equals_brute_force(case: dict[str, Any]) -> None:
    bits, lo, hi = case["bounds"]
    store = MemoryStore()
    indexes = IndexManager()
    engine = Engine(store, indexes=indexes, planner=Planner())
    with store.write() as txn:
        indexes.create_index(txn, "t.c", [("loc", "2d")], bits=bits, min=lo, max=hi)
    coll = engine.collection("t", "c")
    if case["docs"]:
        assert not coll.insert([dict(d) for d in case["docs"]]).write_errors
    filt = {"loc": case["spec"], **case["extra"]}
    expected = brute_force(case["docs"], case["spec"], case["extra"], case["skip"],
                           case["limit"])
    got = [d["_id"] for d in coll.find(filt, skip=case["skip"], limit=case["limit"] or 100)]
    assert got == expected
    # without a limit, every match comes out, in order (as MongoDB's find gives them)
    everything = brute_force(case["docs"], case["spec"], case["extra"], 0, 10**9)
    assert [d["_id"] for d in coll.find(filt)] == everything


def test_exact_ties_come_out_by_record_key() -> None:
    store = MemoryStore()
    indexes = IndexManager()
    engine = Engine(store, indexes=indexes, planner=Planner())
    with store.write() as txn:
        indexes.create_index(txn, "t.c", [("loc", "2d")])
    coll = engine.collection("t", "c")
    # four points at distance 5 around the center, inserted out of _id order, and duplicates
    pts = [[3.0, 4.0], [-3.0, -4.0], [4.0, -3.0], [-4.0, 3.0], [0.0, 5.0], [5.0, 0.0]]
    coll.insert([{"_id": 10 - i, "loc": p} for i, p in enumerate(pts)]
                + [{"_id": 20 + i, "loc": [3.0, 4.0]} for i in range(3)])
    got = [d["_id"] for d in coll.find({"loc": {"$near": [0.0, 0.0], "$maxDistance": 5}})]
    assert got == [5, 6, 7, 8, 9, 10, 20, 21, 22]
    assert [d["_id"] for d in coll.find({"loc": {"$near": [0, 0]}}, limit=4)] == [5, 6, 7, 8]


def test_sphere_box_bound_never_exceeds_the_distance() -> None:
    rng = random.Random(5)
    for _ in range(20_000):
        p = (rng.uniform(-180, 180), rng.uniform(-90, 90))
        x1, y1 = rng.uniform(-180, 170), rng.uniform(-90, 80)
        size = rng.choice([0.001, 0.5, 10.0, 90.0])
        box = (x1, y1, x1 + size, min(90.0, y1 + size))
        bound = sphere_box_bound(p, box)
        for _ in range(5):
            q = (rng.uniform(box[0], box[2]), rng.uniform(box[1], box[3]))
            assert bound <= sphere_distance(p, q) + 1e-12
        corner = (box[0], box[1])
        assert bound <= sphere_distance(p, corner) + 1e-12
