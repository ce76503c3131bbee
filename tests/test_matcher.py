"""Tests for node.engine.matcher, written from the MongoDB manual's query operator pages."""

from __future__ import annotations

import datetime
import re
from typing import Any

import pytest
from bson import SON, Decimal128, Int64, MaxKey, MinKey, ObjectId, Regex
from hypothesis import given, settings
from hypothesis import strategies as st

from node.engine.errors import MongoError
from node.engine.matcher import Matcher
from node.engine.values import canonical_rank, compare


def ids(query: dict[str, Any], docs: list[dict[str, Any]]) -> list[Any]:
    m = Matcher(query)
    return [d["_id"] for d in docs if m.matches(d)]


def ok(query: dict[str, Any], doc: dict[str, Any]) -> bool:
    return Matcher(query).matches(doc)


def bad(query: Any, message: str, code: int = 2) -> None:
    with pytest.raises(MongoError) as info:
        Matcher(query)
    assert info.value.code == code
    assert info.value.errmsg == message


# --- equality -------------------------------------------------------------------------------------


def test_empty_query_matches_everything() -> None:
    assert ok({}, {"_id": 1})
    assert Matcher(None).matches({})


def test_implicit_and_of_fields() -> None:
    doc = {"_id": 1, "name": "ann", "age": 30}
    assert ok({"name": "ann", "age": 30}, doc)
    assert not ok({"name": "ann", "age": 31}, doc)


def test_scalar_equality_across_number_types() -> None:
    for v in (5, 5.0, Int64(5), Decimal128("5")):
        assert ok({"a": v}, {"a": 5})
    assert not ok({"a": 5}, {"a": "5"})
    assert not ok({"a": 1}, {"a": True})
    assert not ok({"a": True}, {"a": 1})


def test_subdocument_equality_is_exact_and_ordered() -> None:
    doc = {"a": {"x": 1, "y": 2}}
    assert ok({"a": {"x": 1, "y": 2}}, doc)
    assert not ok({"a": {"y": 2, "x": 1}}, doc)
    assert not ok({"a": {"x": 1}}, doc)
    assert ok({"a": SON([("x", 1.0), ("y", 2)])}, doc)


def test_array_equality_and_membership() -> None:
    doc = {"tags": ["red", "blank"]}
    assert ok({"tags": ["red", "blank"]}, doc)
    assert not ok({"tags": ["blank", "red"]}, doc)
    assert ok({"tags": "red"}, doc)
    assert not ok({"tags": "green"}, doc)


def test_arrays_of_arrays() -> None:
    doc = {"a": [[1, 2], [3]]}
    assert ok({"a": [1, 2]}, doc)  # an element equals the array
    assert ok({"a": [[1, 2], [3]]}, doc)
    assert not ok({"a": 1}, doc)  # only one level of implicit traversal
    assert ok({"a.0": [1, 2]}, doc)
    assert ok({"a.0.1": 2}, doc)
    assert ok({"a": {"$elemMatch": {"$elemMatch": {"$eq": 3}}}}, doc)


def test_null_matches_null_and_missing() -> None:
    docs = [{"_id": 1, "a": None}, {"_id": 2}, {"_id": 3, "a": 0}, {"_id": 4, "a": [None, 1]}]
    assert ids({"a": None}, docs) == [1, 2, 4]
    assert ids({"a": {"$eq": None}}, docs) == [1, 2, 4]
    assert ids({"a": {"$ne": None}}, docs) == [3]
    assert ids({"a": {"$exists": False}}, docs) == [2]
    assert ids({"a": {"$type": "null"}}, docs) == [1, 4]


def test_null_through_arrays_of_documents() -> None:
    # the documented cases of jstests null2: scalar elements and empty arrays reach nothing
    docs = [
        {"_id": 1, "a": [{"b": 5}]},
        {"_id": 2, "a": [{}]},
        {"_id": 3, "a": []},
        {"_id": 4, "a": [{}, {"b": 5}]},
        {"_id": 5, "a": [5, {"b": 5}]},
    ]
    assert ids({"a.b": None}, docs) == [2, 4]
    assert ids({"a.b": {"$in": [None]}}, docs) == [2, 4]
    assert ok({"a.b": None}, {"a": 4})


