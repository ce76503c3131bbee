"""2d and spherical geometry for MongoDB's legacy geospatial queries, and the 2d index cells.

What this module owns:

* reading locations: ``[x, y]`` arrays or sub-documents whose first two fields are numbers, and
  arrays of such points (multi-location documents) -- :func:`points_of`;
* the ``2d`` index: bounds checking (``[min, max)``, default ``[-180, 180)``), geohash-style keys
  (x and y quantised to ``bits`` bits each and bit-interleaved, so nearby points share key
  prefixes) and *coverings*: the key ranges a region needs scanned -- :class:`GeoBounds`;
* geometry: flat distance, haversine distance (longitude, latitude in degrees; result in
  radians), boxes, circles, polygons (convex or concave, boundary inclusive) and spherical caps;
* the query operators ``$near``, ``$nearSphere`` (with ``$maxDistance``/``$minDistance``) and
  ``$within``/``$geoWithin`` with ``$box``, ``$center``, ``$polygon``, ``$centerSphere``,
  compiled once into a :class:`GeoQuery` (:func:`compile_geo`) whose ``matches(value)`` the
  matcher calls and whose ``distance``/``boxes`` the planner uses.

Pure: no storage, no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from bson.decimal128 import Decimal128

from node.engine.errors import MongoError, bad_value, location

Point = tuple[float, float]
Box = tuple[float, float, float, float]  # x1, y1, x2, y2 with x1 <= x2, y1 <= y2
KeyRange = tuple[int, int]  # inclusive

GEO_OPERATORS = frozenset({"$near", "$nearSphere", "$within", "$geoWithin"})
GEO_OPTIONS = frozenset({"$maxDistance", "$minDistance", "$uniqueDocs"})
DEFAULT_BITS = 26
DEFAULT_MIN = -180.0
DEFAULT_MAX = 180.0
DEFAULT_NEAR_LIMIT = 100

_EPS = 1e-9


# --- reading points -----------------------------------------------------------------------------


def as_number(value: Any) -> float | None:
    """``value`` as a float if it is a BSON number (not bool), else ``None``."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, Decimal128):
        return float(value.to_decimal())
    return None


def as_point(value: Any) -> Point | None:
    """A single location: a list whose first two elements, or a document whose first two field
    values, are numbers. Anything else gives ``None``."""
    if isinstance(value, list | tuple):
        items = list(value[:2])
    elif isinstance(value, Mapping):
        items = list(value.values())[:2]
    else:
        return None
    if len(items) < 2:
        return None
    x, y = as_number(items[0]), as_number(items[1])
    if x is None or y is None:
        return None
    return (x, y)


def points_of(value: Any) -> list[Point]:
    """Every location in ``value``: one point, or each point of an array of points."""
    point = as_point(value)
    if point is not None:
        return [point]
    if isinstance(value, list | tuple):
        return [p for p in (as_point(item) for item in value) if p is not None]
    return []


# --- distances and shapes -------------------------------------------------------------------------


def flat_distance(a: Point, b: Point) -> float:
    """Euclidean distance in the plane."""
    return math.hypot(a[0] - b[0], a[1] - b[1])


def sphere_distance(a: Point, b: Point) -> float:
    """Great-circle distance in radians between (longitude, latitude) points in degrees."""
    lng1, lat1 = math.radians(a[0]), math.radians(a[1])
    lng2, lat2 = math.radians(b[0]), math.radians(b[1])
    h = math.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin(
        (lng2 - lng1) / 2
    ) ** 2
    return 2 * math.asin(min(1.0, math.sqrt(max(0.0, h))))


def in_box(p: Point, box: Box) -> bool:
    """``p`` inside or on the edge of ``box``."""
    return box[0] <= p[0] <= box[2] and box[1] <= p[1] <= box[3]


