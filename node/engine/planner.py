"""Query planning and execution: candidate plans, plan choice, execution statistics, explain.

Given a filter, an optional sort, skip and limit, and the indexes of a collection, the planner

* derives per-field *index bounds* from the filter's top-level AND (equality, ``$eq``, ``$in``,
  ``$gt``/``$gte``/``$lt``/``$lte`` -- type-bracketed as MongoDB does);
* builds candidate plans: an index scan (IXSCAN + FETCH) for each index whose leading fields are
  bounded or which can supply the sort order, a 2d index scan over the geo *covering* of a
  ``$within``/``$geoWithin`` region, GEO_NEAR_2D for ``$near``/``$nearSphere`` (results by
  distance, default limit 100), and the collection scan as fallback;
* chooses by a cost model: the number of index keys each plan's bounds hold, counted with a cap
  at the best plan so far (ties go to the plan that also supplies the sort order);
* always re-checks the whole filter on fetched documents (bounds are a superset);
* sorts in memory when no index supplies the order, failing like MongoDB past the memory limit
  (code 292, 32 MiB by default);
* reports MongoDB-shaped ``explain`` output (``queryPlanner.winningPlan``, ``executionStats``).

Indexes are seen through :class:`IndexInfo`; index entries are expected to be keyed by the
memcomparable key (``keystring.encode_compound`` of the key values in index order, descending
fields inverted), followed by anything, with the record's key recoverable by ``locate``.
"""

from __future__ import annotations

import heapq
import itertools
import math
import re
import struct
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import bson
from bson.max_key import MaxKey
from bson.min_key import MinKey
from bson.regex import Regex

from node.engine import interrupt
from node.engine.errors import MongoError, bad_value
from node.engine.geo import (
    DEFAULT_NEAR_LIMIT,
    GeoBounds,
    GeoQuery,
    compile_geo,
    is_geo_operator_dict,
    points_of,
)
from node.engine.geo_near import nearest
from node.engine.keystring import encode_key, invert, is_descending, prefix_successor
from node.engine.matcher import Matcher
from node.engine.paths import path_values
from node.engine.sorting import (
    MAX_BLOCKING_SORT_BYTES,
    Sort,
    bounded_sort,
    parse_sort,
)
from node.engine.values import MISSING

SORT_MEMORY_LIMIT_BYTES = MAX_BLOCKING_SORT_BYTES
"""Default limit for in-memory sorts (MongoDB's internalQueryMaxBlockingSortMemoryUsageBytes)."""
NO_QUERY_EXECUTION_PLANS = 291
MAX_SCAN_RANGES = 512  # cap on the cartesian product of point bounds

Range = tuple[bytes, bytes | None]  # [start, end) in index-key bytes; end None: to the end
Row = tuple[bytes, bytes, dict[str, Any], "int | None"]  # record key, BSON, doc, match position


# --- what the planner needs to know about a collection ------------------------------------------


def _record_key_from_value(key: bytes, value: bytes) -> bytes:
    return value


@dataclass(frozen=True)
class IndexInfo:
    """One index as the planner sees it.

    ``key`` is the key pattern (``(field, 1 | -1 | "2d")`` pairs); ``table`` the KV table of its
    entries; ``multikey`` whether some document produced several keys (bounds on one field are
    then not intersected, and the index supplies no sort on it); ``geo`` the 2d bounds when the
    first field is ``"2d"``; ``locate(entry_key, entry_value)`` the record key of an entry."""

    name: str
    key: tuple[tuple[str, Any], ...]
    table: str
    sparse: bool = False
    multikey: bool = True
    geo: GeoBounds | None = None
    locate: Callable[[bytes, bytes], bytes] = _record_key_from_value

    @property
    def key_pattern(self) -> dict[str, Any]:
        return dict(self.key)

    @property
    def is_2d(self) -> bool:
        return bool(self.key) and self.key[0][1] == "2d"


@dataclass(frozen=True)
class CollectionView:
    """The collection a query runs on: its namespace, record table, indexes and decoder."""

    namespace: str
    docs_table: str
    indexes: Sequence[IndexInfo] = ()
    decode: Callable[[bytes], dict[str, Any]] = bson.decode
    owned: Callable[[bytes], bool] | None = None
    """On a shard: whether a record key is owned here. Every plan skips the others at the
    source, before any limit, top-k sort or ``$near`` radius counts them."""


@dataclass
class FindSpec:
    """A query: filter, sort (``[(field, 1 | -1)]``), skip, limit (0: none), hint."""

    filter: Mapping[str, Any] = field(default_factory=dict)
    sort: Sequence[tuple[str, int]] | None = None
    skip: int = 0
    limit: int = 0
    hint: str | Sequence[tuple[str, Any]] | Mapping[str, Any] | None = None
    max_sort_bytes: int = SORT_MEMORY_LIMIT_BYTES
    allow_disk_use: bool = False


@dataclass
class Stats:
    """Execution counters, as in MongoDB's ``executionStats``."""

    keys_examined: int = 0
    docs_examined: int = 0
    n_returned: int = 0


@dataclass
class QueryResult:
    """Documents (in result order) with their record keys, the plans and the counters."""

    docs: list[dict[str, Any]]
    record_keys: list[bytes]
    plan: Plan
    rejected: list[Plan]
    stats: Stats
    sort_stage: dict[str, Any] | None = None


# --- bounds ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Bound:
    """One end of an interval: ascending key bytes (``None``: unbounded), inclusiveness, label."""

    enc: bytes | None
    inclusive: bool
    label: str
    shown_inclusive: bool | None = None

    @property
    def display_inclusive(self) -> bool:
        return self.inclusive if self.shown_inclusive is None else self.shown_inclusive


@dataclass(frozen=True)
class Interval:
    lo: Bound
    hi: Bound

    @property
    def is_point(self) -> bool:
        return (
            self.lo.enc is not None
            and self.lo.enc == self.hi.enc
            and self.lo.inclusive
            and self.hi.inclusive
        )

    def render(self, descending: bool = False) -> str:
        lo, hi = (self.hi, self.lo) if descending else (self.lo, self.hi)
        left = "[" if lo.display_inclusive else "("
        right = "]" if hi.display_inclusive else ")"
        return f"{left}{lo.label}, {hi.label}{right}"

    def to_bytes_space(self, descending: bool) -> tuple[Bound, Bound]:
        """(lo, hi) in index-byte order for a field of the given direction."""
        if not descending:
            return self.lo, self.hi
        lo = Bound(None if self.hi.enc is None else invert(self.hi.enc), self.hi.inclusive, "")
        hi = Bound(None if self.lo.enc is None else invert(self.lo.enc), self.lo.inclusive, "")
        return lo, hi


