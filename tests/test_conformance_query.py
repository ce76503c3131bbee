"""Conformance of the query language with MongoDB's documented behaviour (issue 2).

Every case runs a filter over a small collection and states which documents mongod returns:
null versus missing, arrays (element and whole-array matching, nested arrays, numeric path
components), $elemMatch/$all/$size/$type/$in/$mod/$regex/$not edge cases, comparisons across
numeric types with NaN, and the BadValue errors for malformed operators.
"""

from __future__ import annotations

import math
import re
from typing import Any

import pytest
from bson.decimal128 import Decimal128
from bson.int64 import Int64
from bson.max_key import MaxKey
from bson.min_key import MinKey
from bson.regex import Regex

from node.engine.database import Engine
from node.engine.errors import MongoError
from node.engine.indexes import IndexManager
from node.engine.memory_store import MemoryStore
from node.engine.planner import Planner


def matching(docs: list[dict[str, Any]], flt: dict[str, Any]) -> list[int]:
    """The positions (``_id``) of the documents ``flt`` matches."""
    coll = Engine(MemoryStore())["conf"]["query"]
    coll.insert([{"_id": i, **d} for i, d in enumerate(docs)])
    return sorted(d["_id"] for d in coll.find(flt))


def matching_with_index(
    docs: list[dict[str, Any]], flt: dict[str, Any], key: list[tuple[str, Any]], **opts: Any
) -> list[int]:
    """As :func:`matching`, with the planner and an index on ``key`` (results must not change)."""
    engine = Engine(MemoryStore(), indexes=IndexManager(), planner=Planner())
    coll = engine["conf"]["query"]
    coll.insert([{"_id": i, **d} for i, d in enumerate(docs)])
    with engine.store.write() as txn:
        assert engine.indexes is not None
        engine.indexes.create_index(txn, "conf.query", key, **opts)
    return sorted(d["_id"] for d in coll.find(flt))


def query_error(flt: dict[str, Any]) -> MongoError:
    coll = Engine(MemoryStore())["conf"]["query"]
    coll.insert([{"_id": 0, "a": 1}])
    with pytest.raises(MongoError) as info:
        list(coll.find(flt))
    return info.value


# --- null, missing and $exists -------------------------------------------------------------------------

NULLS = [
    {"a": None},  # 0
    {},  # 1
    {"a": [None, 1]},  # 2
    {"a": []},  # 3
    {"a": [1]},  # 4
    {"a": [{"b": 1}, {"c": 2}]},  # 5
    {"a": [{"b": 1}]},  # 6
    {"a": [1, 2]},  # 7
    {"a": [[None]]},  # 8
    {"a": {"b": None}},  # 9
]


NULL_CASES: list[tuple[dict[str, Any], list[int]]] = [
    ({"a": None}, [0, 1, 2]),
    ({"a": {"$eq": None}}, [0, 1, 2]),
    ({"a": {"$in": [None]}}, [0, 1, 2]),
    ({"a": {"$exists": False}}, [1]),
    ({"a": {"$ne": None}}, [3, 4, 5, 6, 7, 8, 9]),
    ({"a": {"$nin": [None]}}, [3, 4, 5, 6, 7, 8, 9]),
    ({"a": {"$gte": None}}, [0, 1, 2]),
    ({"a": {"$lt": None}}, []),
    ({"a": {"$type": "null"}}, [0, 2]),
    # an array element lacking the field is null; scalars in the array are not
    ({"a.b": None}, [0, 1, 5, 9]),
    ({"a.b": {"$ne": None}}, [2, 3, 4, 6, 7, 8]),
    ({"a.b": {"$exists": True}}, [5, 6, 9]),
    ({"a.b": {"$exists": False}}, [0, 1, 2, 3, 4, 7, 8]),
    ({"a": {"$eq": [None]}}, [8]),
    ({"a": {"$elemMatch": {"$eq": None}}}, [2]),
    ({"a": {"$eq": None, "$exists": True}}, [0, 2]),
]


