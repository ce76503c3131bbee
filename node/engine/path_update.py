"""Write-side dotted paths: set (creating intermediate documents), unset.

Unlike the read side (``paths.py``), writes never fan out over arrays implicitly: a numeric
component addresses an array element (``"emails.0.email"``), anything else addresses a field,
and a path that runs into a scalar (or a non-numeric component into an array) is rejected with
MongoDB's PathNotViable error (exact reads use :func:`node.engine.paths.lookup`). Also here:
splitting/validating update paths, expanding the positional ``$``, all-positional ``$[]`` and
filtered positional ``$[<identifier>]`` components into concrete paths, checking field names for
storage, and rendering values the way MongoDB's error messages print them.
"""

from __future__ import annotations

import datetime
import math
import re
from collections.abc import Callable, Mapping
from typing import Any

from bson.dbref import DBRef
from bson.decimal128 import Decimal128
from bson.int64 import Int64
from bson.objectid import ObjectId
from bson.regex import Regex

from node.engine.errors import (
    bad_value,
    dollar_prefixed_field_name,
    dotted_field_name,
    empty_field_name,
    invalid_id_field,
    path_not_viable,
)
from node.engine.limits import MAX_USER_DEPTH, update_too_deep
from node.engine.paths import array_index, lookup
from node.engine.values import MISSING

POSITIONAL = "$"
ALL_POSITIONAL = "$[]"


def is_array_filter(part: str) -> bool:
    """Whether ``part`` is ``$[]`` or ``$[<identifier>]`` (what MongoDB calls an array filter
    identifier; the identifier of ``$[]`` is empty)."""
    return len(part) >= 3 and part[0] == "$" and part[1] == "[" and part[-1] == "]"


def is_positional_part(part: str) -> bool:
    """Whether ``part`` is ``$``, ``$[]`` or ``$[<identifier>]``."""
    return part == POSITIONAL or is_array_filter(part)


def split_update_path(path: str) -> list[str]:
    """The components of an update path, rejecting empty ones as MongoDB does (code 56)."""
    if path == "":
        raise empty_field_name("An empty update path is not valid.")
    parts = path.split(".")
    if any(p == "" for p in parts):
        raise empty_field_name(
            f"The update path '{path}' contains an empty field name, which is not allowed."
        )
    if len(parts) > MAX_USER_DEPTH:  # every document it could write is nested too deeply
        raise update_too_deep()
    return parts


def _not_viable(part: str, name: str, value: Any) -> Exception:
    return path_not_viable(
        f"Cannot create field '{part}' in element {{{name}: {format_value(value)}}}"
    )


def set_value(doc: dict[str, Any], parts: list[str], value: Any) -> None:
    """Store ``value`` at ``parts`` in ``doc`` (mutated), creating intermediate documents.

    A numeric component past the end of an array pads it with nulls, as MongoDB does.
    """
    cur: Any = doc
    name = ""
    for depth, part in enumerate(parts):
        last = depth == len(parts) - 1
        if isinstance(cur, dict):
            if last:
                cur[part] = value
                return
            nxt = cur.get(part, MISSING)
            if nxt is MISSING:
                nxt = cur[part] = {}
        elif isinstance(cur, list):
            index = array_index(part)
            if index is None:
                raise _not_viable(part, name, cur)
            i = index
            if i >= len(cur):
                cur.extend([None] * (i - len(cur) + 1))
                if not last:
                    cur[i] = {}
            if last:
                cur[i] = value
                return
            nxt = cur[i]
        else:  # pragma: no cover - the loop never descends into scalars
            raise _not_viable(part, name, cur)
        if isinstance(nxt, DBRef):  # update inside a DBRef: it becomes the document it is
            nxt = dict(nxt.as_doc())
            cur[part if isinstance(cur, dict) else i] = nxt
        if not isinstance(nxt, dict | list):
            raise _not_viable(parts[depth + 1], part, nxt)
        cur = nxt
        name = part


def unset_value(doc: dict[str, Any], parts: list[str]) -> bool:
    """Remove the field at ``parts`` (an array element becomes null); ``True`` if it existed."""
    parent = lookup(doc, parts[:-1]) if len(parts) > 1 else doc
    last = parts[-1]
    if isinstance(parent, dict):
        if last in parent:
            del parent[last]
            return True
        return False
    index = array_index(last)
    if isinstance(parent, list) and index is not None and index < len(parent):
        parent[index] = None
        return True
    return False


