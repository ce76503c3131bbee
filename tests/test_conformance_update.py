"""Conformance of the update language with MongoDB's documented behaviour (issue 2).

Each case states what mongod does for a tricky update: numeric promotion and overflow, $min/$max
across types, $rename/$unset/$pop/$pull/$push/$addToSet edge cases, upsert seeding (the rules of
MongoDB's own jstests/core/upsert_fields.js), replacement and ``_id``, and the positional ``$``.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from bson.decimal128 import Decimal128
from bson.int64 import Int64
from bson.regex import Regex

from node.engine.collection import Collection
from node.engine.database import Engine
from node.engine.errors import MongoError
from node.engine.memory_store import MemoryStore

UPSERT_ID = "generated"


def coll_with(*docs: dict[str, Any]) -> Collection:
    coll = Engine(MemoryStore())["conf"]["upd"]
    if docs:
        coll.insert([{"_id": i, **d} for i, d in enumerate(docs)])
    return coll


def updated(doc: dict[str, Any], update: dict[str, Any], query: Any = None) -> dict[str, Any]:
    """The document after ``update`` (doc gets ``_id`` 0)."""
    coll = coll_with(doc)
    coll.update(query if query is not None else {"_id": 0}, update)
    out = coll.find_one({"_id": 0})
    assert out is not None
    return out


def update_error(doc: dict[str, Any], update: dict[str, Any], query: Any = None) -> MongoError:
    coll = coll_with(doc)
    before = list(coll.find())
    with pytest.raises(MongoError) as info:
        coll.update(query if query is not None else {"_id": 0}, update)
    assert list(coll.find()) == before  # a failed update changes nothing
    return info.value


def upserted(query: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    coll = coll_with()
    res = coll.update(query, update, upsert=True, upsert_id=UPSERT_ID)
    assert res.upserted
    docs = list(coll.find())
    assert len(docs) == 1
    return docs[0]


def upsert_error(query: dict[str, Any], update: dict[str, Any]) -> MongoError:
    coll = coll_with()
    with pytest.raises(MongoError) as info:
        coll.update(query, update, upsert=True, upsert_id=UPSERT_ID)
    assert list(coll.find()) == []
    return info.value


# --- $inc / $mul: type promotion and overflow ------------------------------------------------------


def test_inc_int32_overflow_widens_to_int64() -> None:
    out = updated({"a": 2**31 - 1}, {"$inc": {"a": 1}})["a"]
    assert isinstance(out, Int64) and out == 2**31


def test_mul_int32_overflow_widens_to_int64() -> None:
    out = updated({"a": 2**30}, {"$mul": {"a": 2}})["a"]
    assert isinstance(out, Int64) and out == 2**31


@pytest.mark.parametrize(
    ("start", "update", "shown"),
    [
        (Int64(2**63 - 1), {"$inc": {"a": 1}}, "(NumberLong)9223372036854775807"),
        (Int64(-(2**63)), {"$inc": {"a": -1}}, "(NumberLong)-9223372036854775808"),
        (Int64(2**62), {"$mul": {"a": 2}}, "(NumberLong)4611686018427387904"),
        (3, {"$mul": {"a": Int64(2**62)}}, "(NumberInt)3"),
    ],
)
def test_int64_overflow_is_refused(start: Any, update: dict[str, Any], shown: str) -> None:
    """mongod does not fall back to a double: the update fails with BadValue."""
    err = update_error({"a": start}, update)
    op = next(iter(update))
    assert err.code == 2
    assert err.errmsg == (
        f"Failed to apply {op} operations to current value ({shown}) for document {{_id: 0}}"
    )


def test_inc_type_promotion() -> None:
    assert isinstance(updated({"a": 1}, {"$inc": {"a": Int64(1)}})["a"], Int64)
    assert updated({"a": 1}, {"$inc": {"a": 0.5}})["a"] == 1.5
    assert updated({"a": Int64(1)}, {"$inc": {"a": Decimal128("0.5")}})["a"] == Decimal128("1.5")
    assert updated({"a": 2.5}, {"$mul": {"a": Decimal128("2")}})["a"] == Decimal128("5.0")


def test_mul_on_missing_field_sets_zero_of_the_argument_type() -> None:
    assert updated({}, {"$mul": {"a": 5}})["a"] == 0
    assert isinstance(updated({}, {"$mul": {"a": 2.5}})["a"], float)
    assert isinstance(updated({}, {"$mul": {"a": Int64(3)}})["a"], Int64)


def test_inc_on_null_or_string_is_a_type_mismatch() -> None:
    err = update_error({"a": None}, {"$inc": {"a": 1}})
    assert err.code == 14
    assert err.errmsg == (
        "Cannot apply $inc to a value of non-numeric type. {_id: 0} has the field 'a' of "
        "non-numeric type null"
    )
    assert update_error({"a": 1}, {"$inc": {"a": "1"}}).code == 14


# --- $min / $max across types ----------------------------------------------------------------------


def test_min_max_compare_in_bson_type_order() -> None:
    assert updated({"a": 1}, {"$min": {"a": None}})["a"] is None  # null < numbers
    assert updated({"a": 1}, {"$max": {"a": "a"}})["a"] == "a"  # strings > numbers
    assert updated({"a": [1, 2]}, {"$max": {"a": {"x": 1}}})["a"] == [1, 2]  # array > object
    assert updated({"a": 1}, {"$min": {"a": Decimal128("0.5")}})["a"] == Decimal128("0.5")


def test_min_max_keep_the_stored_type_when_values_are_equal() -> None:
    out = updated({"a": 1}, {"$max": {"a": 1.0}})["a"]
    assert out == 1 and type(out) is int


# --- $rename, $unset, $pop --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("doc", "spec", "message"),
    [
        (
            {"a": [1, 2]},
            {"a.0": "c"},
            "The source field cannot be an array element, 'a.0' in doc with _id: 0 has an "
            "array field called 'a'",
        ),
        (
            {"a": {"b": [{"c": [{"d": 1}]}]}},
            {"a.b.0.c.0.d": "z"},
            "The source field cannot be an array element, 'a.b.0.c.0.d' in doc with _id: 0 "
            "has an array field called 'c'",
        ),
        (
            {"a": 1, "b": []},
            {"a": "b.x"},
            "The destination field cannot be an array element, 'b.x' in doc with _id: 0 has an "
            "array field called 'b'",
        ),
    ],
)
def test_rename_into_or_out_of_arrays_is_refused(
    doc: dict[str, Any], spec: dict[str, str], message: str
) -> None:
    err = update_error(doc, {"$rename": spec})
    assert (err.code, err.errmsg) == (2, message)
    assert update_error({"a": 1, "b": []}, {"$rename": {"a": "b.0"}}).code == 2


@pytest.mark.parametrize(
    ("doc", "source", "message"),
    [
        (
            {"a": [{"x": 1}]},
            "a.x",
            "cannot use the part (a of a.x) to traverse the element ({a: [ { x: 1 } ]})",
        ),
        ({"a": [1]}, "a.0.x", "cannot use the part (0 of a.0.x) to traverse the element ({0: 1})"),
        ({"a": 1}, "a.b", "cannot use the part (a of a.b) to traverse the element ({a: 1})"),
    ],
)
def test_rename_source_through_array_field_or_scalar_is_not_viable(
    doc: dict[str, Any], source: str, message: str
) -> None:
    err = update_error(doc, {"$rename": {source: "c"}})
    assert (err.code, err.errmsg) == (28, message)


def test_rename_of_a_missing_array_element_does_nothing() -> None:
    assert updated({"a": [1, 2]}, {"$rename": {"a.5": "c"}}) == {"_id": 0, "a": [1, 2]}


def test_rename_overwrites_target_and_ignores_missing_source() -> None:
    assert updated({"a": 1, "b": 2}, {"$rename": {"a": "b"}}) == {"_id": 0, "b": 1}
    assert updated({"a": 1}, {"$rename": {"z": "y"}}) == {"_id": 0, "a": 1}
    assert updated({"a": {"b": 1}}, {"$rename": {"a.b": "c.d"}}) == {
        "_id": 0,
        "a": {},
        "c": {"d": 1},
    }


def test_unset_array_element_leaves_null() -> None:
    assert updated({"a": [1, 2, 3]}, {"$unset": {"a.1": ""}})["a"] == [1, None, 3]
    assert updated({"a": [{"b": 1}]}, {"$unset": {"a.0.b": ""}})["a"] == [{}]
    # a non-numeric component through an array is simply not there
    assert updated({"a": [{"b": 1}]}, {"$unset": {"a.b": ""}})["a"] == [{"b": 1}]


def test_pop() -> None:
    assert updated({"a": [1, 2, 3]}, {"$pop": {"a": -1}})["a"] == [2, 3]
    assert updated({"a": [1, 2, 3]}, {"$pop": {"a": 1.0}})["a"] == [1, 2]
    assert updated({}, {"$pop": {"a": 1}}) == {"_id": 0}
    err = update_error({"a": 1}, {"$pop": {"a": 1}})
    assert (err.code, err.errmsg) == (14, "Path 'a' contains an element of non-array type 'int'")
    assert update_error({"a": [1]}, {"$pop": {"a": 2}}).code == 9


# --- $pull / $pullAll ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("array", "cond", "left"),
    [
        ([1, 2, 3, 4], {"$gte": 3}, [1, 2]),
        ([{"b": 1, "c": 1}, {"b": 2}], {"b": 1}, [{"b": 2}]),  # match semantics, not equality
        ([{"b": 1, "c": 1}, {"b": 2}], {"b": {"$gt": 1}}, [{"b": 1, "c": 1}]),
        ([[1, 2], [3]], [1, 2], [[3]]),
        ([[1, 2], [3]], {"$size": 1}, [[1, 2]]),
        ([{"b": [1, 2]}, {"b": [3]}], {"b": 2}, [{"b": [3]}]),
        ([1, "x", None], None, [1, "x"]),
        ([{"x": 1}, {"x": None}, {}], {"x": None}, [{"x": 1}]),
        (["abc", "xyz"], re.compile("^a"), ["xyz"]),
        (["abc", "xyz"], {"$in": ["abc", re.compile("z$")]}, []),
        ([{"b": 1}, {"b": 2}], {"$elemMatch": {"b": 1}}, [{"b": 1}, {"b": 2}]),
        ([1, 2, 3], {"$not": {"$gt": 1}}, [2, 3]),
    ],
)
def test_pull(array: list[Any], cond: Any, left: list[Any]) -> None:
    assert updated({"a": array}, {"$pull": {"a": cond}})["a"] == left


def test_pull_on_non_array_is_refused() -> None:
    err = update_error({"a": 1}, {"$pull": {"a": 1}})
    assert (err.code, err.errmsg) == (2, "Cannot apply $pull to a non-array value")


def test_pull_all_uses_exact_equality_field_order_included() -> None:
    doc = {"a": [{"b": 1, "c": 2}, 1, 1.0, 2]}
    assert updated(doc, {"$pullAll": {"a": [{"c": 2, "b": 1}, 1]}})["a"] == [{"b": 1, "c": 2}, 2]
    assert updated(doc, {"$pullAll": {"a": [{"b": 1, "c": 2}]}})["a"] == [1, 1.0, 2]


# --- $push / $addToSet --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mods", "result"),
    [
        ({"$each": [5, 4], "$sort": 1, "$slice": -2}, [4, 5]),
        ({"$each": [5, 4], "$slice": 2, "$sort": -1}, [5, 4]),  # sort first, whatever the order
        ({"$each": [], "$slice": 0}, []),
        ({"$each": [9], "$position": -1}, [3, 1, 9, 2]),
        ({"$each": [9], "$position": -10}, [9, 3, 1, 2]),
        ({"$each": [9], "$position": 10}, [3, 1, 2, 9]),
        ({"$each": [8, 9], "$position": 1, "$slice": 3}, [3, 8, 9]),
        ({"$each": [8], "$position": 1.0}, [3, 8, 1, 2]),
    ],
)
def test_push_modifiers(mods: dict[str, Any], result: list[Any]) -> None:
    assert updated({"a": [3, 1, 2]}, {"$push": {"a": mods}})["a"] == result


def test_push_sort_by_field_puts_missing_first() -> None:
    doc = {"a": [{"s": 2}, {"s": 1}, {"t": 0}]}
    out = updated(doc, {"$push": {"a": {"$each": [], "$sort": {"s": 1}}}})["a"]
    assert out == [{"t": 0}, {"s": 1}, {"s": 2}]


def test_push_errors() -> None:
    assert update_error({"a": [1]}, {"$push": {"a": {"$each": 3}}}).code == 2
    assert update_error({"a": [1]}, {"$push": {"a": {"$each": [3], "$bad": 1}}}).code == 2
    assert update_error({"a": [1]}, {"$push": {"a": {"$each": [2], "$slice": 1.5}}}).code == 2
    sort_err = update_error({"a": [{"s": 1}]}, {"$push": {"a": {"$each": [], "$sort": {"s": 0}}}})
    assert sort_err.errmsg == "The $sort element value must be either 1 or -1"
    # without $each the document is the value pushed, and a $-name is not storable
    assert update_error({"a": [1]}, {"$push": {"a": {"$slice": 1}}}).code == 52
    err = update_error({"a": 1}, {"$push": {"a": 2}})
    assert err.errmsg == "The field 'a' must be an array but is of type int in document {_id: 0}"


def test_add_to_set_compares_documents_with_field_order() -> None:
    doc = {"a": [{"b": 1, "c": 2}]}
    assert updated(doc, {"$addToSet": {"a": {"b": 1, "c": 2}}})["a"] == [{"b": 1, "c": 2}]
    out = updated(doc, {"$addToSet": {"a": {"c": 2, "b": 1}}})["a"]
    assert out == [{"b": 1, "c": 2}, {"c": 2, "b": 1}]
    assert list(out[1]) == ["c", "b"]


def test_add_to_set_numbers_by_value_and_each_dedups() -> None:
    assert updated({"a": [1]}, {"$addToSet": {"a": 1.0}})["a"] == [1]
    assert updated({"a": [1]}, {"$addToSet": {"a": {"$each": [2, 2, 3]}}})["a"] == [1, 2, 3]
    assert updated({"a": [1]}, {"$addToSet": {"a": [1, 2]}})["a"] == [1, [1, 2]]
    assert update_error({"a": "x"}, {"$addToSet": {"a": 1}}).code == 2


# --- $setOnInsert and upsert seeding (jstests/core/upsert_fields.js) --------------------------------


def test_set_on_insert_is_ignored_on_update() -> None:
    coll = coll_with({"a": 1})
    coll.update({"a": 1}, {"$setOnInsert": {"b": 1}, "$set": {"c": 1}}, upsert=True)
    assert list(coll.find()) == [{"_id": 0, "a": 1, "c": 1}]


MODIFIER_STYLES = [{"$set": {"a": 1}}, {"$setOnInsert": {"a": 1}}]
ALL_STYLES = [{}, *MODIFIER_STYLES]


@pytest.mark.parametrize("update", ALL_STYLES)
@pytest.mark.parametrize(
    "query",
    [
        {"_id": 1},
        {"_id": {"$eq": 1}},
        {"_id": {"$all": [1]}},
        {"_id": {"$in": [1]}},
        {"$and": [{"_id": 1}]},
        {"$and": [{"_id": {"$eq": 1}}]},
        {"$or": [{"_id": 1}]},
        {"$or": [{"_id": {"$eq": 1}}]},
    ],
)
def test_upsert_takes_id_from_query_equality(query: dict[str, Any], update: dict[str, Any]) -> None:
    assert upserted(query, update)["_id"] == 1


@pytest.mark.parametrize("update", ALL_STYLES)
@pytest.mark.parametrize(
    "query",
    [
        {"_id": {"$gt": 1}},
        {"_id": {"$ne": 1}},
        {"_id": {"$in": [1, 2]}},
        {"_id": {"$elemMatch": {"$eq": 1}}},
        {"_id": {"$exists": True}},
        {"_id": {"$not": {"$eq": 1}}},
        {"$or": [{"_id": 1}, {"_id": 1}]},
        {"$nor": [{"_id": 1}]},
        {"_id": re.compile("abc")},
    ],
)
def test_upsert_generates_id_without_equality(
    query: dict[str, Any], update: dict[str, Any]
) -> None:
    assert upserted(query, update)["_id"] == UPSERT_ID


@pytest.mark.parametrize("update", ALL_STYLES)
@pytest.mark.parametrize(
    "query",
    [
        {"_id": [1, 2]},
        {"_id": {"$eq": [1, 2]}},
        {"_id": {"$all": [1, 2]}},
        {"$and": [{"_id": 1}, {"_id": 1}]},
        {"$and": [{"_id": {"$eq": 1}}, {"_id": 2}]},
        {"_id": 1, "_id.x": 1},
        {"_id": {"x": 1}, "_id.x": 1},
    ],
)
def test_upsert_id_extraction_errors(query: dict[str, Any], update: dict[str, Any]) -> None:
    upsert_error(query, update)


def test_nested_id_fields_seed_only_modifier_upserts() -> None:
    assert upserted({"_id.x": 1, "_id.y": 2}, {"$set": {"a": 1}})["_id"] == {"x": 1, "y": 2}
    err = upsert_error({"_id.x": 1, "_id.y": 2}, {})
    assert err.code == 111  # NotExactValueField: a replacement needs _id whole


@pytest.mark.parametrize("update", MODIFIER_STYLES)
@pytest.mark.parametrize(
    ("query", "x"),
    [
        ({"x": 1}, 1),
        ({"x": {"$eq": 1}}, 1),
        ({"x": {"$in": [1]}}, 1),
        ({"x": {"$all": [1]}}, 1),
        ({"$and": [{"x": 1}]}, 1),
        ({"$or": [{"x": {"$eq": 1}}]}, 1),
        ({"x": [1, 2]}, [1, 2]),
        ({"x.x": 1}, {"x": 1}),
        ({"x.x": {"$all": [1]}}, {"x": 1}),
        ({"$or": [{"x.x": 1}]}, {"x": 1}),
        ({"x": {"$eq": Regex("abc")}}, Regex("abc")),
    ],
)
def test_modifier_upsert_seeds_equality_fields(
    query: dict[str, Any], x: Any, update: dict[str, Any]
) -> None:
    assert upserted(query, update)["x"] == x


@pytest.mark.parametrize("update", ALL_STYLES)
@pytest.mark.parametrize(
    "query",
    [
        {"x": {"$gt": 1}},
        {"x": {"$ne": 1}},
        {"x": {"$in": [1, 2]}},
        {"x": {"$elemMatch": {"$eq": 1}}},
        {"x": {"$exists": True}},
        {"x": {"$not": {"$eq": 1}}},
        {"$or": [{"x": 1}, {"x": 1}]},
        {"$nor": [{"x": 1}]},
        {"x": re.compile("abc")},
    ],
)
def test_upsert_does_not_seed_non_equalities(query: dict[str, Any], update: dict[str, Any]) -> None:
    assert "x" not in upserted(query, update)


@pytest.mark.parametrize(
    "query",
    [
        {"x": {"$all": [1, 2]}},
        {"$and": [{"x": 1}, {"x": 1}]},
        {"$and": [{"x": {"$eq": 1}}, {"x": 2}]},
        {"x": 1, "x.x": 1},
        {"x": {}, "x.x": 1},
        {"x": {"x": 1}, "x.y": 1},
        {"x": [1, {"x": 1}], "x.x": 1},
    ],
)
def test_conflicting_equalities(query: dict[str, Any]) -> None:
    """Refused for modifier upserts (code 54); a replacement ignores every field but _id."""
    for update in MODIFIER_STYLES:
        assert upsert_error(query, update).code == 54
    assert upserted(query, {"y": 1}) == {"_id": UPSERT_ID, "y": 1}
    assert upserted({"_id": 1, **query}, {})["_id"] == 1


def test_upsert_seed_then_update_operators_apply() -> None:
    assert upserted({"a": {"$eq": 5}}, {"$inc": {"n": 1}}) == {"_id": UPSERT_ID, "a": 5, "n": 1}
    assert upserted({"a": 1}, {"$set": {"a": 2}}) == {"_id": UPSERT_ID, "a": 2}
    assert upserted({"$and": [{"a": 1}, {"b.c": 2}]}, {"$set": {"d": 1}}) == {
        "_id": UPSERT_ID,
        "a": 1,
        "b": {"c": 2},
        "d": 1,
    }
    assert upsert_error({"a": 1}, {"$set": {"a.b": 2}}).code == 28


# --- replacement and _id ------------------------------------------------------------------------------


def test_replacement_keeps_id_and_refuses_to_change_it() -> None:
    assert updated({"a": 1}, {"b": 2}) == {"_id": 0, "b": 2}
    assert updated({"a": 1}, {"b": 2, "_id": 0}) == {"_id": 0, "b": 2}
    assert update_error({"a": 1}, {"_id": 5, "b": 2}).code == 66
    assert update_error({"a": 1}, {"$set": {"_id": 5}}).code == 66


def test_replacement_upsert_id_from_replacement_wins_over_generated() -> None:
    assert upserted({"a": 1}, {"_id": 6, "b": 2}) == {"_id": 6, "b": 2}
    assert upserted({"_id": 5, "a": 1}, {"b": 2}) == {"_id": 5, "b": 2}
    assert upserted({"_id": 5}, {"_id": 5, "b": 2}) == {"_id": 5, "b": 2}


def test_upsert_may_not_change_the_query_id() -> None:
    err = upsert_error({"_id": 1}, {"_id": 2, "x": 1})
    assert (err.code, err.errmsg) == (
        66,
        "After applying the update, the (immutable) field '_id' was found to have been altered "
        "to _id: 2",
    )
    assert upsert_error({"_id": 1}, {"$setOnInsert": {"_id": 2}}).code == 66
    assert upserted({"_id": 1}, {"$set": {"_id": 1}}) == {"_id": 1}


# --- positional operators -------------------------------------------------------------------------------


def test_positional_without_array_match_is_bad_value() -> None:
    err = update_error({"a": [1, 2]}, {"$set": {"a.$": 9}}, query={"_id": 0})
    assert err.code == 2
    assert err.errmsg == "The positional operator did not find the match needed from the query."


def test_positional_updates_the_first_matched_element() -> None:
    doc = {"a": [{"b": 1}, {"b": 2}, {"b": 2}]}
    out = updated(doc, {"$set": {"a.$.c": 1}}, query={"a.b": 2})
    assert out["a"] == [{"b": 1}, {"b": 2, "c": 1}, {"b": 2}]


def test_all_positional_on_nested_arrays() -> None:
    doc = {"a": [{"b": [1, 2]}, {"b": [3]}]}
    assert updated(doc, {"$inc": {"a.$[].b.$[]": 10}})["a"] == [{"b": [11, 12]}, {"b": [13]}]
    assert updated({"a": [[1], [2, 3]]}, {"$set": {"a.$[].$[]": 0}})["a"] == [[0], [0, 0]]


@pytest.mark.parametrize(
    ("doc", "update", "query", "at"),
    [
        ({"a": [1, 2, 3]}, {"$inc": {"a.$[]": 1}, "$set": {"a.0": 1}}, None, "a.0"),
        ({"a": [{"b": 1}]}, {"$set": {"a.$[].b": 2, "a.0.b": 1}}, None, "a.0.b"),
        ({"a": [{"b": 1}]}, {"$set": {"a.$[]": 2, "a.0.b": 1}}, None, "a.0"),
        ({"a": [1, 2]}, {"$set": {"a.$": 5, "a.1": 6}}, {"a": 2}, "a.1"),
    ],
)
def test_positional_paths_resolving_onto_another_path_conflict(
    doc: dict[str, Any], update: dict[str, Any], query: Any, at: str
) -> None:
    err = update_error(doc, update, query)
    assert (err.code, err.errmsg) == (40, f"Update created a conflict at '{at}'")


def test_positional_paths_that_resolve_apart_apply() -> None:
    doc = {"a": [{"b": 1}]}
    assert updated(doc, {"$set": {"a.$[].b": 2, "a.0.c": 1}})["a"] == [{"b": 2, "c": 1}]
    assert updated({"a": [1, 2]}, {"$set": {"a.$": 5, "a.0": 6}}, {"a": 2})["a"] == [6, 5]
    # '$[]' ranges over the elements the array had, not ones another operator adds
    assert updated({"a": []}, {"$inc": {"a.$[]": 1}, "$set": {"a.0": 1}})["a"] == [1]
    out = updated({"a": [1, 2]}, {"$inc": {"a.$[]": 1}, "$set": {"a.4": 0}})["a"]
    assert out == [2, 3, None, None, 0]


def test_all_positional_needs_an_existing_array() -> None:
    err = update_error({}, {"$set": {"a.$[]": 1}})
    assert err.errmsg == "The path 'a' must exist in the document in order to apply array updates."
    assert update_error({"a": 1}, {"$set": {"a.$[]": 1}}).code == 2
    assert updated({"a": [1]}, {"$unset": {"a.$[]": 1}})["a"] == [None]


def test_positional_uses_the_matched_index_of_whatever_array_matched() -> None:
    """A documented pitfall: '$' is the index of the query's array match, on any array."""
    out = updated({"a": [1, 2], "b": [5, 6]}, {"$set": {"a.$": 9}}, {"b": 6})
    assert out["a"] == [1, 9]
    assert updated({"a": [1, 2]}, {"$set": {"x.$": 9}}, {"a": 2})["x"] == {"1": 9}