MIN_BOUND = Bound(None, True, "MinKey")
MAX_BOUND = Bound(None, True, "MaxKey")
FULL = Interval(MIN_BOUND, MAX_BOUND)


def render_value(value: Any) -> str:
    """A value as MongoDB prints it in index bounds."""
    if value is None or value is MISSING:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if math.isnan(value):
            return "nan.0"
        if math.isinf(value):
            return "inf.0" if value > 0 else "-inf.0"
        return repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return '"' + value.replace('"', '\\"') + '"'
    if isinstance(value, Mapping):
        inner = ", ".join(f"{k}: {render_value(v)}" for k, v in value.items())
        return "{ " + inner + " }" if inner else "{}"
    if isinstance(value, list | tuple):
        inner = ", ".join(render_value(v) for v in value)
        return "[ " + inner + " ]" if inner else "[]"
    return str(value)


_NUMBER_TYPE = encode_key(0)[0]
_STRING_TYPE = encode_key("")[0]


def _type_floor(value: Any) -> Bound:
    t = encode_key(value)[0]
    if t == _NUMBER_TYPE:
        return Bound(bytes([t]), True, "-inf.0")
    if t == _STRING_TYPE:
        return Bound(bytes([t]), True, '""')
    return Bound(bytes([t]), True, "MinKey", shown_inclusive=True)


def _type_ceiling(value: Any) -> Bound:
    t = encode_key(value)[0]
    if t == _NUMBER_TYPE:
        return Bound(bytes([t + 1]), False, "inf.0", shown_inclusive=True)
    if t == _STRING_TYPE:
        return Bound(bytes([t + 1]), False, "{}")
    return Bound(bytes([t + 1]), False, "MaxKey", shown_inclusive=True)


class _ValueLabel:
    """A bound's label rendered only when explain shows it: a ``$in`` of 100,000 values
    would otherwise render every value for every query."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __str__(self) -> str:
        return render_value(self.value)

    def __eq__(self, other: object) -> bool:
        return str(self) == str(other)

    def __hash__(self) -> int:
        return hash(str(self))


def _point(value: Any, enc: bytes | None = None) -> Interval:
    """The point interval of ``value`` (``enc``: its key encoding, when already known)."""
    b = Bound(encode_key(value) if enc is None else enc, True, _ValueLabel(value))  # type: ignore[arg-type]
    return Interval(b, b)


def _unindexable(value: Any) -> bool:
    """Values whose equality/comparison semantics the index keys cannot bound."""
    return isinstance(value, list | tuple | Regex) or hasattr(value, "pattern")


def _spans_all_types(value: Any) -> bool:
    """MinKey/MaxKey: a comparison with them crosses every type, beyond one type's bounds."""
    return isinstance(value, MinKey | MaxKey)


def _is_operator_doc(value: Any) -> bool:
    return isinstance(value, Mapping) and bool(value) and all(
        isinstance(k, str) and k.startswith("$") for k in value
    )


@dataclass
class FieldPredicates:
    """The bound-able predicates of one field (from the filter's top-level AND)."""

    points: list[list[Interval]] = field(default_factory=list)  # each: eq or $in alternatives
    unions: list[list[Interval]] = field(default_factory=list)  # each: a regex's intervals
    lowers: list[Bound] = field(default_factory=list)
    uppers: list[Bound] = field(default_factory=list)
    ranges: list[Interval] = field(default_factory=list)  # single-predicate ranges


def _collect(filt: Mapping[str, Any], out: dict[str, FieldPredicates]) -> None:
    for name, arg in filt.items():
        if name == "$and" and isinstance(arg, list | tuple):
            for sub in arg:
                if isinstance(sub, Mapping):
                    _collect(sub, out)
            continue
        if name.startswith("$"):
            continue
        preds = out.setdefault(name, FieldPredicates())
        if not _is_operator_doc(arg):
            if not _unindexable(arg):
                preds.points.append([_point(arg)])
            elif (intervals := regex_intervals(arg)) is not None:
                preds.unions.append(intervals)
            continue
        if any(k in ("$near", "$nearSphere", "$within", "$geoWithin") for k in arg):
            continue
        if "$regex" in arg:
            intervals = regex_intervals(arg["$regex"], arg.get("$options", ""))
            if intervals is not None:
                preds.unions.append(intervals)
        for op, value in arg.items():
            if op == "$elemMatch" and _is_operator_doc(value):
                # one element satisfies every predicate: bounds intersect even when multikey
                sub: dict[str, FieldPredicates] = {}
                # a nested $elemMatch applies to inner arrays, whose elements are not keys
                element_ops = {k: v for k, v in value.items() if k != "$elemMatch"}
                if element_ops:
                    _collect({name: element_ops}, sub)
                inner = sub.get(name)
                if inner is not None and (inner.points or inner.ranges or inner.unions):
                    preds.unions.append(field_intervals(inner, multikey=False))
            elif op == "$eq" and not _unindexable(value):
                preds.points.append([_point(value)])
            elif op == "$in" and isinstance(value, list | tuple):
                if not any(_unindexable(v) or _is_operator_doc(v) for v in value):
                    unique = {encode_key(v): v for v in value}
                    preds.points.append([_point(unique[k], k) for k in sorted(unique)])
            elif op in ("$gt", "$gte", "$lt", "$lte") and _spans_all_types(value):
                continue
            elif op in ("$gt", "$gte") and not _unindexable(value):
                lo = Bound(encode_key(value), op == "$gte", render_value(value))
                preds.lowers.append(lo)
                preds.ranges.append(Interval(lo, _type_ceiling(value)))
            elif op in ("$lt", "$lte") and not _unindexable(value):
                hi = Bound(encode_key(value), op == "$lte", render_value(value))
                preds.uppers.append(hi)
                preds.ranges.append(Interval(_type_floor(value), hi))


def filter_predicates(filt: Mapping[str, Any]) -> dict[str, FieldPredicates]:
    """Bound-able predicates per field path."""
    out: dict[str, FieldPredicates] = {}
    _collect(filt, out)
    return {k: v for k, v in out.items() if v.points or v.ranges or v.unions}


_REGEX_META = frozenset(".^$*+?()[]{}|\\")
_NO_PREFIX_FLAGS = re.IGNORECASE | re.MULTILINE | re.VERBOSE


