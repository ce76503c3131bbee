"""BSON values and THE order between them: the one comparison function the whole engine uses.

Order (MongoDB's canonical type order; lower rank sorts first)::

    MinKey(-1) < undefined(0) < null/missing(5) < numbers(10) < string/symbol(15) < object(20) < array(25)
    < binData(30) < ObjectId(35) < bool(40) < date(45) < timestamp(47) < regex(50)
    < code(60) < code with scope(65) < MaxKey(127)

Within a rank:

* numbers (``int``, ``bson.Int64``, ``float``, ``bson.Decimal128``) compare by exact
  mathematical value, across types (``1 == 1.0 == Int64(1) == Decimal128("1.0")``, ``-0.0 == 0``);
  NaN (float or decimal) is below every other number and equal to every NaN. ``bool`` is NOT a
  number (rank 40).
* strings compare by code point (== UTF-8 byte order, MongoDB's binary comparison).
* objects compare element by element: first the value's canonical rank, then the field name
  (code point order), then the value; a document that is a prefix of another is smaller.
  ``bson.DBRef`` is an object (its ``as_doc()``).
* arrays (``list``/``tuple``) compare element by element (rank, then value); a prefix is smaller.
* binData (``bytes`` subtype 0, ``bson.Binary``, ``uuid.UUID`` as subtype 4): length first, then
  subtype, then bytes.
* ObjectId: its 12 bytes. bool: ``False < True``. date (``datetime``, ``bson.DatetimeMS``):
  signed milliseconds since the epoch (naive datetimes are UTC; sub-millisecond digits are
  dropped exactly as BSON encoding drops them). Timestamp: ``(time, inc)``.
* regex (``bson.Regex``, ``re.Pattern``): pattern, then the flag letters (``"ilmsux"`` order, as
  BSON stores them). code: the code string, then (with scope) the scope document.

:data:`MISSING` stands for an absent field; it compares equal to ``None``. :data:`UNDEFINED`
(BSON's deprecated undefined, rank 0) is the sort and index key of an empty array.
"""

from __future__ import annotations

import calendar
import datetime
import math
import re
import uuid
from collections.abc import Hashable, Iterable, Mapping
from decimal import Decimal
from typing import Any, Final

from bson.binary import Binary
from bson.code import Code
from bson.datetime_ms import DatetimeMS
from bson.dbref import DBRef
from bson.decimal128 import Decimal128
from bson.int64 import Int64
from bson.max_key import MaxKey
from bson.min_key import MinKey
from bson.objectid import ObjectId
from bson.regex import Regex
from bson.timestamp import Timestamp

from node.engine.errors import bad_value


class _Missing:
    """The value of a field that is not there (sorts and compares like ``None``)."""

    __slots__ = ()
    _instance: _Missing | None = None

    def __new__(cls) -> _Missing:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "MISSING"

    def __bool__(self) -> bool:
        return False

    def __reduce__(self) -> str:
        return "MISSING"


MISSING: Final = _Missing()


class _Undefined:
    """BSON's deprecated *undefined* (rank 0): the sort/index key of an empty array."""

    __slots__ = ()
    _instance: _Undefined | None = None

    def __new__(cls) -> _Undefined:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "UNDEFINED"

    def __reduce__(self) -> str:
        return "UNDEFINED"


UNDEFINED: Final = _Undefined()

# --- canonical ranks ----------------------------------------------------------------------------
RANK_MINKEY: Final = -1
RANK_UNDEFINED: Final = 0
RANK_NULL: Final = 5
RANK_NUMBER: Final = 10
RANK_STRING: Final = 15
RANK_OBJECT: Final = 20
RANK_ARRAY: Final = 25
RANK_BINDATA: Final = 30
RANK_OBJECTID: Final = 35
RANK_BOOL: Final = 40
RANK_DATE: Final = 45
RANK_TIMESTAMP: Final = 47
RANK_REGEX: Final = 50
RANK_CODE: Final = 60
RANK_CODE_W_SCOPE: Final = 65
RANK_MAXKEY: Final = 127

