"""Command conformance tables (issue 22): each case is a command and what MongoDB 8 answers
(its error code, or a check on the reply), run from the same table against a node directly
(``tests/test_conformance_commands.py``) and through a router on a sharded collection.

A table's documents are inserted into ``COLL`` first; cases run in order (a write case may set
up the next). ``ERR(code)`` expects ``ok: 0`` (or a write error) with that code; a callable
checks the reply and returns True.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bson.binary import Binary
from bson.int64 import Int64
from bson.regex import Regex
from bson.timestamp import Timestamp

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


def insert(_id: Any, **more: Any) -> dict[str, Any]:
    return {"insert": COLL, "documents": [{"_id": _id}], **more}


def wc(**spec: Any) -> dict[str, Any]:
    """An insert of a fresh document with ``writeConcern: spec``."""
    global _NEXT_ID
    _NEXT_ID += 1
    return insert(f"wc{_NEXT_ID}", writeConcern=spec)


_NEXT_ID = 0


def fam(**more: Any) -> dict[str, Any]:
    return {"findAndModify": COLL, **more}


def get_more(**more: Any) -> dict[str, Any]:
    return {"getMore": Int64(4242), "collection": COLL, **more}


def inserted(r: dict[str, Any]) -> bool:
    return r.get("n") == 1


PDOC: dict[str, Any] = {"_id": "p1", "item": "journal", "qty": 5,
                        "size": {"h": 14, "w": 21, "uom": "cm"},
                        "instock": [{"wh": "A", "qty": 5}, {"wh": "C", "qty": 15}],
                        "grades": [80, 85, 90]}
"""The document the projection cases read (inserted by the first of them)."""


def pfind(projection: dict[str, Any]) -> dict[str, Any]:
    return find({"_id": "p1"}, projection=projection)


def first_is(expected: dict[str, Any]) -> Callable[[dict[str, Any]], bool]:
    """The reply's only document is ``expected``, fields in the same order."""
    def check(reply: dict[str, Any]) -> bool:
        batch = reply["cursor"]["firstBatch"]
        return len(batch) == 1 and list(batch[0].items()) == list(expected.items())
    return check


VCOLL = "conf_valid"
"""A collection with a validator (``x`` must be an int), for ``bypassDocumentValidation``."""


def index(name: str, key: dict[str, Any], **options: Any) -> dict[str, Any]:
    """A ``createIndexes`` of one index on ``CCOLL``."""
    return {"createIndexes": CCOLL, "indexes": [{"key": key, "name": name, **options}]}


def index_names(reply: dict[str, Any]) -> list[str]:
    return sorted(d["name"] for d in reply["cursor"]["firstBatch"])


def created(before: int, after: int) -> Callable[[dict[str, Any]], bool]:
    return lambda r: (r["numIndexesBefore"], r["numIndexesAfter"]) == (before, after)


