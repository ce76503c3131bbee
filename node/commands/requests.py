"""Typed requests: every CRUD and query command parsed ONCE into a frozen object.

A node's handlers, ``explain`` and the router all read the same :class:`FindRequest`,
:class:`UpdateRequest` ... instead of picking fields out of the command document each in their
own way. ``parse_*`` functions check every field as MongoDB's IDL does (TypeMismatch 14 for a
wrong type, Location40414 for a missing field, MongoDB's messages) and raise MongoError.

Parsing resolves nothing non-deterministic: ObjectIds for documents without ``_id`` and upsert
ids are chosen later by whoever builds the log entry (a node's handler, or the router for the
documents it routes by ``_id``).

Generic fields every request keeps: ``max_time_ms`` (0: no limit), ``comment`` and the raw
command (``raw``) for transports and the router, which forward fields they do not interpret
(``lsid``, ``txnNumber``, ``writeConcern``, ``readConcern``, ``$readPreference`` ...).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from bson.decimal128 import Decimal128

from node.commands.args import (
    bson_type_name,
    check_writable_namespace,
    collection_name,
    get_bool,
    get_doc,
    get_int,
    get_list,
    get_nonneg_int,
    get_str,
    int64_value,
    is_number,
)
from node.commands.generic_args import GENERIC_FIELDS
from node.engine.errors import (
    BAD_VALUE,
    FAILED_TO_PARSE,
    INVALID_NAMESPACE,
    MongoError,
    type_mismatch,
)
from node.engine.projection import Projection

MAX_WRITE_BATCH = 100_000
INVALID_LENGTH = 16
INT32_MAX = 2**31 - 1


# --- shared fields ----------------------------------------------------------------------------


def parse_max_time_ms(cmd: Mapping[str, Any], field_name: str = "maxTimeMS") -> int:
    """``maxTimeMS`` as MongoDB's ``parseMaxTimeMS`` checks it; 0 (also when absent): no limit."""
    value = cmd.get(field_name)
    if value is None:
        return 0
    if not is_number(value):
        raise MongoError(BAD_VALUE, f"{field_name} must be a number")
    if isinstance(value, float):
        if value != value or value < 0 or value > INT32_MAX:
            raise MongoError(BAD_VALUE, f"{field_name} is out of range")
        if value != int(value):
            raise MongoError(BAD_VALUE, f"{field_name} has non-integral value")
    if value < 0 or value > INT32_MAX:
        raise MongoError(BAD_VALUE, f"{field_name} is out of range")
    return int(value)


def check_fields(cmd: Mapping[str, Any], name: str, allowed: Collection[str]) -> None:
    """MongoDB's strict IDL parsers: a field that is neither the command's (``allowed``) nor a
    generic argument is Location40415. ``$``-prefixed fields are internal (MongoDB's
    ``$_...``, the router's) and pass."""
    for key in cmd:
        if key not in allowed and key not in GENERIC_FIELDS and not key.startswith("$"):
            raise MongoError(40415, f"BSON field '{name}.{key}' is an unknown field.",
                             code_name="Location40415")


@dataclass(frozen=True)
class FieldType:
    """A field's BSON types as MongoDB's IDL declares them: ``accepts`` tells a value of them,
    ``expected`` is the end of MongoDB's TypeMismatch message (``type 'object'``, ``types
    '[bool, long, int, decimal, double]'``) and ``noun`` the index-spec wording (``a
    string``)."""

    accepts: Callable[[Any], bool]
    expected: str
    noun: str


def _is_numeric(value: Any) -> bool:
    return is_number(value) or isinstance(value, Decimal128)


SAFE_BOOL = FieldType(lambda v: isinstance(v, bool) or _is_numeric(v),
                      "types '[bool, long, int, decimal, double]'", "a bool")