@pytest.mark.parametrize(("flt", "ids"), NULL_CASES)
def test_null_and_missing(flt: dict[str, Any], ids: list[int]) -> None:
    assert matching(NULLS, flt) == ids


def test_exists_argument_is_truthiness() -> None:
    docs = [{"a": 1}, {}]
    assert matching(docs, {"a": {"$exists": 0}}) == [1]
    assert matching(docs, {"a": {"$exists": "no"}}) == [0]


# --- arrays: elements, whole arrays, nested arrays, numeric components ------------------------------

ARRAYS = [
    {"a": [1, 2, 3]},  # 0
    {"a": [1, [2, 3]]},  # 1
    {"a": 2},  # 2
    {"a": [[1, 2]]},  # 3
    {"a": [2]},  # 4
    {"a": []},  # 5
]


ARRAY_CASES: list[tuple[dict[str, Any], list[int]]] = [
    ({"a": 2}, [0, 2, 4]),  # one level of traversal only: [1, [2, 3]] does not hold 2
    ({"a": [2, 3]}, [1]),  # whole array, or an element that is that array
    ({"a": [1, 2, 3]}, [0]),
    ({"a": []}, [5]),
    ({"a": {"$ne": 2}}, [1, 3, 5]),
    ({"a": {"$nin": [1, 2]}}, [3, 5]),
    ({"a": {"$ne": [1, 2]}}, [0, 1, 2, 4, 5]),
    ({"a": {"$in": [[1, 2]]}}, [3]),
    ({"a": {"$nin": []}}, [0, 1, 2, 3, 4, 5]),
    ({"a": {"$in": []}}, []),
    ({"a": {"$all": [2, 3]}}, [0]),
    ({"a": {"$all": [[2, 3]]}}, [1]),
    ({"a": {"$all": [1, [2, 3]]}}, [1]),
    ({"a": {"$all": []}}, []),
    ({"a": {"$size": 2}}, [1]),
    ({"a": {"$size": 2.0}}, [1]),
    ({"a": {"$size": Int64(1)}}, [3, 4]),
    ({"a": {"$size": 0}}, [5]),
    ({"a": {"$gt": 1, "$lt": 3}}, [0, 2, 4]),  # each bound may hold for a different element
    ({"a": {"$elemMatch": {"$gt": 1, "$lt": 3}}}, [0, 4]),  # one element must satisfy both
    ({"a": {"$elemMatch": {"$gt": 1}}}, [0, 4]),  # no traversal of nested arrays
    ({"a": {"$elemMatch": {"$elemMatch": {"$gt": 2}}}}, [1]),
    ({"a": {"$gt": [1]}}, [0, 1, 3, 4]),  # an array operand compares whole arrays too
    ({"a": {"$type": "array"}}, [0, 1, 3, 4, 5]),
    ({"a.0": 1}, [0, 1, 3]),
    ({"a.0": [1, 2]}, [3]),
    ({"a.0.0": 1}, [3]),
    ({"a.1": [2, 3]}, [1]),
    ({"a.1.0": 2}, [1]),
    ({"a.1": {"$exists": True}}, [0, 1]),
    ({"a.0": {"$exists": False}}, [2, 5]),
]


@pytest.mark.parametrize(("flt", "ids"), ARRAY_CASES)
def test_arrays(flt: dict[str, Any], ids: list[int]) -> None:
    assert matching(ARRAYS, flt) == ids


PATHS = [
    {"a": [[{"b": 1}]]},  # 0
    {"a": [{"b": [1, 2]}]},  # 1
    {"a": {"0": {"b": 1}}},  # 2
    {"a": [{"b": 1}, {"b": 5}]},  # 3
    {"a": {"b": [{"c": 1}]}},  # 4
    {"a": [{"0": "x"}, "y"]},  # 5
    {"a": [{"b": {"c": [1]}}]},  # 6
]