def regex_prefix(pattern: str) -> str | None:
    """The literal text every match of an anchored regex starts with (None: not anchored)."""
    if "|" in pattern:
        return None
    if pattern.startswith("^"):
        body = pattern[1:]
    elif pattern.startswith("\\A"):
        body = pattern[2:]
    else:
        return None
    out: list[str] = []
    for i, c in enumerate(body):
        if c in _REGEX_META:
            if c in "*?{" and out:
                out.pop()  # the previous character may be absent
            break
        out.append(c)
        if i + 1 < len(body) and body[i + 1] in "*?{":
            out.pop()
            break
    return "".join(out)


def regex_intervals(value: Any, options: Any = "") -> list[Interval] | None:
    """Index intervals of a regex predicate: the strings starting with its literal prefix,
    plus every stored regex value (which equality to a regex also matches)."""
    if isinstance(value, str):
        pattern, flags = value, 0
        if not isinstance(options, str) or any(f in options for f in "imx"):
            return None
    elif isinstance(value, Regex | re.Pattern):
        pattern = value.pattern if isinstance(value.pattern, str) else None
        flags = value.flags if isinstance(value.flags, int) else _NO_PREFIX_FLAGS
        if isinstance(options, str) and any(f in options for f in "imx"):
            return None
    else:
        return None
    if pattern is None or flags & _NO_PREFIX_FLAGS:
        return None
    prefix = regex_prefix(pattern)
    if not prefix or "\x00" in prefix:
        return None
    start = encode_key(prefix)[:-2]  # the prefix bytes without the string terminator
    end = prefix_successor(start)
    if end is None:
        return None
    strings = Interval(
        Bound(start, True, render_value(prefix)),
        Bound(end, False, render_value(prefix[:-1] + chr(ord(prefix[-1]) + 1))),
    )
    regex_type = Regex("")
    return [strings, Interval(_type_floor(regex_type), _type_ceiling(regex_type))]


def _lower_key(b: Bound) -> tuple[bytes, int]:
    return (b.enc or b"", 0 if b.inclusive else 1)


def _upper_key(b: Bound) -> tuple[bytes, int]:
    return (b.enc or b"", 1 if b.inclusive else 0)


def field_intervals(preds: FieldPredicates, multikey: bool) -> list[Interval]:
    """Sorted, disjoint value intervals for one field (empty list: nothing can match)."""
    if preds.points:
        if multikey or len(preds.points) == 1:
            return min(preds.points, key=len)
        common = set.intersection(*({iv.lo.enc for iv in alt} for alt in preds.points))
        return [iv for iv in preds.points[0] if iv.lo.enc in common]
    if preds.unions:
        return preds.unions[0]
    if multikey:
        # each predicate may be satisfied by a different array element: one predicate only
        return [preds.ranges[0]]
    lo = max((b for b in preds.lowers), key=_lower_key, default=None)
    hi = min((b for b in preds.uppers), key=_upper_key, default=None)
    if lo is None:
        assert hi is not None
        return [Interval(_type_floor_from(hi), hi)]
    if hi is None:
        return [Interval(lo, _ceiling_from(lo))]
    if (
        lo.enc is not None
        and hi.enc is not None
        and (lo.enc > hi.enc or (lo.enc == hi.enc and not (lo.inclusive and hi.inclusive)))
    ):
        return []
    return [Interval(lo, hi)]


def _type_floor_from(hi: Bound) -> Bound:
    assert hi.enc is not None
    t = hi.enc[0]
    labels = {_NUMBER_TYPE: "-inf.0", _STRING_TYPE: '""'}
    return Bound(bytes([t]), True, labels.get(t, "MinKey"))


def _ceiling_from(lo: Bound) -> Bound:
    assert lo.enc is not None
    t = lo.enc[0]
    if t == _NUMBER_TYPE:
        return Bound(bytes([t + 1]), False, "inf.0", shown_inclusive=True)
    if t == _STRING_TYPE:
        return Bound(bytes([t + 1]), False, "{}")
    return Bound(bytes([t + 1]), False, "MaxKey", shown_inclusive=True)


def key_ranges(
    field_bounds: Sequence[tuple[list[Interval], bool]], *, reverse: bool = False
) -> list[Range]:
    """Byte ranges of a compound index for per-field intervals ``(intervals, descending)``.

    Leading point-only fields form prefixes; the first non-point field contributes its
    intervals; later fields are unbounded (the filter re-check handles them)."""
    prefixes: list[list[bytes]] = []
    tail: list[tuple[Bound, Bound]] | None = None
    count = 1
    for intervals, descending in field_bounds:
        if not intervals:
            return []
        if all(iv.is_point for iv in intervals) and count * len(intervals) <= MAX_SCAN_RANGES:
            encs = sorted(
                invert(iv.lo.enc) if descending else iv.lo.enc  # type: ignore[arg-type]
                for iv in intervals
            )
            prefixes.append(encs)
            count *= len(intervals)
            continue
        if intervals != [FULL]:
            tail = sorted(
                (iv.to_bytes_space(descending) for iv in intervals),
                key=lambda pair: pair[0].enc or b"",
            )
        break
    ranges: list[Range] = []
    for combo in itertools.product(*prefixes):
        p = b"".join(combo)
        if tail is None:
            ranges.append((p, prefix_successor(p) if p else None))
            continue
        for lo, hi in tail:
            if lo.enc is None:
                start = p
            elif lo.inclusive:
                start = p + lo.enc
            else:
                start = prefix_successor(p + lo.enc) or p + lo.enc
            if hi.enc is None:
                end = prefix_successor(p) if p else None
            elif hi.inclusive:
                end = prefix_successor(p + hi.enc)
            else:
                end = p + hi.enc
            if end is None or start < end:
                ranges.append((start, end))
    ranges.sort(key=lambda r: r[0])
    return list(reversed(ranges)) if reverse else ranges


# --- plans ----------------------------------------------------------------------------------------


def key_pattern_text(key: Sequence[tuple[str, Any]]) -> str:
    """A key pattern as MongoDB's plan summaries print it: ``{ name: 1, age: -1 }``."""
    parts = ", ".join(f'{f}: "{d}"' if isinstance(d, str) else f"{f}: {d}" for f, d in key)
    return "{ " + parts + " }"


class Plan:
    """A way to produce the matching documents (``run`` yields :data:`Row` tuples)."""

    provides_sort = False
    estimate = 0

    def run(self, txn: Any, view: CollectionView, stats: Stats) -> Iterator[Row]:
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        raise NotImplementedError

    @property
    def summary(self) -> str:
        raise NotImplementedError