"""IDL ``safeBool``: a bool or any number."""
BOOL = FieldType(lambda v: isinstance(v, bool), "type 'bool'", "a bool")
SAFE_INT = FieldType(_is_numeric, "types '[long, int, decimal, double]'", "a number")
"""IDL ``safeInt``/``safeInt64``/``safeDouble``: any number."""
OBJECT = FieldType(lambda v: isinstance(v, Mapping), "type 'object'", "an object")
STRING = FieldType(lambda v: isinstance(v, str), "type 'string'", "a string")
ARRAY = FieldType(lambda v: isinstance(v, list), "type 'array'", "an array")
UUID_TYPE = FieldType(lambda v: isinstance(v, bytes | uuid.UUID), "type 'binData'", "a UUID")
ANY: FieldType | None = None
"""A field any BSON value may fill (or whose handler checks it)."""


def either(*types: FieldType) -> FieldType:
    """An IDL ``variant``: any of ``types``."""
    names = ", ".join(t.expected.split("'")[1].strip("[]") for t in types)
    return FieldType(lambda v: any(t.accepts(v) for t in types), f"types '[{names}]'",
                     " or ".join(t.noun for t in types))


FieldTable = Mapping[str, FieldType | None]
"""A command's fields (its own name included) and their types (None: any value)."""


def check_typed_fields(cmd: Mapping[str, Any], name: str, table: FieldTable, *,
                       strict: bool = True) -> None:
    """:func:`check_fields` (unless not ``strict``: an IDL ``strict: false`` command), then
    each known field's type (TypeMismatch 14, MongoDB's IDL message); a null is not checked
    (the handlers take it as absent)."""
    if strict:
        check_fields(cmd, name, table)
    for key, value in cmd.items():
        ftype = table.get(key)
        if ftype is not None and value is not None and not ftype.accepts(value):
            raise type_mismatch(f"BSON field '{name}.{key}' is the wrong type "
                                f"'{bson_type_name(value)}', expected {ftype.expected}")


# --- one table of fields per command (MongoDB 8's IDL) -----------------------------------------
FIND_FIELDS = frozenset({
    "find", "filter", "projection", "sort", "hint", "skip", "limit", "batchSize", "singleBatch",
    "max", "min", "returnKey", "showRecordId", "tailable", "oplogReplay", "noCursorTimeout",
    "awaitData", "allowPartialResults", "collation", "allowDiskUse", "let", "readOnce",
    "allowSpeculativeMajorityRead", "term", "includeQueryStatsMetrics", "rawData", "explain",
})
COUNT_FIELDS = frozenset({"count", "query", "limit", "skip", "hint", "collation", "fields",
                          "mirrored", "sampleId", "rawData", "encryptionInformation"})
DISTINCT_FIELDS = frozenset({"distinct", "key", "query", "collation", "hint", "mirrored",
                             "sampleId", "rawData"})
FIND_AND_MODIFY_FIELDS = frozenset({
    "findAndModify", "findandmodify", "query", "sort", "remove", "update", "new", "fields",
    "upsert", "bypassDocumentValidation", "collation", "arrayFilters", "hint", "let",
    "rawData", "sampleId", "encryptionInformation",
})

AGGREGATE_FIELDS = frozenset({
    "aggregate", "pipeline", "explain", "allowDiskUse", "cursor", "hint", "needsMerge",
    "fromMongos", "fromRouter", "bypassDocumentValidation", "collation", "let",
    "isMapReduceCommand", "exchange", "runtimeConstants", "collectionUUID",
    "encryptionInformation", "includeQueryStatsMetrics", "rawData", "querySettings",
    "passthroughToShard", "isClusterQueryWithoutShardKeyCmd", "requestReshardingResumeToken",
})
_WRITE_COMMON = ("ordered", "bypassDocumentValidation", "let", "collectionUUID",
                 "encryptionInformation", "isTimeseriesNamespace", "rawData")
INSERT_FIELDS = frozenset({"insert", "documents", *_WRITE_COMMON})
UPDATE_FIELDS_CMD = frozenset({"update", "updates", *_WRITE_COMMON})
DELETE_FIELDS = frozenset({"delete", "deletes", *_WRITE_COMMON})


