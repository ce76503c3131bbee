"""Sort specifications and sort keys, with MongoDB's array rules.

A sort spec is a mapping (``dict``/``SON``), a list of ``(path, direction)`` pairs (pymongo's
form), one bare ``(path, direction)`` pair or a single path string (ascending); directions are ``1`` or ``-1``. Keys follow the
manual: the value of a path is found with implicit array traversal (:func:`paths.key_values`);
an ascending sort uses the smallest of the values, a descending sort the largest; a missing field
sorts as ``null``; an empty array sorts below ``null``. Values compare with
:func:`values.compare`.

With several keys the document's sort key is, as in MongoDB, the smallest (in the sort's own
order) of the key tuples an index on the sort pattern would hold: fields that run through the
same array take their values from the same element (``{"a.c": 1, "a.b": 1}`` pairs each
element's ``c`` with its ``b``), and fields through two different arrays are refused
("cannot sort with keys that are parallel arrays", code 2).

``Sort(spec).key(doc)`` (or :func:`sort_key`) returns a key for ``sorted``; ties keep the input
order (Python's sort is stable).

Blocking sorts (no index supplies the order) are bounded as in MongoDB: :func:`bounded_sort`
holds at most ``max_bytes`` of items (default :data:`MAX_BLOCKING_SORT_BYTES`, MongoDB's
``internalQueryMaxBlockingSortMemoryUsageBytes``) and fails with 292
QueryExceededMemoryLimitNoDiskUseAllowed past it; with a limit it keeps only the top ``k``.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

import bson

from node.engine.errors import MongoError, bad_value, location
from node.engine.keystring import encode_key
from node.engine.paths import Parts, array_index, key_values, split_path
from node.engine.values import (
    MISSING,
    UNDEFINED,
    SortKey,
    compare,
    is_nan,
    is_number,
    number_value,
)

SortSpec = Mapping[str, Any] | Sequence[tuple[str, Any]] | str
T = TypeVar("T")

MAX_BLOCKING_SORT_BYTES = 100 * 1024 * 1024
"""MongoDB's ``internalQueryMaxBlockingSortMemoryUsageBytes`` (104857600)."""
QUERY_EXCEEDED_MEMORY_LIMIT = 292


class _Descending:
    """Reverses the order of a :class:`SortKey`."""

    __slots__ = ("key",)

    def __init__(self, key: SortKey) -> None:
        self.key = key

    def __lt__(self, other: _Descending) -> bool:
        return other.key < self.key

    def __gt__(self, other: _Descending) -> bool:
        return other.key > self.key

    def __le__(self, other: _Descending) -> bool:
        return other.key <= self.key

    def __ge__(self, other: _Descending) -> bool:
        return other.key >= self.key

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, _Descending):
            return NotImplemented
        return self.key == other.key

    def __hash__(self) -> int:
        return hash(self.key)


