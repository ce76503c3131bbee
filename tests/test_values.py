"""Tests for node.engine.values (BSON order) and node.engine.errors (MongoError)."""

from __future__ import annotations

import datetime
import math
import re
import uuid
from decimal import Decimal
from fractions import Fraction
from typing import Any

import bson
import pytest
from bson import SON, Binary, Code, Decimal128, Int64, MaxKey, MinKey, ObjectId, Regex, Timestamp
from hypothesis import given, settings
from hypothesis import strategies as st

from node.engine import errors
from node.engine.errors import MongoError
from node.engine.values import (
    MISSING,
    UNDEFINED,
    SortKey,
    bson_type_code,
    canonical_rank,
    compare,
    hash_key,
    type_codes,
    type_name,
    values_equal,
)

# --- strategies ---------------------------------------------------------------------------------

texts = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=4)
keys = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=3
)
decimals = st.one_of(
    st.decimals(
        allow_nan=False, allow_infinity=False, places=3, min_value=-(10**6), max_value=10**6
    ),
    st.sampled_from(
        [
            Decimal("NaN"),
            Decimal("-0"),
            Decimal("1E+6000"),
            Decimal("-1E-6000"),
            Decimal("Infinity"),
            Decimal("-Infinity"),
        ]
    ),
).map(lambda d: Decimal128(d))
numbers = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.integers(min_value=-(2**63), max_value=2**63 - 1).map(Int64),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0, 1, -1, 0.0, -0.0, 1.0, 0.5, 2**53, float(2**53), 2**53 + 1]),
    decimals,
)
datetimes = st.datetimes(
    min_value=datetime.datetime(1900, 1, 1), max_value=datetime.datetime(2200, 1, 1)
)
bson_scalars = st.one_of(
    st.none(),
    st.booleans(),
    numbers,
    texts,
    st.binary(max_size=4),
    st.builds(Binary, st.binary(max_size=4), st.sampled_from([0, 1, 4, 128])),
    st.binary(min_size=12, max_size=12).map(ObjectId),
    datetimes,
    st.builds(Timestamp, st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1)),
    st.builds(Regex, st.sampled_from(["a", "b", "^x"]), st.sampled_from(["", "i", "im", "s"])),
    st.builds(Code, st.sampled_from(["f()", "g()"])),
    st.just(MinKey()),
    st.just(MaxKey()),
)


def _nest(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.lists(children, max_size=3),
        st.lists(st.tuples(keys, children), max_size=3).map(lambda kv: SON(dict(kv))),
    )


values = st.recursive(bson_scalars | st.just(UNDEFINED), _nest, max_leaves=8)
bson_values = st.recursive(bson_scalars, _nest, max_leaves=8)


# --- total order properties ---------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(values, values)
def test_antisymmetric(a: Any, b: Any) -> None:
    assert compare(a, b) == -compare(b, a)
    assert compare(a, b) in (-1, 0, 1)


@settings(max_examples=100, deadline=None)
@given(values)
def test_reflexive(a: Any) -> None:
    assert compare(a, a) == 0
    assert values_equal(a, a)


@settings(max_examples=150, deadline=None)
@given(values, values, values)
def test_transitive(a: Any, b: Any, c: Any) -> None:
    if compare(a, b) <= 0 and compare(b, c) <= 0:
        assert compare(a, c) <= 0
    if compare(a, b) == 0 and compare(b, c) == 0:
        assert compare(a, c) == 0


@settings(max_examples=100, deadline=None)
@given(st.lists(values, min_size=2, max_size=8))
def test_sorted_lists_are_pairwise_ordered(items: list[Any]) -> None:
    ordered = sorted(items, key=SortKey)
    for i in range(len(ordered)):
        for j in range(i + 1, len(ordered)):
            assert compare(ordered[i], ordered[j]) <= 0


@settings(max_examples=200, deadline=None)
@given(values, values)
def test_hash_key_consistent_with_equality(a: Any, b: Any) -> None:
    assert (hash_key(a) == hash_key(b)) == (compare(a, b) == 0)
    if compare(a, b) == 0:
        assert hash(SortKey(a)) == hash(SortKey(b))


@settings(max_examples=150, deadline=None)
@given(values, values)
def test_rank_decides_across_types(a: Any, b: Any) -> None:
    if canonical_rank(a) < canonical_rank(b):
        assert compare(a, b) == -1


@settings(max_examples=150, deadline=None)
@given(numbers, numbers)
def test_numbers_compare_by_exact_value(a: Any, b: Any) -> None:
    def exact(v: Any) -> Fraction | float:
        d = v.to_decimal() if isinstance(v, Decimal128) else v
        if isinstance(d, float | Decimal) and (
            d.is_infinite() if isinstance(d, Decimal) else math.isinf(d)
        ):
            return float(d)
        return Fraction(d)

    def nan(v: Any) -> bool:
        return (isinstance(v, float) and math.isnan(v)) or (
            isinstance(v, Decimal128) and v.to_decimal().is_nan()
        )

    if nan(a) or nan(b):
        expected = int(nan(b)) - int(nan(a))
    else:
        x, y = exact(a), exact(b)
        expected = (x > y) - (x < y)
    assert compare(a, b) == expected


