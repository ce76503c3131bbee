"""Tests for node.engine.geo: points, distances, shapes, 2d keys and coverings vs brute force."""

from __future__ import annotations

import bisect
import math
import random

import pytest
from bson.son import SON

from node.engine.errors import MongoError
from node.engine.geo import (
    GeoBounds,
    as_point,
    compile_geo,
    flat_distance,
    geo2d_index_key,
    in_polygon,
    interleave,
    match_geo,
    merge_ranges,
    points_of,
    sphere_distance,
)

# --- points --------------------------------------------------------------------------------------


def test_points_from_arrays_and_subdocuments() -> None:
    assert as_point([1, 2]) == (1.0, 2.0)
    assert as_point(SON([("y", 5), ("x", 6.5)])) == (5.0, 6.5)
    assert as_point({"lng": -3, "lat": 4}) == (-3.0, 4.0)
    assert as_point([1]) is None
    assert as_point(["a", 1]) is None
    assert as_point([True, 1]) is None
    assert as_point("1,2") is None
    assert points_of([[1, 2], [3, 4]]) == [(1.0, 2.0), (3.0, 4.0)]
    assert points_of([{"x": 1, "y": 2}, "junk"]) == [(1.0, 2.0)]
    assert points_of(None) == []


def test_flat_and_sphere_distance_known_values() -> None:
    assert flat_distance((0, 0), (3, 4)) == 5.0
    assert sphere_distance((0, 0), (90, 0)) == pytest.approx(math.pi / 2)
    assert sphere_distance((0, 0), (0, 90)) == pytest.approx(math.pi / 2)
    assert sphere_distance((10, 89.999999), (-170, 89.999999)) == pytest.approx(0, abs=1e-6)
    assert sphere_distance((-179.5, 0), (179.5, 0)) == pytest.approx(math.radians(1))
    # London to Paris, about 344 km on a 6371 km sphere
    d = sphere_distance((-0.1276, 51.5072), (2.3522, 48.8566)) * 6371.0
    assert 340 < d < 346


# --- bounds and keys -----------------------------------------------------------------------------


def test_bounds_errors_are_mongodb_codes() -> None:
    with pytest.raises(MongoError) as info:
        geo2d_index_key([200, 0])
    assert info.value.code == 13027
    assert info.value.errmsg == "point not in interval of [ -180, 180 )"
    with pytest.raises(MongoError):
        geo2d_index_key([180, 0])  # max is exclusive
    assert geo2d_index_key([-180, -180]) == 0
    assert isinstance(geo2d_index_key([179.99, 179.99]), int)
    # custom bounds
    assert geo2d_index_key([500, 500], min=0, max=1000) > 0
    with pytest.raises(MongoError) as info:
        geo2d_index_key([-1, 0], min=0, max=1000)
    assert "[ 0, 1000 )" in info.value.errmsg
    with pytest.raises(MongoError) as info:
        GeoBounds(bits=40)
    assert info.value.code == 13028


def test_keys_for_document_values() -> None:
    b = GeoBounds()
    doc = {"_id": 1, "loc": [200, 0]}
    with pytest.raises(MongoError) as info:
        b.keys_for(doc["loc"], doc)
    assert info.value.code == 16755
    assert "Can't extract geo keys" in info.value.errmsg
    assert "point not in interval of [ -180, 180 )" in info.value.errmsg
    with pytest.raises(MongoError) as info:
        b.keys_for("here", {"loc": "here"})
    assert info.value.code == 16755
    assert b.keys_for(None) == []
    assert b.keys_for([]) == []
    assert len(b.keys_for([[1, 2], [3, 4]])) == 2


def test_key_order_follows_cells() -> None:
    b = GeoBounds(bits=4, min=0, max=16)
    assert b.key((0, 0)) == 0
    assert b.key((15.5, 15.5)) == 255
    assert interleave(1, 0) == 2 and interleave(0, 1) == 1
    # the four children of a cell share its key prefix
    parent = interleave(3, 5)
    children = {b.key((6 + dx, 10 + dy)) >> 2 for dx in (0, 1) for dy in (0, 1)}
    assert children == {parent}


def test_merge_ranges() -> None:
    assert merge_ranges([(5, 9), (0, 3), (4, 4), (20, 30), (25, 26)]) == [(0, 9), (20, 30)]


# --- polygons --------------------------------------------------------------------------------------


def test_concave_polygon_and_boundary() -> None:
    # a "U" shape: the notch (4..6 x 4..10) is outside
    u = [(0, 0), (10, 0), (10, 10), (6, 10), (6, 4), (4, 4), (4, 10), (0, 10)]
    assert in_polygon((2, 8), u)
    assert in_polygon((8, 8), u)
    assert not in_polygon((5, 8), u)
    assert in_polygon((5, 2), u)
    assert in_polygon((5, 4), u)  # on the notch's bottom edge
    assert in_polygon((0, 5), u)  # on the left edge
    assert in_polygon((10, 10), u)  # a vertex
    assert not in_polygon((11, 5), u)
    assert not in_polygon((-0.001, 5), u)