CCOLL = "cat_a"
CATALOG_CASES: list[Case] = [
    # create
    Case("create with options MongoDB accepts",
         {"create": CCOLL, "collation": {"locale": "simple"}, "storageEngine": {},
          "indexOptionDefaults": {}, "changeStreamPreAndPostImages": {"enabled": False},
          "capped": False, "comment": "c", "writeConcern": {"w": 1}}, lambda r: True),
    Case("create unknown field", {"create": "cat_b", "bogus": 1}, ERR(40415)),
    Case("create capped not a bool", {"create": "cat_b", "capped": "yes"}, ERR(14)),
    Case("create size not a number", {"create": "cat_b", "capped": True, "size": "big"},
         ERR(14)),
    Case("create validator not an object", {"create": "cat_b", "validator": 5}, ERR(14)),
    Case("create validationLevel not a string", {"create": "cat_b", "validationLevel": 1},
         ERR(14)),
    Case("...nothing was created", {"listCollections": 1, "filter": {"name": "cat_b"}},
         lambda r: r["cursor"]["firstBatch"] == []),
    # createIndexes and its index specs (validateIndexSpec)
    Case("createIndexes with options MongoDB accepts",
         index("k_1", {"k": 1}, background=True, hidden=False, v=2, dropDups=True,
               collation={"locale": "simple"}, storageEngine={}, ns=f"app.{CCOLL}"),
         created(1, 2)),
    Case("createIndexes 2d with min, max and bits",
         index("loc_2d", {"loc": "2d"}, min=-90, max=90.0, bits=20), created(2, 3)),
    Case("createIndexes a partial index", {**index("p_1", {"p": 1}, partialFilterExpression={
        "p": {"$exists": True}}), "comment": "c"}, created(3, 4)),
    Case("createIndexes ignoreUnknownIndexOptions",
         {**index("q_1", {"q": 1}, bogus=1), "ignoreUnknownIndexOptions": True},
         created(4, 5)),
    Case("index option unknown", index("r_1", {"r": 1}, bogus=1), ERR(197)),
    Case("index option unknown among known ones", index("r_1", {"r": 1}, unique=True, bg=1),
         ERR(197)),
    Case("index name not a string", index(5, {"r": 1}), ERR(14)),  # type: ignore[arg-type]
    Case("index key not an object", {"createIndexes": CCOLL, "indexes": [
        {"key": "r", "name": "r_1"}]}, ERR(14)),
    Case("index unique not a bool", index("r_1", {"r": 1}, unique="yes"), ERR(14)),
    Case("index sparse a number", index("s_1", {"s": 1}, sparse=0), created(5, 6)),
    Case("index hidden a number", index("r_1", {"r": 1}, hidden=1), ERR(14)),
    Case("index bits not a number", index("r_2d", {"r": "2d"}, bits="x"), ERR(14)),
    Case("index key empty", index("r_1", {}), ERR(67)),
    Case("index without a name", {"createIndexes": CCOLL, "indexes": [{"key": {"r": 1}}]},
         ERR(9)),
    Case("index without a key", {"createIndexes": CCOLL, "indexes": [{"name": "r_1"}]}, ERR(9)),
    Case("index weights on a non-text index", index("r_1", {"r": 1}, weights={"r": 1}),
         ERR(67)),
    Case("index collation empty", index("r_1", {"r": 1}, collation={}), ERR(2)),
    Case("index spec not an object", {"createIndexes": CCOLL, "indexes": [5]}, ERR(14)),
    Case("createIndexes unknown field", {**index("r_1", {"r": 1}), "bogus": 1}, ERR(40415)),
    Case("createIndexes indexes not an array", {"createIndexes": CCOLL, "indexes": {}},
         ERR(14)),
    Case("createIndexes no indexes", {"createIndexes": CCOLL, "indexes": []}, ERR(2)),
    # listIndexes
    Case("listIndexes with fields MongoDB accepts",
         {"listIndexes": CCOLL, "cursor": {"batchSize": 10}, "comment": "c",
          "includeBuildUUIDs": False},
         lambda r: index_names(r) == ["_id_", "k_1", "loc_2d", "p_1", "q_1", "s_1"]),
    Case("listIndexes unknown field", {"listIndexes": CCOLL, "bogus": 1}, ERR(40415)),
    Case("listIndexes cursor not an object", {"listIndexes": CCOLL, "cursor": 5}, ERR(14)),
    # dropIndexes
    Case("dropIndexes with a comment", {"dropIndexes": CCOLL, "index": "p_1", "comment": "c"},
         lambda r: r["nIndexesWas"] == 6),
    Case("dropIndexes unknown field", {"dropIndexes": CCOLL, "index": "q_1", "bogus": 1},
         ERR(40415)),
    Case("dropIndexes index a number", {"dropIndexes": CCOLL, "index": 5}, ERR(14)),
    # listCollections
    Case("listCollections with fields MongoDB accepts",
         {"listCollections": 1, "filter": {"name": CCOLL}, "nameOnly": True,
          "authorizedCollections": True, "cursor": {}, "comment": "c"},
         lambda r: r["cursor"]["firstBatch"] == [{"name": CCOLL, "type": "collection"}]),
    Case("listCollections nameOnly a number", {"listCollections": 1, "nameOnly": 1}, ERR(14)),
    Case("listCollections filter not an object", {"listCollections": 1, "filter": 5}, ERR(14)),
    Case("listCollections unknown field", {"listCollections": 1, "bogus": 1}, ERR(40415)),
    # listDatabases
    Case("listDatabases with fields MongoDB accepts",
         {"listDatabases": 1, "nameOnly": 1, "filter": {"name": "app"},
          "authorizedDatabases": False, "comment": "c"},
         lambda r: r["databases"] == [{"name": "app"}], db="admin"),
    Case("listDatabases authorizedDatabases a number",
         {"listDatabases": 1, "authorizedDatabases": 1}, ERR(14), db="admin"),
    Case("listDatabases unknown field", {"listDatabases": 1, "bogus": 1}, ERR(40415),
         db="admin"),
    # collMod
    Case("collMod with fields MongoDB accepts",
         {"collMod": CCOLL, "validator": {}, "validationLevel": "off",
          "changeStreamPreAndPostImages": {"enabled": False}, "comment": "c"}, lambda r: True),
    Case("collMod unknown field", {"collMod": CCOLL, "bogus": 1}, ERR(40415)),
    Case("collMod capped is create's field", {"collMod": CCOLL, "capped": True}, ERR(40415)),
    Case("collMod validator not an object", {"collMod": CCOLL, "validator": 5}, ERR(14)),
    Case("collMod validationAction not a string", {"collMod": CCOLL, "validationAction": 1},
         ERR(14)),
    # renameCollection
    Case("a collection to rename", {"create": "cat_r"}, lambda r: True),
    Case("renameCollection unknown field",
         {"renameCollection": "app.cat_r", "to": "app.cat_r2", "bogus": 1}, ERR(40415),
         db="admin"),
    Case("renameCollection dropTarget a number",
         {"renameCollection": "app.cat_r", "to": "app.cat_r2", "dropTarget": 1}, ERR(14),
         db="admin"),
    Case("renameCollection to not a string",
         {"renameCollection": "app.cat_r", "to": 5}, ERR(14), db="admin"),
    Case("renameCollection with fields MongoDB accepts",
         {"renameCollection": "app.cat_r", "to": "app.cat_r2", "dropTarget": False,
          "stayTemp": False, "comment": "c", "writeConcern": {"w": 1}}, lambda r: True,
         db="admin"),
    # drop
    Case("drop unknown field", {"drop": "cat_r2", "bogus": 1}, ERR(40415)),
    Case("drop with fields MongoDB accepts",
         {"drop": "cat_r2", "comment": "c", "writeConcern": {"w": 1}}, lambda r: True),
    # dropDatabase
    Case("a database to drop", {"create": "x"}, lambda r: True, db="catdrop"),
    Case("dropDatabase unknown field", {"dropDatabase": 1, "bogus": 1}, ERR(40415),
         db="catdrop"),
    Case("dropDatabase with fields MongoDB accepts",
         {"dropDatabase": 1, "comment": "c", "writeConcern": {"w": 1}},
         lambda r: r.get("dropped") == "catdrop", db="catdrop"),
]


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
    Case("sort order 'asc'", find({}, sort={"a": "asc"}), ERR(15974)),
    Case("sort order true", find({}, sort={"a": True}), ERR(15974)),
    Case("negative batchSize", find({}, batchSize=-1), ERR(51024)),
    Case("collection name not a string", {"find": 5}, ERR(73)),
    Case("empty collection name", {"find": ""}, ERR(73)),
    Case("$elemMatch: null projection", find({}, projection={"tags": {"$elemMatch": None}}),
         ERR(31274)),
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
    # --- writeConcern (MongoDB's WriteConcernIdl) -----------------------------------------------
    Case("w: null is the default", wc(w=None), inserted),
    Case("w: a double is truncated", wc(w=1.5), inserted),
    Case("w: majority", wc(w="majority"), inserted),
    Case("w: 0 is unacknowledged", wc(w=0), lambda r: r["ok"] == 1.0),
    Case("w over 50", wc(w=51), ERR(9)),
    Case("w negative", wc(w=-1), ERR(9)),
    Case("w NaN", wc(w=float("nan")), ERR(9)),
    Case("w an array", wc(w=[1]), ERR(9)),
    Case("w empty tags", wc(w={}), ERR(9)),
    Case("w tag not a number", wc(w={"dc": "east"}), ERR(9)),
    Case("w an unknown mode", wc(w="nosuchmode"), ERR(79)),
    Case("j a number", wc(j=1), inserted),
    Case("j null", wc(j=None), inserted),
    Case("j a string", wc(j="yes"), ERR(14)),
    Case("fsync a string", wc(fsync="yes"), ERR(14)),
    Case("j and fsync together", wc(j=True, fsync=True), ERR(9)),
    Case("fsync alone", wc(fsync=True), inserted),
    Case("wtimeout not a number is ignored", wc(wtimeout="soon"), inserted),
    Case("wtimeout a double", wc(wtimeout=60000.5), inserted),
    Case("wtimeout over 32 bits", wc(wtimeout=2**40), ERR(9)),
    Case("writeConcern unknown field", wc(bogus=1), ERR(40415)),
    Case("writeConcern legacy fields ignored", wc(getLastError=1, wOpTime=5), inserted),
    Case("writeConcern {} is the default", wc(), inserted),
    Case("writeConcern not an object", insert("wcx", writeConcern=5), ERR(14)),
    Case("find takes no writeConcern", find({}, writeConcern={"w": 1}), ERR(72)),
    Case("count takes no writeConcern", {"count": COLL, "writeConcern": {"w": 1}}, ERR(72)),
    # --- readConcern (MongoDB's ReadConcernArgs) ------------------------------------------------
    Case("readConcern local", find({"_id": 1}, readConcern={"level": "local"}),
         lambda r: ids(r) == [1]),
    Case("readConcern majority", find({"_id": 1}, readConcern={"level": "majority"}),
         lambda r: ids(r) == [1]),
    Case("readConcern available", find({"_id": 1}, readConcern={"level": "available"}),
         lambda r: ids(r) == [1]),
    Case("readConcern snapshot on find (MongoDB 5.0+)",
         find({"_id": 1}, readConcern={"level": "snapshot"}), lambda r: ids(r) == [1]),
    Case("readConcern snapshot on distinct",
         {"distinct": COLL, "key": "s", "query": {"_id": 1}, "readConcern": {"level": "snapshot"}},
         lambda r: r["values"] == ["b"]),
    Case("readConcern snapshot on count", {"count": COLL, "readConcern": {"level": "snapshot"}},
         ERR(72)),
    Case("readConcern empty", find({"_id": 1}, readConcern={}), lambda r: ids(r) == [1]),
    Case("readConcern unknown level", find({}, readConcern={"level": "strong"}), ERR(9)),
    Case("readConcern level not a string", find({}, readConcern={"level": 1}), ERR(14)),
    Case("readConcern unknown option", find({}, readConcern={"bogus": 1}), ERR(72)),
    Case("readConcern not an object", find({}, readConcern="majority"), ERR(9)),
    Case("readConcern afterClusterTime not a timestamp",
         find({}, readConcern={"afterClusterTime": 5}), ERR(14)),
    Case("readConcern atClusterTime without snapshot",
         find({}, readConcern={"level": "local", "atClusterTime": Timestamp(1, 1)}), ERR(72)),
    # --- getMore fields (GetMoreCommandRequest: strict) ----------------------------------------
    Case("getMore term not a number", get_more(term="x"), ERR(14)),
    Case("getMore lastKnownCommittedOpTime not an object",
         get_more(lastKnownCommittedOpTime=5), ERR(14)),
    Case("getMore unknown field", get_more(bogus=1), ERR(40415)),
    Case("getMore negative batchSize", get_more(batchSize=-1), ERR(2)),
    Case("getMore batchSize not a number", get_more(batchSize="x"), ERR(14)),
    Case("getMore maxTimeMS not a number", get_more(maxTimeMS="x"), ERR(2)),
    Case("getMore empty collection", get_more(collection=""), ERR(73)),
    Case("getMore known fields reach the cursor lookup",
         get_more(term=Int64(1), batchSize=2.5, comment={"any": "value"},
                  lastKnownCommittedOpTime={"ts": Timestamp(1, 1), "t": Int64(1)}), ERR(43)),
    # --- find options ----------------------------------------------------------------------------
    Case("find negative limit", find({}, limit=-2), ERR(51024)),
    Case("find negative skip", find({}, skip=-1), ERR(51024)),
    Case("find limit a double is truncated", find({}, limit=1.5, sort={"_id": 1}),
         lambda r: ids(r) == [1]),
    Case("find singleBatch with batchSize", find({}, batchSize=1, singleBatch=True,
                                                 sort={"_id": 1}),
         lambda r: ids(r) == [1] and r["cursor"]["id"] == 0),
    Case("find limit not a number", find({}, limit="2"), ERR(14)),
    Case("find awaitData without tailable", find({}, awaitData=True), ERR(9)),
    Case("sort order 0", find({}, sort={"a": 0}), ERR(15975)),
    Case("sort order 2", find({}, sort={"a": 2}), ERR(15975)),
    Case("sort order -1.0", find({"_id": {"$lte": 2}}, sort={"_id": -1.0}),
         lambda r: [d["_id"] for d in r["cursor"]["firstBatch"]] == [2, 1]),
    Case("sort order null", find({}, sort={"a": None}), ERR(15974)),
    Case("aggregate $sort order 'desc'",
         {"aggregate": COLL, "pipeline": [{"$sort": {"a": "desc"}}], "cursor": {}}, ERR(15974)),
    # --- projections -----------------------------------------------------------------------------
    Case("$elemMatch: a number", find({}, projection={"tags": {"$elemMatch": 5}}), ERR(31274)),
    Case("$slice a string", find({}, projection={"tags": {"$slice": "x"}}), ERR(28667)),
    Case("$slice one-element array", find({}, projection={"tags": {"$slice": [1]}}),
         ERR(28667)),
    Case("$slice limit 0", find({}, projection={"tags": {"$slice": [1, 0]}}), ERR(28724)),
    Case("$slice [skip, limit]", find({"_id": 1}, projection={"tags": {"$slice": [1, 1]}}),
         lambda r: r["cursor"]["firstBatch"] == [{"_id": 1, "a": 54, "tags": ["y"], "s": "b"}]),
    Case("inclusion then exclusion", find({}, projection={"a": 1, "tags": 0}), ERR(31254)),
    Case("exclusion then inclusion", find({}, projection={"a": 0, "tags": 1}), ERR(31253)),
    Case("_id: 0 with inclusion", find({"_id": 2}, projection={"_id": 0, "s": 1}),
         lambda r: r["cursor"]["firstBatch"] == [{"s": "a"}]),
    Case("$slice in an exclusion projection", find({"_id": 1},
                                                   projection={"a": 0, "tags": {"$slice": 1}}),
         lambda r: r["cursor"]["firstBatch"][0]["tags"] == ["x"]
         and "a" not in r["cursor"]["firstBatch"][0]),
    # --- computed projections (aggregation expressions in find, MongoDB 4.4+) ---------------------
    Case("insert the projection document", {"insert": COLL, "documents": [PDOC]}, inserted),
    Case("an empty projection returns the whole document", pfind({}), first_is(PDOC)),
    Case("a dotted path and a nested document merge", pfind({"size.h": 1, "size": {"w": 1},
                                                             "_id": 0}),
         first_is({"size": {"h": 14, "w": 21}})),
    Case("$concat", pfind({"full": {"$concat": ["$item", "-", "$size.uom"]}}),
         first_is({"_id": "p1", "full": "journal-cm"})),
    Case("a field path", pfind({"h": "$size.h", "_id": 0}), first_is({"h": 14})),
    Case("$literal, a string, null, an array", pfind({"one": {"$literal": 1}, "t": "text",
                                                       "z": None, "w": [1, "$qty"], "_id": 0}),
         first_is({"one": 1, "t": "text", "z": None, "w": [1, 5]})),
    Case("included fields first, then computed", pfind({"qty": {"$add": ["$qty", 1]}, "item": 1}),
         first_is({"_id": "p1", "item": "journal", "qty": 6})),
    Case("a computed _id", pfind({"_id": {"$toUpper": "$item"}, "qty": 1}),
         first_is({"qty": 5, "_id": "JOURNAL"})),
    Case("nested projection document", pfind({"size": {"h": 1, "area": {
        "$multiply": ["$size.h", "$size.w"]}}}),
         first_is({"_id": "p1", "size": {"h": 14, "area": 294}})),
    Case("computed under an array", pfind({"instock.qty": 1, "instock.n": {"$literal": 1},
                                           "_id": 0}),
         first_is({"instock": [{"qty": 5, "n": 1}, {"qty": 15, "n": 1}]})),
    Case("$$ROOT", pfind({"_id": 0, "r": "$$ROOT.item"}), first_is({"r": "journal"})),
    Case("$$NOW", pfind({"_id": 0, "t": "$$NOW"}),
         lambda r: isinstance(r["cursor"]["firstBatch"][0]["t"], datetime.datetime)),
    Case("a missing value adds nothing", pfind({"x": "$nope", "y": "$$REMOVE"}),
         first_is({"_id": "p1"})),
    Case("$slice on a path is the aggregation $slice", pfind({"grades": {"$slice": [
        "$grades", 1, 1]}, "last": {"$slice": ["$grades", -1]}}),
         first_is({"_id": "p1", "grades": [85], "last": [90]})),
    Case("$slice [x, 0] with nothing to project", find({"_id": "nope"}, projection={
        "tags": {"$slice": [1, 0]}}), lambda r: r["cursor"]["firstBatch"] == []),
    Case("$slice [path, 0]", pfind({"g": {"$slice": ["$grades", 0]}}),
         first_is({"_id": "p1", "g": []})),
    Case("positional with a computed field", find({"_id": "p1", "grades": {"$gte": 85}},
                                                  projection={"grades.$": 1,
                                                              "n": {"$strLenCP": "$item"}}),
         first_is({"_id": "p1", "grades": [85], "n": 7})),
    Case("$elemMatch with a computed field", pfind({
        "instock": {"$elemMatch": {"qty": {"$gt": 10}}}, "_id": 0, "i": "$item"}),
         first_is({"instock": [{"wh": "C", "qty": 15}], "i": "journal"})),  # spec order
    Case("sorted over both shards, the sort key projected away",
         find({"_id": {"$in": [1, 2, 3, 4]}}, sort={"s": -1},
              projection={"up": {"$toUpper": "$s"}}),
         lambda r: r["cursor"]["firstBatch"] == [{"_id": 4, "up": "D"}, {"_id": 3, "up": "C"},
                                                 {"_id": 1, "up": "B"}, {"_id": 2, "up": "A"}]),
    Case("...with _id: 0, skip and limit", find({"_id": {"$in": [1, 2, 3, 4]}}, sort={"s": 1},
                                               skip=1, limit=2,
                                               projection={"_id": 0, "up": {"$toUpper": "$s"}}),
         lambda r: r["cursor"]["firstBatch"] == [{"up": "B"}, {"up": "C"}]),
    Case("computed field in an exclusion", pfind({"item": 0, "x": "$qty"}), ERR(31310)),
    Case("expression in an exclusion", pfind({"item": 0, "x": {"$concat": ["$item"]}}),
         ERR(31252)),
    Case("exclusion after a computed field", pfind({"x": "$qty", "item": 0}), ERR(31254)),
    Case("path collision under an included field", pfind({"size": 1, "size.h": 1}), ERR(31249)),
    Case("path collision with a longer path", pfind({"size.h": 1, "size": 1}), ERR(31250)),
    Case("empty sub-projection", pfind({"size": {}}), ERR(51270)),
    Case("unknown expression", pfind({"x": {"$bogus": 1}}), ERR(31325)),
    Case("unknown operator inside an expression", pfind({"x": {"$add": [1, {"$bogus": 1}]}}),
         ERR(168)),
    Case("expression evaluation error", pfind({"x": {"$add": ["$item", 1]}}), ERR(16554)),
    Case("undefined variable", pfind({"x": "$$nope"}), ERR(17276)),
    Case("'$' alone", pfind({"x": "$"}), ERR(16872)),
    Case("$-prefixed field name", pfind({"$x": 1}), ERR(16410)),
    Case("empty field name", pfind({"": 1}), ERR(40352)),
    Case("empty path component", pfind({"a..b": 1}), ERR(15998)),
    Case("positional with a literal", pfind({"grades.$": "x"}), ERR(31308)),
    Case("positional with an expression", pfind({"grades.$": {"$slice": 1}}), ERR(31271)),
    Case("positional in the middle of a path", pfind({"instock.$.qty": 1}), ERR(31394)),
    Case("positional then $elemMatch", pfind({"grades.$": 1, "instock": {"$elemMatch": {
        "qty": 5}}}), ERR(31255)),
    Case("$elemMatch then positional", pfind({"instock": {"$elemMatch": {"qty": 5}},
                                              "grades.$": 1}), ERR(31256)),
    Case("positional the query did not match", pfind({"grades.$": 1}), ERR(51246)),
    Case("findAndModify fields computed", fam(query={"_id": "p1"}, update={"$inc": {"qty": 1}},
                                              new=True, fields={"_id": 0, "q": "$qty",
                                                                "item": 1}),
         lambda r: r["value"] == {"item": "journal", "q": 6}),
    Case("findAndModify fields refused", fam(query={"_id": "p1"}, update={"$set": {"z": 1}},
                                             fields={"a": 0, "b": "$x"}), ERR(31310)),
    Case("findAndModify fields refused, nothing matched", fam(
        query={"_id": "nomatch"}, remove=True, fields={"a": 0, "b": "$x"}), ERR(31310)),
    Case("let in the projection", find({"_id": "p1"}, let={"k": {"$add": [1, 1]}},
                                       projection={"_id": 0,
                                                   "x": {"$multiply": ["$size.h", "$$k"]}}),
         first_is({"x": 28})),
    Case("let in $expr and the projection over both shards",
         find({"$expr": {"$gte": ["$_id", "$$low"]}, "_id": {"$in": [1, 2, 3, 4]}},
              let={"low": 2}, sort={"_id": 1}, projection={"low": "$$low"}),
         lambda r: r["cursor"]["firstBatch"] == [{"_id": i, "low": 2} for i in (2, 3, 4)]),
    Case("let variable not defined", find({"_id": "p1"}, let={"k": 1},
                                          projection={"x": "$$other"}), ERR(17276)),
    Case("let not a document", find({"_id": "p1"}, let=5), ERR(14)),
    Case("let in a projection on a collection that does not exist", {
        "find": "conf_none", "filter": {}, "let": {"k": 1}, "projection": {"x": "$$k"}},
         lambda r: r["cursor"]["firstBatch"] == []),
    Case("projection refused on a collection that does not exist", {
        "find": "conf_none", "filter": {}, "projection": {"a": 0, "b": "$x"}}, ERR(31310)),
    Case("computed projection on a collection that does not exist", {
        "find": "conf_none", "filter": {}, "projection": {"b": "$x"}},
         lambda r: r["cursor"]["firstBatch"] == []),
    Case("$project: $elemMatch is find-only", {"aggregate": COLL, "pipeline": [{"$project": {
        "instock": {"$elemMatch": {"qty": 5}}}}], "cursor": {}}, ERR(168)),
    Case("$project: positional is find-only", {"aggregate": COLL, "pipeline": [{"$project": {
        "grades.$": 1}}], "cursor": {}}, ERR(31324)),
    Case("$project: empty", {"aggregate": COLL, "pipeline": [{"$project": {}}], "cursor": {}},
         ERR(51272)),
    # --- unknown fields (MongoDB's strict parsers) ------------------------------------------------
    Case("find unknown field", find({}, bogus=1), ERR(40415)),
    Case("count unknown field", {"count": COLL, "bogus": 1}, ERR(40415)),
    Case("distinct unknown field", {"distinct": COLL, "key": "a", "bogus": 1}, ERR(40415)),
    Case("findAndModify unknown field", fam(query={"_id": 1}, remove=True, bogus=1),
         ERR(40415)),
    Case("aggregate unknown field", {"aggregate": COLL, "pipeline": [], "cursor": {},
                                     "bogus": 1}, ERR(40415)),
    Case("insert unknown field", insert("uf", bogus=1), ERR(40415)),
    Case("update unknown field", {"update": COLL, "updates": [{"q": {}, "u": {}}], "bogus": 1},
         ERR(40415)),
    Case("delete unknown field", {"delete": COLL, "deletes": [{"q": {}, "limit": 1}],
                                  "bogus": 1}, ERR(40415)),
    Case("delete statement unknown field",
         {"delete": COLL, "deletes": [{"q": {"_id": "nope"}, "limit": 1, "bogus": 1}]},
         ERR(40415)),
    Case("sort $natural 2", find({}, sort={"$natural": 2}), ERR(2)),
    Case("hint $natural 2", find({}, hint={"$natural": 2}), ERR(2)),
    Case("...nothing was written", find({"_id": "uf"}), lambda r: ids(r) == []),
    Case("find with every driver field", find({"_id": 1}, projection={"a": 1}, sort={"_id": 1},
                                              hint={"_id": 1}, skip=0, limit=1, batchSize=1,
                                              singleBatch=True, comment="c", maxTimeMS=1000,
                                              noCursorTimeout=False, allowPartialResults=False,
                                              returnKey=False, showRecordId=False,
                                              allowDiskUse=False, collation={"locale": "simple"},
                                              let={"x": 1}, apiVersion="1"),
         lambda r: ids(r) == [1]),
    # --- collection names ------------------------------------------------------------------------
    Case("collection name with $", {"find": "a$b"}, ERR(73)),
    Case("collection name with a null byte", {"find": "a\x00b"}, ERR(73)),
    Case("collection name starting with a dot", {"find": ".a"}, ERR(73)),
    Case("reading system.foo is allowed", {"find": "system.foo"},
         lambda r: r["cursor"]["firstBatch"] == []),
    Case("writing system.foo", {"insert": "system.foo", "documents": [{}]}, ERR(73)),
    Case("updating system.foo", {"update": "system.foo", "updates": [{"q": {}, "u": {}}]},
         ERR(73)),
    Case("namespace over 255 bytes", {"insert": "x" * 260, "documents": [{}]}, ERR(73)),
    # --- comment: any BSON value, on every command -----------------------------------------------
    Case("comment on count", {"count": COLL, "query": {"_id": 1}, "comment": 5},
         lambda r: r["n"] == 1),
    Case("comment on distinct", {"distinct": COLL, "key": "s", "query": {"_id": 2},
                                 "comment": ["a", 1]}, lambda r: r["values"] == ["a"]),
    Case("comment on aggregate", {"aggregate": COLL, "pipeline": [{"$match": {"_id": 1}}],
                                  "cursor": {}, "comment": {"k": 1}}, lambda r: ids(r) == [1]),
    Case("comment on insert", insert("cm1", comment="x"), inserted),
    Case("comment on update", {"update": COLL, "updates": [{"q": {"_id": "cm1"},
                                                            "u": {"$set": {"c": 1}}}],
                               "comment": "x"}, lambda r: r["nModified"] == 1),
    Case("comment on delete", {"delete": COLL, "deletes": [{"q": {"_id": "cm1"}, "limit": 1}],
                               "comment": "x"}, lambda r: r["n"] == 1),
    Case("comment on findAndModify", fam(query={"_id": 1}, update={"$set": {"c": 1}},
                                         comment="x"), lambda r: r["value"]["_id"] == 1),
    Case("comment on killCursors", {"killCursors": COLL, "cursors": [], "comment": "x"},
         lambda r: r["cursorsKilled"] == []),
    # --- findAndModify options -------------------------------------------------------------------
    Case("findAndModify remove with new", fam(query={}, remove=True, new=True), ERR(9)),
    Case("findAndModify remove with upsert", fam(query={}, remove=True, upsert=True), ERR(9)),
    Case("findAndModify remove with an update", fam(query={}, remove=True,
                                                    update={"$set": {"a": 1}}), ERR(9)),
    Case("findAndModify neither update nor remove", fam(query={}), ERR(9)),
    Case("findAndModify update not a document", fam(query={}, update=5), ERR(14)),
    Case("findAndModify sort 'asc'", fam(query={}, sort={"a": "asc"},
                                         update={"$set": {"z": 1}}), ERR(15974)),
    # --- findAndModify with a pipeline update ----------------------------------------------------
    Case("findAndModify pipeline $set", fam(query={"_id": 2}, new=True, update=[
        {"$set": {"p": {"$add": ["$a", 1]}}}, {"$unset": "tags"}]),
         lambda r: r["value"]["p"] == 22 and "tags" not in r["value"]),
    Case("findAndModify pipeline returns the old document", fam(query={"_id": 2}, update=[
        {"$replaceWith": {"$mergeObjects": ["$$ROOT", {"q": "$s"}]}}]),
         lambda r: "q" not in r["value"] and r["value"]["p"] == 22),
    Case("...and changed it", find({"_id": 2, "q": "a"}), lambda r: ids(r) == [2]),
    Case("findAndModify pipeline upsert", fam(query={"_id": "pu"}, upsert=True, new=True,
                                              update=[{"$set": {"made": True}}]),
         lambda r: r["value"] == {"_id": "pu", "made": True}),
    Case("findAndModify pipeline $project", fam(query={"_id": "pu"}, new=True,
                                                update=[{"$project": {"made": 0}}]),
         lambda r: r["value"] == {"_id": "pu"}),
    Case("findAndModify pipeline stage not allowed",
         fam(query={"_id": 2}, update=[{"$match": {"a": 1}}]), ERR(72)),
    Case("findAndModify pipeline $group not allowed",
         fam(query={"_id": 2}, update=[{"$group": {"_id": None}}]), ERR(72)),
    Case("findAndModify pipeline stage not a document", fam(query={"_id": 2}, update=[5]),
         ERR(14)),
    Case("findAndModify pipeline with arrayFilters",
         fam(query={"_id": 2}, update=[{"$set": {"a": 1}}], arrayFilters=[{"x": 1}]), ERR(72)),
    Case("findAndModify pipeline changing _id",
         fam(query={"_id": 2}, update=[{"$set": {"_id": 99}}]), ERR(66)),
    # --- bypassDocumentValidation ----------------------------------------------------------------
    Case("create a validated collection",
         {"create": VCOLL, "validator": {"x": {"$type": "int"}}}, lambda r: True),
    Case("insert failing validation", {"insert": VCOLL, "documents": [{"_id": 1, "x": "s"}]},
         ERR(121)),
    Case("insert bypassing validation", {"insert": VCOLL, "documents": [{"_id": 1, "x": "s"}],
                                         "bypassDocumentValidation": True}, inserted),
    Case("findAndModify failing validation",
         {"findAndModify": VCOLL, "query": {"_id": 2}, "upsert": True,
          "update": {"$set": {"x": "s"}}}, ERR(121)),
    Case("findAndModify bypassing validation",
         {"findAndModify": VCOLL, "query": {"_id": 2}, "upsert": True, "new": True,
          "update": {"$set": {"x": "s"}}, "bypassDocumentValidation": True},
         lambda r: r["value"] == {"_id": 2, "x": "s"}),
    Case("findAndModify pipeline bypassing validation",
         {"findAndModify": VCOLL, "query": {"_id": 2}, "new": True,
          "update": [{"$set": {"x": "t"}}], "bypassDocumentValidation": True},
         lambda r: r["value"] == {"_id": 2, "x": "t"}),
    Case("bulkWrite failing validation",
         {"bulkWrite": 1, "nsInfo": [{"ns": f"app.{VCOLL}"}],
          "ops": [{"insert": 0, "document": {"_id": 3, "x": "s"}}]},
         lambda r: r["nErrors"] == 1 and r["cursor"]["firstBatch"][0]["code"] == 121,
         db="admin"),
    Case("bulkWrite bypassing validation",
         {"bulkWrite": 1, "nsInfo": [{"ns": f"app.{VCOLL}"}], "bypassDocumentValidation": True,
          "ops": [{"insert": 0, "document": {"_id": 3, "x": "s"}},
                  {"update": 0, "filter": {"_id": 3}, "updateMods": {"$set": {"x": "u"}}}]},
         lambda r: (r["nErrors"], r["nInserted"], r["nModified"]) == (0, 1, 1), db="admin"),
    Case("...all written", {"count": VCOLL, "query": {"x": {"$type": "string"}}},
         lambda r: r["n"] == 3),
    # --- $regex: PCRE2's behaviours on RE2 (linear time) ----------------------------------------
    Case("regex documents", {"insert": COLL, "documents": [
        {"_id": "r1", "rx": "héllo"}, {"_id": "r2", "rx": "HELLO"}, {"_id": "r3", "rx": "٣٤"},
        {"_id": "r4", "rx": "Straße"}, {"_id": "r5", "rx": "line1\nline2"},
        {"_id": "r6", "rx": "ÉCOLE"}, {"_id": "r7", "rx": "a" * 5000 + "!"}]},
         lambda r: r["n"] == 7),
    Case("\\w is ASCII without (*UCP)", find({"rx": {"$regex": "^\\w+$"}}),
         lambda r: ids(r) == ["r2"]),
    Case("(*UCP) makes \\w Unicode", find({"rx": {"$regex": "(*UCP)^\\w+$"}}),
         lambda r: ids(r) == ["r1", "r2", "r3", "r4", "r6"]),
    Case("(*UCP) makes \\d Unicode", find({"rx": {"$regex": "(*UCP)^\\d+$"}}),
         lambda r: ids(r) == ["r3"]),
    Case("\\p{Lu}", find({"rx": {"$regex": "^\\p{Lu}+$"}}), lambda r: ids(r) == ["r2", "r6"]),
    Case("\\p{L} over non-Latin letters", find({"rx": {"$regex": "^\\p{L}+$"}}),
         lambda r: ids(r) == ["r1", "r2", "r4", "r6"]),
    Case("option i folds non-ASCII", find({"rx": {"$regex": "école", "$options": "i"}}),
         lambda r: ids(r) == ["r6"]),
    Case("option i folds simply (ß is not ss)",
         find({"rx": {"$regex": "strasse", "$options": "i"}}), lambda r: ids(r) == []),
    Case("option m", find({"rx": {"$regex": "^line2", "$options": "m"}}),
         lambda r: ids(r) == ["r5"]),
    Case("without m, ^ is the start", find({"rx": {"$regex": "^line2"}}),
         lambda r: ids(r) == []),
    Case("option s", find({"rx": {"$regex": "line1.line2", "$options": "s"}}),
         lambda r: ids(r) == ["r5"]),
    Case("without s, . stops at a newline", find({"rx": {"$regex": "line1.line2"}}),
         lambda r: ids(r) == []),
    Case("option x", find({"rx": {"$regex": "h é l  # a comment", "$options": "xi"}}),
         lambda r: ids(r) == ["r1"]),
    Case("option u is accepted", find({"rx": {"$regex": "^h", "$options": "u"}}),
         lambda r: ids(r) == ["r1"]),
    Case("a regex value with flags", find({"rx": Regex("^hÉ", "i")}),
         lambda r: ids(r) == ["r1"]),
    Case("no pattern freezes a member", find({"rx": {"$regex": "^(a+)+$"}}),
         lambda r: ids(r) == []),
    Case("an unknown option", find({"rx": {"$regex": "a", "$options": "z"}}), ERR(51108)),
    Case("options in both", find({"rx": {"$regex": Regex("a", "i"), "$options": "m"}}),
         ERR(51075)),
    Case("an invalid pattern", find({"rx": {"$regex": "("}}), ERR(51091)),
    Case("a backreference (RE2 cannot run it)", find({"rx": {"$regex": "(a)\\1"}}),
         ERR(51091)),
    Case("an unknown property", find({"rx": {"$regex": "\\p{Bogus}"}}), ERR(51091)),
    Case("a newline convention verb", find({"rx": {"$regex": "(*CR)a"}}), ERR(51091)),
    Case("an invalid pattern in an update",
         {"update": COLL, "updates": [{"q": {"rx": {"$regex": "["}}, "u": {"$set": {"z": 1}}}]},
         ERR(51091)),
    Case("count with (*UCP)", {"count": COLL, "query": {"rx": {"$regex": "(*UCP)^\\w+$"}}},
         lambda r: r["n"] == 5),
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
    # --- catalog and admin commands: MongoDB 8's strict IDL parsers --------------------------------
    *CATALOG_CASES,
]


