"""Tests for the update language (node.engine.updater), from MongoDB's documented behaviour."""

from __future__ import annotations

import datetime
from typing import Any

import pytest
from bson.decimal128 import Decimal128
from bson.int64 import Int64
from bson.timestamp import Timestamp
from hypothesis import given, settings
from hypothesis import strategies as st

from node.engine.errors import MongoError
from node.engine.paths import lookup
from node.engine.updater import Update, arithmetic, upsert_seed
from node.engine.values import values_equal

NOW = datetime.datetime(2021, 6, 1, 12, 30, 45, 678901)


def apply(spec: dict[str, Any], doc: dict[str, Any], **kw: Any) -> dict[str, Any]:
    return Update(spec).apply(doc, **kw)


def error(spec: dict[str, Any], doc: dict[str, Any] | None = None, **kw: Any) -> MongoError:
    with pytest.raises(MongoError) as info:
        Update(spec).apply(doc if doc is not None else {"_id": 1}, **kw)
    return info.value


# --- replacement ---------------------------------------------------------------------------------


def test_replacement_keeps_id_first_and_drops_other_fields() -> None:
    out = apply({"b": 2, "a": 1}, {"_id": 7, "x": 1})
    assert out == {"_id": 7, "b": 2, "a": 1}
    assert list(out) == ["_id", "b", "a"]


def test_replacement_may_repeat_the_same_id_but_not_change_it() -> None:
    assert apply({"a": 1, "_id": 7}, {"_id": 7}) == {"_id": 7, "a": 1}
    assert list(apply({"a": 1, "_id": 7}, {"_id": 7})) == ["_id", "a"]
    e = error({"_id": 8, "a": 1}, {"_id": 7})
    assert e.code == 66
    assert "immutable" in e.errmsg


def test_replacement_rejects_operators_and_dotted_names() -> None:
    with pytest.raises(MongoError) as info:
        Update({"a": 1, "$set": {"b": 1}})
    assert info.value.code == 52
    with pytest.raises(MongoError) as info:
        Update({"a.b": 1})
    assert info.value.code == 57


def test_input_document_is_not_modified() -> None:
    doc = {"_id": 1, "a": {"b": [1, 2]}}
    apply({"$push": {"a.b": 3}, "$set": {"a.c": 1}}, doc)
    assert doc == {"_id": 1, "a": {"b": [1, 2]}}


# --- $set / $unset / dot notation ------------------------------------------------------------------


def test_set_creates_intermediate_documents_in_path_order() -> None:
    out = apply({"$set": {"z": 1, "b.y": 2, "b.x": 1}}, {"_id": 1})
    assert out == {"_id": 1, "b": {"x": 1, "y": 2}, "z": 1}
    assert list(out) == ["_id", "b", "z"]
    assert list(out["b"]) == ["x", "y"]


def test_set_numeric_component_indexes_array_and_pads_with_null() -> None:
    doc = {"_id": 1, "a": [10, 20]}
    assert apply({"$set": {"a.1": 99}}, doc)["a"] == [10, 99]
    assert apply({"$set": {"a.4": 5}}, doc)["a"] == [10, 20, None, None, 5]
    # numeric component on a document is a field name
    assert apply({"$set": {"d.0": 1}}, {"_id": 1, "d": {}})["d"] == {"0": 1}
    assert apply({"$set": {"e.0.x": 1}}, {"_id": 1})["e"] == {"0": {"x": 1}}


def test_set_through_scalar_or_null_is_path_not_viable() -> None:
    e = error({"$set": {"a.b": 1}}, {"_id": 1, "a": 5})
    assert (e.code, e.errmsg) == (28, "Cannot create field 'b' in element {a: 5}")
    assert error({"$set": {"a.b": 1}}, {"_id": 1, "a": None}).code == 28
    assert error({"$set": {"a.b": 1}}, {"_id": 1, "a": [1, 2]}).code == 28


def test_unset_removes_fields_and_nulls_array_elements() -> None:
    doc = {"_id": 1, "a": 1, "b": {"c": 1, "d": 2}, "arr": [1, 2, 3]}
    out = apply({"$unset": {"a": "", "b.c": 1, "arr.1": True, "nope.x": 1}}, doc)
    assert out == {"_id": 1, "b": {"d": 2}, "arr": [1, None, 3]}


