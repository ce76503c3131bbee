"""Typed access to command fields, raising MongoDB's errors for missing or mistyped fields.

MongoDB's IDL parser answers a wrong type with TypeMismatch (14) ``BSON field 'insert.documents'
is the wrong type 'int', expected type 'array'`` and a missing required field with
Location40414 ``BSON field 'insert.documents' is missing but a required field``; the helpers here
give the same answers so handlers can stay short.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bson import Int64

from node.engine.errors import MongoError, type_mismatch

_MISSING = object()

_TYPE_NAMES: list[tuple[type, str]] = [
    (bool, "bool"),
    (Int64, "long"),
    (int, "int"),
    (float, "double"),
    (str, "string"),
    (Mapping, "object"),
    (list, "array"),
    (bytes, "binData"),
    (type(None), "null"),
]


def bson_type_name(value: Any) -> str:
    """MongoDB's alias for the BSON type of ``value`` (``int``, ``string``, ``object`` ...)."""
    for cls, name in _TYPE_NAMES:
        if isinstance(value, cls):
            return name
    return type(value).__name__


def _wrong(cmd_name: str, field: str, value: Any, expected: str) -> MongoError:
    return type_mismatch(
        f"BSON field '{cmd_name}.{field}' is the wrong type '{bson_type_name(value)}', "
        f"expected type '{expected}'"
    )


def missing(cmd_name: str, field: str) -> MongoError:
    """Location40414: a required field is absent."""
    return MongoError(40414, f"BSON field '{cmd_name}.{field}' is missing but a required field")


def is_number(value: Any) -> bool:
    """True for int/long/double (bool excluded)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1


def fits_int64(value: Any) -> bool:
    """A number (bool excluded) that is a finite value inside the signed 64-bit range: what
    MongoDB accepts where a field holds a ``long`` (a double is truncated toward zero)."""
    if not is_number(value):
        return False
    if isinstance(value, float):
        # NaN fails both comparisons; 2**63 itself is the first double past the range
        return -(2.0**63) <= value < 2.0**63
    return INT64_MIN <= value <= INT64_MAX


def int64_value(value: Any, what: str) -> int:
    """``value`` (already known to be a number) as a Python int, or BadValue (2) for NaN,
    infinities and numbers outside the signed 64-bit range, which MongoDB cannot hold in a
    ``long`` and which Python's ``int()`` would either crash on or turn into a huge integer
    that no BSON encoder (log entry, reply) accepts."""
    if not fits_int64(value):
        raise MongoError(2, f"{what} must be a finite number in the 64-bit integer range, "
                         f"not {value!r}", code_name="BadValue")
    return int(value)


def get_str(cmd: Mapping[str, Any], cmd_name: str, field: str, default: Any = _MISSING) -> Any:
    value = cmd.get(field, _MISSING)
    if value is _MISSING:
        if default is _MISSING:
            raise missing(cmd_name, field)
        return default
    if not isinstance(value, str):
        raise _wrong(cmd_name, field, value, "string")
    return value


def get_doc(
    cmd: Mapping[str, Any], cmd_name: str, field: str, default: Any = _MISSING
) -> Any:
    value = cmd.get(field, _MISSING)
    if value is _MISSING or (value is None and default is not _MISSING):
        if default is _MISSING:
            raise missing(cmd_name, field)
        return default
    if not isinstance(value, Mapping):
        raise _wrong(cmd_name, field, value, "object")
    return value


def get_list(
    cmd: Mapping[str, Any], cmd_name: str, field: str, default: Any = _MISSING
) -> Any:
    value = cmd.get(field, _MISSING)
    if value is _MISSING:
        if default is _MISSING:
            raise missing(cmd_name, field)
        return default
    if not isinstance(value, list):
        raise _wrong(cmd_name, field, value, "array")
    return value


def get_bool(cmd: Mapping[str, Any], cmd_name: str, field: str, default: bool = False) -> bool:
    value = cmd.get(field, _MISSING)
    if value is _MISSING or value is None:
        return default
    if isinstance(value, bool):
        return value
    if is_number(value):
        return bool(value)
    raise _wrong(cmd_name, field, value, "bool")


def get_int(cmd: Mapping[str, Any], cmd_name: str, field: str, default: Any = _MISSING) -> Any:
    value = cmd.get(field, _MISSING)
    if value is _MISSING or value is None:
        if default is _MISSING:
            raise missing(cmd_name, field)
        return default
    if not is_number(value):
        raise _wrong(cmd_name, field, value, "long")
    return int64_value(value, f"BSON field '{cmd_name}.{field}'")


def get_nonneg_int(
    cmd: Mapping[str, Any], cmd_name: str, field: str, default: Any = _MISSING
) -> Any:
    value = get_int(cmd, cmd_name, field, default)
    if value is not None and value < 0:
        raise MongoError(
            51024, f"BSON field '{field}' value must be >= 0, actual value '{value}'"
        )
    return value


def collection_name(cmd: Mapping[str, Any], cmd_name: str) -> str:
    """The collection a command names in its first field, validated like MongoDB does."""
    value = cmd.get(cmd_name)
    if not isinstance(value, str):
        raise MongoError(
            73,
            f"collection name has invalid type {bson_type_name(value)}",
            code_name="InvalidNamespace",
        )
    check_collection_name(value)
    return value


def check_collection_name(name: str) -> None:
    """InvalidNamespace (73) for names MongoDB refuses."""
    if not name:
        raise MongoError(73, "Invalid namespace specified: collection name is empty")
    if "\x00" in name or name.startswith(".") or name.endswith(".") or "$" in name:
        raise MongoError(73, f"Invalid collection name: {name}")


MAX_NS_BYTES = 255
WRITABLE_SYSTEM = frozenset({"system.js", "system.profile"})
WRITABLE_ADMIN_SYSTEM = frozenset({"system.users", "system.roles", "system.version"})


def check_writable_namespace(db: str, coll: str) -> None:
    """InvalidNamespace (73) for a write MongoDB refuses before touching anything: a namespace
    longer than 255 bytes, or a ``system.`` collection clients may not write."""
    ns = f"{db}.{coll}"
    if len(ns.encode()) > MAX_NS_BYTES:
        raise MongoError(73, f"Fully qualified namespace is too long. Namespace: {ns} "
                         f"Max: {MAX_NS_BYTES}", code_name="InvalidNamespace")
    if coll.startswith("system.") and coll not in WRITABLE_SYSTEM and not (
            db == "admin" and coll in WRITABLE_ADMIN_SYSTEM):
        raise MongoError(73, f"cannot write to '{ns}'", code_name="InvalidNamespace")


_BAD_DB_NAME_CHARS = frozenset('/\\. "$\x00*<>:|?')


def check_db_name(name: str) -> None:
    """InvalidNamespace (73) for database names MongoDB refuses."""
    if not name or len(name) >= 64 or not _BAD_DB_NAME_CHARS.isdisjoint(name):
        raise MongoError(73, f"Invalid database name: '{name}'")
