"""Tests for Collection.find_and_modify: query, sort, update or remove, new, fields, upsert."""

from __future__ import annotations

import pytest

from node.engine.collection import Collection
from node.engine.database import Engine
from node.engine.errors import MongoError
from node.engine.memory_store import MemoryStore


@pytest.fixture
def jobs() -> Collection:
    c = Engine(MemoryStore())["q"]["jobs"]
    c.insert(
        [
            {"_id": 1, "state": "new", "prio": 2, "tags": ["x", "y"]},
            {"_id": 2, "state": "new", "prio": 9, "tags": ["y"]},
            {"_id": 3, "state": "done", "prio": 5},
        ]
    )
    return c


def test_returns_document_before_update_by_default(jobs: Collection) -> None:
    res = jobs.find_and_modify({"state": "new"}, update={"$set": {"state": "running"}})
    assert res.value == {"_id": 1, "state": "new", "prio": 2, "tags": ["x", "y"]}
    assert (res.n, res.updated_existing, res.upserted_id) == (1, True, None)
    assert jobs.find_one({"_id": 1})["state"] == "running"


def test_new_returns_document_after_update_in_sort_order(jobs: Collection) -> None:
    res = jobs.find_and_modify(
        {"state": "new"}, sort={"prio": -1}, update={"$inc": {"prio": 1}}, new=True
    )
    assert res.value == {"_id": 2, "state": "new", "prio": 10, "tags": ["y"]}


def test_fields_projection_applies_to_returned_document(jobs: Collection) -> None:
    res = jobs.find_and_modify(
        {"_id": 1}, update={"$set": {"x": 1}}, new=True, fields={"state": 1, "x": 1}
    )
    assert res.value == {"_id": 1, "state": "new", "x": 1}
    res = jobs.find_and_modify(
        {"_id": 1, "tags": "y"}, update={"$set": {"tags.$": "Y"}}, fields={"tags.$": 1}
    )
    assert res.value == {"_id": 1, "tags": ["y"]}
    assert jobs.find_one({"_id": 1})["tags"] == ["x", "Y"]


def test_remove_returns_removed_document(jobs: Collection) -> None:
    res = jobs.find_and_modify({"state": "new"}, sort={"prio": 1}, remove=True)
    assert res.value is not None and res.value["_id"] == 1
    assert res.n == 1 and not res.updated_existing
    assert [d["_id"] for d in jobs.find()] == [2, 3]


def test_no_match_returns_none_and_changes_nothing(jobs: Collection) -> None:
    res = jobs.find_and_modify({"state": "gone"}, update={"$set": {"a": 1}})
    assert (res.value, res.n) == (None, 0)
    assert jobs.find_and_modify({"state": "gone"}, remove=True).value is None
    assert jobs.count() == 3


def test_upsert_new_and_old(jobs: Collection) -> None:
    res = jobs.find_and_modify(
        {"counter": "c1"}, update={"$inc": {"seq": 1}}, upsert=True, new=True, upsert_id="u1"
    )
    assert res.value == {"_id": "u1", "counter": "c1", "seq": 1}
    assert (res.upserted_id, res.updated_existing, res.n) == ("u1", False, 1)
    res = jobs.find_and_modify(
        {"counter": "c1"}, update={"$inc": {"seq": 1}}, upsert=True, new=True, upsert_id="u2"
    )
    assert res.value == {"_id": "u1", "counter": "c1", "seq": 2}
    res = jobs.find_and_modify(
        {"counter": "c2"}, update={"$inc": {"seq": 1}}, upsert=True, upsert_id="u3"
    )
    assert res.value is None and res.upserted_id == "u3"
    assert jobs.find_one({"_id": "u3"}) == {"_id": "u3", "counter": "c2", "seq": 1}


def test_replacement_update(jobs: Collection) -> None:
    res = jobs.find_and_modify({"_id": 3}, update={"state": "archived"}, new=True)
    assert res.value == {"_id": 3, "state": "archived"}


@pytest.mark.parametrize(
    "kwargs",
    [
        {"update": {"$set": {"a": 1}}, "remove": True},
        {},
        {"remove": True, "new": True},
        {"remove": True, "upsert": True},
        {"update": {"$bogus": {"a": 1}}},
        {"update": {"$set": {"a": 1}}, "sort": {"a": "up"}},
        {"update": {"$set": {"a": 1}}, "fields": {"a": 1, "b": 0}},
    ],
)
def test_invalid_combinations(jobs: Collection, kwargs: dict) -> None:
    with pytest.raises(MongoError):
        jobs.find_and_modify({}, **kwargs)
    assert jobs.count() == 3


def test_failed_update_changes_nothing(jobs: Collection) -> None:
    with pytest.raises(MongoError) as info:
        jobs.find_and_modify({"_id": 1}, update={"$inc": {"state": 1}})
    assert info.value.code == 14
    assert jobs.find_one({"_id": 1})["state"] == "new"
