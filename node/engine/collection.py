"""A collection over a KVStore: its records, and the CRUD operations on them.

Records live in table ``docs:<db>.<coll>``, keyed by ``keystring.encode_key(_id)`` (so a table
scan runs in ``_id`` order) with the BSON document as value. Every operation is deterministic:
new ``_id``s and the time are supplied by the caller (:func:`ensure_id` helps fill ids).

Transactions: every write method takes an optional ``txn`` (a :class:`WriteTxn` the caller
owns, e.g. the replica-set state machine's per-entry transaction); without one it opens and
commits its own. Either way a failed operation changes nothing: each statement runs under a
:class:`Savepoint` that undoes its writes on error, so earlier statements of an ordered insert
(or of the caller's transaction) stay.

Seams for indexes and the planner (see docs/architecture.md, "Engine: collections"):

* :meth:`Collection._index_upkeep` is called on every insert/update/delete with
  ``(txn, old_doc, new_doc, record_key)`` and delegates to the engine's ``indexes``
  (an :class:`IndexMaintainer`) when one is installed;
* :meth:`Collection._execute` produces the matching records of a query; it delegates to the
  engine's ``planner`` (a :class:`QueryPlanner`) when one is installed, else scans in
  ``_id`` order (with point lookups for ``_id`` equality and ``$in``).
"""

from __future__ import annotations

import dataclasses
import datetime
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import bson
from bson.binary import Binary
from bson.objectid import ObjectId
from bson.regex import Regex

from node.engine import capped as _capped
from node.engine import interrupt
from node.engine.errors import (
    MongoError,
    bad_value,
    bson_object_too_large,
    duplicate_key,
    failed_to_parse,
    location,
)
from node.engine.indexes import KEY_TOO_LONG, MAX_INDEX_KEY_BYTES
from node.engine.keystring import encode_key
from node.engine.limits import (
    MAX_USER_DEPTH,
    bson_too_deep,
    check_insert_depth,
    document_depth,
    insert_too_deep,
    update_too_deep,
)
from node.engine.matcher import Matcher
from node.engine.path_update import check_storable, format_value
from node.engine.paths import path_values
from node.engine.sorting import Sort, SortSpec
from node.engine.storage import ReadTxn, WriteTxn, put_rows
from node.engine.updater import Update
from node.engine.values import MISSING, hash_key

if TYPE_CHECKING:
    from node.engine.database import Engine

MAX_BSON_SIZE = 16 * 1024 * 1024
UPDATE_TOO_LARGE = 17419


def docs_table(ns: str) -> str:
    """The table holding the records of namespace ``db.coll``."""
    return f"docs:{ns}"


def index_table_prefix(ns: str) -> str:
    """Every index table of ``ns`` starts with this (``idx:<db>.<coll>:<index name>``)."""
    return f"idx:{ns}:"


def encode_doc(doc: Mapping[str, Any]) -> bytes:
    return bson.encode(doc)


def decode_doc(data: bytes) -> dict[str, Any]:
    return bson.decode(data)


def ensure_id(doc: Mapping[str, Any], new_id: Any = None) -> dict[str, Any]:
    """``doc`` with ``_id`` as its first field; a missing ``_id`` becomes ``new_id`` (or a fresh
    ObjectId when ``new_id`` is None -- call this on the primary, before the operation is logged)."""
    if "_id" in doc:
        value = doc["_id"]
    else:
        value = ObjectId() if new_id is None else new_id
    out: dict[str, Any] = {"_id": value}
    out.update((k, v) for k, v in doc.items() if k != "_id")
    return out


def _result_sort_key(sort: Sort, matcher: Matcher) -> Callable[[Mapping[str, Any]], bytes] | None:
    """How results of this query are ordered, as memcomparable bytes: the sort's key, or for
    ``$near`` without a sort the distance to the query point (what a router merges by)."""
    if sort:
        return sort.key_bytes
    near = next(((path, q) for path, q in matcher.geo if q.is_near), None)
    if near is None:
        return None
    path, query = near

    def distance(doc: Mapping[str, Any]) -> bytes:
        found = [d for v in path_values(doc, path) if (d := query.distance(v)) is not None]
        return encode_key(min(found, default=float("inf")))

    return distance


# --- seams ----------------------------------------------------------------------------------------


@dataclass
class QuerySpec:
    """What a planner needs to produce a query's candidate records."""

    ns: str
    filter: Mapping[str, Any]
    matcher: Matcher
    sort: list[tuple[str, int]] | None = None
    after_key: bytes | None = None
    skip: int = 0
    """Planning hints only: the caller applies skip and limit to what execute yields."""
    limit: int = 0
    hint: Any = None
    owned: Callable[[bytes], bool] | None = None
    """A shard's ownership filter for the planner (see :class:`Ownership`)."""


class ChangeObserver(Protocol):
    """Hears of every record written or deleted, inside the writing transaction (installed as
    ``Engine.changes``; a shard records the ``_id``s a chunk migration must send again)."""

    def on_change(self, txn: WriteTxn, ns: str, record_key: bytes) -> None: ...