def _typed_payloads(value: Any) -> list[tuple[bytes, bytes]] | None:
    """Every ``(BSON type byte, payload)`` encoding of a value that equality can match (besides
    Decimal128), or None when the value is not a string or a finite number.

    A document equal to ``value`` at some path holds one of these payloads somewhere."""
    if isinstance(value, str):
        data = value.encode("utf-8")
        payload = struct.pack("<i", len(data) + 1) + data + b"\x00"
        return [(b"\x02", payload), (b"\x0e", payload)]  # string, symbol
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    out = [(b"\x01", struct.pack("<d", float(value)))] if float(value) == value else []
    if value == 0:
        out = [(b"\x01", struct.pack("<d", 0.0)), (b"\x01", struct.pack("<d", -0.0))]
    if float(value).is_integer():
        n = int(value)
        if -(2**31) <= n < 2**31:
            out.append((b"\x10", struct.pack("<i", n)))
        if -(2**63) <= n < 2**63:
            out.append((b"\x12", struct.pack("<q", n)))
    return out


def raw_prefilter(filt: Mapping[str, Any]) -> Callable[[bytes], object] | None:
    """A cheap test on a record's BSON bytes that every match passes (None: no such test).

    For each top-level equality on a string or a number, a matching document must contain the
    BSON element (for a top-level field: type, name and payload -- or an array or a Decimal128
    under that name; for a dotted path: one of the value's payloads or any Decimal128)."""
    tests: list[re.Pattern[bytes]] = []
    for name, arg in filt.items():
        if name.startswith("$") or "\x00" in name:
            continue
        value = arg
        if isinstance(arg, Mapping):
            if set(arg) != {"$eq"}:
                continue
            value = arg["$eq"]
        typed = _typed_payloads(value)
        if typed is None:
            continue
        numeric = not isinstance(value, str)
        if "." in name:
            patterns = {p for _, p in typed} | ({b"\x13"} if numeric else set())
        else:
            # the name first, so re searches for a literal prefix (3x faster than alternatives
            # led by type bytes); then a payload (whatever the type byte: a superset, the
            # matcher decides) or, just behind the name, an array / Decimal128 type byte
            field = re.escape(name.encode("utf-8") + b"\x00")
            kinds = b"\x04\x13" if numeric else b"\x04"
            payloads = b"|".join(re.escape(p) for p in sorted({p for _, p in typed}))
            lookbehind = b"(?<=[" + kinds + b"]" + field + b")"
            tests.append(re.compile(field + b"(?:" + lookbehind + b"|" + payloads + b")"))
            continue
        tests.append(re.compile(b"|".join(re.escape(p) for p in sorted(patterns))))
    if not tests:
        return None
    if len(tests) == 1:
        return tests[0].search  # a match object (truthy) or None

    def passes(raw: bytes) -> bool:
        return all(t.search(raw) is not None for t in tests)

    return passes


class CollScan(Plan):
    """Every record in ``_id`` order, filtered (records that cannot match are skipped by a
    byte-level test before decoding, see :func:`raw_prefilter`)."""

    def __init__(self, matcher: Matcher, filt: Mapping[str, Any], start: bytes = b"") -> None:
        self.matcher = matcher
        self.filter = filt
        self.start = start
        self.prefilter = raw_prefilter(filt)

    def run(self, txn: Any, view: CollectionView, stats: Stats) -> Iterator[Row]:
        match, decode, prefilter = self.matcher.match_position, view.decode, self.prefilter
        owned = view.owned
        for rk, raw in txn.scan(view.docs_table, self.start):
            stats.docs_examined += 1
            if not stats.docs_examined & interrupt.MASK:
                interrupt.check()
            if owned is not None and not owned(rk):
                continue
            if prefilter is not None and not prefilter(raw):
                continue
            doc = decode(raw)
            matched, pos = match(doc)
            if matched:
                yield rk, raw, doc, pos

    def describe(self) -> dict[str, Any]:
        stage: dict[str, Any] = {"stage": "COLLSCAN"}
        if self.filter:
            stage["filter"] = dict(self.filter)
        stage["direction"] = "forward"
        return stage

    @property
    def summary(self) -> str:
        return "COLLSCAN"


class IndexScan(Plan):
    """IXSCAN over byte ranges of one index, then FETCH with the full filter."""

    def __init__(
        self,
        index: IndexInfo,
        ranges: list[Range],
        bounds: dict[str, list[str]] | Callable[[], dict[str, list[str]]],
        matcher: Matcher,
        filt: Mapping[str, Any],
        *,
        reverse: bool = False,
        provides_sort: bool = False,
    ) -> None:
        self.index = index
        self.ranges = ranges
        self._bounds = bounds
        self.matcher = matcher
        self.filter = filt
        self.reverse = reverse
        self.provides_sort = provides_sort
        self.bounded_fields = 0

    def entries(self, txn: Any, stats: Stats) -> Iterator[tuple[bytes, bytes]]:
        """``(record key, entry value)`` of the index entries in range, in scan order, without
        repeats (a multikey index holds a record once per key)."""
        seen: set[bytes] = set()
        locate, table = self.index.locate, self.index.table
        dedupe = self.index.multikey or self.index.is_2d
        for start, end in self.ranges:
            for key, value in txn.scan(table, start, end, reverse=self.reverse):
                stats.keys_examined += 1
                if not stats.keys_examined & interrupt.MASK:
                    interrupt.check()
                rk = locate(key, value)
                if dedupe:
                    if rk in seen:
                        continue
                    seen.add(rk)
                yield rk, value

    def keys(self, txn: Any) -> Iterator[bytes]:
        """The index keys in range (for the plan trial)."""
        for start, end in self.ranges:
            for key, _ in txn.scan(self.index.table, start, end):
                yield key

    def run(self, txn: Any, view: CollectionView, stats: Stats) -> Iterator[Row]:
        match, decode, docs = self.matcher.match_position, view.decode, view.docs_table
        clustered = self.index.table == docs  # the _id_ index: entries are the records
        owned = view.owned
        for rk, value in self.entries(txn, stats):
            if owned is not None and not owned(rk):
                continue
            raw = value if clustered else txn.get(docs, rk)
            if raw is None:
                continue
            stats.docs_examined += 1
            doc = decode(raw)
            matched, pos = match(doc)
            if matched:
                yield rk, raw, doc, pos

    @property
    def bounds(self) -> dict[str, list[str]]:
        """``indexBounds`` as explain shows them, rendered on first use (a large ``$in``
        would otherwise render every value for every candidate plan)."""
        if callable(self._bounds):
            self._bounds = self._bounds()
        return self._bounds

    def describe(self) -> dict[str, Any]:
        ixscan = {
            "stage": "IXSCAN",
            "keyPattern": self.index.key_pattern,
            "indexName": self.index.name,
            "isMultiKey": self.index.multikey,
            "isSparse": self.index.sparse,
            "direction": "backward" if self.reverse else "forward",
            "indexBounds": self.bounds,
        }
        fetch: dict[str, Any] = {"stage": "FETCH"}
        if self.filter:
            fetch["filter"] = dict(self.filter)
        fetch["inputStage"] = ixscan
        return fetch

    @property
    def summary(self) -> str:
        return f"IXSCAN {key_pattern_text(self.index.key)}"


