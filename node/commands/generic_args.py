"""Generic command arguments every command may carry: ``writeConcern``, ``readConcern`` and
``comment``, checked once for every command (node and router alike, from the dispatcher) as
MongoDB 8 checks them, before any handler runs.

One table per argument says which commands take it and how:

* :data:`NO_WRITE_CONCERN`: commands that never write refuse a ``writeConcern`` with
  InvalidOptions (72) "Command does not support writeConcern".
* :data:`READ_CONCERN_LEVELS`: per command, the ``readConcern`` levels it accepts outside a
  transaction (absent from the table: ``local`` only, plus ``available`` and ``majority`` for
  reads); ``snapshot`` where MongoDB refuses it answers 72 "read concern snapshot not
  supported".
* ``comment`` may be any BSON value on every command (MongoDB 4.4+): never refused.

:func:`parse_write_concern_fields` is the write concern document's parser (MongoDB's
``WriteConcernIdl``); :func:`node.commands.member.parse_write_concern` builds the
:class:`~node.commands.member.WriteConcern` a write waits for from its answer.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from node.commands.args import bson_type_name, is_number
from node.engine.errors import (
    FAILED_TO_PARSE,
    INVALID_OPTIONS,
    MongoError,
    type_mismatch,
)

MAX_W = 50
"""MongoDB's ``ReplSetConfig::kMaxMembers``: the largest ``w`` it parses."""
INT32_MAX = 2**31 - 1

READ_LEVELS = frozenset({"local", "majority", "linearizable", "available", "snapshot"})

NO_WRITE_CONCERN = frozenset({
    "find", "count", "distinct", "getMore", "killCursors", "listIndexes", "listCollections",
    "listDatabases", "dbStats", "collStats", "hello", "isMaster", "ismaster", "ping",
    "buildInfo", "serverStatus",
})
"""Commands that never write: a ``writeConcern`` on them is InvalidOptions (72)."""

_READS = frozenset({"local", "majority", "linearizable", "available"})
READ_CONCERN_LEVELS: dict[str, frozenset[str]] = {
    "find": READ_LEVELS,  # MongoDB 5.0+: snapshot reads outside transactions
    "aggregate": READ_LEVELS,
    "distinct": READ_LEVELS,
    "count": _READS,
    "getMore": READ_LEVELS,  # the cursor's own read concern applies (drivers' snapshot
    "killCursors": READ_LEVELS,  # sessions send theirs with every command): ignored
    "listIndexes": frozenset({"local"}),
    "listCollections": frozenset({"local"}),
}
"""Levels each command accepts; a command not listed accepts ``local`` (and no level)."""

GENERIC_FIELDS = frozenset({
    "$db", "lsid", "txnNumber", "autocommit", "startTransaction", "stmtId", "stmtIds",
    "$clusterTime", "$readPreference", "$secondaryOk", "readConcern", "writeConcern",
    "maxTimeMS", "comment", "apiVersion", "apiStrict", "apiDeprecationErrors",
    "clientOperationKey", "shardVersion", "databaseVersion", "txnRetryCounter",
    "mayBypassWriteBlocking", "$audit", "$client", "$configServerState", "$queryOptions",
    "allowImplicitCollectionCreation", "$local",
})
"""Fields any command may carry (MongoDB's generic arguments, and Helogale's own ``$local``):
a command that refuses unknown fields (``getMore``) accepts these."""

_WC_IGNORED = frozenset({"wElectionId", "wOpTime", "getLastError", "provenance"})


@dataclass(frozen=True)
class WriteConcernFields:
    """A parsed ``writeConcern`` document: ``w`` (None: the default), ``wtimeout`` in ms,
    ``j`` (None: unset; ``fsync: true`` counts as ``j: true``)."""

    w: int | str | dict[str, int] | None = None
    wtimeout_ms: int = 0
    j: bool | None = None


def _safe_bool(spec: Mapping[str, Any], name: str) -> bool | None:
    """MongoDB's ``safeBool``: a bool or any number; null is unset; other types 14."""
    value = spec.get(name)
    if value is None:
        return None
    if isinstance(value, bool):
        return value
    if is_number(value):
        return bool(value)
    raise type_mismatch(f"BSON field 'writeConcern.{name}' is the wrong type "
                        f"'{bson_type_name(value)}', expected types '[bool, long, int, "
                        "decimal, double]'")


def _safe_long(value: float) -> int:
    """MongoDB's ``safeNumberLong``: NaN 0, doubles truncated toward zero and saturated."""
    if isinstance(value, float):
        if math.isnan(value):
            return 0
        if math.isinf(value) or abs(value) >= 2.0**63:
            return 2**63 - 1 if value > 0 else -(2**63)
        return int(value)
    return int(value)