class Ownership(Protocol):
    """Which records of a collection this node serves (installed as ``Engine.ownership`` on a
    shard): ``owned(txn, ns)`` has ``contains(record_key)``, or is None when every record of
    ``ns`` is visible (an unsharded collection)."""

    def owned(self, txn: ReadTxn, ns: str) -> Any: ...


class IndexMaintainer(Protocol):
    """Keeps secondary indexes in step with the records (installed as ``Engine.indexes``)."""

    def on_write(
        self,
        txn: WriteTxn,
        ns: str,
        old_doc: Mapping[str, Any] | None,
        new_doc: Mapping[str, Any] | None,
        record_key: bytes,
    ) -> None:
        """Called for every insert (old None), update, delete (new None); may raise
        DuplicateKey; the caller's savepoint undoes partial writes."""
        ...

    def on_drop(self, txn: WriteTxn, ns: str) -> None:
        """The collection is being dropped."""
        ...


class EntriesAdder(Protocol):
    """An index maintainer's batch hook for inserts (``indexes.entries_adder(txn, ns)``):
    ``add(record_key, doc)`` before each new record is written -- raising MongoError only
    before it changed anything -- and ``finish()`` after the batch."""

    def add(self, record_key: bytes, doc: Mapping[str, Any]) -> None: ...

    def finish(self) -> None: ...


class QueryPlanner(Protocol):
    """Chooses how to find a query's records (installed as ``Engine.planner``)."""

    def execute(
        self, txn: ReadTxn, query: QuerySpec
    ) -> Iterator[tuple[bytes, dict[str, Any], int | None]]:
        """``(record_key, doc, match_position)`` of every matching record. In record-key order
        after ``query.after_key`` when ``query.sort`` is None; any order otherwise."""
        ...


# --- savepoints -----------------------------------------------------------------------------------


class Savepoint:
    """A write transaction view that remembers how to undo its writes (statement atomicity)."""

    def __init__(self, txn: WriteTxn) -> None:
        self._txn = txn
        self._undo: list[tuple[str, bytes, bytes | None]] = []
        # a store's ``replace`` (put returning the old value) saves a lookup per write
        self._txn_replace = getattr(txn, "replace", None)

    def get(self, table: str, key: bytes) -> bytes | None:
        return self._txn.get(table, key)

    def scan(
        self,
        table: str,
        start: bytes = b"",
        end: bytes | None = None,
        *,
        reverse: bool = False,
    ) -> Iterator[tuple[bytes, bytes]]:
        return self._txn.scan(table, start, end, reverse=reverse)

    def tables(self) -> list[str]:
        return self._txn.tables()

    def put(self, table: str, key: bytes, value: bytes) -> None:
        txn_replace = self._txn_replace
        if txn_replace is not None:
            self._undo.append((table, key, txn_replace(table, key, value)))
        else:
            self._undo.append((table, key, self._txn.get(table, key)))
            self._txn.put(table, key, value)

    def replace(self, table: str, key: bytes, value: bytes) -> bytes | None:
        """Store ``value`` under ``key``; returns the value it replaced (None: there was none)."""
        txn_replace = self._txn_replace
        if txn_replace is not None:
            old = txn_replace(table, key, value)
        else:
            old = self._txn.get(table, key)
            self._txn.put(table, key, value)
        self._undo.append((table, key, old))
        return old

    def delete(self, table: str, key: bytes) -> bool:
        old = self._txn.get(table, key)
        if old is None:
            return False
        self._undo.append((table, key, old))
        return self._txn.delete(table, key)

    def drop_table(self, table: str) -> None:
        for key, value in list(self._txn.scan(table)):
            self._undo.append((table, key, value))
        self._txn.drop_table(table)

    def rollback(self) -> None:
        for table, key, old in reversed(self._undo):
            if old is None:
                self._txn.delete(table, key)
            else:
                self._txn.put(table, key, old)
        self._undo.clear()


# --- results --------------------------------------------------------------------------------------


@dataclass
class WriteError:
    index: int
    code: int
    errmsg: str
    code_name: str
    details: dict[str, Any] | None = None

    def to_doc(self) -> dict[str, Any]:
        out: dict[str, Any] = {"index": self.index, "code": self.code, "errmsg": self.errmsg}
        if self.details:
            out.update(self.details)
        return out


@dataclass
class InsertResult:
    n: int = 0
    inserted_ids: list[Any] = field(default_factory=list)
    write_errors: list[WriteError] = field(default_factory=list)


@dataclass
class UpdateResult:
    n: int = 0
    n_modified: int = 0
    upserted_id: Any = None
    upserted: bool = False


@dataclass
class FindAndModifyResult:
    value: dict[str, Any] | None
    n: int = 0
    updated_existing: bool = False
    upserted_id: Any = None
    upserted: bool = False


# --- helpers --------------------------------------------------------------------------------------


def _check_size(doc: Mapping[str, Any], data: bytes, *, for_update: bool) -> None:
    if len(data) > MAX_BSON_SIZE:
        if for_update:
            raise location(
                UPDATE_TOO_LARGE,
                f"Resulting document after update is larger than {MAX_BSON_SIZE}",
            )
        raise bson_object_too_large(
            f"object to insert too large. size in bytes: {len(data)}, max size: {MAX_BSON_SIZE}"
        )