def _sort_spec(sort: Mapping[str, Any] | None) -> list[tuple[str, Any]] | None:
    return list(sort.items()) if sort else None


# --- reads ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FindRequest:
    db: str
    coll: str
    filter: Mapping[str, Any]
    sort: list[tuple[str, Any]] | None = None
    projection: Mapping[str, Any] | None = None
    skip: int = 0
    limit: int = 0
    """0: no limit (a negative ``limit`` is refused, 51024, as MongoDB's find command does)."""
    batch_size: int | None = None
    single_batch: bool = False
    hint: Any = None
    max_time_ms: int = 0
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False)
    return_sort_key: bool = False
    """Internal (a router merging shards' sorted results): each result carries its sort key
    as memcomparable bytes in ``$sortKey``."""
    let: Mapping[str, Any] = field(default_factory=dict)
    """The ``let`` variables (expressions of constants) for ``$expr`` and the projection."""

    @property
    def ns(self) -> str:
        return f"{self.db}.{self.coll}"


def check_tailable_options(cmd: Mapping[str, Any], sort: Mapping[str, Any] | None,
                           single_batch: bool) -> None:
    """MongoDB's rules for ``tailable``/``awaitData`` that need no data (its
    ``tailableModeFromBools`` and ``validateFindCommandRequest``)."""
    tailable = get_bool(cmd, "find", "tailable")
    if get_bool(cmd, "find", "awaitData") and not tailable:
        raise MongoError(FAILED_TO_PARSE,
                         "Cannot set 'awaitData' without also setting 'tailable'")
    if not tailable:
        return
    if sort and list(sort.items()) != [("$natural", 1)]:
        raise MongoError(BAD_VALUE,
                         "cannot use tailable option with a sort other than {$natural: 1}")
    if single_batch:
        raise MongoError(BAD_VALUE, "cannot use tailable option with the 'singleBatch' option")


def parse_find(db: str, cmd: Mapping[str, Any]) -> FindRequest:
    coll = collection_name(cmd, "find")
    check_fields(cmd, "find", FIND_FIELDS)
    filt = get_doc(cmd, "find", "filter", {})
    sort = get_doc(cmd, "find", "sort", None)
    projection = get_doc(cmd, "find", "projection", None)
    skip = get_nonneg_int(cmd, "find", "skip", 0)
    limit = get_nonneg_int(cmd, "find", "limit", 0)
    batch_size = get_nonneg_int(cmd, "find", "batchSize", None)
    single_batch = get_bool(cmd, "find", "singleBatch")
    check_tailable_options(cmd, sort, single_batch)
    return FindRequest(db, coll, filt, _sort_spec(sort), projection, skip, limit, batch_size,
                       single_batch, cmd.get("hint"), parse_max_time_ms(cmd), cmd,
                       get_bool(cmd, "find", "$_requestSortKey"),
                       get_doc(cmd, "find", "let", {}) or {})


@dataclass(frozen=True)
class CountRequest:
    db: str
    coll: str
    query: Mapping[str, Any]
    skip: int = 0
    limit: int = 0
    hint: Any = None
    max_time_ms: int = 0
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False)


def parse_count(db: str, cmd: Mapping[str, Any]) -> CountRequest:
    coll = collection_name(cmd, "count")
    check_fields(cmd, "count", COUNT_FIELDS)
    query = get_doc(cmd, "count", "query", {})
    skip = get_nonneg_int(cmd, "count", "skip", 0)
    limit = abs(get_int(cmd, "count", "limit", 0))
    return CountRequest(db, coll, query, skip, limit, cmd.get("hint"), parse_max_time_ms(cmd),
                        cmd)


@dataclass(frozen=True)
class DistinctRequest:
    db: str
    coll: str
    key: str
    query: Mapping[str, Any]
    max_time_ms: int = 0
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False)


