"""MongoDB's nesting limits, and the checks that enforce them without recursing.

* :data:`MAX_BSON_DEPTH` (200, MongoDB's ``BSONDepth::kDefaultMaxAllowableDepth``): no BSON a
  client sends may nest deeper; the transports check the raw bytes (:func:`bson_too_deep`)
  before decoding and answer Overflow (15) "BSONObj exceeds maximum nested object depth".
* :data:`MAX_USER_DEPTH` (180, ``getMaxDepthForUserStorage()``: 200 less 20 levels kept for
  the system): a stored document may not nest deeper. An insert past it fails with Overflow
  "cannot insert document because it exceeds 180 levels of nesting", an update whose result is
  past it with Overflow "Document exceeds maximum nesting depth of 180". (MongoDB's manual says
  100; the server's actual limit, kept here, is 180.)
* :data:`MAX_QUERY_DEPTH` (100, ``MatchExpressionParser::kMaximumTreeDepth``): a query may nest
  ``$and``/``$or``/``$nor``/``$elemMatch``/``$not`` at most that deep (BadValue otherwise).

Depth counts documents and arrays on the way down, the outermost document being 1. Every check
is a pure function of its input, so the primary (before proposing) and every member (when an
entry applies) reach the same verdict; and since nothing deeper than these limits gets through,
the recursive code behind them (the BSON codec, the matcher, the updater) stays far from
Python's recursion limit on any thread.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from typing import Any, Final

from node.engine.errors import MongoError

MAX_BSON_DEPTH: Final = 200
MAX_USER_DEPTH: Final = 180
MAX_QUERY_DEPTH: Final = 100
OVERFLOW: Final = 15

_INT32 = struct.Struct("<i")
_MIN_LEVEL_BYTES = 7  # type byte + empty name's NUL + an empty document (5 bytes)
_FIXED = {0x01: 8, 0x06: 0, 0x07: 12, 0x08: 1, 0x09: 8, 0x0A: 0, 0x10: 4, 0x11: 8, 0x12: 8,
          0x13: 16, 0xFF: 0, 0x7F: 0}
_STRINGS = frozenset({0x02, 0x0D, 0x0E})


def overflow(message: str) -> MongoError:
    return MongoError(OVERFLOW, message, code_name="Overflow")


def bson_too_deep_error() -> MongoError:
    return overflow("BSONObj exceeds maximum nested object depth")


def _cannot_reach(depth: int, size: int, limit: int) -> bool:
    """Whether a document of ``size`` bytes at ``depth`` cannot hold anything past ``limit``
    (every further level costs at least 7 bytes): most documents are skipped whole."""
    return depth + (size - 5) // _MIN_LEVEL_BYTES <= limit


def bson_too_deep(data: bytes | bytearray | memoryview, limit: int = MAX_BSON_DEPTH) -> bool:
    """Whether the BSON document ``data`` nests documents/arrays (code-with-scope included)
    more than ``limit`` deep, found by walking the bytes with an explicit stack. Subdocuments
    too small to go past the limit are skipped without being read, so an ordinary command
    costs a length comparison, a batch of ordinary documents one step per document. Malformed
    BSON answers False: the decoder reports it."""
    n = len(data)
    if n < 5 or _cannot_reach(1, n, limit):
        return False
    (end,) = _INT32.unpack_from(data, 0)
    if end < 5 or end > n:
        return False
    ends: list[int] = []
    pos, depth = 4, 1
    while True:
        if pos >= end - 1:  # this document's closing NUL
            if not ends:
                return False
            pos, end = end, ends.pop()
            depth -= 1
            continue
        kind = data[pos]
        name_end = _find_nul(data, pos + 1, end)
        if name_end < 0:
            return False
        p = name_end + 1
        if kind in (0x03, 0x04, 0x0F):
            if p + 4 > end:
                return False
            if kind == 0x0F:  # code with scope: int32 total, string, scope document
                (total,) = _INT32.unpack_from(data, p)
                if total < 14 or p + total > end:
                    return False
                (slen,) = _INT32.unpack_from(data, p + 4)
                p += 8 + slen
                if slen < 1 or p + 5 > end:
                    return False
            (size,) = _INT32.unpack_from(data, p)
            if size < 5 or p + size > end:
                return False
            if depth + 1 > limit:
                return True
            if _cannot_reach(depth + 1, size, limit):
                pos = p + size
                continue
            ends.append(end)
            pos, end, depth = p + 4, p + size, depth + 1
            continue
        width = _FIXED.get(kind)
        if width is None:
            if kind in _STRINGS or kind == 0x0C:
                if p + 4 > end:
                    return False
                (slen,) = _INT32.unpack_from(data, p)
                width = 4 + slen + (12 if kind == 0x0C else 0)
            elif kind == 0x05:
                if p + 4 > end:
                    return False
                (blen,) = _INT32.unpack_from(data, p)
                width = 5 + blen
            elif kind == 0x0B:  # regex: two C strings
                first = _find_nul(data, p, end)
                second = _find_nul(data, first + 1, end) if first >= 0 else -1
                if second < 0:
                    return False
                width = second + 1 - p
            else:
                return False
        if width < 0 or p + width > end:
            return False
        pos = p + width


def _find_nul(data: bytes | bytearray | memoryview, start: int, end: int) -> int:
    if isinstance(data, memoryview):
        data = data.obj if isinstance(data.obj, bytes | bytearray) else bytes(data)
    return data.find(b"\x00", start, end)  # type: ignore[union-attr]


def document_depth(value: Any, limit: int) -> int:
    """Nesting depth of a Python document (dicts and lists; ``value`` itself is 1), counted
    with an explicit stack and given up as soon as it passes ``limit`` (then ``limit + 1``)."""
    kinds = _KINDS
    kind = kinds.get(type(value)) or _kind(type(value))
    if kind is _LEAF:
        return 0
    deepest = 1
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        kind = kinds.get(type(node)) or _kind(type(node))
        for child in (node.values() if kind is _MAP else node):
            if (kinds.get(type(child)) or _kind(type(child))) is _LEAF:
                continue
            if depth >= limit:
                return limit + 1
            if depth + 1 > deepest:
                deepest = depth + 1
            stack.append((child, depth + 1))
    return deepest


_LEAF, _MAP, _SEQ = "leaf", "map", "seq"
_KINDS: dict[type, str] = {dict: _MAP, list: _SEQ, tuple: _SEQ, str: _LEAF, int: _LEAF,
                           float: _LEAF, bool: _LEAF, type(None): _LEAF, bytes: _LEAF}


def _kind(t: type) -> str:
    """Whether values of type ``t`` are documents, arrays or leaves (learnt once per type)."""
    kind = _MAP if issubclass(t, Mapping) else _SEQ if issubclass(t, list | tuple) else _LEAF
    _KINDS[t] = kind
    return kind


def check_insert_depth(doc: Mapping[str, Any]) -> None:
    """Overflow (15) for a document to insert nested past :data:`MAX_USER_DEPTH`."""
    if document_depth(doc, MAX_USER_DEPTH) > MAX_USER_DEPTH:
        raise insert_too_deep()


def insert_too_deep() -> MongoError:
    return overflow(f"cannot insert document because it exceeds {MAX_USER_DEPTH} levels of "
                    "nesting")


def update_too_deep() -> MongoError:
    return overflow(f"Document exceeds maximum nesting depth of {MAX_USER_DEPTH}")


def short_render(value: Any, limit: int = 120) -> str:
    """A bounded one-line rendering of a value for error messages (no recursion: a deeply
    nested value is cut, never walked whole)."""
    out: list[str] = []
    size = 0
    stack: list[Any] = [value]
    while stack and size <= limit:
        item = stack.pop()
        if isinstance(item, _Text):
            piece = item.text
        elif isinstance(item, Mapping | list | tuple):
            pairs = list(item.items()) if isinstance(item, Mapping) else [(None, v) for v in item]
            piece = "{ " if isinstance(item, Mapping) else "[ "
            stack.append(_Text(" }" if isinstance(item, Mapping) else " ]"))
            for idx in range(len(pairs) - 1, -1, -1):
                key, sub = pairs[idx]
                stack.append(sub)
                if key is not None:
                    stack.append(_Text(f"{key}: "))
                if idx:
                    stack.append(_Text(", "))
        else:
            piece = repr(item)
        out.append(piece)
        size += len(piece)
    text = "".join(out)
    return text if size <= limit and not stack else text[:limit] + "..."


class _Text:
    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text
