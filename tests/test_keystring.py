"""keystring: byte order of encodings == values.compare order (property-tested), prefix-freedom."""

from __future__ import annotations

import datetime as dt
import math
import re
import uuid
from decimal import Decimal
from typing import Any

import pytest
from bson import SON, Binary, Code, Decimal128, Int64, MaxKey, MinKey, ObjectId, Regex, Timestamp
from bson.datetime_ms import DatetimeMS
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from node.engine.keystring import (
    KeyEncodingError,
    encode_compound,
    encode_key,
    invert,
    prefix_successor,
)
from node.engine.values import MISSING, UNDEFINED, compare


def sign(x: int) -> int:
    return (x > 0) - (x < 0)


def byte_cmp(a: bytes, b: bytes) -> int:
    return (a > b) - (a < b)


# --- strategies ----------------------------------------------------------------------------------

_floats = st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from(
    [0.0, -0.0, 1.0, -1.0, 0.5, 2.0**53, 2.0**63, -(2.0**63), 1e-300, 5e-324, 1.7e308]
)
_ints = (
    st.integers(-(2**63), 2**63 - 1)
    | st.integers(-1000, 1000)
    | st.sampled_from([2**53, 2**53 + 1, 2**63 - 1, -(2**63), 10**20, -(10**20) - 1])
)


@st.composite
def _decimal128s(draw: st.DrawFn) -> Decimal128:
    kind = draw(st.sampled_from(["finite", "finite", "finite", "special", "from_float"]))
    if kind == "special":
        return Decimal128(draw(st.sampled_from(["NaN", "-NaN", "Infinity", "-Infinity", "-0", "0E+5"])))
    if kind == "from_float":
        f = draw(st.floats(allow_nan=False, allow_infinity=False, width=32))
        return Decimal128(repr(f))
    coefficient = draw(st.integers(-(10**34) + 1, 10**34 - 1) | st.integers(-100, 100))
    exponent = draw(st.integers(-40, 40) | st.integers(-6176, 6111))
    return Decimal128(Decimal(coefficient).scaleb(exponent))


_numbers = _ints | _floats | _decimal128s() | _ints.map(Int64)


@st.composite
def _near_numbers(draw: st.DrawFn) -> tuple[Any, Any]:
    """Pairs of numbers close together across types (where float precision runs out)."""
    base = draw(st.integers(-(2**64), 2**64))
    delta = draw(st.integers(-3, 3))
    a: Any = base
    b: Any = base + delta
    conv = st.sampled_from(["int", "float", "dec", "long"])
    out = []
    for value, how in ((a, draw(conv)), (b, draw(conv))):
        if how == "float":
            out.append(float(value))
        elif how == "dec":
            out.append(Decimal128(str(value)))
        elif how == "long" and -(2**63) <= value < 2**63:
            out.append(Int64(value))
        else:
            out.append(value)
    return out[0], out[1]


_texts = st.text(alphabet=st.sampled_from(["a", "b", "\x00", "\x01", "é", "\uffff", "😀", "Z"]),
                 max_size=5)
_binaries = st.builds(
    lambda data, sub: data if sub is None else Binary(data, sub),
    st.binary(max_size=4),
    st.sampled_from([None, 0, 4, 5, 128]),
)
_datetimes = st.datetimes(
    min_value=dt.datetime(1900, 1, 1), max_value=dt.datetime(2100, 1, 1)
) | st.integers(-(2**50), 2**50).map(DatetimeMS)
_regexes = st.builds(
    Regex, st.text(alphabet="ab.\x00*", max_size=3), st.sampled_from(["", "i", "im", "x", "ms"])
) | st.builds(lambda p: re.compile(p), st.sampled_from(["a", "b+", "ab"]))

_scalars = st.one_of(
    _numbers,
    _texts,
    st.booleans(),
    st.none(),
    st.just(MISSING),
    st.just(UNDEFINED),
    st.just(MinKey()),
    st.just(MaxKey()),
    _binaries,
    st.binary(min_size=12, max_size=12).map(ObjectId),
    _datetimes,
    st.builds(Timestamp, st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1)),
    _regexes,
    st.builds(Code, _texts),
    st.builds(lambda c, s: Code(c, s), st.sampled_from(["f", "g"]), st.dictionaries(
        st.sampled_from(["x", "y"]), st.integers(0, 2), max_size=2)),
    st.uuids(),
)