def test_set_and_unset_of_id() -> None:
    assert error({"$set": {"_id": 2}}, {"_id": 1}).code == 66
    assert error({"$unset": {"_id": 1}}, {"_id": 1}).code == 66
    assert apply({"$set": {"_id": 1, "a": 1}}, {"_id": 1}) == {"_id": 1, "a": 1}
    assert error({"$set": {"_id.x": 2}}, {"_id": {"x": 1}}).code == 66


def test_set_value_with_dollar_field_rejected() -> None:
    assert error({"$set": {"a": {"$bad": 1}}}).code == 52
    assert error({"$set": {"a": {"x.y": 1}}}).code == 57


# --- conflicts and parse errors ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            {"$set": {"a": 1}, "$inc": {"a.b": 1}},
            "Updating the path 'a.b' would create a conflict at 'a'",
        ),
        (
            {"$set": {"a.b": 1}, "$inc": {"a": 1}},
            "Updating the path 'a' would create a conflict at 'a'",
        ),
        (
            {"$set": {"a": 1}, "$unset": {"a": 1}},
            "Updating the path 'a' would create a conflict at 'a'",
        ),
        (
            {"$rename": {"a": "b"}, "$set": {"b.c": 1}},
            "Updating the path 'b.c' would create a conflict at 'b'",
        ),
        (
            {"$set": {"x.y": 1}, "$setOnInsert": {"x": 1}},
            "Updating the path 'x' would create a conflict at 'x'",
        ),
    ],
)
def test_conflicting_paths(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(MongoError) as info:
        Update(spec)
    assert (info.value.code, info.value.errmsg) == (40, message)


def test_sibling_paths_with_common_prefix_do_not_conflict() -> None:
    out = apply({"$set": {"a.b": 1, "a.bc": 2}, "$inc": {"ab": 1}}, {"_id": 1})
    assert out == {"_id": 1, "a": {"b": 1, "bc": 2}, "ab": 1}


@pytest.mark.parametrize(
    ("spec", "code"),
    [
        ({"$foo": {"a": 1}}, 9),
        ({"$set": 5}, 9),
        ({"$set": {"a": 1}, "b": 2}, 9),
        ({"$set": {"": 1}}, 56),
        ({"$set": {"a..b": 1}}, 56),
        ({"$inc": {"a": "x"}}, 14),
        ({"$mul": {"a": None}}, 14),
        ({"$pop": {"a": 2}}, 9),
        ({"$pop": {"a": "x"}}, 9),
        ({"$rename": {"a": 1}}, 2),
        ({"$rename": {"a": "a"}}, 2),
        ({"$rename": {"a": "a.b"}}, 2),
        ({"$rename": {"a.$": "b"}}, 2),
        ({"$push": {"a": {"$each": 1}}}, 2),
        ({"$push": {"a": {"$each": [1], "$slice": "x"}}}, 2),
        ({"$push": {"a": {"$each": [1], "$slice": 1.5}}}, 2),
        ({"$push": {"a": {"$each": [1], "$position": "x"}}}, 2),
        ({"$push": {"a": {"$each": [1], "$sort": 2}}}, 2),
        ({"$push": {"a": {"$each": [1], "$sort": {"x": 3}}}}, 2),
        ({"$push": {"a": {"$each": [1], "$bogus": 1}}}, 2),
        ({"$addToSet": {"a": {"$each": [1], "$slice": 1}}}, 2),
        ({"$pushAll": {"a": 1}}, 2),
        ({"$pullAll": {"a": 1}}, 2),
        ({"$currentDate": {"a": 1}}, 2),
        ({"$currentDate": {"a": {"$type": "int"}}}, 2),
        ({"$set": {"$x": 1}}, 52),
        ({"$set": {"a.$.b.$": 1}}, 2),
        ({"$set": {"$": 1}}, 2),
        ({"$inc": {"$[].a": 1}}, 2),
    ],
)
def test_malformed_updates_raise_mongo_errors(spec: dict[str, Any], code: int) -> None:
    with pytest.raises(MongoError) as info:
        Update(spec)
    assert info.value.code == code


def test_empty_modifier_is_a_no_op() -> None:
    assert apply({"$set": {}}, {"_id": 1, "a": 1}) == {"_id": 1, "a": 1}


# --- $inc / $mul and numeric promotion -----------------------------------------------------------------


def test_inc_missing_field_sets_it_and_existing_adds() -> None:
    assert apply({"$inc": {"n": 5}}, {"_id": 1}) == {"_id": 1, "n": 5}
    assert apply({"$inc": {"n": -2}}, {"_id": 1, "n": 5}) == {"_id": 1, "n": 3}
    assert apply({"$inc": {"a.b.c": 1}}, {"_id": 1}) == {"_id": 1, "a": {"b": {"c": 1}}}


def test_inc_on_non_number_is_type_mismatch() -> None:
    e = error({"$inc": {"a": 1}}, {"_id": 1, "a": "x"})
    assert e.code == 14
    assert e.errmsg == (
        "Cannot apply $inc to a value of non-numeric type. {_id: 1} has the field 'a' of "
        "non-numeric type string"
    )
    assert error({"$inc": {"a": 1}}, {"_id": 1, "a": True}).code == 14
    assert error({"$mul": {"a": 2}}, {"_id": 1, "a": [1]}).code == 14


def test_numeric_promotion() -> None:
    big = arithmetic("+", 2**31 - 1, 1)
    assert isinstance(big, Int64) and big == 2**31
    assert type(arithmetic("+", 1, 2)) is int
    assert isinstance(arithmetic("+", Int64(1), 2), Int64)
    assert arithmetic("+", 1, 0.5) == 1.5 and isinstance(arithmetic("+", 1, 0.5), float)
    assert arithmetic("+", Int64(2**63 - 1), 1) is None  # int64 overflow: not representable
    assert arithmetic("*", Int64(2**62), 2) is None
    assert arithmetic("+", Decimal128("1.1"), 2) == Decimal128("3.1")
    assert arithmetic("*", Decimal128("1.5"), 0.5) == Decimal128("0.75")
    assert isinstance(arithmetic("*", 2**20, 2**20), Int64)
    assert type(arithmetic("*", 3, 4)) is int


def test_mul_missing_field_is_zero_of_the_multiplier_type() -> None:
    out = apply({"$mul": {"a": Int64(3), "b": 2.5, "c": 4}}, {"_id": 1})
    assert isinstance(out["a"], Int64) and out["a"] == 0
    assert isinstance(out["b"], float) and out["b"] == 0.0
    assert type(out["c"]) is int and out["c"] == 0
    assert apply({"$mul": {"p": 1.5}}, {"_id": 1, "p": 4}) == {"_id": 1, "p": 6.0}


# --- $min / $max / $currentDate ------------------------------------------------------------------------


def test_min_max_use_bson_order() -> None:
    doc = {"_id": 1, "lo": 5, "hi": 5}
    assert apply({"$min": {"lo": 3, "hi": 3}}, doc) == {"_id": 1, "lo": 3, "hi": 3}
    assert apply({"$max": {"lo": 3, "hi": 9}}, doc) == {"_id": 1, "lo": 5, "hi": 9}
    # a string sorts after every number; null before
    assert apply({"$max": {"lo": "a"}}, doc)["lo"] == "a"
    assert apply({"$min": {"lo": None}}, doc)["lo"] is None
    assert apply({"$min": {"new": 1}}, doc)["new"] == 1


def test_current_date_uses_callers_time_truncated_to_millis() -> None:
    out = apply(
        {"$currentDate": {"d": True, "t": {"$type": "timestamp"}, "e": {"$type": "date"}}},
        {"_id": 1},
        now=NOW,
    )
    assert out["d"] == NOW.replace(microsecond=678000) == out["e"]
    assert out["t"] == Timestamp(int(NOW.replace(tzinfo=datetime.UTC).timestamp()), 1)


# --- $rename -----------------------------------------------------------------------------------------


def test_rename_moves_value_including_into_new_subdocument() -> None:
    doc = {"_id": 1, "a": {"b": 1, "c": 2}, "x": 5}
    assert apply({"$rename": {"a.b": "z.y", "x": "w"}}, doc) == {
        "_id": 1,
        "a": {"c": 2},
        "w": 5,
        "z": {"y": 1},
    }
    assert apply({"$rename": {"missing": "q"}}, doc) == doc


def test_rename_overwrites_destination_and_rejects_array_paths() -> None:
    assert apply({"$rename": {"a": "b"}}, {"_id": 1, "a": 1, "b": 2}) == {"_id": 1, "b": 1}
    e = error({"$rename": {"a.0": "b"}}, {"_id": 1, "a": [1]})
    assert e.code == 2 and "array" in e.errmsg
    assert error({"$rename": {"b": "a.x"}}, {"_id": 1, "a": [1], "b": 1}).code == 2


# --- $push family ---------------------------------------------------------------------------------------


def test_push_appends_and_creates_array() -> None:
    assert apply({"$push": {"a": 1}}, {"_id": 1}) == {"_id": 1, "a": [1]}
    assert apply({"$push": {"a": [2]}}, {"_id": 1, "a": [1]})["a"] == [1, [2]]
    e = error({"$push": {"a": 1}}, {"_id": 1, "a": 5})
    assert e.code == 2
    assert e.errmsg == "The field 'a' must be an array but is of type int in document {_id: 1}"


def test_push_each_slice_sort_position() -> None:
    doc = {"_id": 1, "s": [{"n": "a", "v": 3}, {"n": "b", "v": 9}]}
    out = apply(
        {
            "$push": {
                "s": {
                    "$each": [{"n": "c", "v": 5}, {"n": "d", "v": 1}],
                    "$sort": {"v": -1},
                    "$slice": 3,
                }
            }
        },
        doc,
    )
    assert [e["n"] for e in out["s"]] == ["b", "c", "a"]
    nums = {"_id": 1, "a": [1, 2, 3]}
    assert apply({"$push": {"a": {"$each": [8, 9], "$position": 1}}}, nums)["a"] == [1, 8, 9, 2, 3]
    assert apply({"$push": {"a": {"$each": [8], "$position": -1}}}, nums)["a"] == [1, 2, 8, 3]
    assert apply({"$push": {"a": {"$each": [8], "$position": 99}}}, nums)["a"] == [1, 2, 3, 8]
    assert apply({"$push": {"a": {"$each": [0, 7], "$slice": -2}}}, nums)["a"] == [0, 7]
    assert apply({"$push": {"a": {"$each": [], "$slice": 0}}}, nums)["a"] == []
    assert apply({"$push": {"a": {"$each": [0, "x"], "$sort": -1}}}, nums)["a"] == ["x", 3, 2, 1, 0]
    assert apply({"$push": {"a": {"$each": [5], "$slice": -10}}}, nums)["a"] == [1, 2, 3, 5]


def test_push_all_and_add_to_set() -> None:
    assert apply({"$pushAll": {"a": [1, 1]}}, {"_id": 1, "a": [1]})["a"] == [1, 1, 1]
    doc = {"_id": 1, "tags": ["x", 1]}
    assert apply({"$addToSet": {"tags": 1.0}}, doc)["tags"] == ["x", 1]
    assert apply({"$addToSet": {"tags": {"$each": ["y", "x", "y"]}}}, doc)["tags"] == ["x", 1, "y"]
    assert apply({"$addToSet": {"new": {"$each": []}}}, doc)["new"] == []
    assert apply({"$addToSet": {"d": {"a": 1}}}, {"_id": 1, "d": [{"a": 1}]})["d"] == [{"a": 1}]
    assert error({"$addToSet": {"tags": 1}}, {"_id": 1, "tags": "x"}).code == 2


def test_pop() -> None:
    doc = {"_id": 1, "a": [1, 2, 3], "e": []}
    assert apply({"$pop": {"a": 1}}, doc)["a"] == [1, 2]
    assert apply({"$pop": {"a": -1}}, doc)["a"] == [2, 3]
    assert apply({"$pop": {"e": 1, "m": 1}}, doc) == doc
    assert error({"$pop": {"a": 1}}, {"_id": 1, "a": 1}).code == 14


# --- $pull / $pullAll -------------------------------------------------------------------------------------


def test_pull_values_and_conditions_on_scalars() -> None:
    doc = {"_id": 1, "a": [1, 5, 6, 7, 5, "5"], "s": ["ab", "cd"]}
    assert apply({"$pull": {"a": 5}}, doc)["a"] == [1, 6, 7, "5"]
    assert apply({"$pull": {"a": {"$gte": 6}}}, doc)["a"] == [1, 5, 5, "5"]
    assert apply({"$pull": {"a": {"$in": [1, "5"]}}}, doc)["a"] == [5, 6, 7, 5]
    assert apply({"$pull": {"s": {"$regex": "^a"}}}, doc)["s"] == ["cd"]
    assert apply({"$pull": {"missing": 1}}, doc) == doc
    assert error({"$pull": {"a": 1}}, {"_id": 1, "a": 3}).code == 2


def test_pull_conditions_on_subdocuments() -> None:
    doc = {
        "_id": 1,
        "results": [
            {"item": "A", "score": 5},
            {"item": "B", "score": 8, "comment": "x"},
            {"item": "C", "score": 8},
            7,
        ],
    }
    out = apply({"$pull": {"results": {"score": 8, "item": "B"}}}, doc)
    assert [r["item"] if isinstance(r, dict) else r for r in out["results"]] == ["A", "C", 7]
    out = apply({"$pull": {"results": {"score": {"$gt": 6}}}}, doc)
    assert [r["item"] if isinstance(r, dict) else r for r in out["results"]] == ["A", 7]
    # an empty condition matches every sub-document but not scalars
    assert apply({"$pull": {"results": {}}}, doc)["results"] == [7]
    nested = {
        "_id": 1,
        "r": [{"answers": [{"q": 1, "a": 4}, {"q": 2, "a": 6}]}, {"answers": [{"q": 1, "a": 8}]}],
    }
    out = apply({"$pull": {"r": {"answers": {"$elemMatch": {"q": 2, "a": {"$gte": 5}}}}}}, nested)
    assert out["r"] == [{"answers": [{"q": 1, "a": 8}]}]


def test_pull_all_uses_value_equality() -> None:
    doc = {"_id": 1, "a": [0, 1, 1.0, 2, [1], {"x": 1}]}
    assert apply({"$pullAll": {"a": [1, [1], {"x": 1}]}}, doc)["a"] == [0, 2]


def test_bad_pull_condition_is_a_mongo_error() -> None:
    with pytest.raises(MongoError) as info:
        Update({"$pull": {"a": {"$bogus": 1}}})
    assert info.value.code == 2


# --- positional ---------------------------------------------------------------------------------------


def test_positional_uses_callers_position() -> None:
    doc = {"_id": 1, "grades": [80, 85, 90]}
    assert apply({"$set": {"grades.$": 82}}, doc, position=1)["grades"] == [80, 82, 90]
    e = error({"$set": {"grades.$": 82}}, doc)
    assert e.code == 2
    assert e.errmsg == "The positional operator did not find the match needed from the query."
    assert Update({"$set": {"grades.$": 1}}).uses_positional
    assert not Update({"$set": {"grades.1": 1}}).uses_positional


def test_positional_into_subdocument_and_all_positional() -> None:
    doc = {"_id": 1, "e": [{"m": "a", "p": False}, {"m": "b", "p": False}]}
    out = apply({"$set": {"e.$.p": True}, "$inc": {"e.$.n": 1}}, doc, position=1)
    assert out["e"] == [{"m": "a", "p": False}, {"m": "b", "p": True, "n": 1}]
    out = apply({"$set": {"e.$[].p": True}}, doc)
    assert [x["p"] for x in out["e"]] == [True, True]
    nested = {"_id": 1, "a": [{"b": [1, 2]}, {"b": [3]}]}
    assert apply({"$inc": {"a.$[].b.$[]": 10}}, nested)["a"] == [{"b": [11, 12]}, {"b": [13]}]
    assert error({"$set": {"x.$[].p": 1}}, doc).code == 2
    assert error({"$set": {"e.$[].p": 1}}, {"_id": 1, "e": 3}).code == 2
    assert error({"$set": {"e.$[i].p": 1}}, doc).code == 2


# --- upsert -------------------------------------------------------------------------------------------


def test_upsert_seed_from_equalities() -> None:
    q = {
        "name": "x",
        "a.b": 1,
        "$and": [{"c": {"$eq": 2}}, {"d": {"$gt": 1}}],
        "e": {"$in": [1]},
        "_id": 5,
        "f": {"g": 1},
    }
    seed = upsert_seed(q)
    assert seed == {"_id": 5, "name": "x", "a": {"b": 1}, "c": 2, "e": 1, "f": {"g": 1}}
    assert next(iter(seed)) == "_id"
    with pytest.raises(MongoError) as info:
        upsert_seed({"a": 1, "$and": [{"a": 2}]})
    assert info.value.code == 54
    with pytest.raises(MongoError) as info:
        upsert_seed({"a": 1, "a.b": 2})
    assert info.value.code == 54


def test_upsert_with_set_on_insert() -> None:
    u = Update({"$set": {"n": 1}, "$setOnInsert": {"created": "now"}, "$inc": {"count": 1}})
    inserted = u.upsert_document({"name": "x", "count": {"$gt": 5}})
    assert inserted == {"name": "x", "count": 1, "created": "now", "n": 1}
    updated = u.apply({"_id": 1, "name": "x", "count": 7})
    assert updated == {"_id": 1, "name": "x", "count": 8, "n": 1}


def test_upsert_replacement_keeps_only_query_id() -> None:
    u = Update({"a": 1})
    assert u.upsert_document({"_id": 3, "b": 2}) == {"_id": 3, "a": 1}
    assert u.upsert_document({"b": 2}) == {"a": 1}


def test_upsert_positional_fails_and_id_change_fails() -> None:
    with pytest.raises(MongoError) as info:
        Update({"$set": {"a.$": 1}}).upsert_document({"a": 1})
    assert info.value.code == 2
    with pytest.raises(MongoError) as info:
        Update({"$set": {"_id": 2}}).upsert_document({"_id": 1})
    assert info.value.code == 66
    assert Update({"$set": {"_id": 2, "a": 1}}).upsert_document({"x": 1}) == {
        "_id": 2,
        "x": 1,
        "a": 1,
    }


# --- properties ---------------------------------------------------------------------------------------


_int32 = st.integers(min_value=-(2**31), max_value=2**31 - 1)
_int64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)


