"""Conformance of reads and of the write-side limits with MongoDB's documented behaviour (issue 2).

Projection ($slice, $elemMatch, positional ``.$``, inclusion/exclusion and ``_id``), sort with
MongoDB's array rules (ascending by the smallest element, descending by the largest, ``[]``
before null), distinct over arrays, count with skip/limit, findAndModify, field-name rules on
insert versus update, and the 16 MiB document limit.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
from bson.decimal128 import Decimal128
from bson.int64 import Int64

from node.engine.collection import Collection
from node.engine.database import Engine
from node.engine.errors import MongoError
from node.engine.memory_store import MemoryStore

MIB16 = 16 * 1024 * 1024


def coll_with(docs: list[dict[str, Any]]) -> Collection:
    coll = Engine(MemoryStore())["conf"]["read"]
    coll.insert([{"_id": i, **d} for i, d in enumerate(docs)])
    return coll


DOC = {
    "a": [1, 2, 3, 4, 5],
    "b": {"c": 1, "d": 2},
    "e": [{"x": 1, "y": 1}, {"x": 2, "y": 2}, {"x": 2, "y": 3}],
}
E = DOC["e"]


def projected(projection: dict[str, Any], flt: dict[str, Any] | None = None) -> dict[str, Any]:
    out = list(coll_with([DOC]).find(flt or {}, projection))
    assert len(out) == 1
    return out[0]


def projection_error(projection: dict[str, Any], flt: dict[str, Any] | None = None) -> MongoError:
    with pytest.raises(MongoError) as info:
        list(coll_with([DOC]).find(flt or {}, projection))
    return info.value


# --- projection -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (-2, [4, 5]),
        (2, [1, 2]),
        (-10, [1, 2, 3, 4, 5]),
        ([1, 2], [2, 3]),
        ([-2, 1], [4]),
        ([-10, 2], [1, 2]),
        ([10, 2], []),
    ],
)
def test_slice_projection(spec: Any, expected: list[int]) -> None:
    """$slice alone keeps every other field; skip may be negative (from the end)."""
    out = projected({"a": {"$slice": spec}})
    assert out == {"_id": 0, "a": expected, "b": DOC["b"], "e": E}


def test_slice_combines_with_inclusion_or_exclusion() -> None:
    assert projected({"a": {"$slice": 2}, "b": 1}) == {"_id": 0, "a": [1, 2], "b": DOC["b"]}
    assert projected({"a": {"$slice": [1, 1]}, "e": 0}) == {"_id": 0, "a": [2], "b": DOC["b"]}
    assert projected({"b.c": {"$slice": 1}})["b"] == DOC["b"]  # not an array: left as is


def test_slice_limit_must_be_positive() -> None:
    assert projection_error({"a": {"$slice": [1, 0]}}).code == 28724
    assert projection_error({"a": {"$slice": [1, -1]}}).code == 28724


def test_elem_match_projection() -> None:
    assert projected({"e": {"$elemMatch": {"x": 2}}}) == {"_id": 0, "e": [E[1]]}
    assert projected({"e": {"$elemMatch": {"x": 5}}}) == {"_id": 0}  # no match: field omitted
    assert projected({"b": {"$elemMatch": {"c": 1}}}) == {"_id": 0}  # not an array
    assert projected({"a": {"$elemMatch": {"$gt": 3}}}) == {"_id": 0, "a": [4]}
    out = projected({"e": {"$elemMatch": {"x": 2}}, "b": 1})
    assert out == {"_id": 0, "b": DOC["b"], "e": [E[1]]}
    assert list(out) == ["_id", "b", "e"]  # $elemMatch fields come after the other inclusions


@pytest.mark.parametrize(
    ("flt", "projection", "expected"),
    [
        ({"e.x": 2}, {"e.$": 1}, {"_id": 0, "e": [E[1]]}),
        ({"e.x": 2}, {"e.$": 1, "_id": 0}, {"e": [E[1]]}),
        ({"e": {"$elemMatch": {"x": 2, "y": 3}}}, {"e.$": 1}, {"_id": 0, "e": [E[2]]}),
        ({"a": {"$gt": 2}}, {"a.$": 1}, {"_id": 0, "a": [3]}),
        ({"a": 3}, {"a.$": 1}, {"_id": 0, "a": [3]}),
        ({"e.x": 2}, {"e.$": 1, "a": 1}, {"_id": 0, "a": DOC["a"], "e": [E[1]]}),
    ],
)
def test_positional_projection(
    flt: dict[str, Any], projection: dict[str, Any], expected: dict[str, Any]
) -> None:
    assert projected(projection, flt) == expected


def test_positional_projection_errors() -> None:
    err = projection_error({"a.$": 1}, {"b.c": 1})  # the query never matched inside 'a'
    assert err.code == 51246
    assert projection_error({"a.$": 1, "e.$": 1}).code == 31276
    assert projection_error({"e.$.x": 1}).code == 31394
    assert projection_error({"e.$": 1, "a": 0}).code == 31254


@pytest.mark.parametrize(
    ("projection", "expected"),
    [
        ({"b.c": 1, "_id": 0}, {"b": {"c": 1}}),
        ({"b.c": 0}, {"_id": 0, "a": DOC["a"], "b": {"d": 2}, "e": E}),
        ({"e.x": 1}, {"_id": 0, "e": [{"x": 1}, {"x": 2}, {"x": 2}]}),
        ({"e.x": 0}, {"_id": 0, "a": DOC["a"], "b": DOC["b"], "e": [{"y": 1}, {"y": 2}, {"y": 3}]}),
        ({"e.y": 1, "_id": 0, "b.d": 1}, {"b": {"d": 2}, "e": [{"y": 1}, {"y": 2}, {"y": 3}]}),
        ({"_id": 0}, {"a": DOC["a"], "b": DOC["b"], "e": E}),
        ({"_id": 1}, {"_id": 0}),
        ({"a": 0, "_id": 1}, {"_id": 0, "b": DOC["b"], "e": E}),
        ({"z": 1}, {"_id": 0}),
        ({"b": True}, {"_id": 0, "b": DOC["b"]}),
        ({"b": 5}, {"_id": 0, "b": DOC["b"]}),
        ({"b": {"c": 1}}, {"_id": 0, "b": {"c": 1}}),
    ],
)
def test_inclusion_exclusion(projection: dict[str, Any], expected: dict[str, Any]) -> None:
    assert projected(projection) == expected


@pytest.mark.parametrize(
    ("projection", "code"),
    [
        ({"a": 1, "b": 0}, 31254),
        ({"b.c": 1, "b.d": 0}, 31254),
        ({"b": 1, "b.c": 1}, 31249),  # a leaf on the path: "remaining portion c"
        ({"b.c": 1, "b": 1}, 31250),
        ({"$b": 1}, 16410),
        ({"b.": 1}, 15998),
    ],
)
def test_projection_errors(projection: dict[str, Any], code: int) -> None:
    assert projection_error(projection).code == code


# --- sort -------------------------------------------------------------------------------------------

SORTED = [
    {"a": [1, 5]},  # 0
    {"a": 3},  # 1
    {"a": []},  # 2
    {},  # 3
    {"a": None},  # 4
    {"a": [2, [0]]},  # 5
    {"a": "s"},  # 6
    {"a": {"b": 1}},  # 7
    {"a": [[1]]},  # 8
]


def sorted_ids(docs: list[dict[str, Any]], sort: list[tuple[str, int]], **kw: Any) -> list[int]:
    return [d["_id"] for d in coll_with(docs).find(kw.pop("flt", {}), sort=sort, **kw)]


def test_sort_ascending_uses_smallest_element_and_empty_array_first() -> None:
    # [] < null == missing < numbers < strings < objects < arrays (an element that is an array)
    assert sorted_ids(SORTED, [("a", 1)]) == [2, 3, 4, 0, 5, 1, 6, 7, 8]


def test_sort_descending_uses_largest_element() -> None:
    assert sorted_ids(SORTED, [("a", -1)]) == [8, 5, 7, 6, 0, 1, 3, 4, 2]


def test_sort_by_dotted_path_through_arrays() -> None:
    docs = [
        {"a": [{"b": 3}, {"b": 1}]},
        {"a": {"b": 2}},
        {"a": [{"c": 1}]},
        {"a": [{"b": [0, 9]}]},
    ]
    assert sorted_ids(docs, [("a.b", 1)]) == [2, 3, 0, 1]
    assert sorted_ids(docs, [("a.b", -1)]) == [3, 0, 1, 2]


def test_sort_key_ignores_the_filter() -> None:
    """Since 3.6 the array sort key is the whole array's min/max, not the matching elements."""
    docs = [{"a": [1, 10]}, {"a": [5, 6]}]
    assert sorted_ids(docs, [("a", 1)], flt={"a": {"$gt": 4}}) == [0, 1]