def test_dot_notation_into_embedded_documents_and_arrays() -> None:
    user = {
        "_id": 1,
        "username": "nick",
        "emails": [
            {"email": "nick@example.com", "primary": True},
            {"email": "n@example.org", "primary": False},
        ],
    }
    assert ok({"emails.email": "n@example.org"}, user)
    assert ok({"emails.0.email": "nick@example.com"}, user)
    assert not ok({"emails.1.email": "nick@example.com"}, user)
    assert ok({"emails.primary": False}, user)


def test_regex_value_as_equality_means_match() -> None:
    doc = {"name": "Nicholas"}
    assert ok({"name": re.compile("^nic", re.I)}, doc)
    assert ok({"name": Regex("^Nic")}, doc)
    assert not ok({"name": re.compile("^nic")}, doc)
    # a stored regex equal to the query regex also matches
    assert ok({"r": re.compile("x")}, {"r": Regex("x", "u")})


# --- comparison ----------------------------------------------------------------------------------


def test_comparisons_stay_within_the_type_bracket() -> None:
    docs = [
        {"_id": 1, "a": 4},
        {"_id": 2, "a": 5.5},
        {"_id": 3, "a": "9"},
        {"_id": 4, "a": None},
        {"_id": 5},
        {"_id": 6, "a": [1, 7]},
        {"_id": 7, "a": True},
        {"_id": 8, "a": Decimal128("6")},
    ]
    assert ids({"a": {"$gt": 5}}, docs) == [2, 6, 8]
    assert ids({"a": {"$gte": 5.5}}, docs) == [2, 6, 8]
    assert ids({"a": {"$lt": 5}}, docs) == [1, 6]
    assert ids({"a": {"$lte": 4}}, docs) == [1, 6]
    assert ids({"a": {"$gt": "1"}}, docs) == [3]
    assert ids({"a": {"$gte": None}}, docs) == [4, 5]
    assert ids({"a": {"$lt": None}}, docs) == []


def test_range_operators_apply_independently_to_array_elements() -> None:
    # neither element is in (2, 5) but each bound is satisfied by some element
    assert ok({"a": {"$gt": 2, "$lt": 5}}, {"a": [1, 10]})
    assert not ok({"a": {"$elemMatch": {"$gt": 2, "$lt": 5}}}, {"a": [1, 10]})
    assert ok({"a": {"$elemMatch": {"$gt": 2, "$lt": 5}}}, {"a": [1, 3]})


def test_dates_and_object_ids_compare() -> None:
    d = datetime.datetime(2020, 5, 1)
    doc = {"at": d, "oid": ObjectId("5f0000000000000000000001")}
    assert ok({"at": {"$gt": datetime.datetime(2020, 1, 1)}}, doc)
    assert not ok({"at": {"$gt": 5}}, doc)
    assert ok({"oid": {"$lt": ObjectId("5f0000000000000000000002")}}, doc)


def test_nan_comparison_rules() -> None:
    nan = float("nan")
    assert ok({"a": nan}, {"a": nan})
    assert ok({"a": nan}, {"a": Decimal128("NaN")})
    assert ok({"a": {"$gte": nan}}, {"a": nan})
    assert not ok({"a": {"$gt": nan}}, {"a": nan})
    assert not ok({"a": {"$lt": 0}}, {"a": nan})
    assert not ok({"a": {"$gt": 0}}, {"a": nan})
    assert not ok({"a": {"$lt": nan}}, {"a": -1})


def test_minkey_maxkey_operands_compare_across_types() -> None:
    assert ok({"a": {"$lt": MaxKey()}}, {"a": "x"})
    assert ok({"a": {"$gt": MinKey()}}, {"a": 1})
    assert not ok({"a": {"$gt": MaxKey()}}, {"a": 1})


def test_ne_on_arrays_excludes_any_matching_element() -> None:
    docs = [{"_id": 1, "a": [1, 2]}, {"_id": 2, "a": [2, 3]}, {"_id": 3}, {"_id": 4, "a": 1}]
    assert ids({"a": {"$ne": 1}}, docs) == [2, 3]
    assert ids({"a": {"$ne": [2, 3]}}, docs) == [1, 3, 4]


# --- $in / $nin / $all ------------------------------------------------------------------------


