"""The filtered positional operator ``$[<identifier>]`` with ``arrayFilters``.

Expected results are MongoDB's: the examples of its manual page on ``$[<identifier>]`` and the
cases and messages of its jstests/core/update_arrayFilters.js.
"""

from __future__ import annotations

from typing import Any

import pytest

from node.commands import crud
from node.commands.context import RequestContext
from node.engine.collection import Collection
from node.engine.database import Engine
from node.engine.errors import MongoError
from node.engine.memory_store import MemoryStore
from node.server.standalone import standalone_dispatcher

# --- engine level ---------------------------------------------------------------------------


def coll_with(*docs: dict[str, Any]) -> Collection:
    coll = Engine(MemoryStore())["school"]["students"]
    if docs:
        coll.insert(list(docs))
    return coll


def all_docs(coll: Collection) -> list[dict[str, Any]]:
    return list(coll.find({}, sort=[("_id", 1)]))


def updated(doc: dict[str, Any], update: dict[str, Any], filters: list[Any]) -> dict[str, Any]:
    coll = coll_with({"_id": 0, **doc})
    coll.update({"_id": 0}, update, array_filters=filters)
    (out,) = all_docs(coll)
    return out


def update_error(
    doc: dict[str, Any] | None, update: dict[str, Any], filters: Any, **kw: Any
) -> MongoError:
    coll = coll_with({"_id": 0, **doc}) if doc is not None else coll_with()
    before = all_docs(coll)
    with pytest.raises(MongoError) as info:
        coll.update({"_id": 0}, update, array_filters=filters, **kw)
    assert all_docs(coll) == before  # a failed update changes nothing
    return info.value


def test_manual_scalar_filter_updates_matching_elements() -> None:
    coll = coll_with(
        {"_id": 1, "grades": [95, 92, 90]},
        {"_id": 2, "grades": [98, 100, 102]},
        {"_id": 3, "grades": [95, 110, 100]},
    )
    res = coll.update(
        {},
        {"$set": {"grades.$[element]": 100}},
        multi=True,
        array_filters=[{"element": {"$gte": 100}}],
    )
    assert (res.n, res.n_modified) == (3, 2)
    assert all_docs(coll) == [
        {"_id": 1, "grades": [95, 92, 90]},
        {"_id": 2, "grades": [98, 100, 100]},
        {"_id": 3, "grades": [95, 100, 100]},
    ]


def _grades(*rows: tuple[int, int, int]) -> list[dict[str, int]]:
    return [{"grade": g, "mean": m, "std": s} for g, m, s in rows]


def test_manual_document_filter_sets_a_field_of_matching_elements() -> None:
    coll = coll_with(
        {"_id": 1, "grades": _grades((80, 75, 6), (85, 90, 4), (85, 85, 6))},
        {"_id": 2, "grades": _grades((90, 75, 6), (87, 90, 3), (85, 85, 4))},
    )
    coll.update(
        {},
        {"$set": {"grades.$[elem].mean": 100}},
        multi=True,
        array_filters=[{"elem.grade": {"$gte": 85}}],
    )
    assert all_docs(coll) == [
        {"_id": 1, "grades": _grades((80, 75, 6), (85, 100, 4), (85, 100, 6))},
        {"_id": 2, "grades": _grades((90, 100, 6), (87, 100, 3), (85, 100, 4))},
    ]


def test_manual_filter_with_several_conditions_and_inc() -> None:
    coll = coll_with(
        {"_id": 1, "grades": _grades((80, 75, 6), (85, 100, 4), (85, 100, 6))},
        {"_id": 2, "grades": _grades((90, 100, 6), (87, 100, 3), (85, 100, 4))},
    )
    coll.update(
        {},
        {"$inc": {"grades.$[elem].std": -1}},
        multi=True,
        array_filters=[{"elem.grade": {"$gte": 80}, "elem.std": {"$gt": 5}}],
    )
    assert all_docs(coll) == [
        {"_id": 1, "grades": _grades((80, 75, 5), (85, 100, 4), (85, 100, 5))},
        {"_id": 2, "grades": _grades((90, 100, 5), (87, 100, 3), (85, 100, 4))},
    ]


