"""Catalog and admin commands' field tables (``node/commands/catalog_requests.py``): every table
accepts the generic arguments and refuses unknown fields; what Helogale answers where it differs
from MongoDB 8 (options it cannot ignore: 115); ignored index options are not built; the
commands Helogale's own senders (routers, config servers, the client) send still pass."""

from __future__ import annotations

from typing import Any

import pytest
from bson import Int64, Timestamp

from node.commands.catalog_requests import COMMAND_FIELDS, check_command_fields
from node.commands.context import RequestContext
from node.engine.errors import MongoError
from node.server.standalone import standalone_dispatcher

CTX = RequestContext()
GENERIC = {"lsid": {"id": b"x" * 16}, "$db": "app", "$clusterTime": {"clusterTime": Timestamp(1, 1)},
           "$readPreference": {"mode": "primary"}, "apiVersion": "1", "apiStrict": False,
           "maxTimeMS": 1000, "comment": {"any": "value"}, "writeConcern": {"w": 1},
           "$_internal": True}


@pytest.fixture
def run() -> Any:
    dispatcher = standalone_dispatcher()
    return lambda cmd, db="app": dispatcher.run(db, cmd, CTX)


@pytest.mark.parametrize("name", sorted(COMMAND_FIELDS))
def test_every_table_takes_generic_arguments_and_refuses_unknown_fields(name: str) -> None:
    target = 1 if name == "dropDatabase" else "c"
    check_command_fields(name, {name: target, **GENERIC})
    with pytest.raises(MongoError) as refused:
        check_command_fields(name, {name: target, "bogus": 1})
    assert refused.value.code == 40415
    assert refused.value.errmsg == f"BSON field '{name}.bogus' is an unknown field."


def test_a_wrong_type_names_mongodbs_types() -> None:
    with pytest.raises(MongoError) as refused:
        check_command_fields("create", {"create": "c", "capped": "yes"})
    assert refused.value.code == 14
    assert refused.value.errmsg == ("BSON field 'create.capped' is the wrong type 'string', "
                                    "expected types '[bool, long, int, decimal, double]'")


def test_null_is_taken_as_absent(run: Any) -> None:
    assert run({"create": "n", "capped": None, "size": None})["ok"] == 1.0
    assert run({"listCollections": 1, "filter": None, "nameOnly": None})["ok"] == 1.0


@pytest.mark.parametrize("option", [{"viewOn": "c", "pipeline": []}, {"timeseries": {
    "timeField": "t"}}, {"clusteredIndex": {"key": {"_id": 1}, "unique": True}},
    {"encryptedFields": {"fields": []}}])
def test_create_options_helogale_cannot_ignore(run: Any, option: dict[str, Any]) -> None:
    assert run({"create": "u", **option})["code"] == 115
    assert run({"listCollections": 1, "filter": {"name": "u"}})["cursor"]["firstBatch"] == []


def test_create_expire_after_seconds_needs_clustering(run: Any) -> None:
    assert run({"create": "u", "expireAfterSeconds": 10})["code"] == 72


@pytest.mark.parametrize("option", [{"index": {"name": "a_1", "hidden": True}},
                                    {"cappedSize": 4096}, {"cappedMax": 5}, {"dryRun": True},
                                    {"expireAfterSeconds": "off"}, {"viewOn": "c"}])
def test_coll_mod_options_helogale_cannot_ignore(run: Any, option: dict[str, Any]) -> None:
    run({"create": "m"})
    assert run({"collMod": "m", **option})["code"] == 115


def test_coll_mod_ignores_what_changes_nothing(run: Any) -> None:
    run({"create": "m"})
    assert run({"collMod": "m", "dryRun": False, "recordPreImages": False,
                "changeStreamPreAndPostImages": {"enabled": False},
                "validator": {"a": {"$type": "int"}}})["ok"] == 1.0
    assert run({"insert": "m", "documents": [{"a": "s"}]})["writeErrors"][0]["code"] == 121