def test_sort_numbers_across_types_with_nan_lowest() -> None:
    docs = [
        {"a": 2.5},
        {"a": Int64(2)},
        {"a": Decimal128("2.2")},
        {"a": math.nan},
        {"a": -math.inf},
    ]
    assert sorted_ids(docs, [("a", 1)]) == [3, 4, 1, 2, 0]


def test_compound_sort_with_skip_and_limit() -> None:
    docs = [{"a": 1, "b": 2}, {"a": 1, "b": 1}, {"a": 0, "b": 3}]
    assert sorted_ids(docs, [("a", 1), ("b", -1)]) == [2, 0, 1]
    assert sorted_ids(docs, [("a", 1), ("b", -1)], skip=1, limit=1) == [0]
    assert sorted_ids(docs, [("_id", 1)], limit=-2) == [0, 1]  # negative limit: its magnitude


def test_sort_errors() -> None:
    coll = coll_with([{"a": 1}])
    with pytest.raises(MongoError) as info:
        list(coll.find({}, sort=[("a", 2)]))
    assert info.value.code == 15975


# --- distinct and count -------------------------------------------------------------------------------

DISTINCT = [
    {"a": [1, 2, [3]], "b": {"c": [1, {"d": 1}]}},
    {"a": [2, 1.0, None]},
    {"a": 3},
    {"b": {"c": 2}},
    {"a": [[1, 2]]},
    {"a": {"x": 1}},
    {"a": [{"x": 1}]},
    {"a": []},
]