@settings(max_examples=150, deadline=None)
@given(_int32, _int32)
def test_inc_int32_exact_and_promotes_only_on_overflow(a: int, b: int) -> None:
    out = apply({"$inc": {"n": b}}, {"_id": 1, "n": a})["n"]
    assert out == a + b
    assert isinstance(out, Int64) == (not -(2**31) <= a + b < 2**31)


@settings(max_examples=150, deadline=None)
@given(_int64, _int64)
def test_inc_int64_exact_or_error_on_overflow(a: int, b: int) -> None:
    if -(2**63) <= a + b < 2**63:
        out = apply({"$inc": {"n": Int64(b)}}, {"_id": 1, "n": Int64(a)})["n"]
        assert isinstance(out, Int64) and out == a + b
    else:  # MongoDB refuses the update (code 2) rather than losing precision
        assert error({"$inc": {"n": Int64(b)}}, {"_id": 1, "n": Int64(a)}).code == 2


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.integers(-5, 5), max_size=6),
    st.lists(st.integers(-5, 5), max_size=4),
    st.one_of(st.none(), st.integers(-8, 8)),
    st.one_of(st.none(), st.integers(-8, 8)),
    st.sampled_from([None, 1, -1]),
)
def test_push_modifiers_match_a_reference_model(
    base: list[int], each: list[int], position: int | None, slice_: int | None, sort: int | None
) -> None:
    spec: dict[str, Any] = {"$each": each}
    if position is not None:
        spec["$position"] = position
    if slice_ is not None:
        spec["$slice"] = slice_
    if sort is not None:
        spec["$sort"] = sort
    expected = list(base)
    if position is None:
        expected += each
    else:
        at = max(0, len(expected) + position) if position < 0 else min(position, len(expected))
        expected[at:at] = each
    if sort is not None:
        expected.sort(reverse=sort == -1)
    if slice_ is not None:
        expected = expected[:slice_] if slice_ >= 0 else expected[max(0, len(expected) + slice_) :]
    assert apply({"$push": {"a": spec}}, {"_id": 1, "a": base})["a"] == expected