def test_a_unique_partial_index_is_refused(run: Any) -> None:
    reply = run({"createIndexes": "i", "indexes": [{"key": {"a": 1}, "name": "a_1",
                                                    "unique": True,
                                                    "partialFilterExpression": {"a": 1}}]})
    assert reply["code"] == 115


def test_a_clustered_index_spec_is_refused(run: Any) -> None:
    reply = run({"createIndexes": "i", "indexes": [{"key": {"_id": 1}, "name": "_id_",
                                                    "clustered": True, "unique": True}]})
    assert reply["code"] == 115


def test_ignored_index_options_are_not_built(run: Any) -> None:
    run({"insert": "i", "documents": [{"_id": 1, "a": 1}, {"_id": 2, "a": 2}, {"_id": 3}]})
    assert run({"createIndexes": "i", "indexes": [
        {"key": {"a": 1}, "name": "a_1", "hidden": True, "collation": {"locale": "fr"},
         "storageEngine": {}, "partialFilterExpression": {"a": {"$gt": 1}},
         "textIndexVersion": 3, "v": 2}]})["ok"] == 1.0
    listed = run({"listIndexes": "i"})["cursor"]["firstBatch"]
    assert listed[1] == {"v": 2, "key": {"a": 1}, "name": "a_1"}
    # the index holds every document: a query outside the partial filter still finds them
    found = run({"find": "i", "filter": {"a": {"$lte": 1}}, "hint": "a_1"})
    assert [d["_id"] for d in found["cursor"]["firstBatch"]] == [1]


def test_drop_dups_is_ignored_as_mongodb_does(run: Any) -> None:
    run({"insert": "d", "documents": [{"_id": 1, "a": 1}, {"_id": 2, "a": 1}]})
    reply = run({"createIndexes": "d", "indexes": [{"key": {"a": 1}, "name": "a_1",
                                                    "unique": True, "dropDups": True}]})
    assert reply["code"] == 11000
    assert run({"count": "d"})["n"] == 2


def test_ignore_unknown_index_options_drops_them(run: Any) -> None:
    assert run({"createIndexes": "i", "ignoreUnknownIndexOptions": True,
                "indexes": [{"key": {"b": 1}, "name": "b_1", "bogus": 1}]})["ok"] == 1.0
    listed = run({"listIndexes": "i"})["cursor"]["firstBatch"]
    assert listed[1] == {"v": 2, "key": {"b": 1}, "name": "b_1"}


def test_the_commands_helogales_own_senders_send(run: Any) -> None:
    """Routers, config servers and the client: ``$``-prefixed internal fields pass."""
    assert run({"collMod": "made", "validator": {}, "$_createIfMissing": True})["ok"] == 1.0
    assert run({"create": "cs"})["ok"] == 1.0  # a config server's shardCollection
    assert run({"listIndexes": "cs"})["ok"] == 1.0
    assert run({"listCollections": 1, "nameOnly": True})["ok"] == 1.0
    assert run({"listDatabases": 1}, db="admin")["ok"] == 1.0
    assert run({"listIndexes": "cs", "cursor": {}})["ok"] == 1.0  # the client's
    assert run({"dropIndexes": "cs", "index": "*", "writeConcern": {"w": "majority"}}
               )["ok"] == 1.0
    assert run({"renameCollection": "app.cs", "to": "app.cs2", "dropTarget": False,
                "shardVersion": [Timestamp(0, 0), Int64(0)]}, db="admin")["ok"] == 1.0


def test_shard_collection_checks_types_but_not_unknown_fields() -> None:
    """mongos' ``ShardCollection`` is ``strict: false``: unknown fields pass, known ones are
    typed (``unique`` a bool only)."""
    ns = {"shardCollection": "app.c", "key": {"_id": 1}}
    check_command_fields("shardCollection", {**ns, "presplitWindowSecs": 5, "bogus": 1})
    for wrong in ({"unique": 1}, {"key": 5}, {"numInitialChunks": "4"}):
        with pytest.raises(MongoError) as refused:
            check_command_fields("shardCollection", {**ns, **wrong})
        assert refused.value.code == 14