@dataclass(frozen=True)
class GetMoreCase:
    """A ``getMore`` on a live cursor: ``find`` over ``COLL`` sorted by ``_id`` with
    ``batchSize: 1`` opens it, then ``getMore`` runs with ``fields`` added."""

    name: str
    fields: dict[str, Any]
    expect: Expect


def next_ids(reply: dict[str, Any]) -> list[Any]:
    return [d["_id"] for d in reply["cursor"]["nextBatch"]]


OPEN_CURSOR: dict[str, Any] = {"find": COLL, "filter": {"_id": {"$in": [1, 2, 3, 4]}},
                               "sort": {"_id": 1}, "batchSize": 1}
GETMORE_CASES: list[GetMoreCase] = [
    GetMoreCase("batchSize a double is truncated", {"batchSize": 2.7},
                lambda r: next_ids(r) == [2, 3]),
    GetMoreCase("batchSize 0 is the default", {"batchSize": 0},
                lambda r: next_ids(r) == [2, 3, 4] and r["cursor"]["id"] == 0),
    GetMoreCase("batchSize an Int64", {"batchSize": Int64(1)}, lambda r: next_ids(r) == [2]),
    GetMoreCase("term, lastKnownCommittedOpTime and comment accepted",
                {"term": Int64(1), "comment": {"why": 1},
                 "lastKnownCommittedOpTime": {"ts": Timestamp(1, 1), "t": Int64(1)}},
                lambda r: next_ids(r) == [2, 3, 4]),
    GetMoreCase("another collection's cursor", {"collection": "other"}, ERR(13)),
    GetMoreCase("maxTimeMS on a non-awaitData cursor", {"maxTimeMS": 100}, ERR(2)),
    GetMoreCase("a negative batchSize", {"batchSize": -1}, ERR(2)),
]


def run_get_more_cases(run: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
    """Every :data:`GETMORE_CASES` case on a cursor of its own (``run`` runs a command in
    ``app``, on a node or through a router); each cursor is killed afterwards."""
    for case in GETMORE_CASES:
        opened = run(OPEN_CURSOR)
        assert [d["_id"] for d in opened["cursor"]["firstBatch"]] == [1], opened
        cid = opened["cursor"]["id"]
        reply = run({"getMore": Int64(cid), "collection": COLL, **case.fields})
        check(Case(case.name, {}, case.expect), reply)
        run({"killCursors": COLL, "cursors": [Int64(cid)]})


def check(case: Case, reply: dict[str, Any]) -> None:
    """Assert that ``reply`` is what the case expects (the same on a node and a router)."""
    if isinstance(case.expect, ERR):
        assert code_of(reply) == case.expect.code, (case.name, reply)
    else:
        assert reply.get("ok") == 1.0 and not reply.get("writeErrors"), (case.name, reply)
        assert case.expect(reply), (case.name, reply)