def test_in_and_nin() -> None:
    docs = [
        {"_id": 1, "qty": 5},
        {"_id": 2, "qty": 15},
        {"_id": 3, "qty": [20, 5]},
        {"_id": 4},
        {"_id": 5, "qty": "5"},
    ]
    assert ids({"qty": {"$in": [5, 15]}}, docs) == [1, 2, 3]
    assert ids({"qty": {"$nin": [5, 15]}}, docs) == [4, 5]
    assert ids({"qty": {"$in": [None]}}, docs) == [4]
    assert ids({"qty": {"$in": []}}, docs) == []
    assert ids({"qty": {"$nin": []}}, docs) == [1, 2, 3, 4, 5]
    assert ids({"qty": {"$in": [5.0]}}, docs) == [1, 3]


def test_in_with_regexes_and_arrays() -> None:
    docs = [{"_id": 1, "tags": ["school", "home"]}, {"_id": 2, "tags": ["work"]}, {"_id": 3}]
    assert ids({"tags": {"$in": [re.compile("^sch"), "zzz"]}}, docs) == [1]
    assert ids({"tags": {"$nin": [Regex("^w")]}}, docs) == [1, 3]
    assert ids({"tags": {"$in": [["work"]]}}, docs) == [2]


def test_all() -> None:
    docs = [
        {"_id": 1, "tags": ["appliance", "school", "book"]},
        {"_id": 2, "tags": ["appliance", "book"]},
        {"_id": 3, "tags": "appliance"},
        {"_id": 4, "tags": [["appliance", "school"]]},
    ]
    assert ids({"tags": {"$all": ["appliance", "school"]}}, docs) == [1]
    assert ids({"tags": {"$all": ["appliance"]}}, docs) == [1, 2, 3]
    assert ids({"tags": {"$all": [["appliance", "school"]]}}, docs) == [4]
    assert ids({"tags": {"$all": []}}, docs) == []
    assert ids({"tags": {"$all": [re.compile("^sch")]}}, docs) == [1]


def test_all_with_elem_match() -> None:
    docs = [
        {"_id": 1, "qty": [{"size": "S", "num": 10}, {"size": "M", "num": 45}]},
        {"_id": 2, "qty": [{"size": "M", "num": 100}, {"size": "L", "num": 1}]},
        {"_id": 3, "qty": [{"size": "M", "num": 5}]},
    ]
    query = {
        "qty": {
            "$all": [
                {"$elemMatch": {"size": "M", "num": {"$gt": 50}}},
                {"$elemMatch": {"num": {"$lt": 5}}},
            ]
        }
    }
    assert ids(query, docs) == [2]
    assert ids({"qty": {"$all": [{"$elemMatch": {"size": "M"}}]}}, docs) == [1, 2, 3]


# --- element operators --------------------------------------------------------------------------


def test_exists() -> None:
    docs = [{"_id": 1, "a": None}, {"_id": 2}, {"_id": 3, "a": []}, {"_id": 4, "a": [{"b": 1}]}]
    assert ids({"a": {"$exists": True}}, docs) == [1, 3, 4]
    assert ids({"a": {"$exists": 0}}, docs) == [2]
    assert ids({"a.b": {"$exists": True}}, docs) == [4]
    assert ids({"a.b": {"$exists": False}}, docs) == [1, 2, 3]


def test_type_operator() -> None:
    docs = [
        {"_id": 1, "v": 1},
        {"_id": 2, "v": 2**40},
        {"_id": 3, "v": 1.5},
        {"_id": 4, "v": "s"},
        {"_id": 5, "v": [1, "x"]},
        {"_id": 6, "v": []},
        {"_id": 7, "v": Decimal128("1")},
        {"_id": 8},
        {"_id": 9, "v": {"x": 1}},
    ]
    assert ids({"v": {"$type": "int"}}, docs) == [1, 5]
    assert ids({"v": {"$type": 18}}, docs) == [2]
    assert ids({"v": {"$type": "number"}}, docs) == [1, 2, 3, 5, 7]
    assert ids({"v": {"$type": "string"}}, docs) == [4, 5]
    assert ids({"v": {"$type": "array"}}, docs) == [5, 6]
    assert ids({"v": {"$type": ["double", "object"]}}, docs) == [3, 9]
    bad({"v": {"$type": "nope"}}, "Unknown type name alias: nope")