def _shell_value(value: Any) -> str:
    """``value`` as MongoDB's messages print it (``"asc"``, ``true``, ``null``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, str):
        return f'"{value}"'
    return repr(value)


def sort_direction(path: str, value: Any) -> int:
    """A sort key's order as MongoDB checks it: a number equal to 1 or -1; any other number is
    Location15975, anything that is not a number (``"asc"``, ``true``) Location15974."""
    if isinstance(value, Mapping):
        if "$meta" in value:
            raise bad_value(f"$meta sort by {value['$meta']!r} is not supported")
        raise location(17312, f"bad sort specification: {path}")
    if not is_number(value):
        raise location(15974, f"Illegal key in $sort specification: {path}: "
                       f"{_shell_value(value)}")
    if not is_nan(value):
        n = number_value(value)
        if n == 1:
            return 1
        if n == -1:
            return -1
    raise location(15975, "$sort key ordering must be 1 (for ascending) or -1 (for descending)")


def _check_path(path: Any) -> str:
    if not isinstance(path, str):
        raise bad_value(f"sort field names must be strings, got {path!r}")
    if path == "":
        raise location(40352, "FieldPath cannot be constructed with empty string")
    parts = path.split(".")
    if any(part == "" for part in parts):
        raise location(15998, "FieldPath field names may not be empty strings.")
    if parts[0].startswith("$"):
        raise location(16410, "FieldPath field names may not start with '$'.")
    return path


def parse_sort(spec: SortSpec | None) -> list[tuple[str, int]]:
    """Validate a sort spec into ``[(path, 1 | -1), ...]`` (empty: no sort)."""
    if spec is None:
        return []
    if isinstance(spec, str):
        return [(_check_path(spec), 1)]
    pairs: Iterable[Any]
    if isinstance(spec, Mapping):
        pairs = spec.items()
    elif isinstance(spec, list | tuple):
        if len(spec) == 2 and isinstance(spec[0], str) and not isinstance(spec[1], str | tuple):
            pairs = [spec]  # one bare (key, direction) pair, as in the book's sort(("a", -1))
        else:
            pairs = spec
    else:
        raise bad_value("sort must be an object or a list of (key, direction) pairs")
    out: list[tuple[str, int]] = []
    seen: set[str] = set()
    for pair in pairs:
        if isinstance(pair, str):
            path, direction = pair, 1
        elif isinstance(pair, list | tuple) and len(pair) == 2:
            path, direction = pair[0], sort_direction(str(pair[0]), pair[1])
        else:
            raise bad_value("sort must be an object or a list of (key, direction) pairs")
        path = _check_path(path)
        if path in seen:
            continue  # a mapping cannot repeat a key; keep the first of a repeated pair
        seen.add(path)
        out.append((path, direction))
    return out


class Sort:
    """A compiled sort specification."""

    __slots__ = ("_fields", "spec")

    def __init__(self, spec: SortSpec | None) -> None:
        self.spec: list[tuple[str, int]] = parse_sort(spec)
        self._fields: list[tuple[Parts, int]] = [(split_path(p), d) for p, d in self.spec]

    def __bool__(self) -> bool:
        return bool(self._fields)

    def values(self, doc: Mapping[str, Any]) -> list[Any]:
        """The values ``doc`` sorts by, one per sort field."""
        if len(self._fields) > 1:
            return compound_sort_values(doc, self._fields)
        return [field_sort_value(doc, parts, d) for parts, d in self._fields]

    def key_bytes(self, doc: Mapping[str, Any]) -> bytes:
        """The sort key as memcomparable bytes (descending fields inverted): byte order is
        sort order, so results sorted elsewhere (by shards) merge by comparing bytes."""
        return b"".join(encode_key(v, d == -1) for v, (_, d) in
                        zip(self.values(doc), self._fields, strict=True))

    def key(self, doc: Mapping[str, Any]) -> tuple[SortKey | _Descending, ...]:
        """A key for ``sorted(docs, key=...)`` ordering documents as MongoDB does."""
        values = self.values(doc)
        return tuple(
            SortKey(v) if d == 1 else _Descending(SortKey(v))
            for v, (_, d) in zip(values, self._fields, strict=True)
        )

    def sort(self, docs: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
        """``docs`` in sort order (stable)."""
        if not self._fields:
            return list(docs)
        return sorted(docs, key=self.key)


def field_sort_value(doc: Mapping[str, Any], path: str | Parts, direction: int) -> Any:
    """The value ``doc`` sorts by at ``path``: the min (ascending) or max (descending) of the
    values the path reaches, arrays unwound."""
    candidates = key_values(doc, path)
    best = candidates[0]
    for value in candidates[1:]:
        c = compare(value, best)
        if (c < 0 and direction == 1) or (c > 0 and direction == -1):
            best = value
    return best


def compound_sort_values(doc: Mapping[str, Any], fields: Sequence[tuple[Parts, int]]) -> list[Any]:
    """The values ``doc`` sorts by for a several-key sort: its first key tuple in sort order."""
    values: list[Any] = []
    for parts, _ in fields:  # the common case, no array on any path: one key tuple
        value: Any = doc
        for part in parts:
            if isinstance(value, Mapping):
                value = value.get(part, MISSING)
            elif isinstance(value, list | tuple):
                break
            else:
                value = MISSING
        if isinstance(value, list | tuple):
            break
        values.append(value)
    else:
        return values
    tuples = _key_tuples([("walk", doc, parts, 0) for parts, _ in fields])
    best = tuples[0]
    for candidate in tuples[1:]:
        for a, b, (_, direction) in zip(candidate, best, fields, strict=True):
            c = compare(a, b) * direction
            if c:
                if c < 0:
                    best = candidate
                break
    return list(best)


_State = tuple[Any, ...]  # ("walk", value, parts, i) or ("leaf", value)


def _advance(state: _State) -> _State:
    """Follow documents and array indexes; stop at a leaf or at an array to unwind
    (``("unwind", array, parts, i)``)."""
    if state[0] == "leaf":
        return state
    _, value, parts, i = state
    while i < len(parts):
        if isinstance(value, Mapping):
            value = value.get(parts[i], MISSING)
            if value is MISSING:
                return ("leaf", MISSING)
        elif isinstance(value, list | tuple):
            index = array_index(parts[i])
            if index is None:
                return ("unwind", value, parts, i)
            value = value[index] if index < len(value) else MISSING
        else:
            return ("leaf", MISSING)
        i += 1
    if isinstance(value, list | tuple):
        return ("unwind", value, parts, i)
    return ("leaf", value)


def _key_tuples(states: list[_State]) -> list[tuple[Any, ...]]:
    """The key tuples of one document (as :func:`paths.key_values`, field by field, but fields
    through the same array take the same element)."""
    states = [_advance(s) for s in states]
    pending = [k for k, s in enumerate(states) if s[0] == "unwind"]
    if not pending:
        return [tuple(s[1] for s in states)]
    array = states[pending[0]][1]
    if any(states[k][1] is not array for k in pending):
        raise bad_value("cannot sort with keys that are parallel arrays")
    out: list[tuple[Any, ...]] = []
    for element in array or [MISSING]:
        nxt = list(states)
        for k in pending:
            _, _, parts, i = states[k]
            if i == len(parts):
                nxt[k] = ("leaf", UNDEFINED if element is MISSING else element)
            elif isinstance(element, Mapping):
                nxt[k] = ("walk", element, parts, i)
            else:
                nxt[k] = ("leaf", MISSING)
        out.extend(_key_tuples(nxt))
    return out


def sort_key(doc: Mapping[str, Any], spec: SortSpec | Sort) -> tuple[SortKey | _Descending, ...]:
    """``Sort(spec).key(doc)``; pass a compiled :class:`Sort` to avoid re-parsing the spec."""
    sort = spec if isinstance(spec, Sort) else Sort(spec)
    return sort.key(doc)


def sort_documents(docs: Iterable[Mapping[str, Any]], spec: SortSpec | Sort | None) -> list[Any]:
    """``docs`` sorted by ``spec`` (stable; no spec keeps the input order)."""
    sort = spec if isinstance(spec, Sort) else Sort(spec)
    return sort.sort(docs)


def sort_exceeded(limit: int) -> MongoError:
    """MongoDB's error for a blocking sort past its memory limit."""
    return MongoError(
        QUERY_EXCEEDED_MEMORY_LIMIT,
        f"Sort exceeded memory limit of {limit} bytes, but did not opt in to external sorting.",
        code_name="QueryExceededMemoryLimitNoDiskUseAllowed",
    )


