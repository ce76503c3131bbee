"""Tests for node.engine.projection, from the MongoDB manual's projection pages."""

from __future__ import annotations

import datetime
from typing import Any

import pytest
from bson import SON
from hypothesis import given, settings
from hypothesis import strategies as st

from node.engine.errors import MongoError
from node.engine.matcher import Matcher
from node.engine.projection import Projection, project

INVENTORY = {
    "_id": 1,
    "item": "journal",
    "status": "A",
    "size": {"h": 14, "w": 21, "uom": "cm"},
    "instock": [{"warehouse": "A", "qty": 5}, {"warehouse": "C", "qty": 15}],
}


def bad(spec: Any, code: int, message: str | None = None) -> None:
    with pytest.raises(MongoError) as info:
        Projection(spec)
    assert info.value.code == code
    if message is not None:
        assert info.value.errmsg == message


def test_no_projection_returns_everything() -> None:
    assert project(INVENTORY, None) == INVENTORY
    assert project(INVENTORY, {}) == INVENTORY


def test_inclusion_keeps_id_by_default() -> None:
    assert project(INVENTORY, {"item": 1, "status": 1}) == {
        "_id": 1,
        "item": "journal",
        "status": "A",
    }
    assert project(INVENTORY, {"item": 1, "_id": 0}) == {"item": "journal"}
    assert project(INVENTORY, {"_id": 1}) == {"_id": 1}
    assert project(INVENTORY, ["item"]) == {"_id": 1, "item": "journal"}
    assert Projection({"item": True}).inclusion


def test_inclusion_keeps_document_order() -> None:
    out = project(INVENTORY, SON([("status", 1), ("item", 1)]))
    assert list(out) == ["_id", "item", "status"]


def test_exclusion() -> None:
    out = project(INVENTORY, {"status": 0, "instock": 0})
    assert out == {"_id": 1, "item": "journal", "size": {"h": 14, "w": 21, "uom": "cm"}}
    assert "_id" not in project(INVENTORY, {"_id": 0})
    assert project(INVENTORY, {"_id": 0, "item": 0, "status": 0, "size": 0, "instock": 0}) == {}
    assert not Projection({"a": False}).inclusion


def test_dotted_inclusion_into_documents_and_arrays() -> None:
    out = project(INVENTORY, {"item": 1, "size.uom": 1, "instock.qty": 1})
    assert out == {
        "_id": 1,
        "item": "journal",
        "size": {"uom": "cm"},
        "instock": [{"qty": 5}, {"qty": 15}],
    }
    # nested projection documents mean the same as dotted paths
    assert project(INVENTORY, {"size": {"uom": 1}}) == {"_id": 1, "size": {"uom": "cm"}}


def test_dotted_inclusion_drops_scalars_and_keeps_empty_documents() -> None:
    doc = {"_id": 1, "a": [1, {"b": 2, "c": 3}, {"c": 4}, [{"b": 5}]], "x": 7}
    assert project(doc, {"a.b": 1}) == {"_id": 1, "a": [{"b": 2}, {}, [{"b": 5}]]}
    # a scalar where a document was expected is dropped entirely
    assert project({"_id": 1, "a": 5}, {"a.b": 1}) == {"_id": 1}


def test_dotted_exclusion() -> None:
    out = project(INVENTORY, {"size.uom": 0, "instock.warehouse": 0})
    assert out["size"] == {"h": 14, "w": 21}
    assert out["instock"] == [{"qty": 5}, {"qty": 15}]
    doc = {"_id": 1, "a": [1, {"b": 2, "c": 3}], "s": 5}
    assert project(doc, {"a.b": 0, "s.t": 0}) == {"_id": 1, "a": [1, {"c": 3}], "s": 5}