def test_manual_negation_filter() -> None:
    coll = coll_with(
        {"_id": 1, "degrees": [{"level": "Master"}, {"level": "Bachelor"}]},
        {"_id": 2, "degrees": [{"level": "Bachelor"}]},
    )
    res = coll.update(
        {},
        {"$set": {"degrees.$[degree].gradcampaign": 1}},
        multi=True,
        array_filters=[{"degree.level": {"$ne": "Bachelor"}}],
    )
    assert res.n_modified == 1
    assert all_docs(coll) == [
        {"_id": 1, "degrees": [{"level": "Master", "gradcampaign": 1}, {"level": "Bachelor"}]},
        {"_id": 2, "degrees": [{"level": "Bachelor"}]},
    ]


def _quizzes() -> dict[str, Any]:
    return {
        "_id": 1,
        "grades": [
            {"type": "quiz", "questions": [10, 8, 5]},
            {"type": "quiz", "questions": [8, 9, 6]},
            {"type": "hw", "questions": [5, 4, 3]},
            {"type": "exam", "questions": [25, 10, 23, 0]},
        ],
    }


def test_manual_nested_identifiers() -> None:
    coll = coll_with(_quizzes())
    coll.update(
        {},
        {"$inc": {"grades.$[t].questions.$[score]": 2}},
        multi=True,
        array_filters=[{"t.type": "quiz"}, {"score": {"$gte": 8}}],
    )
    assert [g["questions"] for g in all_docs(coll)[0]["grades"]] == [
        [12, 10, 5],
        [10, 11, 6],
        [5, 4, 3],
        [25, 10, 23, 0],
    ]


def test_manual_identifier_combined_with_all_positional() -> None:
    coll = coll_with(_quizzes())
    coll.update(
        {},
        {"$inc": {"grades.$[].questions.$[score]": 2}},
        multi=True,
        array_filters=[{"score": {"$gte": 8}}],
    )
    assert [g["questions"] for g in all_docs(coll)[0]["grades"]] == [
        [12, 10, 5],
        [10, 11, 6],
        [5, 4, 3],
        [27, 12, 25, 0],
    ]
    # and the other way round: every element of the matched arrays
    out = updated({"a": [[0, 1], [0, 1]]}, {"$set": {"a.$[].$[j]": 2}}, [{"j": 0}])
    assert out["a"] == [[2, 1], [2, 1]]


def test_nested_document_identifiers() -> None:
    doc = {"a": [{"b": 0, "c": [{"d": 0}, {"d": 1}]}, {"b": 1, "c": [{"d": 0}, {"d": 1}]}]}
    out = updated(doc, {"$set": {"a.$[i].c.$[j].d": 2}}, [{"i.b": 0}, {"j.d": 0}])
    assert out["a"] == [{"b": 0, "c": [{"d": 2}, {"d": 1}]}, {"b": 1, "c": [{"d": 0}, {"d": 1}]}]