PATH_CASES: list[tuple[dict[str, Any], list[int]]] = [
    ({"a.b": 1}, [1, 3]),  # a named field does not reach into an array of arrays
    ({"a.0.b": 1}, [0, 1, 2, 3]),  # '0' is an index and a field name alike
    ({"a.1.b": 5}, [3]),
    ({"a.b.c": 1}, [4, 6]),
    ({"a.0": "x"}, [5]),  # field '0' of an element
    ({"a.0": "y"}, []),
    ({"a.b": [1, 2]}, [1]),
    ({"a.b.0": 1}, [1]),
    ({"a.b.c.0": 1}, [6]),
    ({"a.b": {"$size": 2}}, [1]),
    ({"a.b": {"$elemMatch": {"$eq": 2}}}, [1]),
    ({"a.b": {"$all": [1, 5]}}, [3]),
    ({"a": {"$elemMatch": {"b": {"$elemMatch": {"$eq": 2}}}}}, [1]),
    ({"$nor": [{"a.b": 1}]}, [0, 2, 4, 5, 6]),
]


@pytest.mark.parametrize(("flt", "ids"), PATH_CASES)
def test_dotted_paths(flt: dict[str, Any], ids: list[int]) -> None:
    assert matching(PATHS, flt) == ids


SUBDOCS = [
    {"a": [{"b": 1, "c": 2}, {"b": 2, "c": 1}]},  # 0
    {"a": [{"b": 1, "c": 1}]},  # 1
    {"a": {"b": 1, "c": 2}},  # 2
    {"a": [{"b": [1], "c": 3}]},  # 3
]


SUBDOC_CASES: list[tuple[dict[str, Any], list[int]]] = [
    ({"a.b": 1, "a.c": 1}, [0, 1]),  # different elements may satisfy each condition
    ({"a": {"$elemMatch": {"b": 1, "c": 1}}}, [1]),
    ({"a": {"$elemMatch": {"b": 1, "c": 2}}}, [0]),  # $elemMatch needs an array
    ({"a": {"$elemMatch": {"b": {"$gte": 2}}}}, [0]),
    ({"a": {"$elemMatch": {"$or": [{"b": 2}, {"c": 3}]}}}, [0, 3]),
    ({"a": {"$elemMatch": {"b": 1, "$or": [{"c": 1}, {"c": 3}]}}}, [1, 3]),
    ({"a": {"$all": [{"$elemMatch": {"b": 2}}, {"$elemMatch": {"c": 2}}]}}, [0]),
    ({"a": {"$not": {"$elemMatch": {"b": 1}}}}, [2]),
    ({"a": {"b": 1, "c": 2}}, [0, 2]),  # exact sub-document equality, field order included
    ({"a": {"c": 2, "b": 1}}, []),
    ({"a": {"$type": "object"}}, [0, 1, 2, 3]),
]


@pytest.mark.parametrize(("flt", "ids"), SUBDOC_CASES)
def test_sub_documents(flt: dict[str, Any], ids: list[int]) -> None:
    assert matching(SUBDOCS, flt) == ids


# --- types, numbers, NaN ---------------------------------------------------------------------------------

NUMBERS = [
    {"a": 2},  # 0
    {"a": Int64(2)},  # 1
    {"a": 2.0},  # 2
    {"a": Decimal128("2.0")},  # 3
    {"a": math.nan},  # 4
    {"a": "2"},  # 5
    {"a": 2.5},  # 6
    {"a": Decimal128("NaN")},  # 7
    {"a": -math.inf},  # 8
]