def test_slice() -> None:
    doc = {"_id": 1, "title": "post", "comments": [1, 2, 3, 4, 5], "n": 9}
    assert project(doc, {"comments": {"$slice": 2}}) == {**doc, "comments": [1, 2]}
    assert project(doc, {"comments": {"$slice": -2}})["comments"] == [4, 5]
    assert project(doc, {"comments": {"$slice": [1, 2]}})["comments"] == [2, 3]
    assert project(doc, {"comments": {"$slice": [-2, 5]}})["comments"] == [4, 5]
    assert project(doc, {"comments": {"$slice": [-20, 2]}})["comments"] == [1, 2]
    assert project(doc, {"comments": {"$slice": [10, 2]}})["comments"] == []
    assert project(doc, {"comments": {"$slice": -10}})["comments"] == [1, 2, 3, 4, 5]
    # $slice on a non-array leaves the value alone
    assert project(doc, {"n": {"$slice": 1}})["n"] == 9
    # with an inclusion, the sliced field is included too
    assert project(doc, {"title": 1, "comments": {"$slice": 1}}) == {
        "_id": 1,
        "title": "post",
        "comments": [1],
    }
    # with an exclusion, everything else stays
    assert project(doc, {"title": 0, "comments": {"$slice": 1}}) == {
        "_id": 1,
        "comments": [1],
        "n": 9,
    }
    nested = {"_id": 1, "a": [{"b": [1, 2, 3]}, {"b": [4, 5]}]}
    assert project(nested, {"a.b": {"$slice": 1}}) == {"_id": 1, "a": [{"b": [1]}, {"b": [4]}]}


def test_slice_errors() -> None:
    # MongoDB 8 reads a $slice that is not find() syntax as the aggregation expression: its
    # parse errors come at once (28667: argument count) ...
    bad({"a": {"$slice": "1"}}, 28667)
    bad({"a": {"$slice": [1]}}, 28667)
    bad({"a": {"$slice": [1, 2, 3, 4]}}, 28667)
    bad({"a": 0, "b": {"$slice": ["$a", 1]}}, 31252)
    # ... its evaluation errors only once a document is projected (28724: not an array)
    for arg in ([1, 0], [1, -1], [1, "x"], [5, 1, 2]):
        spec = Projection({"a": {"$slice": arg}})
        assert spec.inclusion
        with pytest.raises(MongoError) as info:
            spec.apply({"_id": 1, "a": [1, 2]})
        assert info.value.code == 28724


def test_slice_falls_back_to_the_aggregation_slice() -> None:
    doc = {"_id": 1, "a": [1, 2, 3, 4], "b": [5, 6], "n": 2}
    # the aggregation $slice: a computed field (so an inclusion projection)
    assert project(doc, {"x": {"$slice": ["$a", 0]}}) == {"_id": 1, "x": []}
    assert project(doc, {"x": {"$slice": ["$a", "$n"]}}) == {"_id": 1, "x": [1, 2]}
    assert project(doc, {"x": {"$slice": ["$a", 1, 2]}}) == {"_id": 1, "x": [2, 3]}
    assert project(doc, {"a": {"$slice": [None, 0]}}) == {"_id": 1, "a": None}
    assert project(doc, {"b": {"$slice": [[7, 8, 9], -1]}}) == {"_id": 1, "b": [9]}
    # find's $slice with {_id: 1} is an inclusion of _id and the slice; without, an exclusion
    assert project(doc, {"_id": 1, "a": {"$slice": 1}}) == {"_id": 1, "a": [1]}
    assert project(doc, {"a": {"$slice": 1}}) == {"_id": 1, "a": [1], "b": [5, 6], "n": 2}


