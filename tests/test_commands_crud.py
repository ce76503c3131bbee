"""Write commands through the dispatcher (single in-process member): MongoDB's reply shapes."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from bson import ObjectId

from node.commands.context import RequestContext
from node.server.standalone import standalone_dispatcher

CTX = RequestContext()


@pytest.fixture
def run() -> Any:
    d = standalone_dispatcher()

    def _run(cmd: dict[str, Any], db: str = "app") -> dict[str, Any]:
        return d.run(db, cmd, CTX)

    return _run


def docs(run: Any, coll: str = "users", **kw: Any) -> list[dict[str, Any]]:
    reply = run({"find": coll, "filter": kw.get("filter", {}), "sort": {"_id": 1}})
    assert reply["ok"] == 1.0, reply
    return reply["cursor"]["firstBatch"]


def test_insert_assigns_ids_first_and_counts(run: Any) -> None:
    reply = run({"insert": "users", "documents": [{"name": "a"}, {"_id": 7, "name": "b"}]})
    assert reply == {"n": 2, "ok": 1.0}
    stored = docs(run)
    assert [next(iter(d)) for d in stored] == ["_id", "_id"]
    assert {type(d["_id"]) for d in stored} == {int, ObjectId}


def test_ordered_insert_stops_at_duplicate_unordered_continues(run: Any) -> None:
    reply = run({"insert": "users", "documents": [{"_id": 1}, {"_id": 1}, {"_id": 2}]})
    assert reply["n"] == 1 and reply["ok"] == 1.0
    (err,) = reply["writeErrors"]
    assert err["index"] == 1 and err["code"] == 11000 and "E11000" in err["errmsg"]
    reply = run({"insert": "users", "documents": [{"_id": 1}, {"_id": 3}, {"_id": 4}],
                 "ordered": False})
    assert reply["n"] == 2 and [e["index"] for e in reply["writeErrors"]] == [0]
    assert [d["_id"] for d in docs(run)] == [1, 3, 4]


def test_update_reply_fields_and_upsert_ids(run: Any) -> None:
    run({"insert": "users", "documents": [{"_id": 1, "n": 1}, {"_id": 2, "n": 1}]})
    reply = run({"update": "users", "updates": [
        {"q": {"n": 1}, "u": {"$inc": {"n": 1}}, "multi": True},
        {"q": {"_id": 2}, "u": {"$set": {"n": 2}}},  # matched, not modified
        {"q": {"name": "new"}, "u": {"$set": {"x": 1}}, "upsert": True},
    ]})
    assert reply["n"] == 4 and reply["nModified"] == 2
    (up,) = reply["upserted"]
    assert up["index"] == 2 and isinstance(up["_id"], ObjectId)
    assert docs(run, filter={"_id": up["_id"]}) == [{"_id": up["_id"], "name": "new", "x": 1}]


def test_current_date_is_resolved_before_apply(run: Any) -> None:
    run({"insert": "users", "documents": [{"_id": 1}]})
    before = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)
    run({"update": "users", "updates": [{"q": {"_id": 1}, "u": {"$currentDate": {"t": True}}}]})
    (doc,) = docs(run)
    assert doc["t"].replace(tzinfo=dt.UTC) >= before


def test_update_error_becomes_write_error_and_changes_nothing(run: Any) -> None:
    run({"insert": "users", "documents": [{"_id": 1, "s": "text"}]})
    reply = run({"update": "users", "updates": [{"q": {"_id": 1}, "u": {"$inc": {"s": 1}}}]})
    assert reply["ok"] == 1.0 and reply["n"] == 0 and reply["nModified"] == 0
    assert reply["writeErrors"][0]["code"] == 14
    assert docs(run) == [{"_id": 1, "s": "text"}]


def test_delete_limit_one_and_all(run: Any) -> None:
    run({"insert": "users", "documents": [{"_id": i, "k": i % 2} for i in range(6)]})
    assert run({"delete": "users", "deletes": [{"q": {"k": 0}, "limit": 1}]})["n"] == 1
    assert run({"delete": "users", "deletes": [{"q": {"k": 0}, "limit": 0}]})["n"] == 2
    assert [d["_id"] for d in docs(run)] == [1, 3, 5]
    bad = run({"delete": "users", "deletes": [{"q": {}, "limit": 5}]})
    assert bad["ok"] == 0.0 and bad["code"] == 9


def test_find_and_modify_shapes(run: Any) -> None:
    run({"insert": "users", "documents": [{"_id": 1, "v": 1}, {"_id": 2, "v": 5}]})
    reply = run({"findAndModify": "users", "query": {}, "sort": {"v": -1},
                 "update": {"$inc": {"v": 1}}, "new": True})
    assert reply == {"lastErrorObject": {"n": 1, "updatedExisting": True},
                     "value": {"_id": 2, "v": 6}, "ok": 1.0}
    reply = run({"findAndModify": "users", "query": {"_id": 9}, "update": {"$set": {"v": 0}},
                 "upsert": True, "new": True})
    assert reply["lastErrorObject"]["upserted"] == 9 and reply["value"] == {"_id": 9, "v": 0}
    reply = run({"findAndModify": "users", "query": {"_id": 1}, "remove": True})
    assert reply["lastErrorObject"] == {"n": 1} and reply["value"] == {"_id": 1, "v": 1}
    reply = run({"findAndModify": "users", "query": {"_id": 1}, "remove": True})
    assert reply["value"] is None and reply["lastErrorObject"]["n"] == 0


@pytest.mark.parametrize("cmd,code", [
    ({"insert": "users", "documents": "nope"}, 14),
    ({"insert": "users"}, 40414),
    ({"insert": "users", "documents": []}, 16),
    ({"insert": 5, "documents": [{}]}, 73),
    ({"insert": "", "documents": [{}]}, 73),
    ({"update": "users", "updates": [{"q": {}, "u": 3}]}, 14),
    ({"update": "users", "updates": [{"q": {}, "u": {"x": 1}, "multi": True}]}, 9),
    ({"insert": "users", "documents": [{}], "writeConcern": {"w": 5}}, 100),
    ({"insert": "users", "documents": [{}], "writeConcern": {"w": "tagged"}}, 79),
    ({"findAndModify": "users", "query": {}}, 9),
    ({"findAndModify": "users", "remove": True, "update": {"$set": {"a": 1}}}, 9),
])
def test_bad_write_commands_are_refused_and_change_nothing(run: Any, cmd: dict, code: int
                                                           ) -> None:
    run({"insert": "users", "documents": [{"_id": 1}]})
    reply = run(cmd)
    assert reply["ok"] == 0.0 and reply["code"] == code, reply
    assert isinstance(reply["errmsg"], str) and reply["codeName"]
    assert docs(run) == [{"_id": 1}]


def test_bad_field_names_and_oversized_documents_are_write_errors(run: Any) -> None:
    reply = run({"insert": "users", "documents": [{"$bad": 1}, {"ok": 1}], "ordered": False})
    assert reply["n"] == 1 and reply["writeErrors"][0]["index"] == 0
    big = {"_id": "big", "blob": "x" * (16 * 1024 * 1024)}
    reply = run({"insert": "users", "documents": [big]})
    assert reply["n"] == 0 and reply["writeErrors"][0]["code"] in (10334, 2)
    assert len(docs(run)) == 1


def test_retryable_write_applies_once(run: Any) -> None:
    lsid = {"id": ObjectId().binary}
    run({"insert": "c", "documents": [{"_id": 1, "n": 0}]})
    cmd = {"update": "c", "updates": [{"q": {"_id": 1}, "u": {"$inc": {"n": 1}}}],
           "lsid": lsid, "txnNumber": 1}
    first = run(cmd)
    again = run(cmd)
    assert first == again == {"n": 1, "nModified": 1, "ok": 1.0}
    assert docs(run, "c") == [{"_id": 1, "n": 1}]
    run({**cmd, "txnNumber": 2})
    assert docs(run, "c") == [{"_id": 1, "n": 2}]
    old = run({**cmd, "txnNumber": 1})
    assert old["ok"] == 0.0 and old["code"] == 225


# --- filters refused at the primary, before proposing ------------------------------------------


@pytest.fixture
def proposed() -> Any:
    """A dispatcher whose member records every entry it is asked to replicate."""
    d = standalone_dispatcher()
    entries: list[dict[str, Any]] = []
    member = d.services.member
    submit = member.submit

    def recording(entry: dict[str, Any], wc: Any) -> Any:
        entries.append(entry)
        return submit(entry, wc)

    member.submit = recording

    def _run(cmd: dict[str, Any], db: str = "app") -> dict[str, Any]:
        return d.run(db, cmd, CTX)

    _run.entries = entries  # type: ignore[attr-defined]
    return _run


BACKREF = {"s": {"$regex": r"(a)\1"}}


def test_a_filter_that_can_only_fail_is_answered_without_proposing(proposed: Any) -> None:
    proposed({"insert": "users", "documents": [{"_id": 1, "s": "aa"}]})
    before = len(proposed.entries)
    reply = proposed({"delete": "users", "deletes": [{"q": BACKREF, "limit": 0}]})
    assert reply["ok"] == 1.0 and reply["n"] == 0
    (err,) = reply["writeErrors"]
    assert err["index"] == 0 and err["code"] == 51091
    assert err["errmsg"].startswith("Regular expression is invalid: backreferences")
    reply = proposed({"update": "users", "ordered": False, "updates": [
        {"q": BACKREF, "u": {"$set": {"x": 1}}}, {"q": {"$bogus": 1}, "u": {"$set": {"x": 1}}}]})
    assert reply["n"] == 0 and reply["nModified"] == 0
    assert [(e["index"], e["code"]) for e in reply["writeErrors"]] == [(0, 51091), (1, 2)]
    reply = proposed({"findAndModify": "users", "query": BACKREF, "remove": True})
    assert reply["ok"] == 0.0 and reply["code"] == 51091
    reply = proposed({"update": "users", "writeConcern": {"w": 0},
                      "updates": [{"q": BACKREF, "u": {"$set": {"x": 1}}}]})
    assert reply == {"ok": 1.0}
    assert len(proposed.entries) == before  # nothing reached the log
    assert docs(proposed) == [{"_id": 1, "s": "aa"}]


def test_refused_statements_keep_their_place_in_a_batch(proposed: Any) -> None:
    proposed({"insert": "users", "documents": [{"_id": i, "v": 0} for i in range(3)]})
    reply = proposed({"update": "users", "updates": [
        {"q": {"_id": 0}, "u": {"$inc": {"v": 1}}},
        {"q": BACKREF, "u": {"$inc": {"v": 1}}},
        {"q": {"_id": 2}, "u": {"$inc": {"v": 1}}},  # ordered: never runs
    ]})
    assert reply["n"] == 1 and [(e["index"], e["code"]) for e in reply["writeErrors"]] == [
        (1, 51091)]
    entry = proposed.entries[-1]
    assert len(entry["updates"]) == 2 and "q" not in entry["updates"][1]  # no pattern logged
    reply = proposed({"delete": "users", "ordered": False, "deletes": [
        {"q": BACKREF, "limit": 0}, {"q": {"_id": 1}, "limit": 1},
        {"q": {"s": {"$regex": "a(?=b)"}}, "limit": 0}]})
    assert reply["n"] == 1 and [(e["index"], e["code"]) for e in reply["writeErrors"]] == [
        (0, 51091), (2, 51091)]
    assert docs(proposed) == [{"_id": 0, "v": 1}, {"_id": 2, "v": 0}]