_field_names = st.text(alphabet="abz\x01", max_size=3)

_values = st.recursive(
    _scalars,
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(_field_names, children, max_size=3)
    | st.lists(st.tuples(_field_names, children), max_size=3).map(SON),
    max_leaves=8,
)

_PROP = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# --- properties ----------------------------------------------------------------------------------


@_PROP
@given(_values, _values)
def test_byte_order_matches_compare(a: Any, b: Any) -> None:
    expected = sign(compare(a, b))
    ea, eb = encode_key(a), encode_key(b)
    assert byte_cmp(ea, eb) == expected
    assert byte_cmp(encode_key(a, descending=True), encode_key(b, descending=True)) == -expected
    # equal values encode identically, unequal ones differently
    assert (ea == eb) == (expected == 0)


@_PROP
@given(_numbers, _numbers)
def test_numbers_across_types(a: Any, b: Any) -> None:
    assert byte_cmp(encode_key(a), encode_key(b)) == sign(compare(a, b))


@_PROP
@given(_near_numbers())
def test_numbers_beyond_float_precision(pair: tuple[Any, Any]) -> None:
    a, b = pair
    assert byte_cmp(encode_key(a), encode_key(b)) == sign(compare(a, b))


@_PROP
@given(_values, _values)
def test_encodings_are_prefix_free(a: Any, b: Any) -> None:
    ea, eb = encode_key(a), encode_key(b)
    if ea != eb:
        assert not eb.startswith(ea) and not ea.startswith(eb)


@_PROP
@given(
    st.lists(st.tuples(_values, _values), min_size=2, max_size=2),
    st.tuples(st.sampled_from([1, -1]), st.sampled_from([1, -1])),
)
def test_compound_order_is_lexicographic(rows: list[tuple[Any, Any]], dirs: tuple[int, int]) -> None:
    (a1, a2), (b1, b2) = rows
    expected = sign(compare(a1, b1)) * dirs[0] or sign(compare(a2, b2)) * dirs[1]
    ka = encode_compound([a1, a2], dirs)
    kb = encode_compound([b1, b2], dirs)
    assert byte_cmp(ka, kb) == expected


@_PROP
@given(_values, _values, st.binary(max_size=6), st.binary(max_size=6))
def test_record_key_suffix_keeps_order(a: Any, b: Any, ra: bytes, rb: bytes) -> None:
    # non-unique index entries are encode(value) + record key: value order dominates
    c = sign(compare(a, b))
    if c:
        assert byte_cmp(encode_key(a) + ra, encode_key(b) + rb) == c


# --- examples ------------------------------------------------------------------------------------


def test_equal_numbers_encode_identically() -> None:
    forms = [1, 1.0, Int64(1), Decimal128("1"), Decimal128("1.000"), Decimal128("0.1E1")]
    assert len({encode_key(v) for v in forms}) == 1
    zeros = [0, -0.0, 0.0, Int64(0), Decimal128("0"), Decimal128("-0"), Decimal128("0E-30")]
    assert len({encode_key(v) for v in zeros}) == 1
    nans = [math.nan, -math.nan, Decimal128("NaN"), Decimal128("-NaN")]
    assert len({encode_key(v) for v in nans}) == 1


def test_number_order_examples() -> None:
    ordered = [
        math.nan, -math.inf, Decimal128("-1E+6000"), -1e300, -(2**63), -5, -4.5, -0.1,
        -5e-324, 0, Decimal128("1E-6000"), 5e-324, 0.1, 0.5, 1, 2**53, 2**53 + 1,
        2**63 - 1, 2.0**63, 1e300, Decimal128("1E+6000"), math.inf,
    ]
    keys = [encode_key(v) for v in ordered]
    assert keys == sorted(keys)
    assert len(set(keys)) == len(keys)