def _on_segment(p: Point, a: Point, b: Point) -> bool:
    cross = (b[0] - a[0]) * (p[1] - a[1]) - (b[1] - a[1]) * (p[0] - a[0])
    scale = max(abs(b[0] - a[0]), abs(b[1] - a[1]), 1.0)
    if abs(cross) > _EPS * scale * scale:
        return False
    return (
        min(a[0], b[0]) - _EPS <= p[0] <= max(a[0], b[0]) + _EPS
        and min(a[1], b[1]) - _EPS <= p[1] <= max(a[1], b[1]) + _EPS
    )


def in_polygon(p: Point, vertices: list[Point]) -> bool:
    """``p`` inside (even-odd rule) or on the boundary of the closed polygon ``vertices``."""
    n = len(vertices)
    inside = False
    x, y = p
    for i in range(n):
        a, b = vertices[i], vertices[(i + 1) % n]
        if _on_segment(p, a, b):
            return True
        if (a[1] > y) != (b[1] > y):
            x_cross = a[0] + (y - a[1]) * (b[0] - a[0]) / (b[1] - a[1])
            if x < x_cross:
                inside = not inside
    return inside


def box_distance(p: Point, box: Box) -> float:
    """Flat distance from ``p`` to the nearest point of ``box`` (0 inside)."""
    dx = max(box[0] - p[0], 0.0, p[0] - box[2])
    dy = max(box[1] - p[1], 0.0, p[1] - box[3])
    return math.hypot(dx, dy)


def sphere_box_bound(p: Point, box: Box) -> float:
    """A lower bound of the great-circle distance (radians) from ``p`` to any point of the
    longitude/latitude ``box`` (degrees); 0 for a box or ``p`` beyond the poles.

    Two bounds, the larger kept: the latitude gap (no path is shorter than its change of
    latitude), and, when ``p``'s longitude is outside the box's, the distance to the nearer
    edge meridian's whole great circle (the nearest point of such a box lies on an edge
    meridian: along any parallel, distance grows with the longitude gap)."""
    x1, y1, x2, y2 = box
    lng, lat = p
    if y1 < -90.0 or y2 > 90.0 or not -90.0 <= lat <= 90.0:
        return 0.0
    lat_gap = max(y1 - lat, 0.0, lat - y2)
    if x2 - x1 >= 360.0 or (lng - x1) % 360.0 <= x2 - x1:
        return math.radians(lat_gap)
    cos_lat = math.cos(math.radians(lat))
    cross = min(abs(cos_lat * math.sin(math.radians(lng - e))) for e in (x1, x2))
    return max(math.radians(lat_gap), math.asin(min(1.0, cross)))


def sphere_cap_boxes(center: Point, radius: float) -> list[Box]:
    """Longitude/latitude boxes (degrees) covering the spherical cap of ``radius`` radians."""
    if radius >= math.pi:
        return [(-180.0, -90.0, 180.0, 90.0)]
    lng, lat = center
    r_deg = math.degrees(radius) * (1 + _EPS) + _EPS
    lat_lo, lat_hi = lat - r_deg, lat + r_deg
    if lat_lo <= -90.0 or lat_hi >= 90.0:
        return [(-180.0, max(lat_lo, -90.0), 180.0, min(lat_hi, 90.0))]
    ratio = math.sin(radius) / math.cos(math.radians(lat))
    if ratio >= 1.0:
        return [(-180.0, lat_lo, 180.0, lat_hi)]
    d_lng = math.degrees(math.asin(ratio)) * (1 + _EPS) + _EPS
    lo, hi = lng - d_lng, lng + d_lng
    if hi - lo >= 360.0:
        return [(-180.0, lat_lo, 180.0, lat_hi)]
    boxes: list[Box] = [(max(lo, -180.0), lat_lo, min(hi, 180.0), lat_hi)]
    if lo < -180.0:
        boxes.append((lo + 360.0, lat_lo, 180.0, lat_hi))
    if hi > 180.0:
        boxes.append((-180.0, lat_lo, hi - 360.0, lat_hi))
    return boxes


