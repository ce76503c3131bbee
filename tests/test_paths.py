"""Tests for node.engine.paths: dotted paths with MongoDB's implicit array traversal."""

from __future__ import annotations

from node.engine.paths import array_index, iter_path, key_values, lookup, path_values, split_path
from node.engine.values import MISSING, UNDEFINED


def test_split_and_array_index() -> None:
    assert split_path("a.b.0") == ("a", "b", "0")
    assert array_index("0") == 0
    assert array_index("12") == 12
    assert array_index("01") is None
    assert array_index("-1") is None
    assert array_index("x") is None
    assert array_index("١") is None  # non-ASCII digit


def test_embedded_documents() -> None:
    doc = {"a": {"b": {"c": 1}}}
    assert path_values(doc, "a.b.c") == [1]
    assert path_values(doc, "a.b") == [{"c": 1}]
    assert path_values(doc, "a.x") == [MISSING]
    assert path_values(doc, "a.b.c.d") == [MISSING]  # scalar met mid-path


def test_implicit_array_traversal_with_positions() -> None:
    doc = {"emails": [{"email": "a"}, {"other": 1}, 7, {"email": "c"}]}
    assert list(iter_path(doc, "emails.email")) == [("a", 0), (MISSING, 1), ("c", 3)]


def test_numeric_component_indexes_and_traverses() -> None:
    doc = {"emails": [{"email": "a"}, {"email": "b"}]}
    assert path_values(doc, "emails.1.email") == ["b"]
    assert path_values(doc, "emails.5.email") == []
    # element documents with a field named "0" are also reached
    doc2 = {"a": [{"0": "x"}, "y"]}
    assert path_values(doc2, "a.0") == [{"0": "x"}, "x"]


def test_arrays_of_arrays_are_not_traversed_implicitly() -> None:
    doc = {"a": [[{"b": 1}]]}
    assert path_values(doc, "a.b") == []
    assert path_values(doc, "a.0.b") == [1]
    # leaf arrays are returned whole
    assert path_values({"a": [[1, 2]]}, "a") == [[[1, 2]]]


def test_empty_and_scalar_arrays_reach_nothing() -> None:
    assert path_values({"a": []}, "a.b") == []
    assert path_values({"a": [1, 2]}, "a.b") == []


def test_first_array_position_is_kept_through_nested_arrays() -> None:
    doc = {"a": [{"b": [{"c": 1}, {"c": 2}]}, {"b": [{"c": 3}]}]}
    assert list(iter_path(doc, "a.b.c")) == [(1, 0), (2, 0), (3, 1)]


def test_key_values_for_sorting_and_indexing() -> None:
    assert key_values({"a": [3, 1, [2]]}, "a") == [3, 1, [2]]
    assert key_values({"a": []}, "a") == [UNDEFINED]
    assert key_values({"a": [[]]}, "a") == [[]]
    assert key_values({}, "a") == [MISSING]
    assert key_values({"a": [{"b": 2}, {"c": 1}, 5]}, "a.b") == [2, MISSING, MISSING]
    assert key_values({"a": []}, "a.b") == [MISSING]
    assert key_values({"a": [{"b": [1, 2]}]}, "a.b") == [1, 2]
    assert key_values({"a": [{"b": 9}, {"b": 8}]}, "a.1.b") == [8]


def test_lookup_is_strict() -> None:
    doc = {"a": [{"b": 1}], "c": {"d": None}}
    assert lookup(doc, "a.0.b") == 1
    assert lookup(doc, "a.b") is MISSING
    assert lookup(doc, "c.d") is None
    assert lookup(doc, "c.e") is MISSING
    assert lookup(doc, "a.3") is MISSING