@pytest.mark.parametrize(
    ("doc", "update", "filters", "expected"),
    [
        ([0, 1, 0, 1], {"$set": {"a.$[i]": 2}}, [{"i": 0}], [2, 1, 2, 1]),
        ([0, 1, 0, 1], {"$unset": {"a.$[i]": True}}, [{"i": 0}], [None, 1, None, 1]),
        ([0, 1, 0, 1], {"$inc": {"a.$[i]": 1}}, [{"i": 1}], [0, 2, 0, 2]),
        ([0, 2, 0, 2], {"$mul": {"a.$[i]": 3}}, [{"i": 2}], [0, 6, 0, 6]),
        ([[0, 1], [2, 3]], {"$push": {"a.$[i]": 4}}, [{"i": 0}], [[0, 1, 4], [2, 3]]),
        (
            [[0, 1], [2, 3]],
            {"$push": {"a.$[i]": {"$each": [9, 8], "$sort": 1}}},
            [{"i": 3}],
            [[0, 1], [2, 3, 8, 9]],
        ),
        ([[0], [1]], {"$addToSet": {"a.$[i]": 2}}, [{"i": 0}], [[0, 2], [1]]),
        ([[0, 1], [1, 2]], {"$pop": {"a.$[i]": 1}}, [{"i": 0}], [[0], [1, 2]]),
        ([[0, 1, 2, 3], [1, 2, 3, 4]], {"$pullAll": {"a.$[i]": [0, 2]}}, [{"i": 0}],
         [[1, 3], [1, 2, 3, 4]]),
        ([[0, 1], [1, 2]], {"$pull": {"a.$[i]": 1}}, [{"i": 2}], [[0, 1], [2]]),
        ([0, 1, 3], {"$set": {"a.$[i]": 2}}, [{"$or": [{"i": 0}, {"i": 3}]}], [2, 1, 2]),
        ([0, 1], {"$set": {"a.$[i]": 5}}, [{"$or": [{"i": 0}, {"$and": [{}]}]}], [5, 5]),
        ([1, 5, 9], {"$set": {"a.$[i]": 0}}, [{"i": {"$gt": 100}}], [1, 5, 9]),
        ([], {"$set": {"a.$[i]": 0}}, [{"i": 1}], []),
    ],
)
def test_modifiers_through_filters(
    doc: list[Any], update: dict[str, Any], filters: list[Any], expected: list[Any]
) -> None:
    assert updated({"a": doc}, update, filters)["a"] == expected


def test_min_max_through_document_filters() -> None:
    doc = {"a": [{"b": 0, "c": 1}, {"b": 0, "c": -1}, {"b": 1, "c": 1}]}
    out = updated(doc, {"$min": {"a.$[i].c": 0}}, [{"i.b": 0}])
    assert out["a"] == [{"b": 0, "c": 0}, {"b": 0, "c": -1}, {"b": 1, "c": 1}]
    out = updated(doc, {"$max": {"a.$[i].c": 0}}, [{"i.b": 0}])
    assert out["a"] == [{"b": 0, "c": 1}, {"b": 0, "c": 0}, {"b": 1, "c": 1}]


def test_several_identifiers_in_one_update() -> None:
    out = updated({"a": [0, 1, 2], "c": [7, 8]}, {"$set": {"a.$[i]": 5}, "$inc": {"c.$[j]": 1}},
                  [{"i": {"$lt": 2}}, {"j": 7}])
    assert out == {"_id": 0, "a": [5, 5, 2], "c": [8, 8]}


def test_identifiers_on_disjoint_elements_do_not_conflict() -> None:
    doc = {"a": [{"x": 0, "b": [{"y": 0, "c": 0, "d": 0}]}]}
    out = updated(doc, {"$set": {"a.$[i].b.$[k].c": 1, "a.$[j].b.$[k].d": 1}},
                  [{"i.x": 0}, {"j.x": 0}, {"k.y": 0}])
    assert out["a"] == [{"x": 0, "b": [{"y": 0, "c": 1, "d": 1}]}]
    doc = {"a": [{"x": 0, "b": [{"y": 0, "c": 0}]}, {"x": 1, "b": [{"y": 0, "c": 0}]}]}
    out = updated(doc, {"$set": {"a.$[i].b.$[k].c": 1, "a.$[j].b.$[k].c": 2}},
                  [{"i.x": 0}, {"j.x": 1}, {"k.y": 0}])
    assert out["a"] == [{"x": 0, "b": [{"y": 0, "c": 1}]}, {"x": 1, "b": [{"y": 0, "c": 2}]}]