def parse_distinct(db: str, cmd: Mapping[str, Any]) -> DistinctRequest:
    coll = collection_name(cmd, "distinct")
    check_fields(cmd, "distinct", DISTINCT_FIELDS)
    key = get_str(cmd, "distinct", "key")
    query = get_doc(cmd, "distinct", "query", {})
    return DistinctRequest(db, coll, key, query, parse_max_time_ms(cmd), cmd)


@dataclass(frozen=True)
class AggregateRequest:
    db: str
    coll: str
    stages: list[tuple[str, Any]]
    batch_size: int | None = None
    explain: bool = False
    max_time_ms: int = 0
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False)
    allow_disk_use: bool = False
    let: Mapping[str, Any] = field(default_factory=dict)
    collectionless: bool = False
    bypass_validation: bool = False


def parse_aggregate(db: str, cmd: Mapping[str, Any], *, allow_internal: bool = False
                    ) -> AggregateRequest:
    """An ``aggregate`` command; ``aggregate: 1`` (no collection) for ``$documents`` and the
    like. ``allow_internal``: the router's split stages (``$_groupPartial``...)."""
    from node.commands.pipeline import parse_stages

    target = cmd.get("aggregate")
    collectionless = target == 1
    if collectionless:
        coll = "$cmd.aggregate"
    else:
        coll = collection_name(cmd, "aggregate")
    check_fields(cmd, "aggregate", AGGREGATE_FIELDS)
    pipeline = get_list(cmd, "aggregate", "pipeline")
    explain = get_bool(cmd, "aggregate", "explain")
    cursor_opts = get_doc(cmd, "aggregate", "cursor", None)
    if cursor_opts is None and not explain:
        raise MongoError(FAILED_TO_PARSE, "The 'cursor' option is required, except for "
                         "aggregate with the explain argument")
    batch_size = get_nonneg_int(cursor_opts or {}, "aggregate.cursor", "batchSize", None)
    stages = parse_stages(pipeline, allow_internal=allow_internal or bool(
        cmd.get("$_internalSplit")))
    if collectionless and (not stages or stages[0][0] not in ("$documents",)):
        raise MongoError(73, "{aggregate: 1} is not valid for '$match'; a collection is "
                         "required.", code_name="InvalidNamespace")
    let = get_doc(cmd, "aggregate", "let", {}) or {}
    return AggregateRequest(db, coll, stages, batch_size, explain, parse_max_time_ms(cmd), cmd,
                            get_bool(cmd, "aggregate", "allowDiskUse"), let, collectionless,
                            get_bool(cmd, "aggregate", "bypassDocumentValidation"))


@dataclass(frozen=True)
class GetMoreRequest:
    db: str
    coll: str
    cursor_id: int
    batch_size: int | None = None
    max_time_ms: int = 0
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @property
    def ns(self) -> str:
        return f"{self.db}.{self.coll}"


GET_MORE_FIELDS = frozenset({"getMore", "collection", "batchSize", "maxTimeMS", "term",
                             "lastKnownCommittedOpTime"})


def parse_get_more(db: str, cmd: Mapping[str, Any]) -> GetMoreRequest:
    """``getMore`` as MongoDB 8's ``GetMoreCommandRequest`` (a strict IDL command) reads it:
    unknown fields 40415; ``batchSize``, ``maxTimeMS`` and ``term`` numbers (a double is
    truncated), a negative ``batchSize`` BadValue (0 or absent: the cursor's default);
    ``lastKnownCommittedOpTime`` an object; the collection a valid name."""
    cursor_id = cmd.get("getMore")
    if not is_number(cursor_id):
        raise type_mismatch("BSON field 'getMore.getMore' is the wrong type "
                            f"'{bson_type_name(cursor_id)}', expected type 'long'")
    check_fields(cmd, "getMore", GET_MORE_FIELDS)
    coll = get_str(cmd, "getMore", "collection")
    if not coll:
        raise MongoError(INVALID_NAMESPACE, "Collection names cannot be empty")
    if coll.startswith(".") or "\x00" in coll:
        raise MongoError(INVALID_NAMESPACE, f"Invalid collection name for getMore: {coll!r}")
    batch_size = get_int(cmd, "getMore", "batchSize", None)
    if batch_size is not None and batch_size < 0:
        raise MongoError(BAD_VALUE, "Batch size for getMore must be positive, but received: "
                         f"{batch_size}")
    get_int(cmd, "getMore", "term", None)
    get_doc(cmd, "getMore", "lastKnownCommittedOpTime", None)
    return GetMoreRequest(db, coll, int64_value(cursor_id, "getMore.getMore"),
                          batch_size or None, parse_max_time_ms(cmd), cmd)