def test_size() -> None:
    docs = [
        {"_id": 1, "a": [1, 2]},
        {"_id": 2, "a": [[1, 2, 3]]},
        {"_id": 3, "a": "xy"},
        {"_id": 4},
        {"_id": 5, "a": []},
    ]
    assert ids({"a": {"$size": 2}}, docs) == [1]
    assert ids({"a": {"$size": 1}}, docs) == [2]
    assert ids({"a": {"$size": 0}}, docs) == [5]
    assert ids({"a": {"$size": 2.0}}, docs) == [1]
    assert ids({"a": {"$not": {"$size": 2}}}, docs) == [2, 3, 4, 5]
    bad({"a": {"$size": "2"}}, "$size needs a number")
    bad({"a": {"$size": -1}}, "$size may not be negative")
    bad({"a": {"$size": 1.5}}, "$size must be a whole number")


def test_mod() -> None:
    docs = [
        {"_id": 1, "q": 0},
        {"_id": 2, "q": 5},
        {"_id": 3, "q": 12},
        {"_id": 4, "q": -8},
        {"_id": 5, "q": 8.9},
        {"_id": 6, "q": "8"},
    ]
    assert ids({"q": {"$mod": [4, 0]}}, docs) == [1, 3, 4, 5]
    assert ids({"q": {"$mod": [3, -2]}}, docs) == [4]  # sign follows the dividend, like C
    assert ids({"q": {"$mod": [4.5, 1]}}, docs) == [2]  # divisor truncated to 4
    bad({"q": {"$mod": 4}}, "malformed mod, needs to be an array")
    bad({"q": {"$mod": [4]}}, "malformed mod, not enough elements")
    bad({"q": {"$mod": [4, 1, 2]}}, "malformed mod, too many elements")
    bad({"q": {"$mod": ["4", 1]}}, "malformed mod, divisor not a number")
    bad({"q": {"$mod": [4, "1"]}}, "malformed mod, remainder not a number")
    bad({"q": {"$mod": [0, 1]}}, "divisor cannot be 0")


# --- $regex ------------------------------------------------------------------------------------


def test_regex_operator_with_options() -> None:
    docs = [
        {"_id": 1, "sku": "abc123"},
        {"_id": 2, "sku": "ABC789"},
        {"_id": 3, "sku": "xyz\nabc"},
        {"_id": 4, "sku": ["q", "abcq"]},
        {"_id": 5, "sku": 5},
    ]
    assert ids({"sku": {"$regex": "^abc"}}, docs) == [1, 4]
    assert ids({"sku": {"$regex": "^abc", "$options": "i"}}, docs) == [1, 2, 4]
    assert ids({"sku": {"$regex": "^abc", "$options": "m"}}, docs) == [1, 3, 4]
    assert ids({"sku": {"$regex": re.compile("^ABC")}}, docs) == [2]
    assert ids({"sku": {"$regex": Regex("^abc", "i")}}, docs) == [1, 2, 4]
    assert ids({"sku": {"$regex": " a b c ", "$options": "x"}}, docs) == [1, 3, 4]
    assert ids({"sku": {"$not": re.compile("^a")}}, docs) == [2, 3, 5]
    assert ids({"sku": {"$not": {"$regex": "^a"}}}, docs) == [2, 3, 5]
    assert ids({"sku": {"$in": [re.compile("9$"), 5]}}, docs) == [2, 5]


def test_regex_errors() -> None:
    bad({"a": {"$options": "i"}}, "$options needs a $regex")
    bad({"a": {"$regex": 5}}, "$regex has to be a string")
    bad({"a": {"$regex": "a", "$options": "q"}}, "invalid flag in regex options: q", 51108)
    with pytest.raises(MongoError) as info:
        Matcher({"a": {"$regex": "("}})
    assert info.value.code == 51091


# --- logical -----------------------------------------------------------------------------------


def test_and_or_nor_not() -> None:
    docs = [
        {"_id": 1, "price": 1.99, "qty": 10},
        {"_id": 2, "price": 5, "qty": 30},
        {"_id": 3, "price": 1.99},
        {"_id": 4, "qty": 5},
    ]
    assert ids({"$and": [{"price": 1.99}, {"qty": {"$lt": 20}}]}, docs) == [1]
    assert ids({"$or": [{"qty": {"$lt": 20}}, {"price": 5}]}, docs) == [1, 2, 4]
    assert ids({"$nor": [{"price": 1.99}, {"qty": {"$lt": 20}}]}, docs) == [2]
    assert ids({"price": {"$not": {"$gt": 1.99}}}, docs) == [1, 3, 4]
    assert ids({"$or": [{"price": 5}], "qty": 30}, docs) == [2]
    assert ids(
        {"$and": [{"$or": [{"qty": 5}, {"qty": 10}]}, {"$nor": [{"price": 1.99}]}]}, docs
    ) == [4]