def test_set_pads_arrays_and_refuses_fields_in_arrays_or_scalars() -> None:
    assert updated({"a": [1]}, {"$set": {"a.3": 1}})["a"] == [1, None, None, 1]
    assert updated({"a": {"b": 1}}, {"$set": {"a.0": 1}})["a"] == {"b": 1, "0": 1}
    assert update_error({"a": [{"b": 1}]}, {"$set": {"a.b": 1}}).code == 28
    assert update_error({"a": [1]}, {"$set": {"a.0.b": 1}}).code == 28
    assert update_error({"a": [1, 2, 3]}, {"$set": {"a.-1": 5}}).code == 28


# jstests/core/update_array_offset_positional.js: an index the query names is not a match
# position, so '$' cannot use it, and it does not displace a position found by traversal


@pytest.mark.parametrize(
    ("doc", "query", "update"),
    [
        ({"a": [0]}, {"_id": 0, "a.0": 0}, {"$set": {"a.$": 1}}),
        ({"a": [{"b": 0}]}, {"_id": 0, "a.0.b": 0}, {"$set": {"a.$.b": 1}}),
        ({"a": [[0]]}, {"_id": 0, "a.0.0": 0}, {"$set": {"a.$.0": 1}}),
        ({"a": [{"b": [0]}]}, {"_id": 0, "a.0.b.0": 0}, {"$set": {"a.$.b.0": 1}}),
    ],
)
def test_positional_gets_no_position_from_an_explicit_index(
    doc: dict[str, Any], query: dict[str, Any], update: dict[str, Any]
) -> None:
    err = update_error(doc, update, query)
    assert (err.code, err.errmsg) == (
        2,
        "The positional operator did not find the match needed from the query.",
    )