@dataclass(frozen=True)
class KillCursorsRequest:
    db: str
    coll: str
    cursor_ids: list[int]


def parse_kill_cursors(db: str, cmd: Mapping[str, Any]) -> KillCursorsRequest:
    coll = collection_name(cmd, "killCursors")
    ids = get_list(cmd, "killCursors", "cursors")
    for cid in ids:
        if not is_number(cid):
            raise type_mismatch("BSON field 'killCursors.cursors' is the wrong type "
                                f"'{bson_type_name(cid)}', expected type 'long'")
    return KillCursorsRequest(db, coll,
                              [int64_value(c, "killCursors.cursors") for c in ids])


# --- writes -----------------------------------------------------------------------------------


def check_batch(items: list[Any]) -> None:
    if not items or len(items) > MAX_WRITE_BATCH:
        raise MongoError(
            INVALID_LENGTH,
            f"Write batch sizes must be between 1 and {MAX_WRITE_BATCH}. "
            f"Got {len(items)} operations.",
            code_name="InvalidLength",
        )


def parse_stmt_ids(cmd: Mapping[str, Any], name: str, count: int) -> list[int] | None:
    """``stmtIds`` (one per statement, sent by a router) or ``stmtId`` (the first, the rest
    following); None when absent (statement ids are then the statements' positions)."""
    ids = cmd.get("stmtIds")
    if ids is not None:
        if not isinstance(ids, list) or not all(is_number(i) for i in ids):
            raise type_mismatch(f"BSON field '{name}.stmtIds' is the wrong type "
                                f"'{bson_type_name(ids)}', expected type 'array'")
        if len(ids) != count:
            raise MongoError(BAD_VALUE, f"The size of 'stmtIds' ({len(ids)}) does not match "
                             f"the number of statements ({count})")
        return [int64_value(i, f"{name}.stmtIds") for i in ids]
    first = cmd.get("stmtId")
    if first is not None:
        if not is_number(first):
            raise type_mismatch(f"BSON field '{name}.stmtId' is the wrong type "
                                f"'{bson_type_name(first)}', expected type 'int'")
        start = int64_value(first, f"{name}.stmtId")
        int64_value(start + count - 1, f"{name}.stmtId + the number of statements")
        return [start + i for i in range(count)]
    return None


@dataclass(frozen=True)
class InsertRequest:
    db: str
    coll: str
    documents: list[Mapping[str, Any]]
    ordered: bool = True
    stmt_ids: list[int] | None = None
    max_time_ms: int = 0
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False)


def parse_insert(db: str, cmd: Mapping[str, Any]) -> InsertRequest:
    coll = collection_name(cmd, "insert")
    check_fields(cmd, "insert", INSERT_FIELDS)
    check_writable_namespace(db, coll)
    docs = get_list(cmd, "insert", "documents")
    ordered = get_bool(cmd, "insert", "ordered", True)
    check_batch(docs)
    for i, doc in enumerate(docs):
        if not isinstance(doc, Mapping):
            raise type_mismatch(f"BSON field 'insert.documents.{i}' is the wrong type "
                                f"'{bson_type_name(doc)}', expected type 'object'")
    return InsertRequest(db, coll, docs, ordered, parse_stmt_ids(cmd, "insert", len(docs)),
                         parse_max_time_ms(cmd), cmd)