# --- query compilation -------------------------------------------------------------------------------


def test_compile_and_match() -> None:
    near = compile_geo({"$near": [0, 0], "$maxDistance": 5})
    assert near.is_near and near.max_distance == 5.0
    assert match_geo(near, [3, 4])
    assert not match_geo(near, [3, 4.01])
    assert match_geo({"$near": [0, 0]}, {"x": 100, "y": 100})
    assert not match_geo({"$near": [0, 0]}, "nowhere")
    assert match_geo({"$within": {"$box": [[1, 1], [0, 0]]}}, [1, 1])
    assert match_geo({"$geoWithin": {"$center": [[0, 0], 2]}}, [[9, 9], [0, 2]])
    assert not match_geo({"$geoWithin": {"$center": [[0, 0], 2]}}, [[9, 9], [0, 2.1]])
    assert match_geo({"$within": {"$polygon": [[0, 0], [4, 0], [0, 4]]}}, [1, 1])
    cap = {"$geoWithin": {"$centerSphere": [[0, 0], math.radians(10)]}}
    assert match_geo(cap, [0, 9.99]) and not match_geo(cap, [0, 10.01])
    sphere = compile_geo({"$nearSphere": [0, 0], "$maxDistance": 0.1})
    assert sphere.spherical
    assert match_geo(sphere, [0, 5]) and not match_geo(sphere, [0, 6])
    assert match_geo({"$near": [0, 0], "$minDistance": 1}, [0, 1])
    assert not match_geo({"$near": [0, 0], "$minDistance": 1}, [0, 0.5])


@pytest.mark.parametrize(
    "spec",
    [
        {"$near": "here"},
        {"$near": [0, 0], "$maxDistance": -1},
        {"$near": [0, 0], "$maxDistance": "far"},
        {"$within": {"$box": [[0, 0]]}},
        {"$within": {"$center": [[0, 0], -2]}},
        {"$within": {"$polygon": [[0, 0], [1, 1]]}},
        {"$within": {"$triangle": [[0, 0], [1, 1]]}},
        {"$within": {"$box": [[0, 0], [1, 1]]}, "$maxDistance": 3},
        {"$near": [0, 0], "$nearSphere": [0, 0]},
        {"$near": [0, 0], "$gt": 3},
        {"$near": {"$geometry": {"type": "Point", "coordinates": [0, 0]}}},
    ],
)
def test_malformed_geo_queries_raise_bad_value(spec: dict) -> None:
    with pytest.raises(MongoError) as info:
        compile_geo(spec)
    assert info.value.code == 2


# --- coverings against brute force -----------------------------------------------------------------


def _candidates(keys: list[tuple[int, int]], ranges: list[tuple[int, int]]) -> set[int]:
    """Ids of the (key, id) pairs, sorted by key, that fall inside ``ranges``."""
    only_keys = [k for k, _ in keys]
    found: set[int] = set()
    for lo, hi in ranges:
        i = bisect.bisect_left(only_keys, lo)
        while i < len(keys) and keys[i][0] <= hi:
            found.add(keys[i][1])
            i += 1
    return found


def _random_specs(rng: random.Random, n: int) -> list[dict]:
    specs: list[dict] = []
    for _ in range(n):
        x, y = rng.uniform(-170, 170), rng.uniform(-80, 80)
        r = rng.choice([0.01, 0.5, 3.0, 20.0, 90.0])
        kind = rng.randrange(6)
        if kind == 0:
            specs.append({"$near": [x, y], "$maxDistance": r})
        elif kind == 1:
            specs.append({"$within": {"$box": [[x, y], [x + r, y + r / 2]]}})
        elif kind == 2:
            specs.append({"$within": {"$center": [[x, y], r]}})
        elif kind == 3:
            pts = [[x + r * math.cos(a), y + r * math.sin(a) * rng.uniform(0.2, 1)] for a in
                   sorted(rng.uniform(0, 2 * math.pi) for _ in range(6))]
            specs.append({"$geoWithin": {"$polygon": pts}})
        elif kind == 4:
            specs.append({"$nearSphere": [x, y], "$maxDistance": math.radians(r)})
        else:
            specs.append({"$geoWithin": {"$centerSphere": [[x, y], math.radians(r)]}})
    return specs