@pytest.mark.parametrize(
    ("key", "values"),
    [
        ("a", [1, 2, [3], None, 3, [1, 2], {"x": 1}]),  # one level unwound; 1 == 1.0
        ("b.c", [1, {"d": 1}, 2]),
        ("b.c.d", [1]),
        ("a.x", [1]),
        ("a.0", [1, 2, {"x": 1}]),  # a.0 of [[1, 2]] is [1, 2], unwound
    ],
)
def test_distinct_unwinds_arrays(key: str, values: list[Any]) -> None:
    assert coll_with(DISTINCT).distinct(key) == values


def test_distinct_with_filter() -> None:
    assert coll_with(DISTINCT).distinct("a", {"a": {"$type": "array"}, "a.x": 1}) == [{"x": 1}]


def test_count_with_skip_and_limit() -> None:
    coll = coll_with(DISTINCT)
    assert coll.count() == 8
    assert coll.count(skip=3) == 5
    assert coll.count(limit=2) == 2
    assert coll.count(skip=6, limit=5) == 2
    assert coll.count(skip=10) == 0
    assert coll.count({"a": 3}) == 1
    assert coll.count({"a": {"$exists": False}}, limit=-1) == 1


# --- findAndModify --------------------------------------------------------------------------------------

FAM = [{"a": 1, "s": 3}, {"a": 1, "s": 1}, {"a": 2, "s": 2}]


def test_find_and_modify_remove_takes_first_in_sort_order() -> None:
    coll = coll_with(FAM)
    res = coll.find_and_modify({"a": 1}, sort=[("s", 1)], remove=True)
    assert res.value == {"_id": 1, "a": 1, "s": 1}
    assert [d["_id"] for d in coll.find()] == [0, 2]
    assert coll.find_and_modify({"a": 9}, remove=True).value is None


def test_find_and_modify_update_new_with_fields() -> None:
    coll = coll_with(FAM)
    res = coll.find_and_modify(
        {"a": 1}, sort=[("s", -1)], update={"$inc": {"s": 10}}, new=True, fields={"s": 1, "_id": 0}
    )
    assert res.value == {"s": 13}
    assert coll.find_one({"_id": 1}) == {"_id": 1, "a": 1, "s": 1}


def test_find_and_modify_upsert_returns_new_document_only_with_new() -> None:
    coll = coll_with(FAM)
    res = coll.find_and_modify(
        {"a": 5}, update={"$set": {"z": 1}}, upsert=True, new=True, upsert_id=7
    )
    assert res.value == {"_id": 7, "a": 5, "z": 1} and res.upserted
    res = coll.find_and_modify({"a": 6}, update={"$set": {"z": 1}}, upsert=True, upsert_id=8)
    assert res.value is None and res.upserted
    assert coll.find_one({"_id": 8}) == {"_id": 8, "a": 6, "z": 1}
    res = coll.find_and_modify({"a": 9}, update={"z": 1}, upsert=True, new=True, upsert_id=9)
    assert res.value == {"_id": 9, "z": 1}  # a replacement does not take query fields