# --- the 2d index -----------------------------------------------------------------------------------


def _spread16(v: int) -> int:
    v = (v | (v << 8)) & 0x00FF00FF
    v = (v | (v << 4)) & 0x0F0F0F0F
    v = (v | (v << 2)) & 0x33333333
    return (v | (v << 1)) & 0x55555555


_SPREAD16 = [_spread16(v) for v in range(1 << 16)]


def interleave(x: int, y: int) -> int:
    """Morton code of two 32-bit cell numbers; x takes the higher bit of each pair."""
    t = _SPREAD16
    return (
        (t[x & 0xFFFF] | (t[(x >> 16) & 0xFFFF] << 32)) << 1
        | t[y & 0xFFFF]
        | (t[(y >> 16) & 0xFFFF] << 32)
    )


def _compact16(v: int) -> int:
    """The even bits of a 16-bit number, packed into 8 bits (inverse of spreading)."""
    v &= 0x5555
    v = (v | (v >> 1)) & 0x3333
    v = (v | (v >> 2)) & 0x0F0F
    return (v | (v >> 4)) & 0x00FF


_COMPACT16 = [_compact16(v) | (_compact16(v >> 1) << 8) for v in range(1 << 16)]
"""For 16 interleaved bits: the 8 y bits (even positions) in the low byte, x bits above."""


def deinterleave(key: int) -> tuple[int, int]:
    """The (x, y) cell numbers of a Morton code: the inverse of :func:`interleave`."""
    t = _COMPACT16
    p0, p1 = t[key & 0xFFFF], t[(key >> 16) & 0xFFFF]
    p2, p3 = t[(key >> 32) & 0xFFFF], t[(key >> 48) & 0xFFFF]
    y = (p0 & 0xFF) | (p1 & 0xFF) << 8 | (p2 & 0xFF) << 16 | (p3 & 0xFF) << 24
    x = p0 >> 8 | (p1 >> 8) << 8 | (p2 >> 8) << 16 | (p3 >> 8) << 24
    return x, y