_EXACT_RANKS: dict[type, int] = {
    type(None): RANK_NULL,
    _Missing: RANK_NULL,
    _Undefined: RANK_UNDEFINED,
    bool: RANK_BOOL,
    int: RANK_NUMBER,
    Int64: RANK_NUMBER,
    float: RANK_NUMBER,
    Decimal128: RANK_NUMBER,
    str: RANK_STRING,
    dict: RANK_OBJECT,
    list: RANK_ARRAY,
    tuple: RANK_ARRAY,
    bytes: RANK_BINDATA,
    Binary: RANK_BINDATA,
    uuid.UUID: RANK_BINDATA,
    ObjectId: RANK_OBJECTID,
    datetime.datetime: RANK_DATE,
    DatetimeMS: RANK_DATE,
    Timestamp: RANK_TIMESTAMP,
    Regex: RANK_REGEX,
    re.Pattern: RANK_REGEX,
    MinKey: RANK_MINKEY,
    MaxKey: RANK_MAXKEY,
    DBRef: RANK_OBJECT,
}


def canonical_rank(v: Any) -> int:
    """MongoDB's canonical type rank of ``v`` (see the module docstring for the table)."""
    rank = _EXACT_RANKS.get(type(v))
    if rank is not None:
        return rank
    # subclasses (SON, Code, custom Mapping types, ...); order of the checks matters
    if isinstance(v, Code):
        return RANK_CODE if v.scope is None else RANK_CODE_W_SCOPE
    if isinstance(v, bool):
        return RANK_BOOL
    if isinstance(v, int | float):
        return RANK_NUMBER
    if isinstance(v, str):
        return RANK_STRING
    if isinstance(v, Mapping):
        return RANK_OBJECT
    if isinstance(v, list | tuple):
        return RANK_ARRAY
    if isinstance(v, bytes):
        return RANK_BINDATA
    if isinstance(v, datetime.datetime):
        return RANK_DATE
    raise bad_value(f"cannot compare a value of unsupported type {type(v).__name__}")


# --- helpers per type ---------------------------------------------------------------------------


def is_number(v: Any) -> bool:
    """True for int, Int64, float and Decimal128 values (never for bool)."""
    return not isinstance(v, bool) and isinstance(v, int | float | Decimal128)


def is_nan(v: Any) -> bool:
    """True for a float or Decimal128 NaN."""
    if isinstance(v, float):
        return math.isnan(v)
    if isinstance(v, Decimal128):
        return v.to_decimal().is_nan()
    return False


def number_value(v: Any) -> int | float | Decimal:
    """A number as a Python value comparable by exact value (Decimal128 -> ``Decimal``)."""
    if isinstance(v, Decimal128):
        return v.to_decimal()
    if isinstance(v, Int64):
        return int(v)
    return v


def datetime_to_millis(v: datetime.datetime | DatetimeMS) -> int:
    """Milliseconds since the Unix epoch, as BSON stores a date (naive datetimes are UTC)."""
    if isinstance(v, DatetimeMS):
        return int(v)
    offset = v.utcoffset()
    if offset is not None:
        v = v - offset
    return calendar.timegm(v.timetuple()) * 1000 + v.microsecond // 1000


_FLAG_LETTERS: Final = (
    (re.IGNORECASE, "i"),
    (re.LOCALE, "l"),
    (re.MULTILINE, "m"),
    (re.DOTALL, "s"),
    (re.UNICODE, "u"),
    (re.VERBOSE, "x"),
)


def regex_parts(v: Regex[Any] | re.Pattern[Any]) -> tuple[str, str]:
    """``(pattern, flag letters)`` of a regex value, as BSON stores it."""
    pattern = v.pattern
    if isinstance(pattern, bytes):
        pattern = pattern.decode("utf-8", "surrogateescape")
    flags = v.flags
    if isinstance(flags, str):  # defensive: Regex normally converts to int
        return pattern, "".join(sorted(flags))
    return pattern, "".join(letter for bit, letter in _FLAG_LETTERS if flags & bit)


def binary_parts(v: bytes | uuid.UUID) -> tuple[int, int, bytes]:
    """``(length, subtype, bytes)`` of a binData value."""
    if isinstance(v, uuid.UUID):
        return 16, 4, v.bytes
    subtype = v.subtype if isinstance(v, Binary) else 0
    return len(v), subtype, bytes(v)


def _doc_items(v: Any) -> Iterable[tuple[str, Any]]:
    if isinstance(v, DBRef):
        return v.as_doc().items()
    return v.items()


# --- comparison ---------------------------------------------------------------------------------


MISSING_END: Final = object()


def _cmp(a: Any, b: Any) -> int:
    return (a > b) - (a < b)


def _compare_numbers(a: Any, b: Any) -> int:
    a_nan, b_nan = is_nan(a), is_nan(b)
    if a_nan or b_nan:
        return int(b_nan) - int(a_nan)
    return _cmp(number_value(a), number_value(b))