def test_elem_match_projection() -> None:
    school = {
        "_id": 1,
        "zipcode": "63109",
        "students": [
            {"name": "john", "school": 102, "age": 10},
            {"name": "jess", "school": 102, "age": 11},
            {"name": "jeff", "school": 108, "age": 15},
        ],
    }
    spec = {"students": {"$elemMatch": {"school": 102}}}
    assert project(school, spec) == {
        "_id": 1,
        "students": [{"name": "john", "school": 102, "age": 10}],
    }
    spec2 = {"students": {"$elemMatch": {"school": 102, "age": {"$gt": 10}}}}
    assert project(school, spec2)["students"] == [{"name": "jess", "school": 102, "age": 11}]
    # no match: the field is omitted; the other included fields come first
    spec3 = {"students": {"$elemMatch": {"school": 999}}, "zipcode": 1}
    assert project(school, spec3) == {"_id": 1, "zipcode": "63109"}
    out = project(school, {"students": {"$elemMatch": {"age": 15}}, "zipcode": 1})
    assert list(out) == ["_id", "zipcode", "students"]
    assert project({"_id": 2, "students": 5}, spec) == {"_id": 2}
    # value form
    assert project({"_id": 3, "s": [1, 5, 9]}, {"s": {"$elemMatch": {"$gt": 4}}}) == {
        "_id": 3,
        "s": [5],
    }


def test_elem_match_projection_errors() -> None:
    bad({"a.b": {"$elemMatch": {"x": 1}}}, 31275)
    bad({"a": {"$elemMatch": 5}}, 31274)
    bad({"a": {"$elemMatch": {"$foo": 1}}}, 2, "unknown operator: $foo")
    bad({"a": 0, "b": {"$elemMatch": {"x": 1}}}, 31253)


def test_positional_projection_uses_the_query_match() -> None:
    doc = {"_id": 7, "semester": 3, "grades": [80, 85, 90, 91]}
    query = Matcher({"semester": 3, "grades": {"$gte": 85}})
    matched, position = query.match_position(doc)
    assert matched and position == 1
    spec = Projection({"grades.$": 1})
    assert spec.needs_position
    assert spec.apply(doc, position) == {"_id": 7, "grades": [85]}

    user = {
        "_id": 1,
        "name": "nick",
        "emails": [{"email": "a@x", "primary": True}, {"email": "b@x", "primary": False}],
    }
    _, pos = Matcher({"emails.email": "b@x"}).match_position(user)
    assert project(user, {"emails.$": 1, "name": 1}, pos) == {
        "_id": 1,
        "name": "nick",
        "emails": [{"email": "b@x", "primary": False}],
    }
    with pytest.raises(MongoError) as info:
        spec.apply(doc, None)
    assert info.value.code == 51246


def test_positional_projection_errors() -> None:
    bad({"a.$": 1, "b.$": 1}, 31276)
    bad({"a.$.b": 1}, 31394)
    bad({"a.$": 0}, 31395)
    bad({"x": 0, "a.$": 1}, 31253)
    bad({"a.$": 1, "b": {"$elemMatch": {"c": 1}}}, 31255)
    bad({"b": {"$elemMatch": {"c": 1}}, "a.$": 1}, 31256)
    bad({"a.$": {"$slice": 1}}, 31271)
    bad({"a.$": {"b": 1}}, 31271)
    bad({"a.$": "x"}, 31308)
    bad({"a.$": None}, 31308)


def test_computed_fields() -> None:
    # aggregation expressions (MongoDB 4.4+): a computed field makes an inclusion projection
    assert project(INVENTORY, {"full": {"$concat": ["$item", "-", "$status"]}}) == {
        "_id": 1, "full": "journal-A"}
    out = project(INVENTORY, {"full": {"$concat": ["$item", "$status"]}, "item": 1})
    assert list(out.items()) == [("_id", 1), ("item", "journal"), ("full", "journalA")]
    assert project(INVENTORY, {"h": "$size.h", "_id": 0}) == {"h": 14}
    assert project(INVENTORY, {"x": {"$literal": 1}, "y": "text", "z": None, "w": [1, "$status"]}
                   ) == {"_id": 1, "x": 1, "y": "text", "z": None, "w": [1, "A"]}
    assert project(INVENTORY, {"r": "$$ROOT.item", "c": "$$CURRENT.status"}) == {
        "_id": 1, "r": "journal", "c": "A"}
    assert project(INVENTORY, {"_id": 0, "d": "$$ROOT"}) == {"d": INVENTORY}
    assert project(INVENTORY, {"x": {"$literal": {"$a": 1}}})["x"] == {"$a": 1}
    # a computed _id comes after the included fields
    assert list(project(INVENTORY, {"_id": "$item", "status": 1}).items()) == [
        ("status", "A"), ("_id", "journal")]
    # an expression that evaluates to missing adds nothing; $$REMOVE removes
    assert project(INVENTORY, {"x": "$nope", "item": "$$REMOVE"}) == {"_id": 1}
    assert Projection({"x": "$$v"}, variables={"v": 3}).apply({"_id": 1}) == {"_id": 1, "x": 3}