def test_covering_finds_every_match_on_random_points() -> None:
    rng = random.Random(7)
    bounds = GeoBounds()
    points = [(rng.uniform(-180, 179.999), rng.uniform(-90, 90)) for _ in range(4000)]
    # clustered points near the antimeridian and a pole stress the wrap-around boxes
    points += [(rng.choice([-1, 1]) * rng.uniform(178, 179.999), rng.uniform(-5, 5))
               for _ in range(300)]
    points += [(rng.uniform(-180, 179.999), rng.uniform(85, 90)) for _ in range(300)]
    keys = sorted((bounds.key(p), i) for i, p in enumerate(points))
    specs = _random_specs(rng, 150)
    specs += [
        {"$nearSphere": [179.9, 0], "$maxDistance": math.radians(3)},
        {"$geoWithin": {"$centerSphere": [[-179.5, 1], math.radians(2)]}},
        {"$nearSphere": [10, 88], "$maxDistance": math.radians(4)},
    ]
    scanned = 0
    for spec in specs:
        query = compile_geo(spec)
        expected = {i for i, p in enumerate(points) if query.point_matches(p)}
        ranges = query.covering(bounds)
        assert ranges is not None
        found = _candidates(keys, ranges)
        assert expected <= found, spec
        scanned += len(found)
    # coverings are selective: far fewer candidates than scanning everything for each query
    assert scanned < 0.35 * len(points) * len(specs)


def test_small_near_covering_is_tight() -> None:
    rng = random.Random(3)
    bounds = GeoBounds()
    points = [(rng.uniform(-180, 179.999), rng.uniform(-180, 179.999)) for _ in range(20000)]
    keys = sorted((bounds.key(p), i) for i, p in enumerate(points))
    query = compile_geo({"$near": [12.3, -45.6], "$maxDistance": 5})
    expected = {i for i, p in enumerate(points) if query.point_matches(p)}
    found = _candidates(keys, query.covering(bounds) or [])
    assert expected <= found
    assert expected  # the area holds about 12 points
    assert len(found) < 4 * len(expected) + 20


def test_unbounded_near_has_no_covering_but_a_radius_does() -> None:
    query = compile_geo({"$near": [0, 0]})
    assert query.covering(GeoBounds()) is None
    assert query.covering(GeoBounds(), radius=1.0)
    assert query.distance([[3, 4], [1, 0]]) == 1.0
    assert query.distance("nope") is None


def test_custom_bounds_covering() -> None:
    rng = random.Random(11)
    bounds = GeoBounds(bits=20, min=0, max=1000)
    points = [(rng.uniform(0, 999.99), rng.uniform(0, 999.99)) for _ in range(3000)]
    keys = sorted((bounds.key(p), i) for i, p in enumerate(points))
    for _ in range(40):
        cx, cy, r = rng.uniform(0, 1000), rng.uniform(0, 1000), rng.uniform(1, 200)
        query = compile_geo({"$within": {"$center": [[cx, cy], r]}})
        expected = {i for i, p in enumerate(points) if query.point_matches(p)}
        assert expected <= _candidates(keys, query.covering(bounds) or [])


def test_interleave_and_keys_match_a_bit_by_bit_reference() -> None:
    def spread(v: int) -> int:
        return sum(((v >> i) & 1) << (2 * i) for i in range(32))

    rng = random.Random(2)
    b = GeoBounds()
    for _ in range(500):
        a, c = rng.randrange(1 << 32), rng.randrange(1 << 32)
        assert interleave(a, c) == (spread(a) << 1) | spread(c)
        p = (rng.uniform(-180, 180), rng.uniform(-180, 180))
        assert b.key(p) == (spread(b.cell(p[0])) << 1) | spread(b.cell(p[1]))
        assert b.keys_for([p[0], p[1]]) == b.keys_for({"x": p[0], "y": p[1]}) == [b.key(p)]


def test_simple_key_agrees_with_the_general_key_path() -> None:
    rng = random.Random(7)
    for bounds in (GeoBounds(), GeoBounds(bits=32, min=-1.0, max=1.0), GeoBounds(bits=5)):
        edge = math.nextafter(bounds.max, bounds.min)
        points = [[rng.uniform(bounds.min, bounds.max), rng.uniform(bounds.min, bounds.max)]]
        points += [[edge, edge], [bounds.min, edge], [float(bounds.min), float(bounds.min)]]
        for _ in range(2000):
            points.append([rng.uniform(bounds.min, bounds.max), rng.uniform(bounds.min, bounds.max)])
        for p in points:
            assert bounds.simple_key(p) == bounds.key((p[0], p[1])), p
        # anything but two in-bounds floats is left to keys_for
        assert bounds.simple_key([1, 2.0]) is None
        assert bounds.simple_key([bounds.max, 0.0]) is None
        assert bounds.simple_key((1.0, 2.0)) is None
        assert bounds.simple_key({"x": 1.0, "y": 2.0}) is None