def test_elem_match_object_form() -> None:
    docs = [
        {"_id": 1, "results": [{"product": "abc", "score": 10}, {"product": "xyz", "score": 5}]},
        {"_id": 2, "results": [{"product": "abc", "score": 8}, {"product": "xyz", "score": 7}]},
        {"_id": 3, "results": [{"product": "abc", "score": 7}, {"product": "xyz", "score": 8}]},
        {"_id": 4, "results": {"product": "xyz", "score": 8}},
    ]
    assert ids({"results": {"$elemMatch": {"product": "xyz", "score": {"$gte": 8}}}}, docs) == [3]
    # without $elemMatch the conditions may be met by different elements
    assert ids({"results.product": "xyz", "results.score": {"$gte": 8}}, docs) == [1, 2, 3, 4]
    assert ids({"results": {"$elemMatch": {"$or": [{"score": 10}, {"score": 7}]}}}, docs) == [
        1,
        2,
        3,
    ]


def test_comment_is_ignored_and_always_operators() -> None:
    assert ok({"$comment": "hello", "a": 1}, {"a": 1})
    assert ok({"$alwaysTrue": 1}, {})
    assert not ok({"$alwaysFalse": 1}, {})


# --- positional -----------------------------------------------------------------------------------


def test_match_position_reports_first_matched_element() -> None:
    doc = {"_id": 1, "grades": [85, 80, 80, 90]}
    assert Matcher({"grades": 80}).match_position(doc) == (True, 1)
    assert Matcher({"grades": {"$gte": 86}}).match_position(doc) == (True, 3)
    assert Matcher({"grades": 70}).match_position(doc) == (False, None)
    assert Matcher({"_id": 1}).match_position(doc) == (True, None)
    user = {"emails": [{"email": "a", "primary": True}, {"email": "b", "primary": False}]}
    assert Matcher({"emails.email": "b"}).match_position(user) == (True, 1)
    m = Matcher({"emails": {"$elemMatch": {"email": "b", "primary": False}}})
    assert m.match_position(user) == (True, 1)
    nested = {"a": [{"b": [1, 2]}, {"b": [3, 4]}]}
    assert Matcher({"a.b": 4}).match_position(nested) == (True, 1)
    assert Matcher({"_id": 1, "grades": 90}).match_position(doc) == (True, 3)
    assert Matcher({"grades": {"$ne": 1}}).match_position(doc) == (True, None)


# --- geo seam --------------------------------------------------------------------------------


def test_geo_operators_are_delegated() -> None:
    m = Matcher({"loc": {"$within": {"$box": [[0, 0], [2, 2]]}}})
    assert m.matches({"loc": [1, 1]})
    assert not m.matches({"loc": [3, 1]})
    assert not m.matches({})
    near = Matcher({"loc": {"$near": [0, 0], "$maxDistance": 1.5}})
    assert near.matches({"loc": [1, 1]})
    assert [path for path, _ in near.geo] == ["loc"]


# --- malformed queries -------------------------------------------------------------------------


def test_malformed_queries_raise_bad_value() -> None:
    bad({"a": {"$foo": 1}}, "unknown operator: $foo")
    bad({"a": {"$gt": 1, "b": 2}}, "unknown operator: b")
    bad({"$foo": 1}, "unknown top level operator: $foo")
    bad({"a": {"$in": 5}}, "$in needs an array")
    bad({"a": {"$nin": {"x": 1}}}, "$nin needs an array")
    bad({"a": {"$in": [{"$gt": 1}]}}, "cannot nest $ under $in")
    bad({"a": {"$all": 5}}, "$all needs an array")
    bad({"a": {"$all": [{"$elemMatch": {"b": 1}}, 5]}}, "$all/$elemMatch has to be consistent")
    bad({"a": {"$all": [{"$gt": 1}]}}, "no $ expressions in $all")
    bad({"$and": []}, "$and/$or/$nor must be a nonempty array")
    bad({"$or": {"a": 1}}, "$and/$or/$nor must be a nonempty array")
    bad({"$nor": [1]}, "$or/$and/$nor entries need to be full objects")
    bad({"a": {"$not": 5}}, "$not needs a regex or a document")
    bad({"a": {"$not": {}}}, "$not cannot be empty")
    bad({"a": {"$elemMatch": 5}}, "$elemMatch needs an Object")
    bad({"$and": [{"a": {"$bogus": 1}}]}, "unknown operator: $bogus")
    bad({"$where": "this.a > 1"},
            "$where is not allowed: JavaScript is not supported, use $expr instead")
    bad(5, "query filter must be an object")