def test_find_and_modify_positional_update_and_projection() -> None:
    coll = coll_with([{"a": [1, 2]}])
    res = coll.find_and_modify({"a": 2}, update={"$set": {"a.$": 9}}, new=True, fields={"a.$": 1})
    assert res.value == {"_id": 0, "a": [9]}


def test_find_and_modify_option_conflicts() -> None:
    coll = coll_with(FAM)
    with pytest.raises(MongoError) as info:
        coll.find_and_modify({"a": 1}, remove=True, update={"$set": {"q": 1}})
    assert info.value.code == 9
    with pytest.raises(MongoError):
        coll.find_and_modify({"a": 1}, remove=True, new=True)


# --- field names: insert versus update -------------------------------------------------------------


@pytest.mark.parametrize(
    ("doc", "code", "message"),
    [
        ({"$a": 1}, 52, "The dollar ($) prefixed field '$a' in '$a' is not valid for storage."),
        ({"a.b": 1}, 57, "The dotted field 'a.b' in 'a.b' is not valid for storage."),
        (
            {"a": {"$b": 1}},
            52,
            "The dollar ($) prefixed field '$b' in 'a.$b' is not valid for storage.",
        ),
        ({"a": {"b.c": 1}}, 57, "The dotted field 'b.c' in 'a.b.c' is not valid for storage."),
        (
            {"a": [{"$b": 1}]},
            52,
            "The dollar ($) prefixed field '$b' in 'a.0.$b' is not valid for storage.",
        ),
    ],
)
def test_insert_refuses_dollar_and_dotted_names(
    doc: dict[str, Any], code: int, message: str
) -> None:
    coll = coll_with([])
    res = coll.insert([{"_id": 1, **doc}])
    assert [(e.code, e.errmsg) for e in res.write_errors] == [(code, message)]
    assert coll.count() == 0


def test_insert_allows_dbref_fields_and_null_id() -> None:
    coll = coll_with([])
    res = coll.insert([{"_id": 1, "r": {"$ref": "c", "$id": 1}}, {"_id": None}])
    assert res.n == 2 and not res.write_errors


@pytest.mark.parametrize(
    ("update", "code"),
    [
        ({"$set": {"$a": 1}}, 52),
        ({"$set": {"a": {"$b": 1}}}, 52),
        ({"$set": {"a": {"b.c": 1}}}, 57),
        ({"$set": {"a..b": 1}}, 56),
        ({"$set": {"": 1}}, 56),
        ({"$set": {"a.": 1}}, 56),
        ({"$bad": {"a": 1}}, 9),
        ({"$set": {"a": 1}, "b": 1}, 9),
        ({"$set": {"a": 1, "a.b": 2}}, 40),
        ({"$set": {"a.b": 1}, "$unset": {"a": 1}}, 40),
        ({"$set": 1}, 9),
    ],
)
def test_update_name_and_shape_errors(update: dict[str, Any], code: int) -> None:
    coll = coll_with([{"a": [1]}])
    with pytest.raises(MongoError) as info:
        coll.update({"_id": 0}, update)
    assert info.value.code == code
    assert coll.find_one() == {"_id": 0, "a": [1]}


def test_empty_set_is_a_no_op() -> None:
    coll = coll_with([{"a": [1]}])
    res = coll.update({"_id": 0}, {"$set": {}})
    assert (res.n, res.n_modified) == (1, 0)


# --- the 16 MiB limit ------------------------------------------------------------------------------


def test_sixteen_mib_limit() -> None:
    coll = coll_with([{"s": "y"}])
    ok = {"_id": 1, "s": "x" * (MIB16 - 30)}  # 16 MiB - 8 bytes of BSON: fits
    assert coll.insert([ok]).n == 1
    res = coll.insert([{"_id": 2, "s": "x" * MIB16}])
    assert [e.code for e in res.write_errors] == [10334]
    with pytest.raises(MongoError) as info:
        coll.update({"_id": 0}, {"$set": {"s": "x" * MIB16}})
    assert info.value.code == 17419
    assert coll.find_one({"_id": 0}) == {"_id": 0, "s": "y"}


def test_elem_match_projection_of_an_inner_array() -> None:
    coll = coll_with([{"a": [1, [2], {"b": 1}]}])
    assert list(coll.find({}, {"a": {"$elemMatch": {"0": 2}}})) == [{"_id": 0, "a": [[2]]}]