def test_identifiers_matching_one_element_conflict() -> None:
    doc = {"a": [{"x": 0, "b": [{"y": 0, "c": 0}]}, {"x": 1, "b": [{"y": 0, "c": 0}]}]}
    err = update_error(doc, {"$set": {"a.$[i].b.$[k].c": 1, "a.$[j].b.$[k].c": 2}},
                       [{"i.x": 0}, {"j.x": 0}, {"k.y": 0}])
    assert (err.code, err.errmsg) == (40, "Update created a conflict at 'a.0.b.$[k].c'")
    doc = {"a": [{"x": 0, "b": [{"y": 0, "c": 0}]}, {"x": 1, "b": [{"y": 0}, {"y": 1}]}]}
    err = update_error(doc, {"$set": {"a.$[i].b.$[k].c": 1, "a.$[j].b.$[m].c": 2}},
                       [{"i.x": 0}, {"j.x": 0}, {"k.y": 0}, {"m.y": 0}])
    assert (err.code, err.errmsg) == (40, "Update created a conflict at 'a.0.b.0.c'")


@pytest.mark.parametrize("other", ["a.$", "a.0", "a.b"])
def test_identifier_beside_another_kind_of_component_conflicts(other: str) -> None:
    err = update_error({"a": [0]}, {"$set": {"a.$[i]": 0, other: 0}}, [{"i": 0}])
    assert (err.code, err.errmsg) == (
        40,
        f"Updating the path '{other}' would create a conflict at 'a'",
    )


def test_multi_update_filters_each_document_on_its_own() -> None:
    coll = coll_with({"_id": 0, "a": [0, 1, 0, 1]}, {"_id": 1, "a": [0, 2, 0, 2]}, {"_id": 2})
    res = coll.update({"a": {"$exists": True}}, {"$set": {"a.$[i]": 3}}, multi=True,
                      array_filters=[{"i": 0}])
    assert (res.n, res.n_modified) == (2, 2)
    assert all_docs(coll) == [
        {"_id": 0, "a": [3, 1, 3, 1]},
        {"_id": 1, "a": [3, 2, 3, 2]},
        {"_id": 2},
    ]


def test_upsert_applies_filters_to_the_inserted_document() -> None:
    coll = coll_with()
    res = coll.update({"_id": 0, "a": [0]}, {"$setOnInsert": {"a.$[i]": 1}}, upsert=True,
                      array_filters=[{"i": 0}])
    assert res.upserted and res.upserted_id == 0
    assert all_docs(coll) == [{"_id": 0, "a": [1]}]
    res = coll.update({"_id": 5, "a": [1, 2]}, {"$inc": {"a.$[i]": 10}}, upsert=True,
                      array_filters=[{"i": {"$gt": 1}}])
    assert all_docs(coll)[1] == {"_id": 5, "a": [1, 12]}


def test_upsert_without_the_array_is_bad_value() -> None:
    err = update_error(None, {"$set": {"a.$[x]": 1}}, [{"x": 1}], upsert=True)
    assert (err.code, err.errmsg) == (
        2,
        "The path 'a' must exist in the document in order to apply array updates.",
    )


def test_missing_array_is_bad_value() -> None:
    err = update_error({"b": 1}, {"$set": {"a.$[x]": 1}}, [{"x": 1}])
    assert (err.code, err.errmsg) == (
        2,
        "The path 'a' must exist in the document in order to apply array updates.",
    )
    err = update_error({"a": [{"b": 1}, {"c": [1]}]}, {"$set": {"a.$[x].c.$[y]": 1}},
                       [{"x": {"$exists": True}}, {"y": 1}])
    assert err.errmsg == (
        "The path 'a.0.c' must exist in the document in order to apply array updates."
    )
    err = update_error({"a": 5}, {"$set": {"a.$[x]": 1}}, [{"x": 1}])
    assert (err.code, err.errmsg) == (2, "Cannot apply array updates to non-array element a: 5")