class OrScan(Plan):
    """OR of index scans, one per ``$or`` clause; records once each, then FETCH + filter."""

    def __init__(self, children: list[IndexScan], matcher: Matcher, filt: Mapping) -> None:
        self.children = children
        self.matcher = matcher
        self.filter = filt
        self.bounded_fields = min(c.bounded_fields for c in children)

    def keys(self, txn: Any) -> Iterator[bytes]:
        for child in self.children:
            yield from child.keys(txn)

    def run(self, txn: Any, view: CollectionView, stats: Stats) -> Iterator[Row]:
        seen: set[bytes] = set()
        match, decode, docs = self.matcher.match_position, view.decode, view.docs_table
        for child in self.children:
            clustered = child.index.table == docs
            for rk, value in child.entries(txn, stats):
                if rk in seen or (view.owned is not None and not view.owned(rk)):
                    continue
                seen.add(rk)
                raw = value if clustered else txn.get(docs, rk)
                if raw is None:
                    continue
                stats.docs_examined += 1
                doc = decode(raw)
                matched, pos = match(doc)
                if matched:
                    yield rk, raw, doc, pos

    def describe(self) -> dict[str, Any]:
        fetch: dict[str, Any] = {"stage": "FETCH"}
        if self.filter:
            fetch["filter"] = dict(self.filter)
        fetch["inputStage"] = {
            "stage": "OR",
            "inputStages": [c.describe()["inputStage"] for c in self.children],
        }
        return fetch

    @property
    def summary(self) -> str:
        return "OR " + ", ".join(f"IXSCAN {key_pattern_text(c.index.key)}"
                                 for c in self.children)


class GeoNear(Plan):
    """GEO_NEAR_2D: documents by distance from the ``$near`` point via a 2d index."""

    provides_sort = False

    def __init__(
        self, index: IndexInfo, path: str, query: GeoQuery, matcher: Matcher, filt: Mapping
    ) -> None:
        assert index.geo is not None
        self.index = index
        self.bounds = index.geo
        self.path = path
        self.query = query
        self.matcher = matcher
        self.filter = filt
        self.radii: list[float] = []

    def run(self, txn: Any, view: CollectionView, stats: Stats) -> Iterator[Row]:
        """Matches ordered by distance (ties by record key), lazily, by a best-first search of
        the index's cells (:mod:`node.engine.geo_near`): the caller's limit decides how far it
        goes (execute's default for ``$near`` is 100)."""
        seen: set[bytes] = set()
        table, locate, docs, owned = self.index.table, self.index.locate, view.docs_table, view.owned
        match, query, path = self.matcher.match_position, self.query, self.path

        def scan(start: bytes, end: bytes | None, cap: int | None) -> list[tuple[bytes, bytes]]:
            entries = list(itertools.islice(txn.scan(table, start, end), cap))
            before = stats.keys_examined
            stats.keys_examined += len(entries)
            if (before ^ stats.keys_examined) & ~interrupt.MASK:
                interrupt.check()
            return entries

        near_only = set(self.filter) == {path} and "." not in path
        lo_d = -math.inf if query.min_distance is None else query.min_distance
        hi_d = math.inf if query.max_distance is None else query.max_distance
        point_distance = query.point_distance

        def visit(key: bytes, value: bytes) -> tuple[float, bytes, Row] | None:
            rk = locate(key, value)
            if rk in seen or (owned is not None and not owned(rk)):
                return None
            seen.add(rk)
            raw = txn.get(docs, rk)
            if raw is None:
                return None
            stats.docs_examined += 1
            doc = view.decode(raw)
            if near_only:  # the filter is the $near alone: one pass over the locations
                dist, matched, pos = math.inf, False, None
                for p in points_of(doc.get(path)):
                    d = point_distance(p)
                    dist = min(dist, d)
                    matched = matched or lo_d <= d <= hi_d
            else:
                matched, pos = match(doc)
                dist = min(
                    (d for v in path_values(doc, path) if (d := query.distance(v)) is not None),
                    default=math.inf,
                )
            if not matched:
                return None
            return dist, rk, (rk, raw, doc, pos)

        assert query.center is not None
        rows = nearest(self.bounds, query.center, query.max_distance, scan, visit, self.radii,
                       spherical=query.spherical)
        yield from rows

    def describe(self) -> dict[str, Any]:
        near: dict[str, Any] = {
            "stage": "GEO_NEAR_2D",
            "keyPattern": self.index.key_pattern,
            "indexName": self.index.name,
            "indexVersion": 2,
        }
        if self.radii:
            near["searchRadii"] = list(self.radii)
        fetch: dict[str, Any] = {"stage": "FETCH"}
        if self.filter:
            fetch["filter"] = dict(self.filter)
        fetch["inputStage"] = near
        return fetch

    @property
    def summary(self) -> str:
        return f"GEO_NEAR_2D {key_pattern_text(self.index.key)}"


# --- planning -------------------------------------------------------------------------------------


def _render_bounds(index: IndexInfo, per_field: list[tuple[list[Interval], bool]]
                   ) -> dict[str, list[str]]:
    shown: dict[str, list[str]] = {}
    for (name, _), (intervals, desc) in zip(index.key, per_field, strict=True):
        order = list(reversed(intervals)) if desc else intervals
        shown[name] = [iv.render(desc) for iv in order]
    return shown