NUMBER_CASES: list[tuple[dict[str, Any], list[int]]] = [
    ({"a": 2}, [0, 1, 2, 3]),
    ({"a": Decimal128("2")}, [0, 1, 2, 3]),
    ({"a": {"$gt": 1.5}}, [0, 1, 2, 3, 6]),
    ({"a": {"$lte": Decimal128("2.25")}}, [0, 1, 2, 3, 8]),
    ({"a": {"$lt": math.inf}}, [0, 1, 2, 3, 6, 8]),  # NaN is never less (or greater)
    ({"a": {"$gt": -math.inf}}, [0, 1, 2, 3, 6]),
    ({"a": math.nan}, [4, 7]),  # NaN equals NaN, double or decimal
    ({"a": {"$gte": math.nan}}, [4, 7]),
    ({"a": {"$gt": math.nan}}, []),
    ({"a": {"$lt": "3"}}, [5]),  # no comparison across type brackets
    ({"a": {"$gt": MinKey()}}, [0, 1, 2, 3, 4, 5, 6, 7, 8]),
    ({"a": {"$lt": MaxKey()}}, [0, 1, 2, 3, 4, 5, 6, 7, 8]),
    ({"a": {"$type": "number"}}, [0, 1, 2, 3, 4, 6, 7, 8]),
    ({"a": {"$type": "int"}}, [0]),
    ({"a": {"$type": "long"}}, [1]),
    ({"a": {"$type": "double"}}, [2, 4, 6, 8]),
    ({"a": {"$type": 19}}, [3, 7]),
    ({"a": {"$type": 16.0}}, [0]),
    ({"a": {"$type": ["string", "long"]}}, [1, 5]),
    ({"a": {"$in": [None, 2]}}, [0, 1, 2, 3]),
    ({"a": {"$mod": [2, 0]}}, [0, 1, 2, 3, 6]),  # the value truncates too: 2.5 -> 2
    ({"a": {"$mod": [-2, 0]}}, [0, 1, 2, 3, 6]),
    ({"a": {"$mod": [2.9, 0]}}, [0, 1, 2, 3, 6]),  # divisor truncated toward zero
    ({"a": {"$mod": [2, 0.5]}}, [0, 1, 2, 3, 6]),  # and the remainder
    ({"a": {"$mod": [3, 2]}}, [0, 1, 2, 3, 6]),
]


@pytest.mark.parametrize(("flt", "ids"), NUMBER_CASES)
def test_numbers(flt: dict[str, Any], ids: list[int]) -> None:
    assert matching(NUMBERS, flt) == ids


# --- $regex, $in with regexes, $not ---------------------------------------------------------------------

STRINGS = [
    {"a": "abc"},  # 0
    {"a": ["ABC", "x\nabc"]},  # 1
    {"a": 5},  # 2
    {"a": "x\nABC"},  # 3
    {},  # 4
]


REGEX_CASES: list[tuple[dict[str, Any], list[int]]] = [
    ({"a": {"$regex": "^abc"}}, [0]),
    ({"a": {"$regex": "^abc", "$options": "m"}}, [0, 1]),
    ({"a": {"$regex": "^abc", "$options": "i"}}, [0, 1]),
    ({"a": {"$regex": "^abc", "$options": "im"}}, [0, 1, 3]),
    ({"a": {"$regex": "a b # comment\nc", "$options": "x"}}, [0, 1]),
    ({"a": {"$regex": "x.abc"}}, []),
    ({"a": {"$regex": "x.abc", "$options": "s"}}, [1]),
    ({"a": {"$regex": "c$"}}, [0, 1]),
    ({"a": {"$regex": "^c$", "$options": "m"}}, []),
    ({"a": Regex("^abc$", "m")}, [0, 1]),
    ({"a": {"$regex": Regex("^abc", "i")}}, [0, 1]),
    ({"a": {"$regex": Regex("^abc"), "$options": "i"}}, [0, 1]),  # a flagless regex object
    ({"a": {"$in": [Regex("^x"), 5]}}, [1, 2, 3]),
    ({"a": {"$in": [Regex("^abc", "i"), None]}}, [0, 1, 4]),
    ({"a": {"$nin": [Regex("^abc", "i")]}}, [2, 3, 4]),
    ({"a": {"$all": [Regex("^a", "i"), Regex("c$")]}}, [0, 1]),
    ({"a": {"$not": Regex("^a")}}, [1, 2, 3, 4]),
    ({"a": {"$not": {"$regex": "^a", "$options": "i"}}}, [2, 3, 4]),
    ({"a": {"$not": {"$type": "string"}}}, [2, 4]),
    ({"a": {"$not": {"$gt": 1}}}, [0, 1, 3, 4]),
    ({"a": {"$regex": "5"}}, []),  # a regex only matches strings
]