def test_positional_projection_needs_an_implicit_array_match() -> None:
    coll = coll_with([{"a": [1, 5], "b": [{"c": [7, 8]}]}])
    with pytest.raises(MongoError) as info:
        list(coll.find({"a.1": 5}, {"a.$": 1}))
    assert info.value.code == 51246
    assert list(coll.find({"a": 5}, {"a.$": 1})) == [{"_id": 0, "a": [5]}]


def test_dotted_inclusion_keeps_array_shapes() -> None:
    """From jstests/core/null_query_semantics.js: an inclusion through arrays keeps nested arrays
    and drops scalars."""
    docs = [{"a": [[]]}, {"a": []}, {"a": [1, "s", None]}, {"a": [{"b": 3}, {}]}, {"a": 4}]
    out = list(coll_with(docs).find({}, {"_id": 0, "a.b": 1}))
    assert out == [{"a": [[]]}, {"a": []}, {"a": []}, {"a": [{"b": 3}, {}]}, {}]


# --- jstests/core/query/sort/sort_dotted_paths.js (documents with 'undefined' left out) ------------


def _sorted_ids(docs: list[dict[str, Any]], sort: list[tuple[str, int]]) -> list[Any]:
    coll = Engine(MemoryStore())["conf"]["sort"]
    coll.insert(docs)
    ids = [d["_id"] for d in coll.find({}, {"_id": 1}, sort=sort)]
    assert [d["_id"] for d in coll.find({}, {"_id": 1}, sort=sort, limit=500)] == ids
    return ids


SORT_MIXED = [
    {"_id": 1, "a": 1, "b": [2]},
    {"_id": 2, "a": 2, "b": []},
    {"_id": 3, "a": [], "b": 4},
    {"_id": 4, "a": [1], "b": 4},
    {"_id": 5, "a": [2, 3], "b": 2},
    {"_id": 6, "a": 2, "b": [3, 5]},
    {"_id": 7, "a": 1, "b": [1, 3]},
    {"_id": 8, "a": [1, 2], "b": 3},
    {"_id": 9, "a": 2, "b": 3},
]
SORT_PAIRS = [
    {"_id": 1, "a": [{"b": 4, "c": 1}, {"b": 1, "c": 2}]},
    {"_id": 2, "a": [{"b": 2, "c": 1}, {"b": 4, "c": 2}]},
    {"_id": 3, "a": [{"b": 6, "c": 1}, {"b": 9, "c": 2}]},
    {"_id": 4, "a": [{"b": 4, "c": 1}, {"b": 5, "c": 3}]},
    {"_id": 5, "a": [{"b": 2, "c": 1}, {"b": 7, "c": 3}]},
    {"_id": 6, "a": [{"b": 5, "c": 1}, {"b": 3, "c": 3}]},
    {"_id": 7, "a": [{"b": 7, "c": 2}, {"b": 2, "c": 3}]},
    {"_id": 8, "a": [{"b": 3, "c": 2}, {"b": 8, "c": 3}]},
    {"_id": 9, "a": [{"b": 8, "c": 2}, {"b": 6, "c": 3}]},
]
SORT_NESTED_PAIRS = [
    {"_id": 1, "a": [{"b": [4, 1], "c": 1}, {"b": [1, 5], "c": 2}]},
    {"_id": 2, "a": [{"b": 2, "c": [1, 3]}, {"b": 4, "c": [2, 4]}]},
    {"_id": 3, "a": [{"b": [6, 4], "c": 1}, {"b": [9, 7], "c": 2}]},
    {"_id": 4, "a": [{"b": 4, "c": [1, 2]}, {"b": 5, "c": [3, 2]}]},
    {"_id": 5, "a": [{"b": [2, 3], "c": 1}, {"b": [7, 6], "c": 3}]},
    {"_id": 6, "a": [{"b": 5, "c": []}, {"b": 3, "c": 3}]},
    {"_id": 7, "a": [{"b": [], "c": 2}, {"b": 2, "c": 3}]},
    {"_id": 8, "a": [{"b": 3, "c": [2]}, {"b": 8, "c": [3]}]},
    {"_id": 9, "a": [{"b": [8], "c": 2}, {"b": [6], "c": 3}]},
]
SORT_TWO_ARRAYS = [
    {"_id": 1, "a": {"b": 1}, "c": [{"d": [4, 1]}, {"d": [1, 5]}]},
    {"_id": 2, "a": [{"b": [1, 3]}, {"b": [2, 4]}], "c": {"d": 2}},
    {"_id": 3, "a": {"b": 1}, "c": [{"d": [6, 4]}, {"d": [9, 7]}]},
    {"_id": 4, "a": [{"b": [2]}, {"b": [3, 2]}], "c": {"d": 4}},
    {"_id": 5, "a": {"b": 1}, "c": [{"d": [2, 3]}, {"d": [7, 6]}]},
    {"_id": 6, "a": [{"b": []}, {"b": 3}], "c": {"d": 4}},
    {"_id": 7, "a": {"b": 2}, "c": [{"d": []}, {"d": 2}]},
    {"_id": 8, "a": [{"b": [2]}, {"b": [3]}], "c": {"d": 3}},
    {"_id": 9, "a": {"b": 3}, "c": [{"d": [8]}, {"d": [6]}]},
]
SORT_DEPTH3 = [
    {"_id": 1, "a": {"b": {"c": 2}}},
    {"_id": 2, "a": {"b": {"c": []}}},
    {"_id": 3, "a": [{"b": []}, {"b": {"c": []}}]},
    {"_id": 4, "a": [{"b": {"c": 1}}]},
    {"_id": 5, "a": {"b": [{"c": 3}, {"d": 1}]}},
    {"_id": 6, "a": {"b": [{"c": [5]}]}},
    {"_id": 7, "a": []},
    {"_id": 8, "a": {"b": [{"c": [1, 3]}, {"c": [2, 5]}]}},
    {"_id": 9, "a": [{"b": [{"c": []}, {"c": [1, 3]}]}]},
]