def test_failing_element_leaves_the_document_unchanged() -> None:
    err = update_error({"a": [1, "x", 3]}, {"$inc": {"a.$[i]": 1}}, [{"i": {"$ne": 2}}])
    assert err.code == 14


@pytest.mark.parametrize(
    ("update", "filters", "code", "message"),
    [
        ({"$set": {"a.$[x]": 1}}, None, 2,
         "No array filter found for identifier 'x' in path 'a.$[x]'"),
        ({"$set": {"a.$[x]": 1}}, [{"y": 1}], 2,
         "No array filter found for identifier 'x' in path 'a.$[x]'"),
        ({"$set": {"a.$[i]": 5}}, [{"i": 0}, {"j": 0}], 9,
         "The array filter for identifier 'j' was not used in the update { $set: { a.$[i]: 5 } }"),
        ({"$rename": {"a": "b"}}, [{"i": 0}], 9,
         "The array filter for identifier 'i' was not used in the update "
         '{ $rename: { a: "b" } }'),
        ({"$set": {"a.$[i]": 5, "a.$[j]": 6}}, [{"i": 0}, {"j": 0}, {"i": 1}], 9,
         "Found multiple array filters with the same top-level field name i"),
        ({"$set": {"a.$[a]": 5}}, [{"a": 0, "b": 0}], 9,
         "Error parsing array filter :: caused by :: Expected a single top-level field name, "
         "found 'a' and 'b'"),
        ({"$set": {"a.$[a]": 5}}, [{"$and": [{"a": 0}, {"b.c": 0}]}], 9,
         "Error parsing array filter :: caused by :: Expected a single top-level field name, "
         "found 'a' and 'b'"),
        ({"$set": {"a.$[X]": 5}}, [{"X": 0}], 2,
         "Error parsing array filter :: caused by :: The top-level field name must be an "
         "alphanumeric string beginning with a lowercase letter, found 'X'"),
        ({"$set": {"a.$[i_j]": 5}}, [{"i_j": 0}], 2,
         "Error parsing array filter :: caused by :: The top-level field name must be an "
         "alphanumeric string beginning with a lowercase letter, found 'i_j'"),
        ({"$set": {"a.$[i]": 5}}, [{"$alwaysTrue": 1}], 9,
         "Cannot use an expression without a top-level field name in arrayFilters"),
        ({"$set": {"a.$[i]": 5}}, [{"i": {"$bogus": 1}}], 2,
         "Error parsing array filter :: caused by :: unknown operator: $bogus"),
        ({"$set": {"$[i]": 5}}, [{"i": 0}], 2,
         "Cannot have array filter identifier (i.e. '$[<id>]') element in the first position "
         "in path '$[i]'"),
        ({"$rename": {"a.$[i]": "b"}}, [{"i": 0}], 2,
         "The source field for $rename may not be dynamic: a.$[i]"),
        ({"x": 1}, [{"i": 0}], 72,
         "arrayFilters may not be specified for replacement-style updates"),
        ({"$set": {"a": 1}}, {"i": 0}, 14, None),
        ({"$set": {"a.$[i]": 1}}, ["bad"], 14, None),
    ],
)
def test_errors(update: dict[str, Any], filters: Any, code: int, message: str | None) -> None:
    err = update_error({"a": [0, 1]}, update, filters)
    assert err.code == code, err
    if message is not None:
        assert err.errmsg == message


def test_empty_filters_with_replacement_are_fine() -> None:
    assert updated({"a": [1]}, {"b": 2}, []) == {"_id": 0, "b": 2}


