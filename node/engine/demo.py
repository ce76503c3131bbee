"""``helogale demo``: a short printed tour of the document engine on the in-memory store.

Inserts users with embedded emails (the book's running example), then finds, ``$set``,
``$push``, positional ``$``, ``$pull``, ``find_and_modify`` and counts -- printing each step.
"""

from __future__ import annotations

import datetime
import itertools
from collections.abc import Callable, Iterator
from typing import Any, TextIO

from bson.objectid import ObjectId

from node.engine.collection import ensure_id
from node.engine.database import Engine
from node.engine.errors import MongoError
from node.engine.memory_store import MemoryStore


def _id_source() -> Callable[[], ObjectId]:
    """Deterministic ObjectIds (the demo prints the same thing on every run)."""
    counter: Iterator[int] = itertools.count(1)
    return lambda: ObjectId(f"{0x64000000:08x}{next(counter):016x}")


def _show(doc: Any) -> str:
    if isinstance(doc, dict):
        return "{" + ", ".join(f"{k}: {_show(v)}" for k, v in doc.items()) + "}"
    if isinstance(doc, list):
        return "[" + ", ".join(_show(v) for v in doc) + "]"
    if isinstance(doc, ObjectId):
        return f"ObjectId('{doc}')"
    return repr(doc)


def run_demo(out: TextIO | None = None) -> None:
    """Print the tour to ``out`` (stdout by default)."""

    def say(text: str = "") -> None:
        print(text, file=out)

    new_id = _id_source()
    engine = Engine(MemoryStore())
    users = engine["demo"]["users"]

    say("Helogale engine demo (in-memory store)")
    say("=" * 40)
    people = [
        {
            "username": "foouser",
            "score": 0,
            "emails": [
                {"email": "foouser1@example.com", "primary": True},
                {"email": "foouser2@example2.com", "primary": False},
            ],
        },
        {
            "username": "janedoe",
            "score": 3,
            "emails": [{"email": "jane@example.com", "primary": True}],
        },
        {"username": "bob", "score": 0, "emails": []},
    ]
    result = users.insert([ensure_id(p, new_id()) for p in people])
    say(f"insert 3 users -> n={result.n}; collections: {engine['demo'].collection_names()}")

    say("\nfind {'emails.email': 'foouser2@example2.com'}, projection {username: 1}:")
    for doc in users.find({"emails.email": "foouser2@example2.com"}, {"username": 1, "_id": 0}):
        say(f"  {_show(doc)}")

    res = users.update({"score": 0}, {"$set": {"flagged": True}}, multi=True)
    say(f"\nupdate {{score: 0}} $set flagged (multi) -> n={res.n} nModified={res.n_modified}")

    users.update(
        {"username": "foouser"},
        {"$push": {"emails": {"email": "foo3@example3.com", "primary": False}}},
    )
    users.update({"emails.email": "foouser2@example2.com"}, {"$set": {"emails.$.primary": True}})
    users.update({"emails.email": "foouser1@example.com"}, {"$set": {"emails.$.primary": False}})
    users.update({"username": "foouser"}, {"$pull": {"emails": {"email": {"$regex": "^foo3"}}}})
    say("\n$push an email, positional $ to switch the primary one, $pull by regex:")
    say(f"  {_show(users.find_one({'username': 'foouser'}, {'emails': 1, '_id': 0}))}")

    say("\nfind_and_modify: $inc a page counter (upsert, new=True), three times:")
    for _ in range(3):
        got = engine["demo"]["counters"].find_and_modify(
            {"name": "home"},
            update={"$inc": {"hits": 1}, "$currentDate": {"seen": True}},
            new=True,
            upsert=True,
            upsert_id=new_id(),
            fields={"_id": 0, "name": 1, "hits": 1},
            now=datetime.datetime(2024, 1, 1, 12, 0, 0),
        )
        say(f"  {_show(got.value)}")

    say("\ncount / distinct / sorted:")
    say(f"  count()={users.count()}  count({{flagged: True}})={users.count({'flagged': True})}")
    say(f"  distinct('emails.primary')={users.distinct('emails.primary')}")
    ranked = users.find(
        {}, {"_id": 0, "username": 1, "score": 1}, sort=[("score", -1), ("username", 1)]
    )
    say("  by score: " + ", ".join(_show(d) for d in ranked))

    try:
        users.update({"username": "bob"}, {"$inc": {"username": 1}})
    except MongoError as exc:
        say(f"\nerrors are MongoDB's: code {exc.code} {exc.code_name}: {exc.errmsg}")
    say(f"databases: {[d['name'] for d in engine.list_databases()]}")


if __name__ == "__main__":
    run_demo()