@pytest.mark.parametrize(
    ("docs", "sort", "ids"),
    [
        (SORT_MIXED, [("a", 1), ("b", 1), ("_id", 1)], [3, 7, 1, 8, 4, 2, 5, 6, 9]),
        (SORT_MIXED, [("a", 1), ("b", -1), ("_id", 1)], [3, 4, 7, 8, 1, 6, 9, 5, 2]),
        (SORT_MIXED, [("a", -1), ("b", 1), ("_id", 1)], [5, 2, 6, 8, 9, 7, 1, 4, 3]),
        (SORT_MIXED, [("a", -1), ("b", -1), ("_id", 1)], [5, 6, 8, 9, 2, 4, 7, 1, 3]),
        # fields through the same array take their values from the same element
        (SORT_PAIRS, [("a.c", 1), ("a.b", 1), ("_id", 1)], [2, 5, 1, 4, 6, 3, 8, 7, 9]),
        (SORT_PAIRS, [("a.c", 1), ("a.b", -1), ("_id", 1)], [3, 6, 1, 4, 2, 5, 9, 7, 8]),
        (SORT_PAIRS, [("a.c", -1), ("a.b", 1), ("_id", 1)], [7, 6, 4, 9, 5, 8, 1, 2, 3]),
        (SORT_PAIRS, [("a.c", -1), ("a.b", -1), ("_id", 1)], [8, 5, 9, 4, 6, 7, 3, 2, 1]),
        (SORT_PAIRS, [("a.c", 1), ("a", 1), ("_id", 1)], [2, 5, 1, 4, 6, 3, 8, 7, 9]),
        (SORT_PAIRS, [("a.c", -1), ("a", -1), ("_id", 1)], [8, 5, 9, 4, 6, 7, 3, 2, 1]),
        (SORT_NESTED_PAIRS, [("a.c", 1), ("a.b", 1), ("_id", 1)], [6, 1, 2, 5, 3, 4, 7, 8, 9]),
        (SORT_NESTED_PAIRS, [("a.c", 1), ("a.b", -1), ("_id", 1)], [6, 3, 1, 4, 5, 2, 9, 8, 7]),
        (SORT_NESTED_PAIRS, [("a.c", -1), ("a.b", 1), ("_id", 1)], [2, 7, 6, 4, 5, 9, 8, 1, 3]),
        (SORT_NESTED_PAIRS, [("a.c", -1), ("a.b", -1), ("_id", 1)], [2, 8, 5, 9, 4, 6, 7, 3, 1]),
        (SORT_NESTED_PAIRS, [("a.b", 1), ("a", 1), ("_id", 1)], [7, 1, 2, 5, 6, 8, 4, 3, 9]),
        (SORT_NESTED_PAIRS, [("a.b", -1), ("a", -1), ("_id", 1)], [3, 9, 8, 5, 1, 4, 6, 2, 7]),
        (SORT_NESTED_PAIRS, [("a.0.b", 1), ("_id", 1)], [7, 1, 2, 5, 8, 3, 4, 6, 9]),
        (SORT_NESTED_PAIRS, [("a.0.b", -1), ("_id", -1)], [9, 3, 6, 4, 1, 8, 5, 2, 7]),
        (SORT_TWO_ARRAYS, [("a.b", 1), ("c.d", 1), ("_id", 1)], [6, 1, 2, 5, 3, 7, 8, 4, 9]),
        (SORT_TWO_ARRAYS, [("a.b", -1), ("c.d", -1), ("_id", 1)], [2, 9, 4, 6, 8, 7, 3, 5, 1]),
        (SORT_DEPTH3, [("a.b.c", 1), ("_id", 1)], [2, 3, 9, 5, 7, 4, 8, 1, 6]),
        (SORT_DEPTH3, [("a.b.c", 1), ("_id", -1)], [9, 3, 2, 7, 5, 8, 4, 1, 6]),
        (SORT_DEPTH3, [("a.b.c", -1), ("_id", 1)], [6, 8, 5, 9, 1, 4, 3, 7, 2]),
        (SORT_DEPTH3, [("a.b.c", -1), ("_id", -1)], [8, 6, 9, 5, 1, 4, 7, 3, 2]),
    ],
)
def test_sort_dotted_paths(
    docs: list[dict[str, Any]], sort: list[tuple[str, int]], ids: list[int]
) -> None:
    assert _sorted_ids(docs, sort) == ids