def test_find_and_modify_with_array_filters() -> None:
    coll = coll_with({"_id": 1, "grades": [95, 102, 90, 150]})
    res = coll.find_and_modify({"_id": 1}, update={"$set": {"grades.$[g]": 100}}, new=True,
                               array_filters=[{"g": {"$gte": 100}}])
    assert res.value == {"_id": 1, "grades": [95, 100, 90, 100]}
    with pytest.raises(MongoError) as info:
        coll.find_and_modify({"_id": 1}, remove=True, array_filters=[{"g": 1}])
    assert (info.value.code, info.value.errmsg) == (
        9, "Cannot specify arrayFilters and remove=true"
    )
    with pytest.raises(MongoError) as info:
        coll.find_and_modify({"_id": 1}, update={"$set": {"grades.$[g]": 1}})
    assert info.value.code == 2
    assert all_docs(coll) == [{"_id": 1, "grades": [95, 100, 90, 100]}]


# --- command level --------------------------------------------------------------------------

CTX = RequestContext()


@pytest.fixture
def run() -> Any:
    d = standalone_dispatcher()

    def _run(cmd: dict[str, Any], db: str = "school") -> dict[str, Any]:
        return d.run(db, cmd, CTX)

    return _run


def stored(run: Any, coll: str = "students") -> list[dict[str, Any]]:
    reply = run({"find": coll, "filter": {}, "sort": {"_id": 1}})
    assert reply["ok"] == 1.0, reply
    return reply["cursor"]["firstBatch"]


def test_update_command_with_array_filters(run: Any) -> None:
    run({"insert": "students", "documents": [
        {"_id": 1, "grades": [95, 92, 90]},
        {"_id": 2, "grades": [98, 100, 102]},
        {"_id": 3, "grades": [95, 110, 100]},
    ]})
    reply = run({"update": "students", "updates": [
        {"q": {}, "u": {"$set": {"grades.$[element]": 100}}, "multi": True,
         "arrayFilters": [{"element": {"$gte": 100}}]},
    ]})
    assert reply == {"n": 3, "nModified": 2, "ok": 1.0}
    assert [d["grades"] for d in stored(run)] == [[95, 92, 90], [98, 100, 100], [95, 100, 100]]


def test_update_command_filter_errors_are_write_errors(run: Any) -> None:
    run({"insert": "students", "documents": [{"_id": 1, "a": [0, 1]}]})
    reply = run({"update": "students", "ordered": False, "updates": [
        {"q": {"_id": 1}, "u": {"$set": {"a.$[i]": 5}}, "arrayFilters": [{"i": 0}, {"j": 0}]},
        {"q": {"_id": 1}, "u": {"$set": {"a.$[x]": 5}}},
        {"q": {"_id": 1}, "u": {"$set": {"a.$[i]": 7}}, "arrayFilters": [{"i": 1}]},
    ]})
    assert reply["ok"] == 1.0 and reply["n"] == 1 and reply["nModified"] == 1
    assert [(e["index"], e["code"]) for e in reply["writeErrors"]] == [(0, 9), (1, 2)]
    assert reply["writeErrors"][0]["errmsg"] == (
        "The array filter for identifier 'j' was not used in the update { $set: { a.$[i]: 5 } }"
    )
    assert reply["writeErrors"][1]["errmsg"] == (
        "No array filter found for identifier 'x' in path 'a.$[x]'"
    )
    assert stored(run) == [{"_id": 1, "a": [0, 7]}]


def test_update_command_upsert_with_array_filters(run: Any) -> None:
    reply = run({"update": "students", "updates": [
        {"q": {"_id": 4, "a": [0, 3]}, "u": {"$set": {"a.$[i]": 9}}, "upsert": True,
         "arrayFilters": [{"i": 0}]},
    ]})
    assert reply["n"] == 1 and reply["upserted"] == [{"index": 0, "_id": 4}]
    assert stored(run) == [{"_id": 4, "a": [9, 3]}]