@pytest.mark.parametrize(("flt", "ids"), REGEX_CASES)
def test_regex(flt: dict[str, Any], ids: list[int]) -> None:
    assert matching(STRINGS, flt) == ids


def test_regex_options_given_twice_are_refused() -> None:
    """A regex value that has flags of its own may not be combined with ``$options``."""
    err = query_error({"a": {"$regex": Regex("^a", "i"), "$options": "m"}})
    assert (err.code, err.errmsg) == (51075, "options set in both $regex and $options")
    err = query_error({"a": {"$options": "m", "$regex": Regex("^a", "i")}})
    assert err.code == 51074
    # Python patterns carry the 'u' flag as BSON encodes them, so the same holds for them
    assert query_error({"a": {"$regex": re.compile("^a"), "$options": "i"}}).code == 51075


# --- logical operators ------------------------------------------------------------------------------


def test_logical_operators() -> None:
    docs = [{"a": 1, "b": 1}, {"a": 1, "b": 2}, {"a": 2}]
    assert matching(docs, {"$or": [{"a": 2}, {"b": 2}]}) == [1, 2]
    assert matching(docs, {"$and": [{"a": 1}, {"b": {"$ne": 1}}]}) == [1]
    assert matching(docs, {"$nor": [{"a": 2}, {"b": 2}]}) == [0]
    assert matching(docs, {"a": 1, "$or": [{"b": 1}, {"b": {"$exists": False}}]}) == [0]


# --- malformed operators: BadValue (code 2) with MongoDB's message -------------------------------------


@pytest.mark.parametrize(
    ("flt", "message"),
    [
        ({"$foo": 1}, "unknown top level operator: $foo"),
        ({"a": {"$foo": 1}}, "unknown operator: $foo"),
        ({"a": {"$eq": 1, "b": 1}}, "unknown operator: b"),
        ({"$and": []}, "$and/$or/$nor must be a nonempty array"),
        ({"$or": [1]}, "$or/$and/$nor entries need to be full objects"),
        ({"a": {"$in": 5}}, "$in needs an array"),
        ({"a": {"$nin": {}}}, "$nin needs an array"),
        ({"a": {"$all": 5}}, "$all needs an array"),
        ({"a": {"$in": [{"$gt": 1}]}}, "cannot nest $ under $in"),
        ({"a": {"$elemMatch": 5}}, "$elemMatch needs an Object"),
        ({"a": {"$size": 2.5}}, "$size must be a whole number"),
        ({"a": {"$size": -1}}, "$size may not be negative"),
        ({"a": {"$size": "2"}}, "$size needs a number"),
        ({"a": {"$mod": [2]}}, "malformed mod, not enough elements"),
        ({"a": {"$mod": [2, 0, 1]}}, "malformed mod, too many elements"),
        ({"a": {"$mod": ["2", 0]}}, "malformed mod, divisor not a number"),
        ({"a": {"$mod": [0, 0]}}, "divisor cannot be 0"),
        ({"a": {"$type": "foo"}}, "Unknown type name alias: foo"),
        ({"a": {"$type": 100}}, "Invalid numerical type code: 100"),
        ({"a": {"$regex": 5}}, "$regex has to be a string"),
        ({"a": {"$options": "i"}}, "$options needs a $regex"),
        ({"a": {"$not": 2}}, "$not needs a regex or a document"),
        ({"a": {"$not": {}}}, "$not cannot be empty"),
        ({"a": {"$all": [{"$elemMatch": {"b": 1}}, 5]}}, "$all/$elemMatch has to be consistent"),
    ],
)
def test_malformed_operators(flt: dict[str, Any], message: str) -> None:
    err = query_error(flt)
    assert (err.code, err.errmsg) == (2, message)