def test_dbref_shaped_subdocument_is_equality() -> None:
    ref = SON([("$ref", "users"), ("$id", 1)])
    assert ok({"owner": ref}, {"owner": {"$ref": "users", "$id": 1}})


def test_ne_refuses_a_regex() -> None:
    bad({"a": {"$ne": re.compile("x")}}, "Can't have regex as arg to $ne.")


# --- properties --------------------------------------------------------------------------------

scalar = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 5),
    st.floats(-5, 5, allow_nan=False),
    st.sampled_from(["", "a", "b", "ab"]),
    st.just(float("nan")),
)
value = st.recursive(
    scalar,
    lambda c: st.one_of(
        st.lists(c, max_size=3), st.dictionaries(st.sampled_from(["x", "y"]), c, max_size=2)
    ),
    max_leaves=6,
)


@settings(max_examples=150, deadline=None)
@given(value, value)
def test_operator_identities(stored: Any, operand: Any) -> None:
    doc = {"a": stored}
    eq = ok({"a": {"$eq": operand}}, doc)
    assert ok({"a": {"$in": [operand]}}, doc) == eq
    assert ok({"a": {"$ne": operand}}, doc) == (not eq)
    assert ok({"a": {"$nin": [operand]}}, doc) == (not eq)
    assert ok({"a": {"$not": {"$eq": operand}}}, doc) == (not eq)
    assert ok({"$nor": [{"a": operand}]}, doc) == (not eq)
    assert ok({"a": {"$all": [operand]}}, doc) == eq
    assert ok({"a": operand}, doc) == eq  # no "$" keys: literal equality
    assert ok({"a": stored}, doc)
    gte, gt = ok({"a": {"$gte": operand}}, doc), ok({"a": {"$gt": operand}}, doc)
    lte, lt = ok({"a": {"$lte": operand}}, doc), ok({"a": {"$lt": operand}}, doc)
    assert gte == (gt or eq)
    assert lte == (lt or eq)


@settings(max_examples=150, deadline=None)
@given(scalar, scalar)
def test_comparisons_agree_with_compare_within_a_bracket(x: Any, y: Any) -> None:
    doc = {"a": x}
    nan = any(isinstance(v, float) and v != v for v in (x, y))
    if canonical_rank(x) != canonical_rank(y) or nan:
        if not nan:
            assert not ok({"a": {"$lt": y}}, doc) and not ok({"a": {"$gt": y}}, doc)
        return
    c = compare(x, y)
    assert ok({"a": {"$lt": y}}, doc) == (c < 0)
    assert ok({"a": {"$lte": y}}, doc) == (c <= 0)
    assert ok({"a": {"$gt": y}}, doc) == (c > 0)
    assert ok({"a": {"$gte": y}}, doc) == (c >= 0)


def test_pcre_spellings_are_translated() -> None:
    assert ok({"a": {"$regex": r"^(?<year>\d{4})-"}}, {"a": "2011-06"})
    assert ok({"a": {"$regex": r"x\Z"}}, {"a": "x\n"})  # PCRE \Z allows a final newline
    assert not ok({"a": {"$regex": r"x\z"}}, {"a": "x\n"})  # \z is the very end
    assert ok({"a": {"$regex": r"x\z"}}, {"a": "x"})
    assert ok({"a": {"$regex": r"\\z"}}, {"a": "\\z"})  # an escaped backslash stays literal
    bad({"a": {"$regex": r"(?<=a)b"}},  # RE2 has no lookbehind: refused (docs/regex.md)
        "Regular expression is invalid: lookbehind assertions are not supported: (?<=", 51091)
    bad({"a": {"$regex": "a\0b"}}, "Regular expression cannot contain an embedded null byte", 51109)