def _parse_w(raw: Any) -> int | str | dict[str, int] | None:
    if raw is None:  # absent, null (and undefined): the default, as MongoDB does
        return None
    if is_number(raw):
        if isinstance(raw, float) and math.isnan(raw):
            raise MongoError(FAILED_TO_PARSE, "w cannot be NaN")
        w = _safe_long(raw)
        if w < 0 or w > MAX_W:
            raise MongoError(FAILED_TO_PARSE, "w has to be a non-negative number and not "
                             f"greater than {MAX_W}; found: {w}")
        return w
    if isinstance(raw, str):
        return raw
    if isinstance(raw, Mapping):
        if not raw:
            raise MongoError(FAILED_TO_PARSE, "tagged write concern requires tags")
        tags: dict[str, int] = {}
        for key, value in raw.items():
            if not is_number(value):
                raise MongoError(FAILED_TO_PARSE, "tags must be a single level document with "
                                 f"only number values; found: {key}: {value!r}")
            tags[str(key)] = _safe_long(value)
        return tags
    raise MongoError(FAILED_TO_PARSE, "w has to be a number, string, or object; found: "
                     + bson_type_name(raw))


def parse_write_concern_fields(spec: Any) -> WriteConcernFields | None:
    """The command's ``writeConcern`` as MongoDB's parser reads it; None when absent (or
    ``{}``/null, which mean the default). Unknown fields 40415; ``w`` of a wrong type, NaN,
    negative or over 50, ``wtimeout`` over 2^31-1 and ``j`` with ``fsync`` are FailedToParse
    (9); a non-numeric ``wtimeout`` is ignored as MongoDB ignores it."""
    if spec is None:
        return None
    if not isinstance(spec, Mapping):
        raise type_mismatch(f"BSON field 'writeConcern' is the wrong type "
                            f"'{bson_type_name(spec)}', expected type 'object'")
    if not spec:
        return None
    for key in spec:
        if key not in ("w", "j", "fsync", "wtimeout") and key not in _WC_IGNORED:
            raise MongoError(40415, f"BSON field 'writeConcern.{key}' is an unknown field.",
                             code_name="Location40415")
    w = _parse_w(spec.get("w"))
    j = _safe_bool(spec, "j")
    fsync = _safe_bool(spec, "fsync")
    if j and fsync:
        raise MongoError(FAILED_TO_PARSE, "fsync and j options cannot be used together")
    raw_timeout = spec.get("wtimeout")
    wtimeout = _safe_long(raw_timeout) if is_number(raw_timeout) else 0
    if wtimeout > INT32_MAX:
        raise MongoError(FAILED_TO_PARSE, "wtimeout must be a 32-bit integer")
    return WriteConcernFields(w, wtimeout, True if fsync and j is None else j)


def check_read_concern(name: str, cmd: Mapping[str, Any]) -> str | None:
    """The command's ``readConcern`` level (None when absent), checked as MongoDB's
    ``ReadConcernArgs`` does and against what the command supports."""
    spec = cmd.get("readConcern")
    if spec is None:
        return None
    if not isinstance(spec, Mapping):
        raise MongoError(FAILED_TO_PARSE, "readConcern field should be an object")
    level: str | None = None
    for key, value in spec.items():
        if key == "level":
            if not isinstance(value, str):
                raise type_mismatch(f"\"level\" had the wrong type. Expected string, found "
                                    f"{bson_type_name(value)}")
            if value not in READ_LEVELS:
                raise MongoError(FAILED_TO_PARSE, "readConcern.level must be either 'local', "
                                 "'majority', 'linearizable', 'available', or 'snapshot'")
            level = value
        elif key in ("afterClusterTime", "atClusterTime"):
            if type(value).__name__ != "Timestamp":
                raise type_mismatch(f"\"{key}\" had the wrong type. Expected timestamp, "
                                    f"found {bson_type_name(value)}")
        elif key not in ("afterOpTime", "provenance", "$_allowTransactionTableSnapshot"):
            raise MongoError(INVALID_OPTIONS, f"Unrecognized option in readConcern: {key}")
    if "atClusterTime" in spec and level != "snapshot":
        raise MongoError(INVALID_OPTIONS, "atClusterTime field can be set only if level is "
                         "equal to snapshot")
    if "afterClusterTime" in spec and level not in (None, "local", "majority", "snapshot"):
        raise MongoError(INVALID_OPTIONS, "afterClusterTime field can be set only if level "
                         "is equal to majority, local, or snapshot")
    if level is None or level == "local":
        return level
    allowed = READ_CONCERN_LEVELS.get(name)
    if allowed is None or level not in allowed:
        if level == "snapshot":
            raise MongoError(INVALID_OPTIONS, "read concern snapshot not supported")
        if name in NO_WRITE_CONCERN or allowed is not None:
            raise MongoError(INVALID_OPTIONS, f"Command {name} does not support {{ "
                             f"readConcern: {{ level: \"{level}\" }} }}")
    return level


def check_generic_args(name: str, cmd: Mapping[str, Any]) -> None:
    """Refuse a command whose generic arguments MongoDB would refuse (see the module doc)."""
    wc = cmd.get("writeConcern")
    if wc is not None:
        parse_write_concern_fields(wc)
        if name in NO_WRITE_CONCERN:
            raise MongoError(INVALID_OPTIONS, "Command does not support writeConcern")
    check_read_concern(name, cmd)