UPDATE_FIELDS = frozenset({"q", "u", "upsert", "multi", "arrayFilters", "collation", "hint",
                           "c", "sort"})
INVALID_OPTIONS = 72


def parse_hint(st: Mapping[str, Any], where: str) -> Any:
    """``hint``: an index name or key pattern (None when absent); whether the index exists is
    checked where the statement runs (BadValue, as a write error of its statement)."""
    hint = st.get("hint")
    if hint is None:
        return None
    if not isinstance(hint, str | Mapping):
        raise type_mismatch(f"BSON field '{where}.hint' is the wrong type "
                            f"'{bson_type_name(hint)}', expected types '[string, object]'")
    return hint if isinstance(hint, str) else dict(hint)


@dataclass(frozen=True)
class UpdateStatement:
    q: Mapping[str, Any]
    u: Mapping[str, Any]
    multi: bool = False
    upsert: bool = False
    array_filters: list[dict[str, Any]] | None = None
    sort: dict[str, Any] | None = None
    """MongoDB 8: which document a one-document update changes when several match."""
    hint: Any = None
    constants: dict[str, Any] | None = None
    """Pipeline-style updates' ``c``: variables of the pipeline."""

    @property
    def is_replacement(self) -> bool:
        if isinstance(self.u, list):
            return False
        return not any(str(k).startswith("$") for k in self.u)

    def to_doc(self) -> dict[str, Any]:
        """The statement as the command (and the log entry) carries it."""
        u: Any = [dict(s) for s in self.u] if isinstance(self.u, list) else dict(self.u)
        out: dict[str, Any] = {"q": dict(self.q), "u": u, "multi": self.multi,
                               "upsert": self.upsert}
        if self.array_filters is not None:
            out["arrayFilters"] = self.array_filters
        if self.constants is not None:
            out["c"] = self.constants
        if self.sort:
            out["sort"] = self.sort
        if self.hint is not None:
            out["hint"] = self.hint
        return out


def parse_array_filters(st: Mapping[str, Any], where: str) -> list[dict[str, Any]] | None:
    """The statement's ``arrayFilters`` (None when absent), type-checked as MongoDB's IDL does;
    the filters themselves are compiled (and refused) when the entry applies, so a bad filter
    is a write error of its statement."""
    filters = st.get("arrayFilters")
    if filters is None:
        return None
    if not isinstance(filters, list):
        raise type_mismatch(f"BSON field '{where}.arrayFilters' is the wrong type "
                            f"'{bson_type_name(filters)}', expected type 'array'")
    for i, f in enumerate(filters):
        if not isinstance(f, Mapping):
            raise type_mismatch(f"BSON field '{where}.arrayFilters.{i}' is the wrong type "
                                f"'{bson_type_name(f)}', expected type 'object'")
    return [dict(f) for f in filters]