def _index_scan(
    index: IndexInfo,
    preds: Mapping[str, FieldPredicates],
    sort: list[tuple[str, int]],
    matcher: Matcher,
    filt: Mapping[str, Any],
) -> IndexScan | None:
    """The IXSCAN plan of a btree index, or None when it bounds nothing and gives no sort."""
    per_field: list[tuple[list[Interval], bool]] = []
    bounded = 0
    equality_prefix = 0
    prefix_open = True
    for name, direction in index.key:
        desc = is_descending(direction)
        intervals = field_intervals(preds[name], index.multikey) if name in preds else [FULL]
        if name in preds:
            bounded += 1
        if prefix_open and len(intervals) == 1 and intervals[0].is_point:
            equality_prefix += 1
        else:
            prefix_open = False
        per_field.append((intervals, desc))
    sort_ok, reverse = _supplies_sort(index, sort, equality_prefix)
    if not per_field or (index.key[0][0] not in preds and not sort_ok):
        return None
    if index.sparse and not _excludes_null(index, preds):
        return None
    plan = IndexScan(
        index,
        key_ranges(per_field, reverse=reverse),
        lambda: _render_bounds(index, per_field),
        matcher,
        filt,
        reverse=reverse,
        provides_sort=sort_ok,
    )
    plan.bounded_fields = bounded
    return plan


def _excludes_null(index: IndexInfo, preds: Mapping[str, FieldPredicates]) -> bool:
    """Whether the bounds exclude null on some field (so a sparse index misses no match)."""
    null = encode_key(None)
    for name, _ in index.key:
        if name not in preds:
            continue
        intervals = field_intervals(preds[name], index.multikey)
        if all(
            not ((iv.lo.enc or b"") <= null and (iv.hi.enc is None or null <= iv.hi.enc))
            for iv in intervals
        ):
            return True
    return False


def _supplies_sort(
    index: IndexInfo, sort: list[tuple[str, int]], equality_prefix: int
) -> tuple[bool, bool]:
    """(whether a scan of ``index`` yields ``sort`` order, whether backwards)."""
    if not sort or index.multikey or index.is_2d:
        return False, False
    rest = list(index.key[equality_prefix:])
    if len(sort) > len(rest):
        return False, False
    signs = set()
    for (sname, sdir), (iname, idir) in zip(sort, rest):
        if sname != iname:
            return False, False
        signs.add(sdir == (-1 if is_descending(idir) else 1))
    if len(signs) != 1:
        return False, False
    return True, signs == {False}


def _geo_plans(
    view: CollectionView, matcher: Matcher, filt: Mapping[str, Any]
) -> tuple[GeoNear | None, list[IndexScan]]:
    near: GeoNear | None = None
    within: list[IndexScan] = []
    top = _top_level_geo(filt)
    if sum(q.is_near for _, q in matcher.geo) > sum(q.is_near for _, q in top):
        raise bad_value(
            "error processing query: planner returned error :: caused by :: "
            "geoNear must be top-level expr"
        )
    for path, query in top:  # a region inside $or/$nor cannot restrict the scan
        index = next(
            (ix for ix in view.indexes if ix.is_2d and ix.key[0][0] == path and ix.geo), None
        )
        if query.is_near:
            if index is None:
                raise MongoError(
                    NO_QUERY_EXECUTION_PLANS,
                    f"error processing query: ns={view.namespace} planner returned error "
                    ":: caused by :: unable to find index for $geoNear query",
                    code_name="NoQueryExecutionPlans",
                )
            if near is not None:
                raise bad_value("Too many geoNear expressions")
            near = GeoNear(index, path, query, matcher, filt)
        elif index is not None:
            assert index.geo is not None
            cells = query.covering(index.geo) or []
            ranges = [(encode_key(lo), prefix_successor(encode_key(hi))) for lo, hi in cells]
            bounds = {path: [f"[{lo}, {hi}]" for lo, hi in cells]}
            for name, _ in index.key[1:]:
                bounds[name] = ["[MinKey, MaxKey]"]
            plan = IndexScan(index, ranges, bounds, matcher, filt)
            plan.bounded_fields = 1
            within.append(plan)
    return near, within


def _top_level_geo(filt: Mapping[str, Any]) -> list[tuple[str, GeoQuery]]:
    """Geo predicates every match must satisfy: top level or inside a top-level ``$and``."""
    out: list[tuple[str, GeoQuery]] = []
    for name, arg in filt.items():
        if name == "$and" and isinstance(arg, list | tuple):
            for sub in arg:
                if isinstance(sub, Mapping):
                    out += _top_level_geo(sub)
        elif not name.startswith("$") and is_geo_operator_dict(arg):
            out.append((name, compile_geo(arg)))
    return out


def _hinted(view: CollectionView, hint: Any) -> IndexInfo | str:
    if isinstance(hint, str):
        if hint == "$natural":
            return "$natural"
        found = next((ix for ix in view.indexes if ix.name == hint), None)
    else:
        try:  # a document, or (from callers inside) a list of (field, direction) pairs
            pattern = (list(hint.items()) if isinstance(hint, Mapping)
                       else [tuple(p) for p in hint if len(p) == 2])
        except TypeError:  # a number, a list of numbers ...: found by the command fuzzer
            raise bad_value("hint must be an index name or a key pattern document") from None
        if pattern and pattern[0][0] == "$natural":
            return "$natural"
        found = next((ix for ix in view.indexes if list(ix.key) == pattern), None)
    if found is None:
        raise bad_value("error processing query: planner returned error :: caused by :: "
                        "hint provided does not correspond to an existing index")
    return found


def plan_query(
    txn: Any, view: CollectionView, spec: FindSpec, *, matcher: Matcher | None = None
) -> tuple[Plan, list[Plan], Matcher]:
    """Choose a plan: ``(winner, rejected, matcher)`` (``matcher``: the filter, compiled)."""
    filt = spec.filter or {}
    if matcher is None:
        matcher = Matcher(filt)
    sort = parse_sort(spec.sort)
    near, geo_scans = _geo_plans(view, matcher, filt)
    if near is not None:
        return near, [], matcher
    preds = filter_predicates(filt)
    if spec.hint is not None:
        hinted = _hinted(view, spec.hint)
        if hinted == "$natural":
            return CollScan(matcher, filt), [], matcher
        assert isinstance(hinted, IndexInfo)
        if hinted.is_2d:
            for plan in geo_scans:
                if plan.index is hinted:
                    return plan, [], matcher
            return _full_index_scan(hinted, preds, sort, matcher, filt), [], matcher
        plan = _index_scan(hinted, preds, sort, matcher, filt)
        if plan is None:  # a hinted index without bounds: scan all of it
            plan = _full_index_scan(hinted, preds, sort, matcher, filt)
        return plan, [], matcher
    candidates: list[IndexScan | OrScan] = list(geo_scans)
    for index in view.indexes:
        if index.is_2d:
            continue
        plan = _index_scan(index, preds, sort, matcher, filt)
        if plan is not None:
            candidates.append(plan)
    or_plan = _or_plan(txn, view, filt, matcher)
    if or_plan is not None:
        candidates.append(or_plan)
    if not candidates:
        return CollScan(matcher, filt), [], matcher
    if len(candidates) == 1:
        return candidates[0], [], matcher
    return (*_choose(txn, candidates, sort), matcher)