def _compare_sequences(a: Iterable[Any], b: Iterable[Any]) -> int:
    ia, ib = iter(a), iter(b)
    while True:
        x = next(ia, MISSING_END)
        y = next(ib, MISSING_END)
        if x is MISSING_END:
            return 0 if y is MISSING_END else -1
        if y is MISSING_END:
            return 1
        c = compare(x, y)
        if c:
            return c


def _compare_documents(a: Any, b: Any) -> int:
    ia, ib = iter(_doc_items(a)), iter(_doc_items(b))
    while True:
        x = next(ia, MISSING_END)
        y = next(ib, MISSING_END)
        if x is MISSING_END:
            return 0 if y is MISSING_END else -1
        if y is MISSING_END:
            return 1
        (ka, va), (kb, vb) = x, y
        c = _cmp(canonical_rank(va), canonical_rank(vb))
        if c:
            return c
        c = _cmp(ka, kb)
        if c:
            return c
        c = compare(va, vb)
        if c:
            return c


def compare(a: Any, b: Any) -> int:
    """-1, 0 or 1 as ``a`` sorts before, equal to, or after ``b`` in MongoDB's order."""
    ra, rb = canonical_rank(a), canonical_rank(b)
    if ra != rb:
        return -1 if ra < rb else 1
    if ra == RANK_NUMBER:
        if type(a) is int and type(b) is int:
            return _cmp(a, b)
        return _compare_numbers(a, b)
    if ra == RANK_STRING:
        return _cmp(a, b)
    if ra == RANK_OBJECT:
        return _compare_documents(a, b)
    if ra == RANK_ARRAY:
        return _compare_sequences(a, b)
    if ra in (RANK_NULL, RANK_MINKEY, RANK_MAXKEY, RANK_UNDEFINED):
        return 0
    if ra == RANK_BOOL:
        return _cmp(a, b)
    if ra == RANK_DATE:
        return _cmp(datetime_to_millis(a), datetime_to_millis(b))
    if ra == RANK_OBJECTID:
        return _cmp(a.binary, b.binary)
    if ra == RANK_BINDATA:
        return _cmp(binary_parts(a), binary_parts(b))
    if ra == RANK_TIMESTAMP:
        return _cmp((a.time, a.inc), (b.time, b.inc))
    if ra == RANK_REGEX:
        return _cmp(regex_parts(a), regex_parts(b))
    if ra == RANK_CODE:
        return _cmp(str(a), str(b))
    # code with scope: code, then scope document
    c = _cmp(str(a), str(b))
    return c if c else _compare_documents(a.scope, b.scope)


def values_equal(a: Any, b: Any) -> bool:
    """True when MongoDB considers ``a`` and ``b`` equal (``compare(a, b) == 0``)."""
    return compare(a, b) == 0


_NAN_KEY: Final = ("NaN",)


def hash_key(v: Any) -> Hashable:
    """A hashable key with ``hash_key(a) == hash_key(b)`` exactly when ``values_equal(a, b)``.

    Used for set semantics over BSON values (``distinct``, ``$addToSet``, ``$in`` lookups).
    """
    t = type(v)  # the common exact types first: what the general path gives them
    if t is int or (t is float and v == v):
        return (RANK_NUMBER, v)
    if t is str:
        return (RANK_STRING, v)
    rank = canonical_rank(v)
    if rank == RANK_NUMBER:
        if is_nan(v):
            return (rank, _NAN_KEY)
        # int, float and Decimal compare and hash consistently by exact value in Python
        return (rank, number_value(v))
    if rank == RANK_STRING:
        return (rank, str(v))
    if rank == RANK_OBJECT:
        return (rank, tuple((k, hash_key(x)) for k, x in _doc_items(v)))
    if rank == RANK_ARRAY:
        return (rank, tuple(hash_key(x) for x in v))
    if rank in (RANK_NULL, RANK_MINKEY, RANK_MAXKEY, RANK_UNDEFINED):
        return (rank,)
    if rank == RANK_BOOL:
        return (rank, bool(v))
    if rank == RANK_DATE:
        return (rank, datetime_to_millis(v))
    if rank == RANK_OBJECTID:
        return (rank, v.binary)
    if rank == RANK_BINDATA:
        return (rank, binary_parts(v))
    if rank == RANK_TIMESTAMP:
        return (rank, v.time, v.inc)
    if rank == RANK_REGEX:
        return (rank, regex_parts(v))
    if rank == RANK_CODE:
        return (rank, str(v))
    return (rank, str(v), hash_key(dict(v.scope)))