@pytest.mark.parametrize(
    ("doc", "sort"),
    [
        ({"_id": 3, "a": [], "b": []}, [("a", 1), ("b", 1)]),
        ({"_id": 3, "a": [], "b": []}, [("_id", 1), ("a", 1), ("b", 1)]),
        ({"_id": 1, "a": {"b": [1, 2], "c": [3, 4]}}, [("a.b", 1), ("a.c", 1)]),
        ({"_id": 1, "a": {"b": [1, 2]}, "c": {"d": [3, 4]}}, [("a.b", 1), ("c.d", 1)]),
    ],
)
def test_sort_refuses_parallel_arrays(doc: dict[str, Any], sort: list[tuple[str, int]]) -> None:
    coll = Engine(MemoryStore())["conf"]["sort"]
    coll.insert([{"_id": 0, "a": [], "b": 1}, doc])
    with pytest.raises(MongoError) as info:
        list(coll.find({}, sort=sort))
    assert (info.value.code, info.value.errmsg) == (
        2,
        "cannot sort with keys that are parallel arrays",
    )
    # documents filtered out do not count
    flt = {"$or": [{"a": {"$not": {"$type": "array"}}}, {"b": {"$not": {"$type": "array"}}}]}
    if "b" in doc:
        assert [d["_id"] for d in coll.find(flt, sort=sort)] == [0]


# --- jstests/core/query/project/positional_projection.js ------------------------------------------

_X = [{"a": 1, "b": 2}, {"a": 2, "c": 3}, {"a": 1, "d": 5}]
_A = [{"p": [1, 2], "q": [3, 4]}, {"p": [5, 6], "q": [7, 8]}]
_ABC = {"a": [1, 2, 3], "b": [4, 5, 6], "c": [7, 8, 9]}