@settings(max_examples=100, deadline=None)
@given(bson_values, bson_values)
def test_order_survives_bson_round_trip(a: Any, b: Any) -> None:
    da = bson.decode(bson.encode({"v": a}))["v"]
    db = bson.decode(bson.encode({"v": b}))["v"]
    assert compare(da, db) == compare(a, b)


# --- the documented order, example by example ---------------------------------------------------


def test_type_order_chain() -> None:
    chain = [
        MinKey(),
        UNDEFINED,
        None,
        float("nan"),
        -1e308,
        Int64(0),
        0.5,
        Decimal128("1"),
        "",
        "a",
        {},
        {"a": 1},
        [],
        [1],
        b"",
        Binary(b"z", 5),
        ObjectId(b"\x00" * 12),
        ObjectId(b"\x01" * 12),
        False,
        True,
        datetime.datetime(1969, 12, 31),
        datetime.datetime(2020, 1, 1),
        Timestamp(0, 1),
        Timestamp(1, 0),
        Regex("a", 0),
        re.compile("b"),
        Code("x"),
        Code("x", {"a": 1}),
        MaxKey(),
    ]
    for i, lo in enumerate(chain):
        for hi in chain[i + 1 :]:
            assert compare(lo, hi) == -1, (lo, hi)
            assert compare(hi, lo) == 1, (hi, lo)


def test_bool_is_not_a_number() -> None:
    assert compare(True, 1) == 1
    assert compare(False, 0) == 1
    assert compare(False, 10**18) == 1
    assert not values_equal(True, 1)
    assert hash_key(True) != hash_key(1)
    assert bson_type_code(True) == 8


def test_numbers_equal_across_types() -> None:
    for a in (1, 1.0, Int64(1), Decimal128("1.00")):
        for b in (1, 1.0, Int64(1), Decimal128("1")):
            assert values_equal(a, b)
            assert hash_key(a) == hash_key(b)
    assert values_equal(-0.0, 0)
    assert values_equal(Decimal128("-0"), 0.0)
    assert compare(2**53 + 1, float(2**53)) == 1
    assert compare(Decimal128("0.1"), 0.1) == -1  # the double 0.1 is slightly above 1/10


def test_nan_rules() -> None:
    nan = float("nan")
    assert values_equal(nan, Decimal128("NaN"))
    assert compare(nan, float("-inf")) == -1
    assert compare(Decimal128("NaN"), Decimal128("-Infinity")) == -1
    assert compare(nan, None) == 1
    assert compare(float("inf"), Decimal128("Infinity")) == 0


def test_null_and_missing_are_equal() -> None:
    assert values_equal(None, MISSING)
    assert compare(MISSING, MinKey()) == 1
    assert compare(MISSING, 0) == -1
    assert type_name(MISSING) == "missing"


def test_documents_compare_rank_then_name_then_value() -> None:
    # rank of the first value decides before the field name
    assert compare({"b": 1}, {"a": "x"}) == -1
    # same rank: field name decides
    assert compare({"a": 5}, {"b": 1}) == -1
    # same name: value decides
    assert compare({"a": 1}, {"a": 2}) == -1
    # field order matters for equality
    assert not values_equal({"a": 1, "b": 2}, {"b": 2, "a": 1})
    # prefix is smaller
    assert compare({"a": 1}, {"a": 1, "b": 0}) == -1
    assert values_equal(SON([("a", 1)]), {"a": 1.0})


def test_arrays_compare_element_wise() -> None:
    assert compare([1, 2], [1, 3]) == -1
    assert compare([1, 2], [1]) == 1
    assert compare([2], [1, 5]) == 1
    assert compare([[1]], [[1, 0]]) == -1
    assert compare([1], ["a"]) == -1
    assert values_equal((1, 2), [1.0, 2])


def test_binary_compares_length_then_subtype_then_bytes() -> None:
    assert compare(b"zz", b"aaa") == -1
    assert compare(Binary(b"a", 0), Binary(b"a", 1)) == -1
    assert compare(b"a", b"b") == -1
    u = uuid.UUID(int=5)
    assert values_equal(u, Binary(u.bytes, 4))