class _Reversed:
    """Inverts a key's order, so heapq's min-heap keeps the ``keep`` smallest."""

    __slots__ = ("inner",)

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def __lt__(self, other: _Reversed) -> bool:
        return bool(other.inner < self.inner)

    def __gt__(self, other: _Reversed) -> bool:
        return bool(self.inner < other.inner)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Reversed) and self.inner == other.inner

    __hash__ = None  # type: ignore[assignment]


def bounded_sort(
    items: Iterable[T],
    key: Callable[[T], Any],
    size: Callable[[T], int],
    *,
    keep: int = 0,
    max_bytes: int = MAX_BLOCKING_SORT_BYTES,
    allow_disk_use: bool = False,
) -> list[T]:
    """``items`` in ``key`` order (stable), the first ``keep`` only (0: all), holding at most
    ``max_bytes`` (``size(item)`` each) at any time: past it, 292 (unless ``allow_disk_use``).
    With ``keep`` only the best ``keep`` items are ever held (a heap), so a sort with a limit
    needs memory for the limit, not for the input."""
    held = 0
    counter = itertools.count()
    if keep > 0:
        heap: list[tuple[_Reversed, int, T]] = []  # max-heap of the best ``keep`` so far
        for item in items:
            entry = (_Reversed(key(item)), next(counter), item)
            if len(heap) < keep:
                heapq.heappush(heap, entry)
                held += size(item)
            elif entry[0] > heap[0][0]:
                old = heapq.heapreplace(heap, entry)
                held += size(item) - size(old[2])
            if held > max_bytes and not allow_disk_use:
                raise sort_exceeded(max_bytes)
        return [e[2] for e in sorted(heap, key=lambda e: (e[0].inner, e[1]))]
    keyed: list[tuple[Any, int, T]] = []
    for item in items:
        held += size(item)
        if held > max_bytes and not allow_disk_use:
            raise sort_exceeded(max_bytes)
        keyed.append((key(item), next(counter), item))
    keyed.sort(key=lambda e: (e[0], e[1]))
    return [e[2] for e in keyed]


def bson_size(doc: Mapping[str, Any]) -> int:
    """The BSON size of ``doc``: what a blocking stage counts against its memory limit."""
    return len(bson.encode(doc))


def sort_documents_bounded(
    docs: Iterable[Mapping[str, Any]],
    spec: SortSpec | Sort,
    *,
    keep: int = 0,
    max_bytes: int = MAX_BLOCKING_SORT_BYTES,
) -> list[Any]:
    """:func:`sort_documents` as a bounded blocking sort (see :func:`bounded_sort`)."""
    sort = spec if isinstance(spec, Sort) else Sort(spec)
    if not sort:
        return list(docs)
    return bounded_sort(docs, sort.key, bson_size, keep=keep, max_bytes=max_bytes)