_PLAIN_IDS = frozenset({str, int, float, bool, type(None), bytes, ObjectId, datetime.datetime})


def _prepare_insert(ns: str, doc: Mapping[str, Any]) -> tuple[Mapping[str, Any], bytes, bytes]:
    """A document to insert as stored (``_id`` first), its record key and its BSON; raises
    MongoError for what may not be stored (an ``_id`` too long for the ``_id`` index
    included)."""
    if type(doc) is not dict and not isinstance(doc, Mapping):
        raise bad_value("document to insert must be an object")
    if "_id" not in doc:
        raise ValueError("insert needs _id: fill it with ensure_id() before applying")
    if type(doc) is not dict or next(iter(doc)) != "_id":
        doc = ensure_id(doc)  # a plain dict with _id first is stored as it is (not kept)
    data = _encode_storable(doc)
    if len(data) > MAX_BSON_SIZE:
        _check_size(doc, data, for_update=False)
    key = encode_key(doc["_id"])
    if len(key) > MAX_INDEX_KEY_BYTES:
        raise MongoError(
            KEY_TOO_LONG,
            f"key too large to index, failing {ns}.$_id_ {len(key)} "
            f"{{ _id: {format_value(doc['_id'])} }}",
            code_name="KeyTooLong",
        )
    return doc, key, data


def _encode_storable(doc: Mapping[str, Any]) -> bytes:
    """:func:`check_storable` (insert rules) then BSON, with the common case in C: bson's
    ``check_keys`` refuses ``$``-prefixed and dotted names at every depth, a superset of what
    MongoDB refuses, so only a document it refuses (or an unusual ``_id``) takes the full check."""
    if type(doc["_id"]) in _PLAIN_IDS:
        try:
            data = bson.encode(doc, check_keys=True)
        except Exception:  # the slow path below raises what it always raised
            pass
        else:
            if bson_too_deep(data, MAX_USER_DEPTH):
                raise insert_too_deep()
            return data
    check_insert_depth(doc)  # without recursion, before the checks that recurse
    check_storable(doc, for_insert=True)
    return encode_doc(doc)


def _id_point_keys(filter: Mapping[str, Any]) -> list[bytes] | None:
    """Record keys a filter's ``_id`` equality / ``$in`` restricts it to, or None."""
    if "_id" not in filter:
        return None
    value = filter["_id"]
    if isinstance(value, Regex | re.Pattern):
        return None
    if isinstance(value, Mapping) and value and next(iter(value)).startswith("$"):
        if set(value) == {"$eq"}:
            value = value["$eq"]
            if isinstance(value, Regex | re.Pattern):
                return None
        elif set(value) == {"$in"} and isinstance(value["$in"], list):
            items = value["$in"]
            if any(isinstance(v, Regex | re.Pattern | list) for v in items):
                return None
            return sorted({encode_key(v) for v in items})
        else:
            return None
    if isinstance(value, list):
        return None
    return [encode_key(value)]


def _unwind(values: Iterable[Any]) -> Iterator[Any]:
    for v in values:
        if isinstance(v, list):
            yield from v
        elif v is not MISSING:
            yield v


def _projector(projection: Mapping[str, Any] | None,
               now: datetime.datetime | None = None,
               variables: Mapping[str, Any] | None = None) -> Any:
    """A callable ``(doc, position) -> doc`` for a projection spec, or None for no projection
    (``now``: its ``$$NOW``, by default the time it is compiled; ``variables``: a ``let``)."""
    if not projection:
        return None
    from node.engine.projection import Projection

    compiled = Projection(projection, now=now, variables=variables)
    return compiled.apply


# --- the collection -------------------------------------------------------------------------------