def _or_plan(
    txn: Any, view: CollectionView, filt: Mapping[str, Any], matcher: Matcher
) -> OrScan | None:
    """An OR of index scans for a top-level ``$or`` whose every clause (with the rest of the
    filter) can use an index; None otherwise."""
    clauses = filt.get("$or")
    if not isinstance(clauses, list | tuple) or not clauses:
        return None
    rest = {k: v for k, v in filt.items() if k != "$or"}
    children: list[IndexScan] = []
    for clause in clauses:
        if not isinstance(clause, Mapping):
            return None
        preds = filter_predicates({"$and": [rest, clause]})
        options = [
            plan
            for index in view.indexes
            if not index.is_2d
            and (plan := _index_scan(index, preds, [], matcher, clause)) is not None
            and plan.bounded_fields
        ]
        if not options:
            return None
        best, _ = _choose(txn, options, []) if len(options) > 1 else (options[0], [])
        assert isinstance(best, IndexScan)
        children.append(best)
    return OrScan(children, matcher, filt)


def _full_index_scan(
    index: IndexInfo,
    preds: Mapping[str, FieldPredicates],
    sort: list[tuple[str, int]],
    matcher: Matcher,
    filt: Mapping[str, Any],
) -> IndexScan:
    sort_ok, reverse = _supplies_sort(index, sort, 0)
    bounds = {name: ["[MinKey, MaxKey]"] for name, _ in index.key}
    return IndexScan(
        index, [(b"", None)], bounds, matcher, filt, reverse=reverse, provides_sort=sort_ok
    )


TRIAL_STEP = 64


def _choose(
    txn: Any, candidates: Sequence[IndexScan | OrScan], sort: list[tuple[str, int]]
) -> tuple[Plan, list[Plan]]:
    """Trial: walk every candidate's index keys in lockstep, ``TRIAL_STEP`` keys a round; the
    plans that run out first hold the fewest keys and win (the work is bounded by the number
    of candidates times the winner's keys). Among those, the plan that supplies the sort, then
    the one bounding more fields."""
    plans = sorted(candidates, key=lambda p: (-p.bounded_fields, not p.provides_sort))
    walkers = [p.keys(txn) for p in plans]
    counts = [0] * len(plans)
    finished: list[int] = []
    while not finished:
        for i, walker in enumerate(walkers):
            for _ in range(TRIAL_STEP):
                if next(walker, None) is None:
                    finished.append(i)
                    break
                counts[i] += 1
    for i, plan in enumerate(plans):
        plan.estimate = counts[i]
    least = min(counts[i] for i in finished)
    best = min(
        (plans[i] for i in finished if counts[i] == least),
        key=lambda p: (not (sort and p.provides_sort), -p.bounded_fields),
    )
    return best, [p for p in plans if p is not best]


# --- execution ------------------------------------------------------------------------------------


def sort_key_for(sort: list[tuple[str, int]]) -> Callable[[Mapping[str, Any]], tuple]:
    """MongoDB's sort key for ``sort`` (see :mod:`node.engine.sorting`)."""
    return Sort(sort).key


def blocking_sort(
    rows: Iterable[Row],
    sort: list[tuple[str, int]],
    *,
    keep: int,
    max_bytes: int,
    allow_disk_use: bool = False,
) -> list[Row]:
    """Sort rows in memory, keeping the first ``keep`` (0: all); fails with code 292 when the
    documents held (their BSON sizes) exceed ``max_bytes`` (unless ``allow_disk_use``)."""
    key = sort_key_for(sort)
    return bounded_sort(rows, lambda row: key(row[2]), lambda row: len(row[1]), keep=keep,
                        max_bytes=max_bytes, allow_disk_use=allow_disk_use)


@dataclass
class Pipeline:
    """A planned query ready to stream: rows in result order (before skip/limit)."""

    rows: Iterable[Row]
    plan: Plan
    rejected: list[Plan]
    stats: Stats
    sort_stage: dict[str, Any] | None
    limit: int  # the effective limit (``$near`` defaults to 100), 0: none


def pipeline(
    txn: Any,
    view: CollectionView,
    spec: FindSpec,
    *,
    matcher: Matcher | None = None,
    record_order_after: bytes | None = None,
    record_order: bool = False,
) -> Pipeline:
    """Plan a query and stack its stages: scan, filter, and a blocking sort when no index gives
    the order. ``record_order``: without a sort, yield in record-key order (strictly after
    ``record_order_after``) whatever the plan -- except ``$near``, always by distance."""
    if spec.skip < 0:
        raise bad_value("skip value must be non-negative")
    if spec.limit < 0:
        raise bad_value("limit value must be non-negative")
    plan, rejected, _ = plan_query(txn, view, spec, matcher=matcher)
    sort = parse_sort(spec.sort)
    stats = Stats()
    interrupt.report_plan(plan.summary, stats)
    skip, limit = spec.skip, spec.limit
    sort_stage: dict[str, Any] | None = None
    if isinstance(plan, GeoNear):
        if not limit:
            limit = DEFAULT_NEAR_LIMIT
        rows: Iterable[Row] = plan.run(txn, view, stats)
        if sort:
            rows = itertools.islice(rows, skip + limit)
    elif record_order and not sort:
        if isinstance(plan, CollScan):
            if record_order_after is not None:
                plan.start = record_order_after + b"\x00"
            rows = plan.run(txn, view, stats)
        else:
            after = record_order_after
            found = (r for r in plan.run(txn, view, stats) if after is None or r[0] > after)
            rows = (
                heapq.nsmallest(skip + limit, found, key=lambda r: r[0])
                if limit
                else sorted(found, key=lambda r: r[0])
            )
    else:
        rows = plan.run(txn, view, stats)
    if sort and not plan.provides_sort:
        keep = skip + limit if limit else 0
        sort_stage = {
            "stage": "SORT",
            "sortPattern": dict(sort),
            "memLimit": spec.max_sort_bytes,
            "type": "simple",
        }
        if limit:
            sort_stage["limitAmount"] = keep
        rows = blocking_sort(
            rows, sort, keep=keep, max_bytes=spec.max_sort_bytes, allow_disk_use=spec.allow_disk_use
        )
    return Pipeline(rows, plan, rejected, stats, sort_stage, limit)