def expand_positional(
    doc: Any,
    parts: list[str],
    position: int | None,
    *,
    is_insert: bool = False,
    filters: Mapping[str, Callable[[Any], bool]] | None = None,
) -> list[list[str]]:
    """Concrete paths for ``parts``: ``$`` becomes the query's matched index, ``$[]`` every index,
    ``$[<id>]`` every index whose element ``filters[id]`` accepts (the array filters).

    Raises BadValue (code 2) as MongoDB does when ``$`` has no match from the query, or when
    ``$[]``/``$[<id>]`` meets a missing or non-array field.
    """
    if not any(is_positional_part(p) for p in parts):
        return [parts]
    results: list[list[str]] = [[]]
    used_positional = False
    for part in parts:
        if part == POSITIONAL and not used_positional:
            used_positional = True
            if position is None or is_insert:
                raise bad_value(
                    "The positional operator did not find the match needed from the query."
                )
            results = [[*r, str(position)] for r in results]
        elif is_array_filter(part):
            identifier = part[2:-1]
            accepts = filters[identifier] if identifier else None
            expanded: list[list[str]] = []
            for r in results:
                array = lookup(doc, r)
                if array is MISSING:
                    raise bad_value(
                        f"The path '{'.'.join(r)}' must exist in the document "
                        "in order to apply array updates."
                    )
                if not isinstance(array, list):
                    raise bad_value(
                        "Cannot apply array updates to non-array element "
                        f"{r[-1] if r else ''}: {format_value(array)}"
                    )
                expanded.extend(
                    [*r, str(i)]
                    for i, element in enumerate(array)
                    if accepts is None or accepts(element)
                )
            results = expanded
        else:
            results = [[*r, part] for r in results]
    return results


def format_value(v: Any) -> str:
    """A value rendered roughly as MongoDB prints BSON in error messages."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if v is None or v is MISSING:
        return "null"
    if isinstance(v, Int64):
        return str(int(v))
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isfinite(v) and v == int(v) and abs(v) < 1e16:
            return f"{v:.1f}"
        return repr(v)
    if isinstance(v, Decimal128):
        return f'NumberDecimal("{v}")'
    if isinstance(v, str):
        return '"' + v.replace('"', '\\"') + '"'
    if isinstance(v, Mapping):
        if not v:
            return "{}"
        return "{ " + ", ".join(f"{k}: {format_value(x)}" for k, x in v.items()) + " }"
    if isinstance(v, list | tuple):
        if not v:
            return "[]"
        return "[ " + ", ".join(format_value(x) for x in v) + " ]"
    if isinstance(v, ObjectId):
        return f"ObjectId('{v}')"
    if isinstance(v, datetime.datetime):
        return f"new Date({v.isoformat()})"
    if isinstance(v, Regex | re.Pattern):
        return f"/{v.pattern}/"
    return str(v)


def format_id(doc: Mapping[str, Any]) -> str:
    """``{_id: <value>}`` as MongoDB quotes the document in update error messages."""
    return "{" + f"_id: {format_value(doc.get('_id'))}" + "}"


_DBREF_FIELDS = frozenset({"$ref", "$id", "$db"})
_LEAVES = frozenset({str, int, float, bool, type(None), bytes, datetime.datetime})


def check_storable(doc: Mapping[str, Any], *, for_insert: bool = False) -> None:
    """Reject field names MongoDB will not store (``$``-prefixed or dotted) and bad ``_id`` values.

    ``$ref``/``$id``/``$db`` (DBRef fields) are allowed. Errors: code 52 DollarPrefixedFieldName,
    57 DottedFieldName; an array or regex ``_id`` gives code 2 on insert (MongoDB's insert
    message) and 53 InvalidIdField after an update.
    """
    if "_id" in doc:
        _check_id(doc["_id"], for_insert=for_insert)
    _check_names(doc, "")


def _check_id(value: Any, *, for_insert: bool) -> None:
    if isinstance(value, list | tuple):
        kind = "array"
    elif isinstance(value, Regex | re.Pattern):
        kind = "regex"
    else:
        return
    if for_insert:
        raise bad_value(f"can't use {'an array' if kind == 'array' else 'a regex'} for _id")
    raise invalid_id_field(f"The '_id' value cannot be of type {kind}")


def _check_names(value: Any, prefix: str) -> None:
    if type(value) is dict or isinstance(value, Mapping):
        for key, sub in value.items():
            path = f"{prefix}{key}"
            if key.startswith("$") and key not in _DBREF_FIELDS:
                raise dollar_prefixed_field_name(
                    f"The dollar ($) prefixed field '{key}' in '{path}' is not valid for storage."
                )
            if "." in key:
                raise dotted_field_name(
                    f"The dotted field '{key}' in '{path}' is not valid for storage."
                )
            if type(sub) not in _LEAVES and isinstance(sub, Mapping | list):
                _check_names(sub, path + ".")
    elif isinstance(value, list):
        for i, sub in enumerate(value):
            if type(sub) not in _LEAVES and isinstance(sub, Mapping | list):
                _check_names(sub, f"{prefix}{i}.")