def parse_update_statement(i: int, st: Any) -> UpdateStatement:
    if not isinstance(st, Mapping):
        raise type_mismatch(f"BSON field 'update.updates.{i}' is the wrong type "
                            f"'{bson_type_name(st)}', expected type 'object'")
    for key in st:
        if key not in UPDATE_FIELDS:
            raise MongoError(40415, f"BSON field 'update.updates.{key}' is an unknown field.",
                             code_name="Location40415")
    q = get_doc(st, "update.updates", "q")
    u = st.get("u")
    constants = st.get("c")
    if constants is not None and not isinstance(constants, Mapping):
        raise type_mismatch("BSON field 'update.updates.c' is the wrong type "
                            f"'{bson_type_name(constants)}', expected type 'object'")
    if constants is not None and not isinstance(u, list):
        raise MongoError(51198, "'c' (constants) is only allowed with a pipeline-style update",
                         code_name="Location51198")
    if not isinstance(u, Mapping | list):  # a list: a pipeline-style update
        raise type_mismatch("BSON field 'update.updates.u' is the wrong type "
                            f"'{bson_type_name(u)}', expected type 'object'")
    sort = get_doc(st, "update.updates", "sort", None)
    out = UpdateStatement(q, u, get_bool(st, "update.updates", "multi"),  # type: ignore[arg-type]
                          get_bool(st, "update.updates", "upsert"),
                          parse_array_filters(st, "update.updates"),
                          dict(sort) if sort else None, parse_hint(st, "update.updates"),
                          constants=dict(constants) if constants is not None else None)
    if out.multi and sort is not None:
        raise MongoError(INVALID_OPTIONS, "Cannot specify sort with multi=true",
                         code_name="InvalidOptions")
    if out.multi and out.is_replacement and u:
        raise MongoError(FAILED_TO_PARSE, "multi update is not supported for replacement-style "
                         "update")
    return out


@dataclass(frozen=True)
class UpdateRequest:
    db: str
    coll: str
    updates: list[UpdateStatement]
    ordered: bool = True
    stmt_ids: list[int] | None = None
    max_time_ms: int = 0
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False)


def parse_update(db: str, cmd: Mapping[str, Any]) -> UpdateRequest:
    coll = collection_name(cmd, "update")
    check_fields(cmd, "update", UPDATE_FIELDS_CMD)
    check_writable_namespace(db, coll)
    updates = get_list(cmd, "update", "updates")
    check_batch(updates)
    ordered = get_bool(cmd, "update", "ordered", True)
    statements = [parse_update_statement(i, st) for i, st in enumerate(updates)]
    return UpdateRequest(db, coll, statements, ordered,
                         parse_stmt_ids(cmd, "update", len(statements)),
                         parse_max_time_ms(cmd), cmd)


@dataclass(frozen=True)
class DeleteStatement:
    q: Mapping[str, Any]
    limit: int
    hint: Any = None

    def to_doc(self) -> dict[str, Any]:
        out: dict[str, Any] = {"q": dict(self.q), "limit": self.limit}
        if self.hint is not None:
            out["hint"] = self.hint
        return out


DELETE_STATEMENT_FIELDS = frozenset({"q", "limit", "hint", "collation", "sampleId"})


def parse_delete_statement(i: int, st: Any) -> DeleteStatement:
    if not isinstance(st, Mapping):
        raise type_mismatch(f"BSON field 'delete.deletes.{i}' is the wrong type "
                            f"'{bson_type_name(st)}', expected type 'object'")
    for key in st:
        if key not in DELETE_STATEMENT_FIELDS:
            raise MongoError(40415, f"BSON field 'delete.deletes.{key}' is an unknown field.",
                             code_name="Location40415")
    q = get_doc(st, "delete.deletes", "q")
    if "limit" not in st:
        raise MongoError(40414, "BSON field 'delete.deletes.limit' is missing but a required "
                         "field", code_name="Location40414")
    limit = st["limit"]
    if not is_number(limit) or limit not in (0, 1):
        raise MongoError(FAILED_TO_PARSE, f"The limit field in delete objects must be 0 or 1. "
                         f"Got {limit}")
    return DeleteStatement(q, int(limit), parse_hint(st, "delete.deletes"))


@dataclass(frozen=True)
class DeleteRequest:
    db: str
    coll: str
    deletes: list[DeleteStatement]
    ordered: bool = True
    stmt_ids: list[int] | None = None
    max_time_ms: int = 0
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False)


def parse_delete(db: str, cmd: Mapping[str, Any]) -> DeleteRequest:
    coll = collection_name(cmd, "delete")
    check_fields(cmd, "delete", DELETE_FIELDS)
    check_writable_namespace(db, coll)
    deletes = get_list(cmd, "delete", "deletes")
    check_batch(deletes)
    ordered = get_bool(cmd, "delete", "ordered", True)
    statements = [parse_delete_statement(i, st) for i, st in enumerate(deletes)]
    return DeleteRequest(db, coll, statements, ordered,
                         parse_stmt_ids(cmd, "delete", len(statements)),
                         parse_max_time_ms(cmd), cmd)