def _fmt(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else repr(float(v))


@dataclass(frozen=True)
class GeoBounds:
    """A 2d index's coordinate space: ``[min, max)`` on both axes, ``bits`` bits per axis."""

    bits: int = DEFAULT_BITS
    min: float = DEFAULT_MIN
    max: float = DEFAULT_MAX

    def __post_init__(self) -> None:
        if not 1 <= self.bits <= 32:
            raise location(13028, "bits in geo index must be between 1 and 32")
        if not self.min < self.max:
            raise bad_value("region for hash must be valid and have positive area")

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> GeoBounds:
        """Bounds from index options ``bits``, ``min``, ``max`` (defaults when absent)."""
        bits = options.get("bits", DEFAULT_BITS)
        lo = options.get("min", DEFAULT_MIN)
        hi = options.get("max", DEFAULT_MAX)
        nums = [as_number(bits), as_number(lo), as_number(hi)]
        if any(n is None for n in nums):
            raise bad_value("bits, min and max of a 2d index must be numbers")
        return cls(int(bits), float(lo), float(hi))

    def contains(self, p: Point) -> bool:
        return self.min <= p[0] < self.max and self.min <= p[1] < self.max

    def out_of_bounds_message(self) -> str:
        return f"point not in interval of [ {_fmt(self.min)}, {_fmt(self.max)} )"

    def check(self, p: Point) -> None:
        """Raise MongoDB's code 13027 when ``p`` is outside ``[min, max)``."""
        if not self.contains(p):
            raise location(13027, self.out_of_bounds_message())

    def cell(self, v: float) -> int:
        """The ``bits``-bit cell number of coordinate ``v`` (clamped into range)."""
        n = 1 << self.bits
        c = int((v - self.min) / (self.max - self.min) * n)
        return min(max(c, 0), n - 1)

    def key(self, p: Point) -> int:
        """The interleaved cell key of ``p``."""
        n = 1 << self.bits
        scale = n / (self.max - self.min)
        cx = int((p[0] - self.min) * scale)
        cy = int((p[1] - self.min) * scale)
        if not (0 <= cx < n and 0 <= cy < n):
            cx, cy = self.cell(p[0]), self.cell(p[1])
        return interleave(cx, cy)

    def simple_key(self, value: Any) -> int | None:
        """The one key of the common location ``[x, y]`` of two floats inside the bounds; None
        for anything else (let :meth:`keys_for` handle it, errors included)."""
        if type(value) is not list or len(value) != 2:
            return None
        x, y = value
        if type(x) is not float or type(y) is not float:
            return None
        lo, hi = self.min, self.max
        if not (lo <= x < hi and lo <= y < hi):
            return None
        n = 1 << self.bits
        scale = n / (hi - lo)
        cx = int((x - lo) * scale)
        cy = int((y - lo) * scale)
        if cx >= n:  # rounding at the top edge
            cx = n - 1
        if cy >= n:
            cy = n - 1
        return interleave(cx, cy)

    def keys_for(self, value: Any, doc: Mapping[str, Any] | None = None) -> list[int]:
        """Index keys for a document's location field value (``None``: field missing -> no keys).

        Raises code 16755 ("Can't extract geo keys") for malformed or out-of-bounds locations."""
        if value is None:
            return []
        simple = self.simple_key(value)
        if simple is not None:
            return [simple]
        points = points_of(value)
        if not points:
            if isinstance(value, list) and not value:
                return []
            raise _cannot_extract(doc, "geo element must be an array or object: " + repr(value))
        keys = []
        for p in points:
            if not self.contains(p):
                raise _cannot_extract(doc, self.out_of_bounds_message())
            keys.append(self.key(p))
        return sorted(set(keys))

    def cell_box(self, cx: int, cy: int, shift: int) -> Box:
        """The coordinate box of cell (cx, cy) at ``shift`` bits coarser than full resolution."""
        size = (self.max - self.min) / (1 << (self.bits - shift))
        return (
            self.min + cx * size,
            self.min + cy * size,
            self.min + (cx + 1) * size,
            self.min + (cy + 1) * size,
        )

    def cell_range(self, cx: int, cy: int, shift: int) -> KeyRange:
        """The inclusive key range of cell (cx, cy) at ``shift`` bits coarser than full."""
        k = interleave(cx, cy)
        width = 2 * shift
        return k << width, ((k + 1) << width) - 1

    def slack(self) -> float:
        """How far float rounding may put a point outside the box of its own cell."""
        return (self.max - self.min) * 1e-9

    def cover(
        self,
        boxes: Iterable[Box],
        *,
        max_cells: int = 64,
        keep: Callable[[Box], bool] | None = None,
    ) -> list[KeyRange]:
        """Sorted, merged inclusive key ranges whose cells cover every point of ``boxes``.

        Each box is covered by at most ``max_cells`` cells of one level (the finest that fits);
        ``keep(cell_box)`` may drop cells that cannot hold a match (e.g. outside a circle)."""
        ranges: list[KeyRange] = []
        for x1, y1, x2, y2 in boxes:
            x1, y1 = max(x1, self.min), max(y1, self.min)
            x2, y2 = min(x2, self.max), min(y2, self.max)
            if x1 > x2 or y1 > y2:
                continue
            cx1, cx2 = self.cell(x1), self.cell(x2)
            cy1, cy2 = self.cell(y1), self.cell(y2)
            shift = 0
            while ((cx2 >> shift) - (cx1 >> shift) + 1) * (
                (cy2 >> shift) - (cy1 >> shift) + 1
            ) > max_cells:
                shift += 1
            width = 2 * shift
            for cx in range(cx1 >> shift, (cx2 >> shift) + 1):
                for cy in range(cy1 >> shift, (cy2 >> shift) + 1):
                    if keep is not None and not keep(self.cell_box(cx, cy, shift)):
                        continue
                    k = interleave(cx, cy)
                    ranges.append((k << width, ((k + 1) << width) - 1))
        return merge_ranges(ranges)


def merge_ranges(ranges: Iterable[KeyRange]) -> list[KeyRange]:
    """Sort inclusive integer ranges and merge overlapping or adjacent ones."""
    merged: list[KeyRange] = []
    for lo, hi in sorted(ranges):
        if merged and lo <= merged[-1][1] + 1:
            if hi > merged[-1][1]:
                merged[-1] = (merged[-1][0], hi)
        else:
            merged.append((lo, hi))
    return merged


def geo2d_index_key(
    point: Any, bits: int = DEFAULT_BITS, min: float = DEFAULT_MIN, max: float = DEFAULT_MAX
) -> int:
    """The 2d index key (interleaved cell number) of one location; raises 13027 out of bounds."""
    bounds = GeoBounds(bits, min, max)
    p = as_point(point)
    if p is None:
        raise bad_value(f"geo element must be an array or object: {point!r}")
    bounds.check(p)
    return bounds.key(p)


def _cannot_extract(doc: Mapping[str, Any] | None, reason: str) -> MongoError:
    shown = "" if doc is None else f"{_render(doc)}  "
    return location(16755, f"Can't extract geo keys: {shown}{reason}")


def _render(value: Any) -> str:
    if isinstance(value, Mapping):
        inner = ", ".join(f"{k}: {_render(v)}" for k, v in value.items())
        return "{ " + inner + " }" if inner else "{}"
    if isinstance(value, list | tuple):
        inner = ", ".join(_render(v) for v in value)
        return "[ " + inner + " ]" if inner else "[]"
    if isinstance(value, str):
        return f'"{value}"'
    return str(value)


# --- query shapes --------------------------------------------------------------------------------


class Shape:
    """A region for ``$within``; points on the boundary are inside."""

    spherical = False

    def contains(self, p: Point) -> bool:
        raise NotImplementedError

    def boxes(self) -> list[Box]:
        """Coordinate boxes covering the region (for the index covering)."""
        raise NotImplementedError

    def keep(self, cell: Box) -> bool:
        """Whether an index cell may hold a point of the region."""
        return True


@dataclass(frozen=True)
class BoxShape(Shape):
    box: Box

    def contains(self, p: Point) -> bool:
        return in_box(p, self.box)

    def boxes(self) -> list[Box]:
        return [self.box]


@dataclass(frozen=True)
class CircleShape(Shape):
    center: Point
    radius: float

    def contains(self, p: Point) -> bool:
        return flat_distance(p, self.center) <= self.radius

    def boxes(self) -> list[Box]:
        r = self.radius * (1 + _EPS) + _EPS
        x, y = self.center
        return [(x - r, y - r, x + r, y + r)]

    def keep(self, cell: Box) -> bool:
        return box_distance(self.center, cell) <= self.radius * (1 + _EPS) + _EPS


@dataclass(frozen=True)
class PolygonShape(Shape):
    vertices: tuple[Point, ...]

    def contains(self, p: Point) -> bool:
        return in_polygon(p, list(self.vertices))

    def boxes(self) -> list[Box]:
        xs = [v[0] for v in self.vertices]
        ys = [v[1] for v in self.vertices]
        return [(min(xs) - _EPS, min(ys) - _EPS, max(xs) + _EPS, max(ys) + _EPS)]


@dataclass(frozen=True)
class SphereCapShape(Shape):
    center: Point
    radius: float
    spherical = True

    def contains(self, p: Point) -> bool:
        return sphere_distance(p, self.center) <= self.radius

    def boxes(self) -> list[Box]:
        return sphere_cap_boxes(self.center, self.radius)


def _parse_point(value: Any, what: str) -> Point:
    p = as_point(value)
    if p is None or (isinstance(value, list | tuple) and len(value) != 2):
        raise bad_value(f"Point must only contain numeric elements in {what}")
    if isinstance(value, Mapping) and len(value) != 2:
        raise bad_value(f"Point must only contain numeric elements in {what}")
    return p


def _parse_radius(value: Any, what: str) -> float:
    r = as_number(value)
    if r is None or r < 0 or math.isnan(r):
        raise bad_value(f"radius must be a non-negative number in {what}")
    return r


def parse_shape(spec: Any) -> Shape:
    """The region of a ``$within``/``$geoWithin`` operand (``{"$box": ...}`` etc.)."""
    if not isinstance(spec, Mapping) or not spec:
        raise bad_value("$geoWithin/$within requires a shape ($box, $center, $polygon, ...)")
    name, arg = next(iter(spec.items()))
    if name == "$box":
        if not isinstance(arg, list | tuple) or len(arg) != 2:
            raise bad_value("$box requires two points: [[x1, y1], [x2, y2]]")
        a, b = _parse_point(arg[0], "$box"), _parse_point(arg[1], "$box")
        return BoxShape((min(a[0], b[0]), min(a[1], b[1]), max(a[0], b[0]), max(a[1], b[1])))
    if name in ("$center", "$centerSphere"):
        if not isinstance(arg, list | tuple) or len(arg) != 2:
            raise bad_value(f"{name} requires a center point and a radius: [[x, y], r]")
        center = _parse_point(arg[0], name)
        radius = _parse_radius(arg[1], name)
        if name == "$center":
            return CircleShape(center, radius)
        return SphereCapShape(center, radius)
    if name == "$polygon":
        if not isinstance(arg, list | tuple):
            raise bad_value("$polygon requires an array of points")
        vertices = tuple(_parse_point(v, "$polygon") for v in arg)
        if len(vertices) < 3:
            raise bad_value("Polygon must have at least 3 points")
        return PolygonShape(vertices)
    if name == "$geometry":
        raise bad_value("$geometry (GeoJSON) queries need a 2dsphere index, which is unsupported")
    raise bad_value(f"unknown geo specifier: {name}: {_render(arg)}")


# --- compiled geo queries ---------------------------------------------------------------------


@dataclass(frozen=True)
class GeoQuery:
    """One field's compiled geo predicate.

    ``kind`` is ``"near"`` (``$near``/``$nearSphere``: results sorted by distance from
    ``center``, optionally within ``[min_distance, max_distance]``) or ``"within"`` (``shape``).
    ``spherical`` means (longitude, latitude) degrees and distances in radians."""

    kind: str
    spherical: bool = False
    center: Point | None = None
    max_distance: float | None = None
    min_distance: float | None = None
    shape: Shape | None = None
    operator: str = ""

    @property
    def is_near(self) -> bool:
        return self.kind == "near"

    def point_distance(self, p: Point) -> float:
        assert self.center is not None
        if self.spherical:
            return sphere_distance(p, self.center)
        return flat_distance(p, self.center)

    def distance(self, value: Any) -> float | None:
        """Distance from ``center`` to the nearest location in ``value`` (``None``: none)."""
        points = points_of(value)
        if not points or self.center is None:
            return None
        return min(self.point_distance(p) for p in points)

    def point_matches(self, p: Point) -> bool:
        if self.kind == "within":
            assert self.shape is not None
            return self.shape.contains(p)
        d = self.point_distance(p)
        if self.max_distance is not None and d > self.max_distance:
            return False
        return not (self.min_distance is not None and d < self.min_distance)

    def matches(self, value: Any) -> bool:
        """Whether some location in ``value`` satisfies the predicate."""
        return any(self.point_matches(p) for p in points_of(value))

    def boxes(self, radius: float | None = None) -> list[Box] | None:
        """Coordinate boxes covering every possible match (``radius`` overrides
        ``max_distance`` for ``$near``); ``None`` when unbounded."""
        if self.kind == "within":
            assert self.shape is not None
            return self.shape.boxes()
        r = self.max_distance if radius is None else radius
        if r is None:
            return None
        assert self.center is not None
        if self.spherical:
            return sphere_cap_boxes(self.center, r)
        return CircleShape(self.center, r).boxes()

    def covering(
        self, bounds: GeoBounds, radius: float | None = None, *, max_cells: int = 64
    ) -> list[KeyRange] | None:
        """Index key ranges holding every possible match; ``None`` when unbounded."""
        boxes = self.boxes(radius)
        if boxes is None:
            return None
        keep: Callable[[Box], bool] | None = None
        if self.kind == "within":
            assert self.shape is not None
            keep = self.shape.keep
        elif not self.spherical:
            r = self.max_distance if radius is None else radius
            assert r is not None and self.center is not None
            keep = CircleShape(self.center, r).keep
        return bounds.cover(boxes, max_cells=max_cells, keep=keep)


def is_geo_operator_dict(spec: Any) -> bool:
    """Whether a field's operator document is a geo predicate."""
    return isinstance(spec, Mapping) and any(k in GEO_OPERATORS for k in spec)


def compile_geo(spec: Mapping[str, Any]) -> GeoQuery:
    """Compile one field's operator document, e.g. ``{"$near": [x, y], "$maxDistance": 5}`` or
    ``{"$geoWithin": {"$box": [[0, 0], [1, 1]]}}``. Raises BadValue for malformed queries."""
    ops = [k for k in spec if k in GEO_OPERATORS]
    if len(ops) != 1:
        raise bad_value("a geo query needs exactly one of $near, $nearSphere, $within, $geoWithin")
    op = ops[0]
    others = [k for k in spec if k != op and k not in GEO_OPTIONS]
    if others:
        raise bad_value(f"unknown operator combined with {op}: {others[0]}")
    operand = spec[op]
    if op in ("$within", "$geoWithin"):
        if "$maxDistance" in spec or "$minDistance" in spec:
            raise bad_value(f"$maxDistance/$minDistance are only valid with $near, not {op}")
        shape = parse_shape(operand)
        return GeoQuery("within", spherical=shape.spherical, shape=shape, operator=op)
    max_d = spec.get("$maxDistance")
    min_d = spec.get("$minDistance")
    if isinstance(operand, Mapping) and any(str(k).startswith("$") for k in operand):
        if "$geometry" in operand:
            raise bad_value(
                "$geometry (GeoJSON) queries need a 2dsphere index, which is unsupported"
            )
        raise bad_value(f"invalid argument to {op}: {_render(operand)}")
    center = as_point(operand)
    if center is None:
        raise bad_value(f"{op} requires a point, given {_render(operand)}")
    max_distance = _parse_distance(max_d, "$maxDistance")
    min_distance = _parse_distance(min_d, "$minDistance")
    spherical = op == "$nearSphere"
    if spherical and max_distance is not None and max_distance > math.pi:
        max_distance = math.pi
    return GeoQuery(
        "near",
        spherical=spherical,
        center=center,
        max_distance=max_distance,
        min_distance=min_distance,
        operator=op,
    )


def _parse_distance(value: Any, name: str) -> float | None:
    if value is None:
        return None
    d = as_number(value)
    if d is None:
        raise bad_value(f"{name} must be a number")
    if d < 0 or math.isnan(d):
        raise bad_value(f"{name} must be non-negative")
    return d


def match_geo(spec: Mapping[str, Any] | GeoQuery, value: Any) -> bool:
    """Whether a field value satisfies a geo operator document (or an already compiled query)."""
    query = spec if isinstance(spec, GeoQuery) else compile_geo(spec)
    return query.matches(value)