def test_unknown_regex_option_is_51108() -> None:
    err = query_error({"a": {"$regex": "a", "$options": "q"}})
    assert (err.code, err.errmsg) == (51108, "invalid flag in regex options: q")


def test_elem_match_object_form_treats_inner_arrays_as_documents() -> None:
    """mongod matches an array element that is itself an array as the document it is in BSON
    (fields "0", "1", ...); scalars never match the object form."""
    docs = [{"a": [1, {"b": 1}]}, {"a": [1, [2]]}, {"a": [1, 2]}, {"a": [{"c": 1}]}, {"a": []}]
    assert matching(docs, {"a": {"$elemMatch": {}}}) == [0, 1, 3]
    assert matching(docs, {"a": {"$elemMatch": {"b": {"$exists": False}}}}) == [1, 3]
    assert matching(docs, {"a": {"$elemMatch": {"0": 2}}}) == [1]
    assert matching(docs, {"a": {"$all": [{"$elemMatch": {}}]}}) == [0, 1, 3]


def test_regex_and_eq_against_stored_regexes() -> None:
    """A regex query matches strings and equal regex values; $eq of a regex only the latter."""
    docs = [{"a": "abc"}, {"a": Regex("abc")}, {"a": Regex("abc", "i")}, {"a": [Regex("abc")]}]
    assert matching(docs, {"a": Regex("abc")}) == [0, 1, 3]
    assert matching(docs, {"a": {"$in": [Regex("abc")]}}) == [0, 1, 3]
    assert matching(docs, {"a": {"$eq": Regex("abc")}}) == [1, 3]
    assert matching(docs, {"a": {"$eq": "abc"}}) == [0]


# --- the same answers through an index -------------------------------------------------------------

INDEXED_CASES = [
    (docs, flt, ids)
    for docs, cases in [
        (NULLS, NULL_CASES),
        (ARRAYS, ARRAY_CASES),
        (PATHS, PATH_CASES),
        (SUBDOCS, SUBDOC_CASES),
        (NUMBERS, NUMBER_CASES),
        (STRINGS, REGEX_CASES),
    ]
    for flt, ids in cases
]


@pytest.mark.parametrize(
    "key",
    [[("a", 1)], [("a", -1)], [("a.b", 1)], [("a", 1), ("b", 1)]],
    ids=["a", "a_desc", "a.b", "a_b"],
)
def test_an_index_never_changes_the_answer(key: list[tuple[str, Any]]) -> None:
    """Index bounds must cover every document the matcher accepts (multikey arrays, nested
    $elemMatch, MinKey/MaxKey comparisons that cross types, regexes, null/missing)."""
    for docs, flt, ids in INDEXED_CASES:
        assert matching_with_index(docs, flt, key) == ids, flt


def test_sparse_index_never_changes_the_answer() -> None:
    for docs, flt, ids in INDEXED_CASES:
        assert matching_with_index(docs, flt, [("a", 1)], sparse=True) == ids, flt


# --- jstests/core/null_query_semantics.js (the cases without the deprecated 'undefined') -----------

NULL_SEMANTICS = {
    "a_empty_subobject": {"a": {}},
    "a_null": {"a": None},
    "a_number": {"a": 4},
    "a_subobject_b_not_null": {"a": {"b": "hi"}},
    "a_subobject_b_null": {"a": {"b": None}},
    "no_a": {},
    "a_double_array": {"a": [[]]},
    "a_empty_array": {"a": []},
    "a_object_array_all_b_nulls": {"a": [{"b": None}, {"b": None}, {}]},
    "a_object_array_no_b_nulls": {"a": [{"b": 1}, {"b": 3}, {"b": "string"}]},
    "a_object_array_some_b_nulls": {"a": [{"b": None}, {"b": 3}, {"b": None}]},
    "a_object_array_some_b_missing": {"a": [{"b": 3}, {}]},
    "a_value_array_all_nulls": {"a": [None, None]},
    "a_value_array_no_nulls": {"a": [1, "string", 4]},
    "a_value_array_with_null": {"a": [1, "string", None, 4]},
}