def test_computed_fields_in_nested_documents_and_arrays() -> None:
    # nested projection documents: included fields in document order, computed ones after
    out = project(INVENTORY, {"size": {"area": {"$multiply": ["$size.h", "$size.w"]}, "h": 1}})
    assert list(out["size"].items()) == [("h", 14), ("area", 294)]
    assert project(INVENTORY, {"size.uom": 1, "size.u": {"$toUpper": "$size.uom"}}) == {
        "_id": 1, "size": {"uom": "cm", "u": "CM"}}
    # under an array, in each element; a scalar element becomes the computed fields
    assert project(INVENTORY, {"instock.qty": 1, "instock.n": {"$literal": 1}})["instock"] == [
        {"qty": 5, "n": 1}, {"qty": 15, "n": 1}]
    assert project({"_id": 1, "a": [1, {"c": 2}, [3]]}, {"a.b": {"$literal": 1}}) == {
        "_id": 1, "a": [{"b": 1}, {"b": 1}, [{"b": 1}]]}
    # over a missing or scalar field: a new document of the computed fields
    assert project({"_id": 1, "a": 5}, {"a.b": {"$literal": 1}}) == {"_id": 1, "a": {"b": 1}}
    assert project({"_id": 1}, {"a.b": "$nope"}) == {"_id": 1, "a": {}}
    # a dotted path and a nested document of the same prefix merge
    assert project(INVENTORY, {"size.h": 1, "size": {"w": 1}}) == {
        "_id": 1, "size": {"h": 14, "w": 21}}


def test_now_is_one_value_per_projection() -> None:
    spec = Projection({"t": "$$NOW"})
    first = spec.apply({"_id": 1})["t"]
    assert isinstance(first, datetime.datetime)
    assert spec.apply({"_id": 2})["t"] == first
    fixed = datetime.datetime(2020, 1, 2, tzinfo=datetime.UTC)
    assert Projection({"t": "$$NOW"}, now=fixed).apply({"_id": 1}) == {"_id": 1, "t": fixed}


def test_computed_fields_with_find_operators() -> None:
    school = {"_id": 1, "zip": "63109", "students": [{"n": "john", "s": 102}, {"n": "j", "s": 9}]}
    out = project(school, {"z": {"$toInt": "$zip"}, "students": {"$elemMatch": {"s": 9}}})
    assert list(out.items()) == [("_id", 1), ("z", 63109), ("students", [{"n": "j", "s": 9}])]
    doc = {"_id": 7, "grades": [80, 85, 90], "name": "x"}
    _, pos = Matcher({"grades": {"$gte": 85}}).match_position(doc)
    assert project(doc, {"grades.$": 1, "up": {"$toUpper": "$name"}}, pos) == {
        "_id": 7, "grades": [85], "up": "X"}
    assert project(doc, {"grades": {"$slice": -1}, "_id": 0, "n": "$name"}) == {
        "grades": [90], "n": "x"}


def test_computed_field_errors() -> None:
    bad({"a": 0, "b": "$x"}, 31310)
    bad({"a": 0, "b": "lit"}, 31310)
    bad({"a": 0, "b": {"$concat": ["$x"]}}, 31252)
    bad({"b": "$x", "a": 0}, 31254)
    bad({"b": {"c": "$x"}, "a": 0}, 31254)
    bad({"x": "$"}, 16872)
    bad({"x": "$$nope"}, 17276)
    bad({"x": {"$add": [1, {"$foo": 1}]}}, 168)
    bad({"x": {"$concat": ["$a"], "$b": 1}}, 16410)  # two fields: a sub-projection
    bad({"x": "$a..b"}, 15998)