@pytest.mark.parametrize(
    ("flt", "projection", "doc", "expected"),
    [
        ({"x.a": 2}, {"x.$": 1}, {"x": _X}, {"x": [{"a": 2, "c": 3}]}),
        ({"x.a": 1}, {"x.$": 1}, {"x": _X}, {"x": [{"a": 1, "b": 2}]}),
        (
            {"x.y.a": 1},
            {"x.y.$": 1},
            {"x": {"y": [{"a": 1, "b": 1}, {"a": 1, "b": 2}]}},
            {"x": {"y": [{"a": 1, "b": 1}]}},
        ),
        ({}, {"g.$": 1}, {"x": _X}, {}),
        ({"x": 1}, {"a.$": 1}, {"x": 1}, {}),
        (
            {"x": {"$gt": 0}},
            {"a.b.c.$": 1},
            {"x": [-1, 1, 2], "a": {"b": {"d": [1, 2, 3], "f": 456}, "e": 123}},
            {"a": {"b": {}}},
        ),
        (
            {"x": 1},
            {"a.b.c.$": 1},
            {"x": [1], "a": [{"b": [[[{"c": 1, "d": 2}]]]}]},
            {"a": [{"b": [[[{"c": 1}]]]}]},
        ),
        (
            {"x": {"$gt": 0}},
            {"a.b.c.$": 1},
            {"x": [-1, 1, 2], "a": {"b": {"c": 123}}},
            {"a": {"b": {"c": 123}}},
        ),
        # '.$' applies to the first array on its path
        (
            {"x.y.z": 1},
            {"a.b.c.$": 1},
            {
                "x": {"y": {"z": [0, 1, 2]}},
                "a": [{"b": {"c": [1, 2, 3]}}, {"b": {"c": [4, 5, 6]}}, {"b": {"c": [7, 8, 9]}}],
            },
            {"a": [{"b": {"c": [4, 5, 6]}}]},
        ),
        (
            {"x.y.z": 1},
            {"a.b.c.$": 1},
            {"x": {"y": {"z": [0, 1, 2]}}, "a": {"b": [{"c": [1, 2, 3]}, {"c": [4, 5, 6]}]}},
            {"a": {"b": [{"c": [4, 5, 6]}]}},
        ),
        (
            {"x.y.z": 1},
            {"a.b.c.$": 1},
            {"x": {"y": {"z": [0, 1, 2]}}, "a": {"b": {"c": [1, 2, 3]}}},
            {"a": {"b": {"c": [2]}}},
        ),
        ({"x": {"$elemMatch": {"$gt": 1, "$lt": 3}}}, {"x.$": 1}, {"x": [1, 2, 3]}, {"x": [2]}),
        (
            {"a": {"$elemMatch": {"$elemMatch": {"$eq": 3}}}},
            {"b.$": 1},
            {"a": [[1, 2], [3, 4]], "b": [[5, 6], [7, 8]]},
            {"b": [[7, 8]]},
        ),
        (
            {"a": {"$elemMatch": {"p": {"$elemMatch": {"$eq": 6}}}}},
            {"b.$": 1},
            {"a": _A, "b": [11, 12]},
            {"b": [12]},
        ),
        (
            {"a": {"$elemMatch": {"q": {"$elemMatch": {"$eq": 3}}}}},
            {"b.$": 1},
            {"a": _A, "b": [11, 12]},
            {"b": [11]},
        ),
        ({"$and": [{"a": 1}, {"a": 2}, {"a": 3}]}, {"b.$": 1}, _ABC, {"b": [6]}),
        ({"$and": [{"a": 3}, {"a": 2}, {"a": 1}]}, {"b.$": 1}, _ABC, {"b": [4]}),
        ({"a": {"$in": [2, 3]}}, {"b.$": 1}, _ABC, {"b": [5]}),
        ({"$or": [{"a": 2}, {"a": 3}]}, {"b.$": 1}, _ABC, {"b": [5]}),
        (
            {"a": {"$elemMatch": {"y": {"$exists": True}}}},
            {"a.$": 1},
            {"a": [{"y": 1}, {"y": 2}]},
            {"a": [{"y": 1}]},
        ),
    ],
)
def test_positional_projection_cases(
    flt: dict[str, Any], projection: dict[str, Any], doc: dict[str, Any], expected: dict[str, Any]
) -> None:
    out = coll_with([doc]).find_one(flt, projection)
    assert out is not None
    out.pop("_id", None)
    assert out == expected


@pytest.mark.parametrize(
    "flt",
    [
        {"b": [4, 5, 6]},  # a whole-array match records no position
        {"$or": [{"a": 1}, {"b": 5}]},  # an $or over several fields records none
        {"$or": [{"a": 0}, {"b": 5}]},
        {"$nor": [{"a": -1}, {"a": -2}]},
        {"a": {"$not": {"$elemMatch": {"$eq": 100}}}},
    ],
)
def test_positional_projection_without_a_recorded_position(flt: dict[str, Any]) -> None:
    with pytest.raises(MongoError) as info:
        list(coll_with([_ABC]).find(flt, {"a.$": 1, "_id": 0} if "b" not in flt else {"c.$": 1}))
    assert info.value.code == 51246


def test_or_over_several_fields_gives_positional_update_no_position() -> None:
    coll = coll_with([_ABC])
    with pytest.raises(MongoError) as info:
        coll.update({"$or": [{"a": 1}, {"b": 5}]}, {"$set": {"a.$": 0}})
    assert info.value.code == 2
    coll.update({"$or": [{"a": 2}, {"a": 3}]}, {"$set": {"a.$": 0}})
    assert coll.find_one()["a"] == [1, 0, 3]