class SortKey:
    """Wraps a BSON value so Python's ``sorted``/``min``/``max`` use :func:`compare`."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __lt__(self, other: SortKey) -> bool:
        return compare(self.value, other.value) < 0

    def __le__(self, other: SortKey) -> bool:
        return compare(self.value, other.value) <= 0

    def __gt__(self, other: SortKey) -> bool:
        return compare(self.value, other.value) > 0

    def __ge__(self, other: SortKey) -> bool:
        return compare(self.value, other.value) >= 0

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SortKey):
            return NotImplemented
        return compare(self.value, other.value) == 0

    def __hash__(self) -> int:
        return hash(hash_key(self.value))

    def __repr__(self) -> str:
        return f"SortKey({self.value!r})"


# --- $type codes and aliases --------------------------------------------------------------------

TYPE_ALIASES: Final[dict[str, int]] = {
    "double": 1,
    "string": 2,
    "object": 3,
    "array": 4,
    "binData": 5,
    "undefined": 6,
    "objectId": 7,
    "bool": 8,
    "date": 9,
    "null": 10,
    "regex": 11,
    "dbPointer": 12,
    "javascript": 13,
    "symbol": 14,
    "javascriptWithScope": 15,
    "int": 16,
    "timestamp": 17,
    "long": 18,
    "decimal": 19,
    "minKey": -1,
    "maxKey": 127,
}
TYPE_NAMES: Final[dict[int, str]] = {code: name for name, code in TYPE_ALIASES.items()}
NUMBER_TYPE_CODES: Final = frozenset({1, 16, 18, 19})
"""The codes the ``"number"`` alias stands for."""

_INT32_MIN, _INT32_MAX = -(2**31), 2**31 - 1


def bson_type_code(v: Any) -> int:
    """The BSON type number of ``v`` as it would be stored (``int`` -> 16 or 18 by size)."""
    if isinstance(v, bool):
        return 8
    if isinstance(v, Int64):
        return 18
    if isinstance(v, int):
        return 16 if _INT32_MIN <= v <= _INT32_MAX else 18
    if isinstance(v, float):
        return 1
    if isinstance(v, Decimal128):
        return 19
    if isinstance(v, Code):
        return 13 if v.scope is None else 15
    rank = canonical_rank(v)
    return {
        RANK_NULL: 10,
        RANK_STRING: 2,
        RANK_OBJECT: 3,
        RANK_ARRAY: 4,
        RANK_BINDATA: 5,
        RANK_OBJECTID: 7,
        RANK_DATE: 9,
        RANK_TIMESTAMP: 17,
        RANK_REGEX: 11,
        RANK_MINKEY: -1,
        RANK_MAXKEY: 127,
        RANK_UNDEFINED: 6,
    }[rank]


def type_name(v: Any) -> str:
    """MongoDB's name of ``v``'s BSON type (``"string"``, ``"int"``, ``"missing"``...)."""
    if v is MISSING:
        return "missing"
    return TYPE_NAMES[bson_type_code(v)]


def type_codes(spec: Any) -> frozenset[int]:
    """The BSON type codes a ``$type`` argument selects (number, alias, ``"number"`` or a list).

    Raises MongoError BadValue with MongoDB's messages for unknown codes and aliases.
    """
    if isinstance(spec, list | tuple):
        if not spec:
            raise bad_value("$type must match at least one type")
        codes: set[int] = set()
        for item in spec:
            codes |= _one_type_code(item)
        return frozenset(codes)
    return _one_type_code(spec)


def _one_type_code(spec: Any) -> frozenset[int]:
    if isinstance(spec, str):
        if spec == "number":
            return NUMBER_TYPE_CODES
        code = TYPE_ALIASES.get(spec)
        if code is None:
            raise bad_value(f"Unknown type name alias: {spec}")
        return frozenset({code})
    if is_number(spec):
        value = number_value(spec)
        try:
            code = int(value)
        except (OverflowError, ValueError):
            raise bad_value(f"Invalid numerical type code: {spec}") from None
        if code != value:
            raise bad_value(f"Invalid numerical type code: {spec}")
        if code not in TYPE_NAMES:
            raise bad_value(f"Invalid numerical type code: {code}")
        return frozenset({code})
    raise bad_value("type must be represented as a number or a string")