def test_mixing_inclusion_and_exclusion() -> None:
    bad({"a": 1, "b": 0}, 31254, "Cannot do exclusion on field b in inclusion projection")
    bad({"a": 0, "b": 1}, 31253, "Cannot do inclusion on field b in exclusion projection")
    # _id may be mixed either way
    assert project(INVENTORY, {"_id": 0, "item": 1}) == {"item": "journal"}
    assert project(INVENTORY, {"_id": 1, "size": 0, "instock": 0}) == {
        "_id": 1,
        "item": "journal",
        "status": "A",
    }


def test_path_collisions_and_bad_paths() -> None:
    bad({"a": 1, "a.b": 1}, 31249, "Path collision at a.b remaining portion b")
    bad({"a": "$x", "a.b.c": 1}, 31249, "Path collision at a.b.c remaining portion b.c")
    bad({"a.b": 1, "a": 1}, 31250, "Path collision at a")
    bad({"a": {"$elemMatch": {"x": 1}}, "a.b": 1}, 31249)
    bad({"a.b": 1, "a": {"$elemMatch": {"x": 1}}}, 31250)
    bad({"": 1}, 40352)
    bad({"a..b": 1}, 15998)
    bad({"$a": 1}, 16410)
    bad({"a": {"b": 1}, "a.b": 1}, 31250, "Path collision at a.b")
    bad({"a.b": 1, "a": {"b": {"$literal": 1}}}, 31250, "Path collision at b")
    bad({"a": {}}, 51270)
    bad({"a": {"b": {}}}, 51270)
    bad({"a": {"$meta": "textScore"}}, 2)
    bad({"a": {"$foo": 1}}, 31325, "Unknown expression $foo")
    bad({"a": {"$concat": ["x"], "b": 1}}, 16410)
    bad({"a.$b": 1}, 16410)
    bad({"a": {"": 1}}, 40352)
    bad(5, 2)


fields = st.sampled_from(["a", "b", "c", "d"])
docs = st.dictionaries(
    fields,
    st.one_of(
        st.integers(), st.lists(st.integers(), max_size=3), st.dictionaries(fields, st.integers())
    ),
).map(lambda d: {"_id": 0, **d})


@settings(max_examples=100, deadline=None)
@given(
    docs, st.lists(st.sampled_from(["a", "b", "c", "a.b", "b.c", "d.a"]), min_size=1, unique=True)
)
def test_inclusion_and_exclusion_partition_the_document(
    doc: dict[str, Any], paths: list[str]
) -> None:
    tops = {p.split(".")[0] for p in paths}
    if len(tops) != len(paths):
        return  # colliding paths ("a" with "a.b") are rejected; covered elsewhere
    kept = project(doc, dict.fromkeys(paths, 1))
    dropped = project(doc, dict.fromkeys(paths, 0))
    assert kept["_id"] == 0 and dropped["_id"] == 0
    for name, value in doc.items():
        if name == "_id":
            continue
        if name in paths:  # a whole top-level field goes to exactly one side
            assert kept.get(name) == value and name not in dropped
        elif name not in tops:
            assert name not in kept and dropped[name] == value
        else:  # a dotted path "name.sub" reaches into the field
            sub = next(p for p in paths if p.startswith(name + ".")).split(".")[1]
            if isinstance(value, dict):
                assert kept[name] == ({sub: value[sub]} if sub in value else {})
                assert dropped[name] == {k: v for k, v in value.items() if k != sub}
            elif isinstance(value, list):
                assert kept[name] == []  # scalars in arrays are dropped by an inclusion
                assert dropped[name] == value
            else:
                assert name not in kept and dropped[name] == value
    # inclusion keeps only named top-level fields, in document order
    assert list(kept) == [k for k in doc if k == "_id" or k in kept]