class Collection:
    """Namespace ``db.name`` of an :class:`~node.engine.database.Engine`.

    Cheap to create; holds no state besides its names. Created lazily in the catalog on the
    first write (insert or upsert).
    """

    def __init__(self, engine: Engine, db: str, name: str) -> None:
        self.engine = engine
        self.db = db
        self.name = name
        self.ns = f"{db}.{name}"
        self.table = docs_table(self.ns)

    def __repr__(self) -> str:
        return f"Collection({self.ns!r})"

    # -- transactions ---------------------------------------------------------------------------
    def _write(self, txn: WriteTxn | None, body: Any) -> Any:
        """Run ``body(savepoint)`` atomically: in ``txn`` under a savepoint, or in a new txn."""
        if txn is None:
            with self.engine.store.write() as own:
                return body(own)
        sp = Savepoint(txn)
        try:
            return body(sp)
        except BaseException as exc:
            try:
                sp.rollback()
            except Exception as broken:  # the store refused the undo (its txn is dead): the
                raise exc from broken    # first failure is the one to report, not the undo's
            raise

    # -- seams ----------------------------------------------------------------------------------
    def _index_upkeep(
        self,
        txn: WriteTxn,
        old_doc: Mapping[str, Any] | None,
        new_doc: Mapping[str, Any] | None,
        record_key: bytes,
    ) -> None:
        """Keep secondary indexes in step with one record change; called just before the
        record itself is written or deleted (a DuplicateKey raised here aborts the statement).
        The engine's change observer, if any, hears of the change in the same transaction."""
        indexes = self.engine.indexes
        if indexes is not None:
            indexes.on_write(txn, self.ns, old_doc, new_doc, record_key)
        changes = self.engine.changes
        if changes is not None:
            changes.on_change(txn, self.ns, record_key)
        if self.engine._any_capped is not False:
            state = self.engine.capped_state(txn, self.ns)
            if state is not None:
                self.engine.capped_writes.add(self.ns)
                _capped.on_write(txn, self.table, self.ns, state, old_doc, new_doc, record_key,
                                 lambda key, doc: self._forget_entries(txn, key, doc))

    def _forget_entries(self, txn: WriteTxn, key: bytes, doc: dict[str, Any]) -> None:
        """A capped collection's oldest record goes: its index entries first."""
        indexes = self.engine.indexes
        if indexes is not None:
            indexes.on_write(txn, self.ns, doc, None, key)
        changes = self.engine.changes
        if changes is not None:
            changes.on_change(txn, self.ns, key)

    def _execute(
        self, txn: ReadTxn, query: QuerySpec
    ) -> Iterator[tuple[bytes, dict[str, Any], int | None]]:
        """The records matching ``query``: ``(record_key, doc, match_position)``.

        Without a sort: in record-key (``_id``) order, strictly after ``query.after_key``.
        A planner installed on the engine replaces this collection scan. With an ownership
        seam (a shard), records whose ``_id`` this shard does not own are left out.
        """
        ownership = self.engine.ownership
        owned = ownership.owned(txn, self.ns) if ownership is not None else None
        if owned is None:
            return self._candidates(txn, query)
        query = dataclasses.replace(query, owned=owned.contains)
        if self.engine.planner is not None:  # filters at the source, before any limit
            return self._candidates(txn, query)
        contains = owned.contains
        return (row for row in self._candidates(txn, query) if contains(row[0]))

    def _candidates(
        self, txn: ReadTxn, query: QuerySpec
    ) -> Iterator[tuple[bytes, dict[str, Any], int | None]]:
        planner = self.engine.planner
        if planner is not None:
            yield from planner.execute(txn, query)
            return
        points = _id_point_keys(query.filter)
        if points is not None:
            for key in points:
                if query.after_key is not None and key <= query.after_key:
                    continue
                raw = txn.get(self.table, key)
                if raw is None:
                    continue
                doc = decode_doc(raw)
                matched, pos = query.matcher.match_position(doc)
                if matched:
                    yield key, doc, pos
            return
        start = b"" if query.after_key is None else query.after_key + b"\x00"
        for n, (key, raw) in enumerate(txn.scan(self.table, start), 1):
            if not n & interrupt.MASK:
                interrupt.check()
            doc = decode_doc(raw)
            matched, pos = query.matcher.match_position(doc)
            if matched:
                yield key, doc, pos

    def _matching(
        self,
        txn: ReadTxn,
        filter: Mapping[str, Any] | None,
        sort: Sort | None = None,
        after_key: bytes | None = None,
        *,
        skip: int = 0,
        limit: int = 0,
        hint: Any = None,
        matcher: Matcher | None = None,
    ) -> Iterator[tuple[bytes, dict[str, Any], int | None]]:
        """Matching records; in ``sort`` order when given (a planner sorts for itself).
        ``matcher``: ``filter`` already compiled by the caller (compiling a large ``$in``
        costs per value; a ``let``'s variables are compiled in)."""
        flt = filter or {}
        sort = sort if sort else None
        spec = QuerySpec(
            self.ns,
            flt,
            matcher if matcher is not None else Matcher(flt),
            sort.spec if sort else None,
            after_key,
            skip=skip,
            limit=limit,
            hint=hint,
        )
        records = self._execute(txn, spec)
        if sort is None or self.engine.planner is not None:
            yield from records
            return
        key = sort.key
        yield from sorted(records, key=lambda r: key(r[1]))

    # -- reads ----------------------------------------------------------------------------------
    def find_records(
        self,
        filter: Mapping[str, Any] | None = None,
        projection: Mapping[str, Any] | None = None,
        *,
        sort: SortSpec | None = None,
        skip: int = 0,
        limit: int = 0,
        after_key: bytes | None = None,
        hint: Any = None,
        txn: ReadTxn | None = None,
        return_sort_key: bool = False,
        variables: Mapping[str, Any] | None = None,
    ) -> Iterator[tuple[bytes, dict[str, Any]]]:
        """``(record_key, projected doc)`` of the matches, streamed (with
        ``return_sort_key`` and a sort, each document carries ``$sortKey``: its sort key as
        memcomparable bytes, for a router merging shards' results). ``variables``: a ``let``'s,
        for ``$expr`` in the filter and expressions in the projection.

        ``limit`` 0 means no limit (a negative limit counts as its absolute value). Without a
        sort the order is ``_id`` order and ``after_key`` resumes strictly after a record key
        returned earlier, so a cursor can page through with fresh snapshots and see each
        document once. ``after_key`` cannot be combined with ``sort``.
        """
        compiled_sort = Sort(sort)
        if after_key is not None and compiled_sort:
            raise ValueError("after_key resumption needs _id order (no sort)")
        skip, limit = _check_skip_limit(skip, limit)
        project = _projector(projection, variables=variables)
        # compile (and so validate) before the generator starts
        flt = filter or {}
        matcher = Matcher(flt, variables=variables)
        sort_key = _result_sort_key(compiled_sort, matcher) if return_sort_key else None

        def generate(reader: ReadTxn) -> Iterator[tuple[bytes, dict[str, Any]]]:
            produced = 0
            skipped = 0
            rows = self._matching(reader, flt, compiled_sort, after_key, skip=skip, limit=limit,
                                  hint=hint, matcher=matcher)
            for key, doc, pos in rows:
                if skipped < skip:
                    skipped += 1
                    continue
                out = project(doc, pos) if project else doc
                if sort_key is not None:
                    out = {**out, "$sortKey": Binary(sort_key(doc))}
                yield key, out
                produced += 1
                if limit and produced >= limit:
                    return

        if txn is not None:
            return generate(txn)

        def own() -> Iterator[tuple[bytes, dict[str, Any]]]:
            with self.engine.store.read() as reader:
                yield from generate(reader)

        return own()

    def is_capped(self, txn: ReadTxn | None = None) -> bool:
        if self.engine._any_capped is False:
            return False
        if txn is not None:
            return self.engine.capped_state(txn, self.ns) is not None
        with self.engine.store.read() as reader:
            return self.engine.capped_state(reader, self.ns) is not None

    def find_natural(
        self,
        filter: Mapping[str, Any] | None = None,
        projection: Mapping[str, Any] | None = None,
        *,
        reverse: bool = False,
        skip: int = 0,
        limit: int = 0,
        after: int = 0,
        txn: ReadTxn | None = None,
        variables: Mapping[str, Any] | None = None,
    ) -> Iterator[tuple[int, dict[str, Any]]]:
        """``(natural position, projected doc)`` of a capped collection's matches in insertion
        order (``reverse``: newest first), strictly after position ``after``. On a collection
        that is not capped, natural order is ``_id`` order and positions are 0."""
        skip, limit = _check_skip_limit(skip, limit)
        project = _projector(projection, variables=variables)
        matcher = Matcher(filter or {}, variables=variables)

        def generate(reader: ReadTxn) -> Iterator[tuple[int, dict[str, Any]]]:
            if self.engine.capped_state(reader, self.ns) is None:
                sort = [("_id", -1)] if reverse else None
                for _, doc in self.find_records(filter, projection, sort=sort, skip=skip,
                                                limit=limit, txn=reader, variables=variables):
                    yield 0, doc
                return
            produced = skipped = 0
            rows = _capped.natural_rows(reader, self.ns, self.table, after=after,
                                        reverse=reverse)
            for n, (pos, _, raw) in enumerate(rows, 1):
                if not n & interrupt.MASK:
                    interrupt.check()
                doc = decode_doc(raw)
                matched, mpos = matcher.match_position(doc)
                if not matched:
                    continue
                if skipped < skip:
                    skipped += 1
                    continue
                yield pos, (project(doc, mpos) if project else doc)
                produced += 1
                if limit and produced >= limit:
                    return

        if txn is not None:
            return generate(txn)

        def own() -> Iterator[tuple[int, dict[str, Any]]]:
            with self.engine.store.read() as reader:
                yield from generate(reader)

        return own()

    def find(
        self,
        filter: Mapping[str, Any] | None = None,
        projection: Mapping[str, Any] | None = None,
        *,
        sort: SortSpec | None = None,
        skip: int = 0,
        limit: int = 0,
        hint: Any = None,
        txn: ReadTxn | None = None,
        return_sort_key: bool = False,
        variables: Mapping[str, Any] | None = None,
    ) -> Iterator[dict[str, Any]]:
        """The matching documents (projected), as an iterator; see :meth:`find_records`."""
        records = self.find_records(
            filter, projection, sort=sort, skip=skip, limit=limit, hint=hint, txn=txn,
            return_sort_key=return_sort_key, variables=variables,
        )
        return (doc for _, doc in records)

    def find_one(
        self,
        filter: Mapping[str, Any] | None = None,
        projection: Mapping[str, Any] | None = None,
        *,
        sort: SortSpec | None = None,
        txn: ReadTxn | None = None,
    ) -> dict[str, Any] | None:
        return next(self.find(filter, projection, sort=sort, limit=1, txn=txn), None)

    def count(
        self,
        filter: Mapping[str, Any] | None = None,
        *,
        skip: int = 0,
        limit: int = 0,
        hint: Any = None,
        txn: ReadTxn | None = None,
    ) -> int:
        """How many documents match, after ``skip``, at most ``limit`` (0 = no limit);
        ``hint``: the index to count with (BadValue when there is no such index)."""
        skip, limit = _check_skip_limit(skip, limit)
        n = sum(1 for _ in self.find_records(filter, hint=hint, txn=txn)) - skip
        n = max(n, 0)
        return min(n, limit) if limit else n

    def distinct(
        self,
        key: str,
        filter: Mapping[str, Any] | None = None,
        *,
        txn: ReadTxn | None = None,
    ) -> list[Any]:
        """The distinct values at ``key`` among matching documents (arrays unwound one level),
        de-duplicated by value equality (``1 == 1.0``), in first-seen order."""
        if not isinstance(key, str):
            raise MongoError(14, "key must be a string", code_name="TypeMismatch")
        if key == "":
            raise bad_value("FieldPath cannot be constructed with empty string")
        seen: set[Any] = set()
        out: list[Any] = []
        for doc in self.find(filter, txn=txn):
            for value in _unwind(path_values(doc, key)):
                h = hash_key(value)
                if h not in seen:
                    seen.add(h)
                    out.append(value)
        return out

    # -- writes ---------------------------------------------------------------------------------
    def _validator(self, txn: Any) -> Any:
        """The collection's validator (node/engine/validation.py), None without one."""
        from node.engine.validation import validator_for
        entry = self.engine.catalog_entry(self.db, self.name, txn=txn)
        return validator_for(entry.get("options") if entry else None)

    def _insert_doc(self, txn: WriteTxn, doc: Mapping[str, Any]) -> dict[str, Any]:
        """Validate and store one document; returns it as stored (``_id`` first)."""
        doc, key, data = _prepare_insert(self.ns, doc)
        validator = self._validator(txn)
        if validator is not None:
            validator.check(self.ns, None, doc)
        if txn.get(self.table, key) is not None:
            raise self._duplicate_id(doc["_id"])
        self._index_upkeep(txn, None, doc, key)
        txn.put(self.table, key, data)
        return doc

    def _insert_batch(
        self, txn: WriteTxn, docs: list[Mapping[str, Any]], adder: EntriesAdder, ordered: bool
    ) -> InsertResult:
        """:meth:`insert`'s body when the index maintainer batches (see :class:`EntriesAdder`):
        records are checked one by one (every check precedes the document's first write, so a
        failed document writes nothing) and written together at the end, in key order."""
        result = InsertResult()
        ids = result.inserted_ids
        table = self.table
        get = txn.get
        add = adder.add
        records: dict[bytes, bytes] = {}
        validator = self._validator(txn)
        for i, doc in enumerate(docs):
            try:
                doc, key, data = _prepare_insert(self.ns, doc)
                if validator is not None:
                    validator.check(self.ns, None, doc)
                if key in records or get(table, key) is not None:
                    raise self._duplicate_id(doc["_id"])
                add(key, doc)
            except MongoError as exc:
                result.write_errors.append(
                    WriteError(i, exc.code, exc.errmsg, exc.code_name, exc.details)
                )
                if ordered:
                    break
                continue
            records[key] = data
            ids.append(doc["_id"])
        adder.finish()
        changes = self.engine.changes
        if changes is not None:
            for key in records:
                changes.on_change(txn, self.ns, key)
        put_rows(txn, table, sorted(records.items()))
        result.n = len(ids)
        return result

    def _entries_adder(self, txn: WriteTxn) -> EntriesAdder | None:
        """The index maintainer's batch hook for new records, when it has one (see
        :class:`EntriesAdder`); None: use :meth:`_index_upkeep` under a savepoint."""
        if self.engine._any_capped is not False and self.engine.capped_state(txn, self.ns):
            return None  # capped: one document at a time, each placed in natural order
        indexes = self.engine.indexes
        if indexes is None:
            return _NO_ENTRIES
        adder = getattr(indexes, "entries_adder", None)
        return None if adder is None else adder(txn, self.ns)

    def _duplicate_id(self, value: Any) -> MongoError:
        return duplicate_key(
            f"E11000 duplicate key error collection: {self.ns} index: _id_ dup key: "
            f"{{ _id: {format_value(value)} }}",
            key_pattern={"_id": 1},
            key_value={"_id": value},
        )

    def insert_one(self, doc: Mapping[str, Any], *, txn: WriteTxn | None = None) -> Any:
        """Insert one document (``_id`` required); returns its ``_id``; raises MongoError."""

        def body(w: WriteTxn) -> Any:
            self.engine._ensure_collection(w, self.db, self.name)
            sp = Savepoint(w)
            try:
                return self._insert_doc(sp, doc)["_id"]
            except BaseException:
                sp.rollback()
                raise

        return self._write(txn, body)

    def insert(
        self,
        docs: Iterable[Mapping[str, Any]],
        *,
        ordered: bool = True,
        txn: WriteTxn | None = None,
    ) -> InsertResult:
        """Insert documents (each with ``_id``), reporting per-document errors by index.

        Ordered: stops at the first error, earlier documents stay inserted. Unordered: tries
        every document.
        """
        docs = list(docs)

        def body(w: WriteTxn) -> InsertResult:
            result = InsertResult()
            if docs:
                self.engine._ensure_collection(w, self.db, self.name)
            else:
                return result
            adder = self._entries_adder(w)
            if adder is not None:
                return self._insert_batch(w, docs, adder, ordered)
            ids = result.inserted_ids
            for i, doc in enumerate(docs):
                sp = Savepoint(w)
                try:
                    ids.append(self._insert_doc(sp, doc)["_id"])
                except MongoError as exc:
                    sp.rollback()
                    result.write_errors.append(
                        WriteError(i, exc.code, exc.errmsg, exc.code_name, exc.details)
                    )
                    if ordered:
                        break
            result.n = len(ids)
            return result

        return self._write(txn, body)

    def update(
        self,
        q: Mapping[str, Any],
        u: Mapping[str, Any],
        *,
        upsert: bool = False,
        multi: bool = False,
        upsert_id: Any = None,
        now: datetime.datetime | None = None,
        array_filters: list[Mapping[str, Any]] | None = None,
        sort: SortSpec | None = None,
        hint: Any = None,
        txn: WriteTxn | None = None,
        constants: Mapping[str, Any] | None = None,
    ) -> UpdateResult:
        """Apply update ``u`` to the first (or, ``multi``, every) document matching ``q``.

        With ``upsert`` and no match, inserts the query's equality fields updated by ``u``;
        its ``_id`` (when neither query nor update gives one) is ``upsert_id``, supplied by the
        caller. ``now`` is the time ``$currentDate`` writes. ``array_filters``: the filters
        ``$[<identifier>]`` paths in ``u`` select array elements by (MongoDB's ``arrayFilters``).
        ``sort`` picks the document a one-document update changes (MongoDB 8); ``hint`` the
        index the match uses (BadValue when there is no such index).
        """
        update = Update(u, array_filters, constants)
        compiled_sort = Sort(sort) if sort and not multi else None
        if multi and update.is_replacement:
            raise failed_to_parse("multi update is not supported for replacement-style update")
        matcher_filter = q or {}
        Matcher(matcher_filter)

        def body(w: WriteTxn) -> UpdateResult:
            result = UpdateResult()
            matches = self._matching(w, matcher_filter, compiled_sort, hint=hint,
                                     limit=0 if multi else 1)
            targets = list(matches) if multi else list(_first(matches))
            for key, doc, pos in targets:
                result.n += 1
                if self._replace(w, key, doc, update.apply(doc, position=pos, now=now)):
                    result.n_modified += 1
            if not targets and upsert:
                new = update.upsert_document(matcher_filter, now=now)
                result.upserted_id = self._insert_upsert(w, new, upsert_id)["_id"]
                result.upserted = True
                result.n = 1
            return result

        return self._write(txn, body)

    def _replace(self, txn: WriteTxn, key: bytes, old: dict[str, Any], new: dict[str, Any],
                 validate: bool = True) -> bool:
        """Store ``new`` over ``old`` at ``key``; False (nothing written) when unchanged."""
        if validate:
            validator = self._validator(txn)
            if validator is not None:
                validator.check(self.ns, old, new)
        old_data = encode_doc(old)
        try:
            new_data = encode_doc(new)
        except RecursionError:  # far past the limit below, whatever the stack
            raise update_too_deep() from None
        if old_data == new_data:
            return False
        if bson_too_deep(new_data, MAX_USER_DEPTH):
            raise update_too_deep()
        _check_size(new, new_data, for_update=True)
        self._index_upkeep(txn, old, new, key)
        txn.put(self.table, key, new_data)
        return True

    # -- record-level writes (chunk migrations: no query, no ownership filter) -------------------
    def put_records(self, txn: WriteTxn, docs: Iterable[Mapping[str, Any]]) -> int:
        """Store each document by its ``_id``, replacing what is there (indexes kept in step);
        creates the collection if needed. Returns how many records changed."""
        self.engine._ensure_collection(txn, self.db, self.name)
        changed = 0
        for doc in docs:
            doc, key, data = _prepare_insert(self.ns, doc)
            raw = txn.get(self.table, key)
            if raw is None:
                self._index_upkeep(txn, None, doc, key)
                txn.put(self.table, key, data)
                changed += 1
            elif self._replace(txn, key, decode_doc(raw), doc, validate=False):
                changed += 1
        return changed

    def delete_records(self, txn: WriteTxn, keys: Iterable[bytes]) -> int:
        """Delete the records with these keys (absent ones are skipped); returns how many."""
        n = 0
        for key in keys:
            raw = txn.get(self.table, key)
            if raw is None:
                continue
            self._index_upkeep(txn, decode_doc(raw), None, key)
            txn.delete(self.table, key)
            n += 1
        return n

    def record_keys(self, txn: ReadTxn, lo: bytes, hi: bytes | None, limit: int = 0,
                    skip: Callable[[bytes], bool] | None = None) -> list[bytes]:
        """Record keys in ``[lo, hi)`` (``hi`` None: to the end), in key order, leaving out
        those ``skip`` says; at most ``limit`` (0: all)."""
        out: list[bytes] = []
        for key, _ in txn.scan(self.table, lo, hi):
            if skip is not None and skip(key):
                continue
            out.append(key)
            if limit and len(out) >= limit:
                break
        return out

    def records(self, txn: ReadTxn, keys: Iterable[bytes]) -> Iterator[tuple[bytes, Any]]:
        """``(key, document or None)`` for each key (None: no such record now)."""
        for key in keys:
            raw = txn.get(self.table, key)
            yield key, (None if raw is None else decode_doc(raw))

    def _insert_upsert(self, txn: WriteTxn, new: dict[str, Any], upsert_id: Any) -> dict[str, Any]:
        if document_depth(new, MAX_USER_DEPTH) > MAX_USER_DEPTH:
            raise update_too_deep()
        if "_id" not in new:
            if upsert_id is None:
                raise ValueError("upsert needs an _id from the caller (upsert_id)")
            new = ensure_id(new, upsert_id)
        self.engine._ensure_collection(txn, self.db, self.name)
        return self._insert_doc(txn, new)

    def delete(
        self,
        q: Mapping[str, Any],
        *,
        limit: int = 0,
        hint: Any = None,
        txn: WriteTxn | None = None,
    ) -> int:
        """Delete every document matching ``q`` (``limit`` 1: only the first; ``hint``: the
        index to match with); returns n."""
        if limit not in (0, 1):
            raise failed_to_parse(f"The limit field in delete objects must be 0 or 1. Got {limit}")
        flt = q or {}
        Matcher(flt)

        def body(w: WriteTxn) -> int:
            matches = self._matching(w, flt, hint=hint, limit=limit)
            targets = list(_first(matches)) if limit == 1 else list(matches)
            for key, doc, _ in targets:
                self._index_upkeep(w, doc, None, key)
                w.delete(self.table, key)
            return len(targets)

        return self._write(txn, body)

    def find_and_modify(
        self,
        query: Mapping[str, Any] | None = None,
        *,
        sort: SortSpec | None = None,
        update: Mapping[str, Any] | list[Any] | None = None,
        remove: bool = False,
        new: bool = False,
        fields: Mapping[str, Any] | None = None,
        upsert: bool = False,
        upsert_id: Any = None,
        now: datetime.datetime | None = None,
        array_filters: list[Mapping[str, Any]] | None = None,
        hint: Any = None,
        txn: WriteTxn | None = None,
    ) -> FindAndModifyResult:
        """Atomically update or remove the first match (in ``sort`` order) and return it.

        ``value`` is the document before the change, or after it with ``new``; None when
        nothing matched (and nothing was upserted, or ``new`` is false on an upsert).
        ``array_filters`` as for :meth:`update`.
        """
        if remove and update is not None:
            raise failed_to_parse("Cannot specify both an update and remove=true")
        if not remove and update is None:
            raise failed_to_parse("Either an update or remove=true must be specified")
        if remove and new:
            raise failed_to_parse(
                "Cannot specify both new=true and remove=true; 'remove' always returns the "
                "deleted document"
            )
        if remove and upsert:
            raise failed_to_parse("Cannot specify both upsert=true and remove=true")
        if remove and array_filters is not None:
            raise failed_to_parse("Cannot specify arrayFilters and remove=true")
        compiled = Update(update, array_filters) if update is not None else None
        compiled_sort = Sort(sort)
        project = _projector(fields, now)
        flt = query or {}
        Matcher(flt)

        def shape(doc: dict[str, Any] | None, pos: int | None) -> dict[str, Any] | None:
            if doc is None or project is None:
                return doc
            return project(doc, pos)

        def body(w: WriteTxn) -> FindAndModifyResult:
            target = next(_first(self._matching(w, flt, compiled_sort, limit=1, hint=hint)),
                          None)
            if target is None:
                if compiled is None or not upsert:
                    return FindAndModifyResult(None)
                doc = compiled.upsert_document(flt, now=now)
                stored = self._insert_upsert(w, doc, upsert_id)
                return FindAndModifyResult(
                    shape(stored, None) if new else None,
                    n=1,
                    upserted_id=stored["_id"],
                    upserted=True,
                )
            key, doc, pos = target
            if compiled is None:
                self._index_upkeep(w, doc, None, key)
                w.delete(self.table, key)
                return FindAndModifyResult(shape(doc, pos), n=1)
            after = compiled.apply(doc, position=pos, now=now)
            self._replace(w, key, doc, after)
            return FindAndModifyResult(
                shape(after if new else doc, pos), n=1, updated_existing=True
            )

        return self._write(txn, body)


class _NoEntries:
    """The entries adder of an engine without an index maintainer."""

    def add(self, record_key: bytes, doc: Mapping[str, Any]) -> None:
        return None

    def finish(self) -> None:
        return None


_NO_ENTRIES = _NoEntries()


def _first(it: Iterator[Any]) -> Iterator[Any]:
    for item in it:
        yield item
        return


def _check_skip_limit(skip: Any, limit: Any) -> tuple[int, int]:
    if skip is None:
        skip = 0
    if limit is None:
        limit = 0
    if isinstance(skip, bool) or not isinstance(skip, int | float) or skip < 0:
        raise bad_value(f"skip value must be non-negative, but received: {skip}")
    if isinstance(limit, bool) or not isinstance(limit, int | float):
        raise bad_value("limit must be a number")
    return int(skip), abs(int(limit))
