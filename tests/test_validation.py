"""Collection validators: create/collMod options, levels, actions, bypass, errInfo (121)."""

from __future__ import annotations

from typing import Any

import pytest

from node.commands.context import RequestContext
from node.server.standalone import standalone_dispatcher

CTX = RequestContext()
SCHEMA = {"$jsonSchema": {"bsonType": "object", "required": ["name", "year"], "properties": {
    "name": {"bsonType": "string"}, "year": {"bsonType": "int", "minimum": 2017}}}}


@pytest.fixture
def run() -> Any:
    d = standalone_dispatcher()
    return lambda cmd, db="school": d.run(db, cmd, CTX)


def test_validator_on_insert_update_find_and_modify(run: Any) -> None:
    assert run({"create": "students", "validator": SCHEMA})["ok"] == 1.0
    assert run({"insert": "students", "documents": [{"name": "Ann", "year": 2019}]})["n"] == 1
    bad = run({"insert": "students", "documents": [{"_id": 7, "name": "Bo", "year": 2000}]})
    err = bad["writeErrors"][0]
    assert err["code"] == 121 and err["errmsg"] == "Document failed validation"
    assert err["errInfo"]["failingDocumentId"] == 7
    assert err["errInfo"]["details"]["operatorName"] == "$jsonSchema"
    bad = run({"update": "students", "updates": [{"q": {"name": "Ann"},
                                                  "u": {"$set": {"year": "x"}}}]})
    assert bad["writeErrors"][0]["code"] == 121
    bad = run({"findAndModify": "students", "query": {"name": "Ann"},
               "update": {"$unset": {"name": 1}}})
    assert bad["code"] == 121
    ok = run({"insert": "students", "documents": [{"name": "Cy"}],
              "bypassDocumentValidation": True})
    assert ok["n"] == 1
    # query validators too, with $expr
    run({"create": "orders", "validator": {"$expr": {"$lte": ["$discount", "$price"]}}})
    assert run({"insert": "orders", "documents": [{"price": 5, "discount": 1}]})["n"] == 1
    assert run({"insert": "orders", "documents": [{"price": 5, "discount": 9}]}
               )["writeErrors"][0]["code"] == 121


def test_levels_actions_and_coll_mod(run: Any) -> None:
    run({"insert": "c", "documents": [{"_id": 1, "a": "old"}, {"_id": 2, "a": 5}]})
    assert run({"collMod": "c", "validator": {"a": {"$type": "number"}},
                "validationLevel": "moderate"})["ok"] == 1.0
    # moderate: a document already invalid may still be updated
    assert run({"update": "c", "updates": [{"q": {"_id": 1}, "u": {"$set": {"b": 1}}}]}
               )["nModified"] == 1
    assert run({"update": "c", "updates": [{"q": {"_id": 2}, "u": {"$set": {"a": "x"}}}]}
               )["writeErrors"][0]["code"] == 121
    run({"collMod": "c", "validationAction": "warn"})
    assert run({"insert": "c", "documents": [{"a": "warned"}]})["n"] == 1
    run({"collMod": "c", "validationAction": "error", "validationLevel": "off"})
    assert run({"insert": "c", "documents": [{"a": "off"}]})["n"] == 1
    run({"collMod": "c", "validationLevel": "strict"})
    assert run({"insert": "c", "documents": [{"a": "strict"}]})["writeErrors"][0]["code"] == 121
    assert run({"collMod": "c", "validationLevel": "bogus"})["code"] == 2
    assert run({"collMod": "nope", "validator": {}})["code"] == 26
    assert run({"collMod": "c", "capped": True})["code"] == 40415  # not a collMod field
    assert run({"collMod": "c", "cappedSize": 4096})["code"] == 115  # MongoDB's, not ours
    assert run({"create": "d", "validator": {"$where": "1"}})["code"] == 72
    info = run({"listCollections": 1, "filter": {"name": "c"}})["cursor"]["firstBatch"][0]
    assert info["options"]["validationLevel"] == "strict"


def test_out_and_merge_respect_validators(run: Any) -> None:
    run({"create": "target", "validator": {"n": {"$gte": 0}}})
    run({"insert": "src", "documents": [{"_id": 1, "n": -1}]})
    bad = run({"aggregate": "src", "pipeline": [{"$merge": {"into": "target"}}], "cursor": {}})
    assert bad["code"] == 121
    ok = run({"aggregate": "src", "pipeline": [{"$merge": {"into": "target"}}], "cursor": {},
              "bypassDocumentValidation": True})
    assert ok["ok"] == 1.0 and run({"count": "target"})["n"] == 1
    # $out keeps the target's options: the validator still applies afterwards
    bad = run({"aggregate": "src", "pipeline": [{"$out": "target"}], "cursor": {}})
    assert bad["code"] == 121


def test_now_in_a_write_is_the_entry_time_and_bypass_travels_in_the_entry() -> None:
    import datetime as dt

    from node.commands.appliers import APPLIERS, GROUPERS, STATEMENTS
    from node.commands.engine_ops import open_engine
    from node.engine.memory_store import MemoryStore
    from node.server.statemachine import StateMachine

    store = MemoryStore()
    sm = StateMachine(open_engine(store), store, APPLIERS, groupers=GROUPERS,
                      statements=STATEMENTS)
    then = dt.datetime(2001, 1, 1)
    sm.apply(1, {"op": "insert", "db": "app", "coll": "c", "docs": [{"_id": 1}],
                 "ordered": True, "now": then})
    upd = {"op": "update", "db": "app", "coll": "c", "ordered": True, "now": then,
           "updates": [{"q": {"$expr": {"$lt": ["$$NOW", dt.datetime(2002, 1, 1)]}},
                        "u": {"$set": {"hit": True}}, "multi": False, "upsert": False}]}
    assert sm.apply(2, upd)["nModified"] == 1  # $$NOW is 2001 here, on every member
    sm.apply(3, {"op": "collMod", "db": "app", "coll": "c",
                 "options": {"validator": {"x": {"$exists": True}}}})
    entry = {"op": "insert", "db": "app", "coll": "c", "docs": [{"_id": 2}], "ordered": True,
             "now": then}
    assert sm.apply(4, dict(entry))["writeErrors"][0]["code"] == 121
    assert sm.apply(5, {**entry, "bypassDocumentValidation": True}) == {"n": 1}