def test_huge_int_vs_nearby_float() -> None:
    f = 2.0**63  # 9223372036854775808 exactly
    assert encode_key(2**63 - 1) < encode_key(f) < encode_key(2**63 + 1)
    assert encode_key(Int64(2**63 - 1)) < encode_key(Decimal128("9223372036854775807.5"))
    assert encode_key(Decimal128("9223372036854775807.5")) < encode_key(f)


def test_strings_with_nuls() -> None:
    words = ["", "\x00", "\x00\x00", "\x00a", "a", "a\x00", "a\x00\x00", "a\x01", "ab", "b"]
    keys = [encode_key(w) for w in words]
    assert keys == sorted(keys) and len(set(keys)) == len(keys)
    desc = [encode_key(w, descending=True) for w in words]
    assert desc == sorted(desc, reverse=True)


def test_type_order() -> None:
    ordered = [
        MinKey(), UNDEFINED, None, 5, "s", {"a": 1}, [1], b"\x00", ObjectId(b"\x00" * 12), False, True,
        dt.datetime(2000, 1, 1), Timestamp(1, 1), Regex("a", ""), Code("x"), Code("x", {}),
        MaxKey(),
    ]
    keys = [encode_key(v) for v in ordered]
    assert keys == sorted(keys) and len(set(keys)) == len(keys)
    assert encode_key(None) == encode_key(MISSING)


def test_documents_and_arrays() -> None:
    assert encode_key({}) < encode_key({"a": 1}) < encode_key({"a": 1, "b": 1})
    assert encode_key({"a": 2}) < encode_key({"b": 1})
    assert encode_key({"b": 1}) < encode_key({"a": "x"})  # type rank before field name
    assert encode_key([]) < encode_key([1]) < encode_key([1, 2]) < encode_key([2])
    assert encode_key((1, 2)) == encode_key([1, 2])
    assert encode_key(SON([("a", 1)])) == encode_key({"a": 1.0})


def test_descending_prefix_order() -> None:
    # with inversion, a prefix-shaped value must still sort after its extensions
    assert encode_key("a", descending=True) > encode_key("ab", descending=True)
    assert encode_key([1], descending=True) > encode_key([1, 2], descending=True)
    assert invert(invert(encode_key("x"))) == encode_key("x")


def test_dates_drop_sub_millisecond_digits() -> None:
    a = dt.datetime(2020, 1, 1, 0, 0, 0, 1000)
    b = dt.datetime(2020, 1, 1, 0, 0, 0, 1999)
    assert encode_key(a) == encode_key(b) == encode_key(DatetimeMS(1577836800001))
    aware = dt.datetime(2020, 1, 1, 1, tzinfo=dt.timezone(dt.timedelta(hours=1)))
    assert encode_key(aware) == encode_key(dt.datetime(2020, 1, 1))


def test_binary_and_uuid() -> None:
    u = uuid.UUID(int=7)
    assert encode_key(u) == encode_key(Binary(u.bytes, 4))
    assert encode_key(b"\xff") < encode_key(b"\x00\x00")  # length first
    assert encode_key(Binary(b"\x01", 0)) < encode_key(Binary(b"\x00", 5))  # then subtype


def test_prefix_successor() -> None:
    assert prefix_successor(b"ab") == b"ac"
    assert prefix_successor(b"a\xff\xff") == b"b"
    assert prefix_successor(b"\xff") is None
    assert prefix_successor(b"") is None
    key = encode_key("abc")
    assert key < prefix_successor(key)  # type: ignore[operator]
    assert encode_key("abd") > prefix_successor(key)  # type: ignore[operator]


def test_compound_directions_validated() -> None:
    with pytest.raises(ValueError):
        encode_compound([1, 2], [1])
    assert encode_compound([1, 2]) == encode_key(1) + encode_key(2)
    assert encode_compound([1, 2], [1, -1]) == encode_key(1) + encode_key(2, descending=True)


def test_unsupported_type_rejected() -> None:
    with pytest.raises(KeyEncodingError):
        encode_key(object())
