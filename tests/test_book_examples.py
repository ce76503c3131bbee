"""The classic examples of "MongoDB and Python" (chapters 2-3) run against the engine.

Each test follows the book's code (users with embedded emails, ``$set`` with ``multi``,
``$pull``/``$push``/positional ``$``, upserts, ``find_and_modify``, the fast-accounting ``$inc``
on ``scores_weekly``) with the engine's Collection standing in for pymongo's. ``_id``s are
filled by the test, as the primary does before applying a write.
"""

from __future__ import annotations

import datetime
from typing import Any

import pytest
from bson.objectid import ObjectId

from node.engine.collection import Collection, ensure_id
from node.engine.database import Engine
from node.engine.memory_store import MemoryStore


class Ids:
    """Deterministic ObjectIds, as the primary would supply them."""

    def __init__(self) -> None:
        self.n = 0

    def __call__(self) -> ObjectId:
        self.n += 1
        return ObjectId(f"{self.n:024x}")


@pytest.fixture
def dbh() -> Any:
    class Handle:
        def __init__(self) -> None:
            self.engine = Engine(MemoryStore())
            self.ids = Ids()

        def __getattr__(self, name: str) -> Collection:
            return self.engine["mydb"][name]

    return Handle()


def insert(dbh: Any, coll: Collection, doc: dict[str, Any]) -> dict[str, Any]:
    stored = ensure_id(doc, dbh.ids())
    result = coll.insert([stored])
    assert result.write_errors == []
    return stored


def user_with_emails() -> dict[str, Any]:
    return {
        "username": "foouser",
        "emails": [
            {"email": "foouser1@example.com", "primary": True},
            {"email": "foouser2@example2.com", "primary": False},
            {"email": "foouser3@example3.com", "primary": False},
        ],
    }


def test_set_multiple_properties_at_once(dbh: Any) -> None:
    insert(dbh, dbh.users, {"username": "janedoe", "email": "old@example.com", "score": 0})
    dbh.users.update(
        {"username": "janedoe"}, {"$set": {"email": "janedoe74@example2.com", "score": 1}}
    )
    doc = dbh.users.find_one({"username": "janedoe"})
    assert (doc["email"], doc["score"]) == ("janedoe74@example2.com", 1)


def test_update_touches_first_match_unless_multi(dbh: Any) -> None:
    for name in ("a", "b", "c"):
        insert(dbh, dbh.users, {"username": name, "score": 0})
    dbh.users.update({"score": 0}, {"$set": {"flagged": True}})
    assert dbh.users.count({"flagged": True}) == 1
    dbh.users.update({"score": 0}, {"$set": {"flagged": True}}, multi=True)
    assert dbh.users.count({"flagged": True}) == 3


def test_remove_with_spec_and_remove_all(dbh: Any) -> None:
    for i, score in enumerate([1, 2, 1]):
        insert(dbh, dbh.users, {"username": f"u{i}", "score": score})
    assert dbh.users.delete({"score": 1}) == 2
    assert dbh.users.delete({"score": 1}) == 0  # no match is not an error
    assert dbh.users.delete({}) == 1
    assert dbh.users.count() == 0


def test_query_embedded_emails_with_dot_notation(dbh: Any) -> None:
    user_doc = insert(dbh, dbh.users, user_with_emails())
    assert dbh.users.find_one({"emails.email": "foouser1@example.com"}) == user_doc


def test_pull_embedded_email_sub_document(dbh: Any) -> None:
    insert(dbh, dbh.users, user_with_emails())
    dbh.users.update(
        {"username": "foouser"}, {"$pull": {"emails": {"email": "foouser2@example2.com"}}}
    )
    emails = [e["email"] for e in dbh.users.find_one({"username": "foouser"})["emails"]]
    assert emails == ["foouser1@example.com", "foouser3@example3.com"]


def test_pull_with_query_operator_on_sub_documents(dbh: Any) -> None:
    insert(dbh, dbh.users, user_with_emails())
    dbh.users.update({"username": "foouser"}, {"$pull": {"emails": {"primary": {"$ne": True}}}})
    assert dbh.users.find_one({"username": "foouser"})["emails"] == [
        {"email": "foouser1@example.com", "primary": True}
    ]


def test_pull_atoms(dbh: Any) -> None:
    insert(dbh, dbh.users, {"username": "foouser", "skills": ["c", "python", "perl", "c"]})
    dbh.users.update({"username": "foouser"}, {"$pull": {"skills": "c"}})
    dbh.users.update({"username": "foouser"}, {"$pull": {"skills": {"$in": ["perl"]}}})
    assert dbh.users.find_one({})["skills"] == ["python"]


def test_push_new_email_sub_document(dbh: Any) -> None:
    insert(dbh, dbh.users, user_with_emails())
    new_email = {"email": "fooemail4@example4.com", "primary": False}
    dbh.users.update({"username": "foouser"}, {"$push": {"emails": new_email}})
    assert dbh.users.find_one({"username": "foouser"})["emails"][-1] == new_email
    assert dbh.users.count({"emails.email": "fooemail4@example4.com"}) == 1