_values = st.one_of(
    st.integers(-3, 3),
    st.sampled_from([1.0, "x", None, True]),
    st.lists(st.integers(0, 2), max_size=2),
)


@settings(max_examples=100, deadline=None)
@given(st.lists(_values, max_size=6), st.lists(_values, max_size=4))
def test_add_to_set_is_idempotent_and_never_duplicates(base: list[Any], add: list[Any]) -> None:
    u = Update({"$addToSet": {"a": {"$each": add}}})
    once = u.apply({"_id": 1, "a": base})
    assert u.apply(once) == once
    added = once["a"][len(base) :]
    assert once["a"][: len(base)] == base
    for i, v in enumerate(added):
        assert not any(values_equal(v, w) for w in base + added[:i])
    for v in add:
        assert any(values_equal(v, w) for w in once["a"])


_names = st.sampled_from(["a", "b", "c"])


@settings(max_examples=100, deadline=None)
@given(
    st.lists(_names, min_size=1, max_size=3),
    st.integers(),
    st.dictionaries(_names, st.integers(), max_size=3),
)
def test_set_then_lookup_and_input_untouched(
    path: list[str], value: int, doc: dict[str, Any]
) -> None:
    original = {"_id": 0, **doc}
    snapshot = {"_id": 0, **doc}
    try:
        out = apply({"$set": {".".join(path): value}}, original)
    except MongoError as exc:  # the path ran into a scalar
        assert exc.code == 28
    else:
        assert lookup(out, path) == value
        assert next(iter(out)) == "_id"
    assert original == snapshot