@pytest.mark.parametrize(
    ("doc", "query", "update", "after"),
    [
        ({"a": [{"b": [0, 1]}]}, {"a.0.b": 1}, {"$set": {"a.0.b.$": 2}}, {"a": [{"b": [0, 2]}]}),
        ({"a": [{"b": [0, 1]}]}, {"a.b.1": 1}, {"$set": {"a.$.b.1": 2}}, {"a": [{"b": [0, 2]}]}),
        (
            {"a": [0, 1], "b": [0]},
            {"a": 1, "b.0": 0},
            {"$set": {"a.$": 2}},
            {"a": [0, 2], "b": [0]},
        ),
        (
            {"a": [0, 1], "b": [{"c": [0]}]},
            {"a": 1, "b.0.c.0": 0},
            {"$set": {"a.$": 2}},
            {"a": [0, 2], "b": [{"c": [0]}]},
        ),
    ],
)
def test_positional_uses_only_implicit_traversal_positions(
    doc: dict[str, Any], query: dict[str, Any], update: dict[str, Any], after: dict[str, Any]
) -> None:
    assert updated(doc, update, {"_id": 0, **query}) == {"_id": 0, **after}


# --- jstests/core/write/update/update_modifier_pop.js: modifiers that never create their path ---


@pytest.mark.parametrize("spec", [0, -2, 2.5, 1.1, {"b": 1}])
def test_pop_argument_must_be_one_or_minus_one(spec: Any) -> None:
    assert (
        update_error({}, {"$pop": {"a.b" if not isinstance(spec, dict) else "a": spec}}).code == 9
    )