def execute(
    txn: Any, view: CollectionView, spec: FindSpec, *, matcher: Matcher | None = None
) -> QueryResult:
    """Run a query: plan, scan, filter, sort, skip and limit (results in plan order)."""
    p = pipeline(txn, view, spec, matcher=matcher)
    skip, limit = spec.skip, p.limit
    docs: list[dict[str, Any]] = []
    keys: list[bytes] = []
    for rk, _, doc, _pos in itertools.islice(p.rows, skip, skip + limit if limit else None):
        keys.append(rk)
        docs.append(doc)
    p.stats.n_returned = len(docs)
    return QueryResult(docs, keys, p.plan, p.rejected, p.stats, p.sort_stage)


class Planner:
    """The engine's planner seam (``Engine(planner=Planner())``, see ``collection.QueryPlanner``).

    Indexes come from :func:`node.engine.indexes.planner_infos`. ``execute`` yields
    ``(record_key, doc, match_position)``: with a sort, in sort order (index order or a
    blocking sort bounded by ``max_sort_bytes``); ``$near`` by distance; otherwise in
    record-key order after ``query.after_key``. ``query.skip``/``query.limit``/``query.hint``
    are used when the query carries them (skip and limit are left for the caller to apply)."""

    def __init__(self, *, max_sort_bytes: int = SORT_MEMORY_LIMIT_BYTES) -> None:
        self.max_sort_bytes = max_sort_bytes

    def view(self, txn: Any, ns: str, owned: Callable[[bytes], bool] | None = None
             ) -> CollectionView:
        from node.engine.indexes import docs_table, planner_infos

        db, _, coll = ns.partition(".")
        return CollectionView(ns, docs_table(db, coll), tuple(planner_infos(txn, db, coll)),
                              owned=owned)

    def spec(self, query: Any) -> FindSpec:
        return FindSpec(
            query.filter,
            sort=query.sort or None,
            skip=getattr(query, "skip", 0) or 0,
            limit=abs(getattr(query, "limit", 0) or 0),
            hint=getattr(query, "hint", None),
            max_sort_bytes=self.max_sort_bytes,
            allow_disk_use=bool(getattr(query, "allow_disk_use", False)),
        )

    def execute(self, txn: Any, query: Any) -> Iterator[tuple[bytes, dict[str, Any], int | None]]:
        p = pipeline(
            txn,
            self.view(txn, query.ns, getattr(query, "owned", None)),
            self.spec(query),
            matcher=getattr(query, "matcher", None),
            record_order=True,
            record_order_after=getattr(query, "after_key", None),
        )
        for rk, _, doc, pos in p.rows:
            yield rk, doc, pos

    def explain(
        self,
        txn: Any,
        ns: str,
        filter: Mapping[str, Any] | None = None,
        *,
        sort: Any = None,
        skip: int = 0,
        limit: int = 0,
        hint: Any = None,
        verbosity: str = "executionStats",
        owned: Callable[[bytes], bool] | None = None,
    ) -> dict[str, Any]:
        """MongoDB's ``explain`` output for a find on ``ns`` (``owned``: a shard's ownership
        filter, shown as a ``SHARDING_FILTER`` stage)."""
        spec = FindSpec(
            filter or {}, sort=sort or None, skip=skip, limit=abs(limit), hint=hint,
            max_sort_bytes=self.max_sort_bytes,
        )
        return explain(txn, self.view(txn, ns, owned), spec, verbosity)


def explain(txn: Any, view: CollectionView, spec: FindSpec, verbosity: str = "executionStats") -> dict[str, Any]:
    """MongoDB-shaped explain output (``queryPlanner`` and, unless ``queryPlanner`` verbosity,
    ``executionStats`` from actually running the winning plan)."""
    result = execute(txn, view, spec)
    winning = _wrap(_filtered(result.plan.describe(), view), result, spec)
    planner: dict[str, Any] = {
        "plannerVersion": 1,
        "namespace": view.namespace,
        "parsedQuery": dict(spec.filter or {}),
        "winningPlan": winning,
        "rejectedPlans": [p.describe() for p in result.rejected],
    }
    out: dict[str, Any] = {"queryPlanner": planner}
    if verbosity != "queryPlanner":
        out["executionStats"] = {
            "executionSuccess": True,
            "nReturned": result.stats.n_returned,
            "totalKeysExamined": result.stats.keys_examined,
            "totalDocsExamined": result.stats.docs_examined,
            "executionStages": _with_counts(_filtered(result.plan.describe(), view), result,
                                            spec),
        }
    out["ok"] = 1.0
    return out


def _with_counts(stage: dict[str, Any], result: QueryResult, spec: FindSpec) -> dict[str, Any]:
    """The winning plan's stages annotated with the run's counters (``nReturned`` at the top,
    ``keysExamined`` on the index stage, ``docsExamined`` on FETCH/COLLSCAN)."""
    stats = result.stats
    node: dict[str, Any] | None = stage
    while node is not None:
        kind = node.get("stage")
        if kind in ("FETCH", "COLLSCAN"):
            node["docsExamined"] = stats.docs_examined
        if kind in ("IXSCAN", "GEO_NEAR_2D", "OR"):
            node["keysExamined"] = stats.keys_examined
        node = node.get("inputStage")
    top = _wrap(stage, result, spec)
    top["nReturned"] = stats.n_returned
    return top


def _filtered(stage: dict[str, Any], view: CollectionView) -> dict[str, Any]:
    """A shard's plan: ``SHARDING_FILTER`` over the scan (documents it does not own are
    dropped at the source)."""
    if view.owned is None:
        return stage
    return {"stage": "SHARDING_FILTER", "inputStage": stage}


def _wrap(stage: dict[str, Any], result: QueryResult, spec: FindSpec) -> dict[str, Any]:
    """Stack SORT, SKIP and LIMIT stages over a plan's stage tree, as MongoDB shows them."""
    if result.sort_stage is not None:
        stage = dict(result.sort_stage, inputStage=stage)
    if spec.skip:
        stage = {"stage": "SKIP", "skipAmount": spec.skip, "inputStage": stage}
    limit = spec.limit or (DEFAULT_NEAR_LIMIT if isinstance(result.plan, GeoNear) else 0)
    if limit and result.sort_stage is None:
        stage = {"stage": "LIMIT", "limitAmount": limit, "inputStage": stage}
    return stage