def test_dates_compare_by_milliseconds() -> None:
    utc = datetime.UTC
    plus_one = datetime.timezone(datetime.timedelta(hours=1))
    assert values_equal(
        datetime.datetime(2020, 1, 1, 1, tzinfo=plus_one), datetime.datetime(2020, 1, 1)
    )
    assert values_equal(bson.DatetimeMS(0), datetime.datetime(1970, 1, 1, tzinfo=utc))
    assert compare(datetime.datetime(1960, 1, 1), datetime.datetime(1970, 1, 1)) == -1


def test_regex_and_pattern_compare_alike() -> None:
    assert values_equal(re.compile("ab", re.I), Regex("ab", "iu"))
    assert compare(Regex("a", "i"), Regex("a", "m")) == -1


def test_sort_key_sorts_mixed_values() -> None:
    items = ["b", 2, None, True, {"x": 1}, [0], 1.5, MaxKey(), MinKey()]
    ordered = sorted(items, key=SortKey)
    assert ordered[0] == MinKey() and ordered[-1] == MaxKey()
    assert ordered[1:-1] == [None, 1.5, 2, "b", {"x": 1}, [0], True]


def test_unsupported_values_raise_mongo_error() -> None:
    with pytest.raises(MongoError) as info:
        compare({1, 2}, 1)
    assert info.value.code == errors.BAD_VALUE


# --- $type table --------------------------------------------------------------------------------


def test_bson_type_codes() -> None:
    assert bson_type_code(1.5) == 1
    assert bson_type_code("s") == 2
    assert bson_type_code({}) == 3
    assert bson_type_code([]) == 4
    assert bson_type_code(b"") == 5
    assert bson_type_code(ObjectId()) == 7
    assert bson_type_code(None) == 10
    assert bson_type_code(re.compile("x")) == 11
    assert bson_type_code(Code("f")) == 13
    assert bson_type_code(Code("f", {})) == 15
    assert bson_type_code(5) == 16
    assert bson_type_code(2**31) == 18
    assert bson_type_code(Int64(5)) == 18
    assert bson_type_code(Timestamp(1, 1)) == 17
    assert bson_type_code(Decimal128("1")) == 19
    assert bson_type_code(MinKey()) == -1
    assert bson_type_code(MaxKey()) == 127
    assert type_name(2**40) == "long"


def test_type_codes_parsing() -> None:
    assert type_codes("number") == {1, 16, 18, 19}
    assert type_codes("string") == {2}
    assert type_codes(2.0) == {2}
    assert type_codes(Int64(4)) == {4}
    assert type_codes(["int", 1]) == {16, 1}
    for bad, message in [
        ("strin", "Unknown type name alias: strin"),
        (100, "Invalid numerical type code: 100"),
        (2.5, "Invalid numerical type code: 2.5"),
        (float("nan"), "Invalid numerical type code: nan"),
        ({}, "type must be represented as a number or a string"),
        (True, "type must be represented as a number or a string"),
    ]:
        with pytest.raises(MongoError) as info:
            type_codes(bad)
        assert info.value.code == 2
        assert info.value.errmsg == message


# --- errors -------------------------------------------------------------------------------------


def test_mongo_error_reply() -> None:
    err = errors.bad_value("unknown operator: $foo")
    assert isinstance(err, Exception)
    assert err.to_reply() == {
        "ok": 0.0,
        "errmsg": "unknown operator: $foo",
        "code": 2,
        "codeName": "BadValue",
    }


def test_error_constructors_carry_codes_and_names() -> None:
    cases = [
        (errors.failed_to_parse("x"), 9, "FailedToParse"),
        (errors.type_mismatch("x"), 14, "TypeMismatch"),
        (errors.namespace_not_found(), 26, "NamespaceNotFound"),
        (errors.index_not_found("x"), 27, "IndexNotFound"),
        (errors.path_not_viable("x"), 28, "PathNotViable"),
        (errors.conflicting_update_operators("x"), 40, "ConflictingUpdateOperators"),
        (errors.immutable_field("x"), 66, "ImmutableField"),
        (errors.invalid_options("x"), 72, "InvalidOptions"),
        (errors.invalid_namespace("x"), 73, "InvalidNamespace"),
        (errors.not_writable_primary(), 10107, "NotWritablePrimary"),
        (errors.bson_object_too_large("x"), 10334, "BSONObjectTooLarge"),
        (errors.location(16837, "x"), 16837, "Location16837"),
    ]
    for err, code, name in cases:
        assert (err.code, err.code_name) == (code, name)
        assert err.to_reply()["codeName"] == name


def test_duplicate_key_details_in_reply() -> None:
    err = errors.duplicate_key(
        "E11000 duplicate key error collection: db.c index: _id_ dup key: { _id: 1 }",
        key_pattern={"_id": 1},
        key_value={"_id": 1},
    )
    reply = err.to_reply()
    assert reply["code"] == 11000 and reply["codeName"] == "DuplicateKey"
    assert reply["keyPattern"] == {"_id": 1} and reply["keyValue"] == {"_id": 1}