def test_positional_operator_switches_primary_email(dbh: Any) -> None:
    insert(dbh, dbh.users, user_with_emails())
    dbh.users.update(
        {"emails.email": "foouser2@example2.com"}, {"$set": {"emails.$.primary": True}}
    )
    dbh.users.update(
        {"emails.email": "foouser1@example.com"}, {"$set": {"emails.$.primary": False}}
    )
    emails = dbh.users.find_one({"username": "foouser"})["emails"]
    assert [e["primary"] for e in emails] == [False, True, False]


def test_modifier_table_from_chapter_two(dbh: Any) -> None:
    insert(dbh, dbh.users, {"username": "niall", "score": 0, "emails": []})
    u = dbh.users
    u.update({}, {"$inc": {"score": 1}})
    u.update({}, {"$push": {"emails": "foo@example.com"}})
    u.update({}, {"$pushAll": {"emails": ["foo@example.com", "foo2@example.com"]}})
    u.update({}, {"$addToSet": {"emails": "foo@example.com"}})
    assert u.find_one({})["emails"] == ["foo@example.com", "foo@example.com", "foo2@example.com"]
    u.update({}, {"$pop": {"emails": 1}})
    u.update({}, {"$pullAll": {"emails": ["foo@example.com", "foo2@example.com"]}})
    u.update({}, {"$push": {"emails": "bar@example.com"}})
    u.update({}, {"$rename": {"emails": "old_emails"}})
    u.update({}, {"$unset": {"username": 1}})
    doc = u.find_one({})
    assert {k: v for k, v in doc.items() if k != "_id"} == {
        "score": 1,
        "old_emails": ["bar@example.com"],
    }


def test_upsert_edit_or_add_session(dbh: Any) -> None:
    def edit_or_add_session(description: str, session_id: str) -> None:
        dbh.sessions.update(
            {"session_id": session_id},
            {"$set": {"session_description": description}},
            upsert=True,
            upsert_id=dbh.ids(),
        )

    edit_or_add_session("first", "s1")
    edit_or_add_session("second", "s1")
    edit_or_add_session("other", "s2")
    docs = [
        {k: v for k, v in d.items() if k != "_id"}
        for d in dbh.sessions.find(sort={"session_id": 1})
    ]
    assert docs == [
        {"session_id": "s1", "session_description": "second"},
        {"session_id": "s2", "session_description": "other"},
    ]


def test_find_and_modify_account_balance(dbh: Any) -> None:
    insert(dbh, dbh.users, {"username": "x", "account_balance": 10})
    ret = dbh.users.find_and_modify(
        {"username": "x"}, update={"$inc": {"account_balance": 20}}, new=True
    )
    assert ret.value["account_balance"] == 30
    old = dbh.users.find_and_modify({"username": "x"}, update={"$inc": {"account_balance": -5}})
    assert old.value["account_balance"] == 30
    assert dbh.users.find_one({"username": "x"}, {"account_balance": 1})["account_balance"] == 25


def test_find_and_modify_counter_with_upsert(dbh: Any) -> None:
    values = []
    for _ in range(3):
        new_doc = dbh.counters.find_and_modify(
            {"counter_name": "test_counter"},
            update={"$inc": {"counter_value": 1}},
            new=True,
            upsert=True,
            upsert_id=dbh.ids(),
        ).value
        values.append(new_doc["counter_value"])
    assert values == [1, 2, 3]
    assert dbh.counters.count() == 1


def test_fast_accounting_scores_weekly(dbh: Any) -> None:
    insert(
        dbh,
        dbh.users,
        {
            "username": "foouser",
            "scores_weekly": {"2011-01": 10, "2011-02": 3, "2011-06": 20},
            "score_total": 123,
        },
    )
    now = datetime.datetime(2011, 2, 10)
    current_year, current_week = now.year, now.isocalendar()[1]
    current_month, current_day = now.month, now.timetuple().tm_yday
    dbh.users.update(
        {"username": "foouser"},
        {"$inc": {f"scores_weekly.{current_year}-{current_week}": 24}},
    )
    dbh.users.update(
        {"username": "foouser"},
        {
            "$inc": {
                f"scores_weekly.{current_year}-{current_week}": 24,
                f"scores_daily.{current_year}-{current_day}": 24,
                f"scores_monthly.{current_year}-{current_month}": 24,
                "score_total": 24,
            }
        },
    )
    dbh.users.update({"username": "foouser"}, {"$inc": {"scores_weekly.2011-06": 24}})
    doc = dbh.users.find_one({"username": "foouser"})
    # the book formats keys with "%s-%s", so week 6 is "2011-6", a new key next to "2011-06"
    assert doc["scores_weekly"] == {"2011-01": 10, "2011-02": 3, "2011-06": 44, "2011-6": 48}
    assert doc["scores_daily"] == {"2011-41": 24}
    assert doc["scores_monthly"] == {"2011-2": 24}
    assert doc["score_total"] == 147
    assert doc["scores_weekly"].get(f"{current_year}-{current_week + 1}", 0) == 0


def test_find_count_and_sort_by_score(dbh: Any) -> None:
    for i, score in enumerate([5, 1, 9]):
        insert(dbh, dbh.users, {"username": f"u{i}", "score": score})
    assert dbh.users.count() == 3
    top = dbh.users.find({}, {"username": 1, "_id": 0}, sort=[("score", -1)], limit=2)
    assert list(top) == [{"username": "u2"}, {"username": "u0"}]
    assert dbh.users.count({"score": {"$gt": 1}}) == 2