NULL_SEMANTICS_CASES = [
    ({"a": {"$eq": None}}, "a_null a_value_array_all_nulls a_value_array_with_null no_a"),
    (
        {"a": {"$ne": None}},
        "a_double_array a_empty_array a_empty_subobject a_number a_object_array_all_b_nulls "
        "a_object_array_no_b_nulls a_object_array_some_b_nulls a_object_array_some_b_missing "
        "a_subobject_b_not_null a_subobject_b_null a_value_array_no_nulls",
    ),
    ({"a": {"$elemMatch": {"$eq": None}}}, "a_value_array_all_nulls a_value_array_with_null"),
    (
        {"a": {"$elemMatch": {"$ne": None}}},
        "a_double_array a_object_array_all_b_nulls a_object_array_no_b_nulls "
        "a_object_array_some_b_nulls a_object_array_some_b_missing a_value_array_no_nulls "
        "a_value_array_with_null",
    ),
    (
        {"a.b": {"$eq": None}},
        "a_empty_subobject a_null a_number a_subobject_b_null no_a a_object_array_all_b_nulls "
        "a_object_array_some_b_nulls a_object_array_some_b_missing",
    ),
    (
        {"a.b": {"$ne": None}},
        "a_subobject_b_not_null a_double_array a_empty_array a_object_array_no_b_nulls "
        "a_value_array_all_nulls a_value_array_no_nulls a_value_array_with_null",
    ),
    ({"a.b": {"$elemMatch": {"$eq": None}}}, ""),
    ({"a.b": {"$elemMatch": {"$ne": None}}}, ""),
    (
        {"a": {"$elemMatch": {"b": {"$eq": None}}}},
        "a_double_array a_object_array_all_b_nulls a_object_array_some_b_nulls "
        "a_object_array_some_b_missing",
    ),
    (
        {"a": {"$elemMatch": {"b": {"$ne": None}}}},
        "a_object_array_no_b_nulls a_object_array_some_b_nulls a_object_array_some_b_missing",
    ),
]


@pytest.mark.parametrize(
    ("key", "opts"),
    [
        (None, {}),
        ([("a", 1)], {}),
        ([("a", -1)], {}),
        ([("a", 1)], {"sparse": True}),
        ([("a.b", 1)], {}),
        ([("_id", 1), ("a.b", 1)], {}),
        ([("a.b", 1), ("_id", 1)], {"sparse": True}),
    ],
)
def test_null_query_semantics(key: list[tuple[str, Any]] | None, opts: dict[str, Any]) -> None:
    engine = Engine(MemoryStore(), indexes=IndexManager(), planner=Planner())
    coll = engine["conf"]["nulls"]
    coll.insert([{"_id": name, **doc} for name, doc in NULL_SEMANTICS.items()])
    if key is not None:
        with engine.store.write() as txn:
            assert engine.indexes is not None
            engine.indexes.create_index(txn, "conf.nulls", key, **opts)
    for flt, names in NULL_SEMANTICS_CASES:
        assert sorted(d["_id"] for d in coll.find(flt)) == sorted(names.split()), flt


def test_dbref_fields_are_queryable_paths() -> None:
    """A DBRef is the document {$ref, $id[, $db]}: its fields can be queried (and indexed)."""
    docs = [
        {"a": [{"b": {"$ref": "old", "$id": 0}}]},
        {"r": {"$ref": "x", "$id": 7, "$db": "d"}},
    ]
    for flt, ids in [
        ({"a.b.$ref": "old"}, [0]),
        ({"a.0.b.$ref": "old"}, [0]),
        ({"a.b.$id": 0}, [0]),
        ({"r.$id": {"$gt": 5}}, [1]),
        ({"r.$db": "d"}, [1]),
    ]:
        assert matching(docs, flt) == ids
        assert matching_with_index(docs, flt, [("a.b.$ref", 1)]) == ids