def _update_doc(update: Any) -> Any:
    if update is None:
        return None
    return [dict(s) for s in update] if isinstance(update, list) else dict(update)


@dataclass(frozen=True)
class FindAndModifyRequest:
    db: str
    coll: str
    query: Mapping[str, Any]
    sort: Mapping[str, Any]
    fields: Mapping[str, Any] | None
    remove: bool
    new: bool
    upsert: bool
    update: Mapping[str, Any] | list[Mapping[str, Any]] | None
    """A modifier or replacement document, or a pipeline-style update (a list of stages)."""
    array_filters: list[dict[str, Any]] | None = None
    stmt_id: int | None = None
    max_time_ms: int = 0
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False)
    hint: Any = None

    def to_entry_fields(self) -> dict[str, Any]:
        """The fields a findAndModify log entry carries (besides op/db/coll)."""
        out: dict[str, Any] = {
            "query": dict(self.query), "sort": dict(self.sort),
            "fields": dict(self.fields) if self.fields is not None else None,
            "remove": self.remove, "new": self.new, "upsert": self.upsert,
            "update": _update_doc(self.update),
        }
        if self.array_filters is not None:
            out["arrayFilters"] = self.array_filters
        if self.hint is not None:
            out["hint"] = self.hint
        return out


def parse_find_and_modify(db: str, cmd: Mapping[str, Any]) -> FindAndModifyRequest:
    name = next(iter(cmd))
    coll = collection_name(cmd, name)
    check_fields(cmd, name, FIND_AND_MODIFY_FIELDS)
    check_writable_namespace(db, coll)
    query = get_doc(cmd, name, "query", {})
    sort = get_doc(cmd, name, "sort", {})
    fields = get_doc(cmd, name, "fields", None)
    remove = get_bool(cmd, name, "remove")
    new = get_bool(cmd, name, "new")
    upsert = get_bool(cmd, name, "upsert")
    upd = cmd.get("update")
    array_filters = parse_array_filters(cmd, name)
    if remove:
        if upd is not None:
            raise MongoError(FAILED_TO_PARSE, "Cannot specify both an update and remove=true")
        if upsert:
            raise MongoError(FAILED_TO_PARSE, "Cannot specify both upsert=true and remove=true")
        if new:
            raise MongoError(FAILED_TO_PARSE, "Cannot specify both new=true and remove=true; "
                             "'remove' always returns the deleted document")
        if array_filters is not None:
            raise MongoError(FAILED_TO_PARSE, "Cannot specify arrayFilters and remove=true")
    else:
        if upd is None:
            raise MongoError(FAILED_TO_PARSE, "Either an update or remove=true must be "
                             "specified")
        if isinstance(upd, list):  # a pipeline-style update (stages checked as update's)
            for i, stage in enumerate(upd):
                if not isinstance(stage, Mapping):
                    raise type_mismatch(f"BSON field '{name}.update.{i}' is the wrong type "
                                        f"'{bson_type_name(stage)}', expected type 'object'")
        elif not isinstance(upd, Mapping):
            raise type_mismatch("BSON field 'findAndModify.update' is the wrong type "
                                f"'{bson_type_name(upd)}', expected type 'object'")
    if fields:  # checked here too, so a router refuses it even when nothing matches
        Projection(fields)
    ids = parse_stmt_ids(cmd, name, 1)
    return FindAndModifyRequest(db, coll, query, sort, fields, remove, new, upsert,
                                upd if isinstance(upd, Mapping | list) else None,
                                array_filters,
                                ids[0] if ids else None, parse_max_time_ms(cmd), cmd,
                                parse_hint(cmd, name))