@pytest.mark.parametrize("cmd", [
    {"update": "students", "updates": [{"q": {}, "u": {"$set": {"a.$[i]": 5}},
                                        "arrayFilters": {"i": 0}}]},
    {"update": "students", "updates": [{"q": {}, "u": {"$set": {"a.$[i]": 5}},
                                        "arrayFilters": ["bad"]}]},
    {"findAndModify": "students", "query": {}, "update": {"$set": {"a.$[i]": 5}},
     "arrayFilters": {"i": 0}},
    {"findAndModify": "students", "query": {}, "update": {"$set": {"a.$[i]": 5}},
     "arrayFilters": [3]},
])
def test_mistyped_array_filters_are_type_mismatch(run: Any, cmd: dict[str, Any]) -> None:
    run({"insert": "students", "documents": [{"_id": 1, "a": [0]}]})
    reply = run(cmd)
    assert reply["ok"] == 0.0 and reply["code"] == 14, reply
    assert "arrayFilters" in reply["errmsg"]
    assert stored(run) == [{"_id": 1, "a": [0]}]


def test_find_and_modify_command_with_array_filters(run: Any) -> None:
    run({"insert": "students", "documents": [
        {"_id": 1, "grades": [{"grade": 80, "mean": 75}, {"grade": 85, "mean": 90}]},
    ]})
    reply = run({"findAndModify": "students", "query": {"_id": 1},
                 "update": {"$set": {"grades.$[elem].mean": 100}}, "new": True,
                 "arrayFilters": [{"elem.grade": {"$gte": 85}}]})
    assert reply["ok"] == 1.0
    assert reply["value"] == {
        "_id": 1, "grades": [{"grade": 80, "mean": 75}, {"grade": 85, "mean": 100}],
    }
    reply = run({"findAndModify": "students", "query": {"_id": 1}, "remove": True,
                 "arrayFilters": [{"i": 0}]})
    assert (reply["ok"], reply["code"]) == (0.0, 9)
    assert reply["errmsg"] == "Cannot specify arrayFilters and remove=true"
    reply = run({"findAndModify": "students", "query": {"_id": 1},
                 "update": {"$set": {"grades.$[i]": 5}}, "arrayFilters": [{"i": 0}, {"i": 1}]})
    assert (reply["ok"], reply["code"]) == (0.0, 9)
    assert reply["errmsg"] == "Found multiple array filters with the same top-level field name i"
    reply = run({"findAndModify": "students", "query": {"_id": 9}, "upsert": True, "new": True,
                 "update": {"$set": {"a.$[i]": 5}}, "arrayFilters": [{"i": 0}]})
    assert (reply["ok"], reply["code"]) == (0.0, 2)
    assert len(stored(run)) == 1


def test_replicated_entries_carry_the_filters(run: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    entries: list[dict[str, Any]] = []
    real_submit = crud.submit

    def spy(node: Any, cmd: Any, entry: dict[str, Any], ctx: Any, *args: Any) -> Any:
        entries.append(entry)
        return real_submit(node, cmd, entry, ctx, *args)

    monkeypatch.setattr(crud, "submit", spy)
    run({"insert": "students", "documents": [{"_id": 1, "a": [0, 1]}]})
    run({"update": "students", "updates": [
        {"q": {"_id": 1}, "u": {"$set": {"a.$[i]": 5}}, "arrayFilters": [{"i": 0}]},
        {"q": {"_id": 1}, "u": {"$set": {"b": 1}}},
    ]})
    run({"findAndModify": "students", "query": {"_id": 1},
         "update": {"$set": {"a.$[j]": 6}}, "arrayFilters": [{"j": 1}]})
    update_entry, fam_entry = entries[1], entries[2]
    assert update_entry["updates"][0]["arrayFilters"] == [{"i": 0}]
    assert "arrayFilters" not in update_entry["updates"][1]
    assert fam_entry["arrayFilters"] == [{"j": 1}]
    assert stored(run) == [{"_id": 1, "a": [5, 6], "b": 1}]
