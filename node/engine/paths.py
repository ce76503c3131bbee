"""Dotted-path traversal, read side: the values a path reaches in a document.

MongoDB resolves ``"a.b.c"`` with *implicit array traversal*: when a path component meets an
array, the rest of the path is applied to every element that is a document; a numeric component
(``"emails.0.email"``) also indexes the array directly. Elements that are neither documents nor
indexed by a numeric component contribute nothing (``{"a": [5, {"b": 1}]}`` reaches only ``1``
through ``"a.b"``), while a missing field or a scalar met mid-path gives :data:`MISSING`.

Two flavours serve two consumers:

* :func:`iter_path` -- for the matcher: ``(value, position)`` pairs, un-expanded leaf arrays,
  ``position`` being the index in the *first* array the path went through (positional ``$``).
* :func:`key_values` -- for sort keys and index keys: leaf arrays unwound one level and every
  array element that cannot continue the path contributes ``MISSING`` (null).

Also :func:`lookup` (strict, no array expansion except numeric components) for the
``_id``-style single value reads.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from bson.dbref import DBRef

from node.engine.values import MISSING, UNDEFINED

Parts = tuple[str, ...]


def split_path(path: str) -> Parts:
    """``"a.b.0"`` -> ``("a", "b", "0")``."""
    return tuple(path.split("."))


def array_index(component: str) -> int | None:
    """The array index a path component names (``"0"``, ``"12"``), or ``None``.

    Like MongoDB, only plain decimal digits without a leading zero count (``"01"`` is a field name).
    """
    if component.isascii() and component.isdigit() and (component == "0" or component[0] != "0"):
        return int(component)
    return None


def _as_parts(path: str | Sequence[str]) -> Parts:
    return split_path(path) if isinstance(path, str) else tuple(path)


def iter_path(
    doc: Any, path: str | Sequence[str], position: int | None = None
) -> Iterator[tuple[Any, int | None]]:
    """The values ``path`` reaches in ``doc`` with their first-array position (for matching).

    Leaf arrays are yielded whole (callers expand them); a missing field yields ``MISSING``.
    """
    yield from _walk(doc, _as_parts(path), 0, position)


def _walk(value: Any, parts: Parts, i: int, pos: int | None) -> Iterator[tuple[Any, int | None]]:
    if i == len(parts):
        yield value, pos
        return
    name = parts[i]
    if isinstance(value, DBRef):  # a DBRef is the document {$ref, $id[, $db]} it is stored as
        value = value.as_doc()
    if isinstance(value, Mapping):
        child = value.get(name, MISSING)
        if child is MISSING:
            yield MISSING, pos
        else:
            yield from _walk(child, parts, i + 1, pos)
        return
    if isinstance(value, list | tuple):
        index = array_index(name)
        if index is not None and index < len(value):
            # reaching an element by its index is no implicit traversal: no position (as
            # MongoDB, which never gives '$' the offset a query named)
            yield from _walk(value[index], parts, i + 1, pos)
        for k, element in enumerate(value):
            # with a numeric component, only element documents having that field are followed
            if isinstance(element, Mapping) and (index is None or name in element):
                yield from _walk(element, parts, i, k if pos is None else pos)
        return
    yield MISSING, pos


def path_values(doc: Any, path: str | Sequence[str]) -> list[Any]:
    """The values ``path`` reaches (leaf arrays not expanded), without positions."""
    return [v for v, _ in _walk(doc, _as_parts(path), 0, None)]


def key_values(doc: Any, path: str | Sequence[str]) -> list[Any]:
    """The values a sort key or an index key takes at ``path``.

    Leaf arrays are unwound one level and an empty leaf array gives ``UNDEFINED`` (MongoDB's key
    for ``[]``, below null); array elements that cannot continue the path, missing fields and
    scalars met mid-path contribute ``MISSING``.
    """
    out: list[Any] = []
    _keys(doc, _as_parts(path), 0, out)
    return out


def _keys(value: Any, parts: Parts, i: int, out: list[Any]) -> None:
    if i == len(parts):
        if isinstance(value, list | tuple):
            if value:
                out.extend(value)
            else:
                out.append(UNDEFINED)
        else:
            out.append(value)
        return
    name = parts[i]
    if isinstance(value, DBRef):
        value = value.as_doc()
    if isinstance(value, Mapping):
        _keys(value.get(name, MISSING), parts, i + 1, out)
        return
    if isinstance(value, list | tuple):
        index = array_index(name)
        if index is not None:
            _keys(value[index] if index < len(value) else MISSING, parts, i + 1, out)
            return
        if not value:
            out.append(MISSING)
            return
        for element in value:
            if isinstance(element, Mapping):
                _keys(element, parts, i, out)
            else:
                out.append(MISSING)
        return
    out.append(MISSING)


def lookup(doc: Any, path: str | Sequence[str]) -> Any:
    """The single value at ``path`` following documents and numeric array indexes only.

    Returns ``MISSING`` when the path does not lead to a value that way (no implicit array
    traversal): ``lookup({"a": [{"b": 1}]}, "a.0.b") == 1`` but ``lookup(..., "a.b")`` is MISSING.
    """
    value = doc
    for name in _as_parts(path):
        if isinstance(value, DBRef):
            value = value.as_doc()
        if isinstance(value, Mapping):
            value = value.get(name, MISSING)
            if value is MISSING:
                return MISSING
        elif isinstance(value, list | tuple):
            index = array_index(name)
            if index is None or index >= len(value):
                return MISSING
            value = value[index]
        else:
            return MISSING
    return value
