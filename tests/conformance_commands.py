"""Command conformance tables (issue 22): each case is a command and what MongoDB 8 answers
(its error code, or a check on the reply), run from the same table against a node directly
(``tests/test_conformance_commands.py``) and through a router on a sharded collection.

A table's documents are inserted into ``COLL`` first; cases run in order (a write case may set
up the next). ``ERR(code)`` expects ``ok: 0`` (or a write error) with that code; a callable
checks the reply and returns True.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bson.binary import Binary
from bson.int64 import Int64

COLL = "conf"
DOCS: list[dict[str, Any]] = [
    {"_id": 1, "a": 54, "tags": ["x", "y"], "s": "b"},
    {"_id": 2, "a": 20, "tags": ["y"], "s": "a"},
    {"_id": 3, "a": 20.0, "s": "c"},
    {"_id": 4, "a": Binary(b"\x66", 0), "s": "d"},
]


@dataclass(frozen=True)
class ERR:
    code: int


Expect = ERR | Callable[[dict[str, Any]], bool]


@dataclass(frozen=True)
class Case:
    name: str
    command: dict[str, Any]
    expect: Expect
    db: str = "app"


def ids(reply: dict[str, Any]) -> list[Any]:
    return sorted(d["_id"] for d in reply["cursor"]["firstBatch"])


def code_of(reply: dict[str, Any]) -> int | None:
    """The error code of a reply: the command's, else its first write error's."""
    if reply.get("ok") != 1.0:
        return int(reply.get("code", 0))
    errors = reply.get("writeErrors") or []
    return int(errors[0]["code"]) if errors else None


def find(flt: dict[str, Any], **more: Any) -> dict[str, Any]:
    return {"find": COLL, "filter": flt, **more}


CASES: list[Case] = [
    # --- bitwise query operators ---------------------------------------------------------------
    Case("bitsAllSet positions", find({"a": {"$bitsAllSet": [1, 5]}}),
         lambda r: ids(r) == [1, 4]),
    Case("bitsAnySet BinData", find({"a": {"$bitsAnySet": Binary(b"\x30", 0)}}),
         lambda r: ids(r) == [1, 2, 3, 4]),
    Case("bitsAllClear number", find({"a": {"$bitsAllClear": 35}}), lambda r: ids(r) == [2, 3]),
    Case("bitsAnyClear", find({"a": {"$bitsAnyClear": [1, 5]}}), lambda r: ids(r) == [2, 3]),
    Case("bits on _id targets every shard", find({"_id": {"$bitsAllSet": 1}}),
         lambda r: ids(r) == [1, 3]),
    Case("bits mask string", find({"a": {"$bitsAllSet": "1"}}), ERR(2)),
    Case("bits mask fraction", find({"a": {"$bitsAllSet": 1.5}}), ERR(9)),
    Case("bits mask negative", find({"a": {"$bitsAllSet": -1}}), ERR(9)),
    Case("bits position negative", find({"a": {"$bitsAllSet": [-1]}}), ERR(2)),
    # --- find validation -----------------------------------------------------------------------
    Case("sort order 'asc'", find({}, sort={"a": "asc"}), ERR(15975)),
    Case("sort order true", find({}, sort={"a": True}), ERR(15975)),
    Case("negative batchSize", find({}, batchSize=-1), ERR(51024)),
    Case("collection name not a string", {"find": 5}, ERR(73)),
    Case("empty collection name", {"find": ""}, ERR(73)),
    Case("$elemMatch: null projection", find({}, projection={"tags": {"$elemMatch": None}}),
         ERR(2)),
    Case("hint naming no index", find({}, hint="nope_1"), ERR(2)),
    Case("unknown query operator", find({"a": {"$bogus": 1}}), ERR(2)),
    Case("comment is accepted", find({"_id": 1}, comment="why"), lambda r: ids(r) == [1]),
    # --- getMore / killCursors -----------------------------------------------------------------
    Case("getMore id not a long", {"getMore": "x", "collection": COLL}, ERR(14)),
    Case("getMore collection not a string", {"getMore": Int64(1), "collection": 5}, ERR(14)),
    Case("getMore unknown cursor", {"getMore": Int64(12345), "collection": COLL}, ERR(43)),
    Case("killCursors reply shape", {"killCursors": COLL, "cursors": [Int64(777)]},
         lambda r: (r["cursorsNotFound"] == [777] and r["cursorsKilled"] == []
                    and r["cursorsAlive"] == [] and r["cursorsUnknown"] == [])),
    Case("killCursors without cursors", {"killCursors": COLL}, ERR(40414)),
    # --- writes --------------------------------------------------------------------------------
    Case("$bit or", {"update": COLL, "updates": [{"q": {"_id": 2},
                                                   "u": {"$bit": {"a": {"or": 1}}}}]},
         lambda r: r["nModified"] == 1),
    Case("$bit and sees the or", find({"_id": 2, "a": 21}), lambda r: ids(r) == [2]),
    Case("$bit on a double", {"update": COLL, "updates": [{"q": {"_id": 3},
                                                            "u": {"$bit": {"a": {"or": 1}}}}]},
         ERR(2)),
    Case("$bit with a double operand",
         {"update": COLL, "updates": [{"q": {"_id": 2}, "u": {"$bit": {"a": {"or": 1.0}}}}]},
         ERR(2)),
    Case("update sort with multi",
         {"update": COLL, "updates": [{"q": {}, "u": {"$set": {"z": 1}}, "multi": True,
                                       "sort": {"a": 1}}]}, ERR(72)),
    Case("update sort picks the first in order",
         {"update": COLL, "updates": [{"q": {"s": {"$exists": True}},
                                       "u": {"$set": {"first": True}}, "sort": {"s": -1}}]},
         lambda r: r["nModified"] == 1),
    Case("...which is the last by s", find({"first": True}), lambda r: ids(r) == [4]),
    Case("update hint naming no index",
         {"update": COLL, "updates": [{"q": {"_id": 1}, "u": {"$set": {"h": 1}},
                                       "hint": "nope_1"}]}, ERR(2)),
    Case("delete hint naming no index",
         {"delete": COLL, "deletes": [{"q": {"_id": 1}, "limit": 1, "hint": {"nope": 1}}]},
         ERR(2)),
    Case("delete limit 2", {"delete": COLL, "deletes": [{"q": {}, "limit": 2}]}, ERR(9)),
    Case("insert documents not an array", {"insert": COLL, "documents": {"_id": 9}}, ERR(14)),
    Case("unknown update statement field",
         {"update": COLL, "updates": [{"q": {}, "u": {"$set": {"a": 1}}, "bogus": 1}]},
         ERR(40415)),
    Case("w of the wrong type",
         {"insert": COLL, "documents": [{"_id": 10}], "writeConcern": {"w": True}}, ERR(9)),
    Case("transactions are refused",
         {"insert": COLL, "documents": [{"_id": 11}], "autocommit": False,
          "startTransaction": True, "txnNumber": Int64(1)}, ERR(20)),
    Case("...and nothing was written", find({"_id": 11}), lambda r: ids(r) == []),
    # --- bulkWrite (MongoDB 8) ------------------------------------------------------------------
    Case("bulkWrite", {"bulkWrite": 1, "nsInfo": [{"ns": f"app.{COLL}"}, {"ns": "app.other"}],
                       "ops": [{"insert": 1, "document": {"_id": 1}},
                               {"update": 0, "filter": {"_id": 1},
                                "updateMods": {"$set": {"bw": 1}}},
                               {"delete": 1, "filter": {"_id": 1}, "multi": False}]},
         lambda r: (r["nInserted"], r["nModified"], r["nDeleted"], r["nErrors"]) == (1, 1, 1, 0)
         and [d["idx"] for d in r["cursor"]["firstBatch"]] == [0, 1, 2], db="admin"),
    Case("bulkWrite outside admin",
         {"bulkWrite": 1, "nsInfo": [{"ns": "app.x"}], "ops": [{"insert": 0, "document": {}}]},
         ERR(13)),
    Case("bulkWrite bad nsInfo index",
         {"bulkWrite": 1, "nsInfo": [{"ns": "app.x"}], "ops": [{"insert": 1, "document": {}}]},
         ERR(2), db="admin"),
    Case("bulkWrite no ops", {"bulkWrite": 1, "nsInfo": [{"ns": "app.x"}], "ops": []},
         ERR(16), db="admin"),
]


def check(case: Case, reply: dict[str, Any]) -> None:
    """Assert that ``reply`` is what the case expects (the same on a node and a router)."""
    if isinstance(case.expect, ERR):
        assert code_of(reply) == case.expect.code, (case.name, reply)
    else:
        assert reply.get("ok") == 1.0 and not reply.get("writeErrors"), (case.name, reply)
        assert case.expect(reply), (case.name, reply)
