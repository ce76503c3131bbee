"""Tests for node.engine.sorting: sort specs and MongoDB's array rules for sort keys."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from bson import SON, Int64, MinKey
from hypothesis import given, settings
from hypothesis import strategies as st

from node.engine.errors import MongoError
from node.engine.sorting import Sort, parse_sort, sort_documents, sort_key
from node.engine.values import UNDEFINED, compare


def order(docs: list[dict[str, Any]], spec: Any) -> list[Any]:
    return [d["_id"] for d in sort_documents(docs, spec)]


def test_parse_forms() -> None:
    assert parse_sort({"a": 1, "b": -1}) == [("a", 1), ("b", -1)]
    assert parse_sort(SON([("b", -1), ("a", 1.0)])) == [("b", -1), ("a", 1)]
    assert parse_sort([("x.y", -1), ("z", Int64(1))]) == [("x.y", -1), ("z", 1)]
    assert parse_sort("name") == [("name", 1)]
    assert parse_sort(("score", -1)) == [("score", -1)]  # the book's sort(("score", DESCENDING))
    assert parse_sort(["a", "b"]) == [("a", 1), ("b", 1)]
    assert parse_sort([("a", 1), ("b", -1)]) == [("a", 1), ("b", -1)]
    assert parse_sort(None) == [] and parse_sort({}) == []
    assert not Sort({})


def test_invalid_specs_raise() -> None:
    for spec, code in [
        ({"a": 2}, 15975),
        ({"a": 0}, 15975),
        ({"a": "asc"}, 15974),
        ({"a": True}, 15974),
        ({"a": None}, 15974),
        ({"a": float("nan")}, 15975),
        ({"": 1}, 40352),
        ({"a..b": 1}, 15998),
        ({"$a": 1}, 16410),
        ([("a",)], 2),
        (5, 2),
    ]:
        with pytest.raises(MongoError) as info:
            Sort(spec)
        assert info.value.code == code, spec


def test_scalars_ascending_and_descending() -> None:
    docs = [{"_id": 1, "a": 3}, {"_id": 2, "a": 1.5}, {"_id": 3, "a": Int64(2)}]
    assert order(docs, {"a": 1}) == [2, 3, 1]
    assert order(docs, {"a": -1}) == [1, 3, 2]


def test_mixed_types_follow_the_bson_order() -> None:
    docs = [
        {"_id": 1, "a": "x"},
        {"_id": 2, "a": 5},
        {"_id": 3, "a": None},
        {"_id": 4},
        {"_id": 5, "a": {"k": 1}},
        {"_id": 6, "a": True},
        {"_id": 7, "a": MinKey()},
    ]
    # missing sorts as null; null and missing tie (stable order)
    assert order(docs, {"a": 1}) == [7, 3, 4, 2, 1, 5, 6]
    assert order(docs, {"a": -1}) == [6, 5, 1, 2, 3, 4, 7]


def test_arrays_sort_by_min_ascending_and_max_descending() -> None:
    docs = [
        {"_id": 1, "a": [1, 10]},
        {"_id": 2, "a": 5},
        {"_id": 3, "a": [4, 6]},
    ]
    assert order(docs, {"a": 1}) == [1, 3, 2]  # keys 1, 5, 4
    assert order(docs, {"a": -1}) == [1, 3, 2]  # keys 10, 5, 6


def test_one_element_array_compares_with_its_element() -> None:
    docs = [{"_id": 1, "a": [2]}, {"_id": 2, "a": 1}, {"_id": 3, "a": 3}]
    assert order(docs, {"a": 1}) == [2, 1, 3]


def test_empty_array_sorts_below_null() -> None:
    docs = [{"_id": 1, "a": None}, {"_id": 2, "a": []}, {"_id": 3, "a": 0}, {"_id": 4}]
    assert order(docs, {"a": 1}) == [2, 1, 4, 3]
    assert order(docs, {"a": -1}) == [3, 1, 4, 2]


def test_nested_arrays_are_values_not_unwound_twice() -> None:
    docs = [{"_id": 1, "a": [[0], 5]}, {"_id": 2, "a": 3}]
    # ascending: min of (array [0], 5) is 5 because arrays sort after numbers
    assert order(docs, {"a": 1}) == [2, 1]
    assert order(docs, {"a": -1}) == [1, 2]


def test_dotted_paths_through_arrays_of_documents() -> None:
    docs = [
        {"_id": 1, "items": [{"p": 5}, {"p": 1}]},
        {"_id": 2, "items": [{"p": 3}]},
        {"_id": 3, "items": [{"p": 4}, {"q": 1}]},  # missing p counts as null
    ]
    assert order(docs, {"items.p": 1}) == [3, 1, 2]
    assert order(docs, {"items.p": -1}) == [1, 3, 2]
    assert order(docs, {"items.0.p": 1}) == [2, 3, 1]


def test_several_keys() -> None:
    docs = [
        {"_id": 1, "a": 1, "b": 2},
        {"_id": 2, "a": 1, "b": 3},
        {"_id": 3, "a": 0, "b": 9},
        {"_id": 4, "a": 2, "b": 0},
    ]
    assert order(docs, [("a", 1), ("b", -1)]) == [3, 2, 1, 4]
    assert order(docs, SON([("b", 1), ("a", 1)])) == [4, 1, 2, 3]
    assert order(docs, None) == [1, 2, 3, 4]


def test_sort_key_usable_directly() -> None:
    docs = [{"_id": 1, "a": "b"}, {"_id": 2, "a": "a"}]
    spec = Sort({"a": 1})
    assert [d["_id"] for d in sorted(docs, key=lambda d: sort_key(d, spec))] == [2, 1]
    assert sort_key({"a": 1}, {"a": -1}) < sort_key({"a": 0}, {"a": -1})


small = st.one_of(
    st.integers(-3, 3),
    st.sampled_from(["a", "b", None, True]),
    st.lists(st.integers(-3, 3), max_size=3),
)


@settings(max_examples=100, deadline=None)
@given(st.lists(small, max_size=8), st.sampled_from([1, -1]))
def test_sorted_keys_are_monotone(values: list[Any], direction: int) -> None:
    docs = [{"_id": i, "a": v} for i, v in enumerate(values)]
    result = sort_documents(docs, {"a": direction})
    assert sorted(d["_id"] for d in result) == list(range(len(values)))

    def key(v: Any) -> Any:
        if isinstance(v, list):
            if not v:
                return UNDEFINED
            return min(v) if direction == 1 else max(v)
        return v

    keys = [key(d["a"]) for d in result]
    for x, y in itertools.pairwise(keys):
        assert compare(x, y) * direction <= 0