@pytest.mark.parametrize(
    "doc",
    [{}, {"a": {"c": 1}}, {"a": {"b": []}}, {"a": [{"b": 0}, {"b": 1}]}],
)
def test_pop_on_a_path_that_could_exist_is_a_no_op(doc: dict[str, Any]) -> None:
    coll = coll_with(doc)
    path = "a.2.b" if isinstance(doc.get("a"), list) else "a.b"
    res = coll.update({"_id": 0}, {"$pop": {path: 1}})
    assert (res.n, res.n_modified) == (1, 0)


@pytest.mark.parametrize(
    ("doc", "update", "message"),
    [
        (
            {"a": {"b": 1}},
            {"$pop": {"a.b.c": 1}},
            "Cannot use the part (c) of (a.b.c) to traverse the element ({b: 1})",
        ),
        (
            {"a": {"b": [1, 2]}},
            {"$pop": {"a.b.c": 1}},
            "Cannot use the part (c) of (a.b.c) to traverse the element ({b: [ 1, 2 ]})",
        ),
        (
            {"a": [{"b": [1]}]},
            {"$pull": {"a.b": 1}},
            "Cannot use the part (b) of (a.b) to traverse the element ({a: [ { b: [ 1 ] } ]})",
        ),
        (
            {"a": None},
            {"$pullAll": {"a.b": [1]}},
            "Cannot use the part (b) of (a.b) to traverse the element ({a: null})",
        ),
    ],
)
def test_non_creating_modifiers_on_a_blocked_path_are_not_viable(
    doc: dict[str, Any], update: dict[str, Any], message: str
) -> None:
    err = update_error(doc, update)
    assert (err.code, err.errmsg) == (28, message)
    # $unset is the one modifier that ignores a blocked path
    path = next(iter(next(iter(update.values()))))
    assert updated(doc, {"$unset": {path: 1}}) == {"_id": 0, **doc}


def test_pop_through_positional_and_nested_arrays() -> None:
    doc = {"a": [{"b": [1, 2, 3]}, {"b": [4, 5, 6]}]}
    assert updated(doc, {"$pop": {"a.$.b": 1}}, {"a.b": 5})["a"] == [
        {"b": [1, 2, 3]},
        {"b": [4, 5]},
    ]
    assert updated({"a": [1, [2, 3, 4]]}, {"$pop": {"a.1": 1}})["a"] == [1, [2, 3]]
    assert updated({"a": {"b": [1, 2, 3]}}, {"$pop": {"a.b": -1}})["a"] == {"b": [2, 3]}


def test_updates_inside_a_dbref() -> None:
    """jstests update_arraymatch8: '$set' on a DBRef's own fields."""
    coll = coll_with({"a": [{"b": {"$ref": "old", "$id": 0}}]})
    coll.update({}, {"$set": {"a.0.b.$ref": "new"}})
    assert coll.count({"a.b.$ref": "new"}) == 1 and coll.count({"a.b.$ref": "old"}) == 0
    coll.update({}, {"$inc": {"a.0.b.$id": 2}})
    assert coll.count({"a.b.$id": 2}) == 1
