"""The client API. Part 1 (no cluster): the command documents each method builds and how
replies become results, against a scripted in-process gRPC server. Part 2 (``cluster``): the
whole API, classic and modern forms, against a real local 3-member replica set."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from bson.int64 import Int64
from bson.objectid import ObjectId

import helogale
from helogale import (
    ASCENDING,
    DESCENDING,
    DeleteMany,
    DeleteOne,
    InsertOne,
    ReplaceOne,
    ReturnDocument,
    UpdateMany,
    UpdateOne,
)
from helogale.errors import BulkWriteError, DuplicateKeyError, InvalidOperation
from tests.client_scripted_server import ScriptedServer

# --- part 1: command building against a scripted server ---------------------------------------


@pytest.fixture
def scripted() -> Iterator[tuple[ScriptedServer, helogale.MongoClient]]:
    server = ScriptedServer()
    client = helogale.MongoClient(f"helogale://{server.host}/?replicaSet=rs0",
                                  serverSelectionTimeoutMS=3000)
    yield server, client
    client.close()
    server.stop()


def _cursor_server(server: ScriptedServer, docs: list[dict[str, Any]]) -> None:
    """Answer find/getMore from ``docs`` honouring batchSize/limit/skip like MongoDB."""
    state: dict[str, Any] = {}

    def find(db: str, cmd: dict[str, Any]) -> dict[str, Any]:
        rest = docs[cmd.get("skip", 0):]
        if cmd.get("limit"):
            rest = rest[: cmd["limit"]]
        size = cmd.get("batchSize", 101)
        state["rest"] = rest[size:]
        cursor_id = 77 if state["rest"] else 0
        return {"ok": 1.0, "cursor": {"firstBatch": rest[:size], "id": Int64(cursor_id), "ns": f"{db}.c"}}

    def get_more(db: str, cmd: dict[str, Any]) -> dict[str, Any]:
        assert cmd["getMore"] == 77
        size = cmd.get("batchSize", 101)
        batch, state["rest"] = state["rest"][:size], state["rest"][size:]
        cursor_id = 77 if state["rest"] else 0
        return {"ok": 1.0, "cursor": {"nextBatch": batch, "id": Int64(cursor_id), "ns": f"{db}.c"}}

    server.default = lambda db, cmd: {"find": find, "getMore": get_more}.get(
        next(iter(cmd)), lambda d, c: {"ok": 1.0})(db, cmd)


def test_insert_one_command(scripted: tuple[ScriptedServer, helogale.MongoClient]) -> None:
    server, client = scripted
    server.default = lambda db, cmd: {"ok": 1.0, "n": 1}
    doc = {"name": "jane"}
    users = client.mydb.get_collection("users", write_concern=helogale.WriteConcern(w="majority"))
    result = users.insert_one(doc)
    assert isinstance(doc["_id"], ObjectId) and result.inserted_id == doc["_id"]
    [(db, cmd)] = server.received
    assert db == "mydb"
    assert list(cmd)[:4] == ["insert", "documents", "ordered", "writeConcern"]
    assert cmd["insert"] == "users" and cmd["writeConcern"] == {"w": "majority"}
    assert list(cmd["documents"][0]) == ["_id", "name"]  # _id goes first
    assert "lsid" in cmd and cmd["txnNumber"] == 1


def test_classic_calls_build_classic_commands(scripted: tuple[ScriptedServer, helogale.MongoClient]) -> None:
    server, client = scripted
    server.script("update", {"ok": 1.0, "n": 2, "nModified": 2})
    server.script("update", {"ok": 1.0, "n": 1, "nModified": 0,
                             "upserted": [{"index": 0, "_id": "s1"}]})
    server.script("delete", {"ok": 1.0, "n": 3})
    server.script("findAndModify", {"ok": 1.0, "value": {"_id": 1, "v": 2},
                                    "lastErrorObject": {"n": 1, "updatedExisting": True}})
    server.default = lambda db, cmd: {"ok": 1.0, "n": 1}
    users = client.mydb.users
    oid = users.insert({"a": 1}, safe=True)
    assert isinstance(oid, ObjectId)
    assert "writeConcern" not in server.commands("insert")[0]  # safe=True: acknowledged default
    users.insert({"b": 1}, w=2)
    assert server.commands("insert")[1]["writeConcern"] == {"w": 2}
    out = users.update({"score": 0}, {"$set": {"flagged": True}}, multi=True, safe=True)
    assert out == {"n": 2, "nModified": 2, "updatedExisting": True, "ok": 1.0, "err": None}
    statement = server.commands("update")[0]["updates"][0]
    assert statement == {"q": {"score": 0}, "u": {"$set": {"flagged": True}}, "multi": True, "upsert": False}
    assert "txnNumber" not in server.commands("update")[0]  # multi updates are not retryable
    out = users.update({"session_id": "s1"}, {"$set": {"d": 1}}, safe=True, upsert=True)
    assert out["upserted"] == "s1" and out["updatedExisting"] is False
    assert users.remove(None, safe=True) == {"n": 3, "ok": 1.0, "err": None}
    assert server.commands("delete")[0]["deletes"] == [{"q": {}, "limit": 0}]
    value = users.find_and_modify({"username": "u"}, {"$inc": {"v": 1}}, safe=True, new=True,
                                  upsert=True, sort=[("v", DESCENDING)], fields={"v": 1})
    assert value == {"_id": 1, "v": 2}
    fam = server.commands("findAndModify")[0]
    assert (fam["query"], fam["update"], fam["new"], fam["upsert"]) == (
        {"username": "u"}, {"$inc": {"v": 1}}, True, True)
    assert fam["sort"] == {"v": -1} and fam["fields"] == {"v": 1} and "txnNumber" in fam
    users.insert({"c": 1}, safe=False)
    assert server.commands("insert")[-1]["writeConcern"] == {"w": 1}  # w=0 still waits for the primary
    with pytest.raises(ValueError):
        users.find_and_modify({"a": 1})
    assert users.ensure_index([("username", ASCENDING), ("score", DESCENDING)], unique=True) \
        == "username_1_score_-1"
    index = server.commands("createIndexes")[0]["indexes"][0]
    assert index == {"key": {"username": 1, "score": -1}, "name": "username_1_score_-1", "unique": True}


def test_modern_write_results(scripted: tuple[ScriptedServer, helogale.MongoClient]) -> None:
    server, client = scripted
    server.script("update", {"ok": 1.0, "n": 1, "nModified": 1},
                  {"ok": 1.0, "n": 1, "nModified": 0, "upserted": [{"index": 0, "_id": 9}]})
    server.script("delete", {"ok": 1.0, "n": 1})
    coll = client.db.c
    result = coll.update_one({"_id": 1}, {"$set": {"a": 1}})
    assert (result.matched_count, result.modified_count, result.upserted_id) == (1, 1, None)
    result = coll.replace_one({"_id": 9}, {"a": 2}, upsert=True)
    assert (result.matched_count, result.upserted_id) == (0, 9)
    assert coll.delete_one({"_id": 1}).deleted_count == 1
    with pytest.raises(ValueError):
        coll.update_one({}, {"a": 1})
    with pytest.raises(ValueError):
        coll.replace_one({}, {"$set": {"a": 1}})
    unack = coll.with_options(write_concern=helogale.WriteConcern(w=0)).delete_many({})
    assert not unack.acknowledged
    with pytest.raises(InvalidOperation):
        _ = unack.deleted_count


def test_bulk_write_groups_and_reports_errors(scripted: tuple[ScriptedServer, helogale.MongoClient]) -> None:
    server, client = scripted
    server.script("insert", {"ok": 1.0, "n": 2})
    server.script("update", {"ok": 1.0, "n": 2, "nModified": 1, "upserted": [{"index": 1, "_id": 5}]})
    server.script("delete", {"ok": 1.0, "n": 4})
    coll = client.db.c
    result = coll.bulk_write([
        InsertOne({"_id": 1}), InsertOne({"_id": 2}),
        UpdateOne({"_id": 1}, {"$set": {"a": 1}}), ReplaceOne({"_id": 5}, {"a": 5}, upsert=True),
        UpdateMany({}, {"$inc": {"n": 1}}),
        DeleteOne({"_id": 2}), DeleteMany({}),
    ])
    assert (result.inserted_count, result.matched_count, result.modified_count,
            result.upserted_count, result.deleted_count) == (2, 1, 1, 1, 4)
    assert result.upserted_ids == {3: 5}
    # the update run mixes single and multi statements: not retryable as a batch
    assert "txnNumber" not in server.commands("update")[0]
    assert len(server.commands("update")[0]["updates"]) == 3
    server.script("insert", {"ok": 1.0, "n": 1, "writeErrors": [
        {"index": 1, "code": 11000, "errmsg": "E11000 duplicate key"}]})
    with pytest.raises(BulkWriteError) as info:
        coll.insert_many([{"_id": 1}, {"_id": 1}, {"_id": 3}])
    details = info.value.details
    assert details["nInserted"] == 1 and details["writeErrors"][0]["index"] == 1
    server.script("insert", {"ok": 1.0, "n": 0, "writeErrors": [
        {"index": 0, "code": 11000, "errmsg": "E11000 duplicate key"}]})
    with pytest.raises(DuplicateKeyError):
        coll.insert([{"_id": 1}], safe=True)


def test_cursor_streams_with_get_more(scripted: tuple[ScriptedServer, helogale.MongoClient]) -> None:
    server, client = scripted
    docs = [{"_id": i, "v": i} for i in range(10)]
    _cursor_server(server, docs)
    cursor = client.db.c.find({"v": {"$gte": 0}}, {"v": 1}).sort("v", DESCENDING).batch_size(3)
    assert cursor.next() == docs[0]
    assert cursor.retrieved == 1
    assert len(server.commands("getMore")) == 0  # only the first batch so far
    assert list(cursor) == docs[1:]
    find = server.commands("find")[0]
    assert find == {"find": "c", "filter": {"v": {"$gte": 0}}, "sort": {"v": -1},
                    "projection": {"v": 1}, "batchSize": 3}
    assert [c["batchSize"] for c in server.commands("getMore")] == [3, 3, 3]
    assert not cursor.alive


def test_cursor_limit_skip_and_kill(scripted: tuple[ScriptedServer, helogale.MongoClient]) -> None:
    server, client = scripted
    docs = [{"_id": i} for i in range(20)]
    _cursor_server(server, docs)
    coll = client.db.c
    assert list(coll.find(skip=2, limit=5, batch_size=2)) == docs[2:7]
    assert [c.get("batchSize") for c in server.commands("getMore")] == [2, 1]
    cursor = coll.find(batch_size=4)
    assert [next(cursor) for _ in range(2)] == docs[:2]
    cursor.close()
    assert server.commands("killCursors")[-1]["cursors"] == [77]
    assert coll.find_one(3) == docs[0]  # the scripted server ignores the filter
    assert server.commands("find")[-1]["filter"] == {"_id": 3}
    assert server.commands("find")[-1]["singleBatch"] is True
    assert coll.find()[4] == docs[4]
    assert list(coll.find()[3:6]) == docs[3:6]
    cursor = coll.find()
    list(cursor)
    with pytest.raises(InvalidOperation):
        cursor.limit(3)
    assert list(cursor.rewind().limit(2)) == docs[:2]
    assert list(cursor.clone()) == docs[:2]


def test_cursor_sort_forms() -> None:
    from helogale.cursor import normalize_sort

    assert normalize_sort(("dateofbirth", DESCENDING)) == [("dateofbirth", -1)]
    assert normalize_sort("a") == [("a", 1)]
    assert normalize_sort("a", -1) == [("a", -1)]
    assert normalize_sort([("a", 1), ("b", -1)]) == [("a", 1), ("b", -1)]
    assert normalize_sort({"a": -1}) == [("a", -1)]
    with pytest.raises(TypeError):
        normalize_sort(5)


def test_snapshot_returns_each_document_once(scripted: tuple[ScriptedServer, helogale.MongoClient]) -> None:
    server, client = scripted
    # a server whose cursor sees a moved document twice
    docs = [{"_id": 1}, {"_id": 2}, {"_id": 3}, {"_id": 2, "moved": True}, {"_id": 4}]
    _cursor_server(server, docs)
    assert [d["_id"] for d in client.db.c.find(snapshot=True, batch_size=2)] == [1, 2, 3, 4]
    assert server.commands("find")[0]["sort"] == {"_id": 1}
    with pytest.raises(InvalidOperation):
        list(client.db.c.find(snapshot=True, sort=[("a", 1)]))


def test_return_document_constants() -> None:
    assert ReturnDocument.BEFORE is False and ReturnDocument.AFTER is True
    assert helogale.GEO2D == "2d" and helogale.GEOSPHERE == "2dsphere"
    assert helogale.ObjectId is ObjectId and helogale.SON is not None


def test_collection_not_callable(scripted: tuple[ScriptedServer, helogale.MongoClient]) -> None:
    _, client = scripted
    with pytest.raises(TypeError, match="no such method"):
        client.db.c.no_such_method()
    with pytest.raises(helogale.errors.InvalidName):
        client["bad.name"]


# --- part 2: the whole API against a real local replica set ------------------------------------


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    from node.local_cluster import LocalCluster

    with LocalCluster(members=3) as running:
        yield running


@pytest.fixture(scope="module")
def client(cluster: Any) -> Iterator[helogale.MongoClient]:
    with helogale.MongoClient(cluster.uri, serverSelectionTimeoutMS=20000) as running:
        yield running


def _wait(predicate: Any, timeout: float = 20.0) -> None:
    from tests.client_scripted_server import wait_for

    wait_for(predicate, timeout)


@pytest.mark.cluster
def test_discovery_and_commands(cluster: Any, client: helogale.MongoClient) -> None:
    members = {helogale.uri.parse_host(a) for a in cluster.addresses}
    _wait(lambda: client.nodes == members)
    assert client.primary in members
    assert client.secondaries == members - {client.primary}
    hello = client.admin.command("hello")
    assert hello["isWritablePrimary"] is True and hello["setName"] == cluster.replset
    status = client.admin.command("replSetGetStatus")
    assert status["ok"] == 1 and len(status["members"]) == 3
    with pytest.raises(helogale.errors.OperationFailure) as info:
        client.admin.command("noSuchCommand")
    assert info.value.code == 59 and info.value.details["ok"] == 0
    assert client.address == client.primary and client.is_primary


@pytest.mark.cluster
def test_classic_connection_by_host_and_port(cluster: Any) -> None:
    host, port = helogale.uri.parse_host(cluster.addresses[0])
    seed = "localhost" if host == "127.0.0.1" else host
    c = helogale.Connection(host=seed, port=port, serverSelectionTimeoutMS=20000)
    try:
        dbh = c["mydb"]
        assert dbh.connection == c
        dbh.users.insert({"username": "conn"}, safe=True)
        assert dbh.users.find_one({"username": "conn"})["username"] == "conn"
        # the seed spelled "localhost" is replaced by the members' own addresses
        members = {helogale.uri.parse_host(a) for a in cluster.addresses}
        _wait(lambda: c.nodes == members)
    finally:
        c.close()


@pytest.mark.cluster
def test_classic_api(client: helogale.MongoClient) -> None:
    from datetime import datetime

    dbh = client["classic"]
    assert dbh.connection is client
    users = dbh.users
    user_doc = {"username": "janedoe", "firstname": "jane", "dateofbirth": datetime(1974, 4, 12),
                "email": "janedoe74@example.com", "score": 0}
    oid = users.insert(user_doc, safe=True)
    assert user_doc["_id"] == oid
    ids = users.insert([{"username": "john", "firstname": "john", "score": 0},
                        {"username": "jim", "firstname": "jane", "score": 3,
                         "dateofbirth": datetime(1990, 1, 1)}], w=2)
    assert len(ids) == 2
    assert users.find_one({"username": "janedoe"})["email"] == "janedoe74@example.com"
    assert [u.get("email") for u in users.find({"username": "janedoe"}, {"email": 1})] == \
        ["janedoe74@example.com"]
    assert users.find().count() == 3
    assert users.find({"firstname": "jane"}).count() == 2
    youngest_first = users.find({"firstname": "jane"}).sort(("dateofbirth", DESCENDING))
    assert [u["username"] for u in youngest_first] == ["jim", "janedoe"]
    out = users.update({"username": "janedoe"}, {"$set": {"email": "new@example.com"}}, safe=True)
    assert out["n"] == 1 and out["updatedExisting"] is True
    out = users.update({"score": 0}, {"$set": {"flagged": True}}, safe=True)
    assert out["n"] == 1
    out = users.update({"score": 0}, {"$set": {"flagged": True}}, multi=True, safe=True)
    assert out["n"] == 2
    out = users.update({"session_id": "s1"}, {"$set": {"d": "x"}}, safe=True, upsert=True)
    assert out["updatedExisting"] is False and users.find_one({"_id": out["upserted"]})["d"] == "x"
    # save: insert without _id, replace with it
    sid = users.save({"username": "saved", "score": 1})
    users.save({"_id": sid, "username": "saved", "score": 2})
    assert users.find_one(sid)["score"] == 2
    # find_and_modify: new, upsert, remove, sort, fields
    users.update({"username": "janedoe"}, {"$set": {"account_balance": 0}}, safe=True)
    ret = users.find_and_modify({"username": "janedoe"}, {"$inc": {"account_balance": 20}},
                                safe=True, new=True)
    assert ret["account_balance"] == 20
    old = users.find_and_modify({"username": "janedoe"}, {"$inc": {"account_balance": 5}})
    assert old["account_balance"] == 20
    counter = dbh.counters.find_and_modify({"counter_name": "c"}, {"$inc": {"value": 1}},
                                           new=True, upsert=True, safe=True)
    assert counter["value"] == 1
    top = users.find_and_modify({"score": {"$exists": True}}, {"$set": {"top": True}},
                                sort=[("score", DESCENDING)], fields={"username": 1}, new=True)
    assert top == {"_id": top["_id"], "username": "jim"}
    removed = users.find_and_modify({"username": "saved"}, remove=True)
    assert removed["_id"] == sid and users.find_one(sid) is None
    # ensure_index + unique
    assert users.ensure_index("username", unique=True) == "username_1"
    with pytest.raises(DuplicateKeyError) as info:
        users.insert({"username": "jim"}, safe=True)
    assert info.value.code == 11000
    assert users.remove({"username": "jim"}, safe=True)["n"] == 1
    assert users.remove(None, safe=True)["n"] >= 3
    assert users.find_one() is None


@pytest.mark.cluster
def test_modern_api(client: helogale.MongoClient) -> None:
    coll = client.modern.items
    coll.drop()
    result = coll.insert_one({"_id": 1, "kind": "a", "n": 1})
    assert result.inserted_id == 1 and result.acknowledged
    many = coll.insert_many([{"_id": i, "kind": "ab"[i % 2], "n": i} for i in range(2, 12)])
    assert many.inserted_ids == list(range(2, 12))
    with pytest.raises(BulkWriteError) as info:
        coll.insert_many([{"_id": 100}, {"_id": 1}, {"_id": 101}], ordered=False)
    assert info.value.details["nInserted"] == 2
    assert [e["code"] for e in info.value.details["writeErrors"]] == [11000]
    assert coll.count_documents({}) == 13
    assert coll.estimated_document_count() == 13
    assert coll.count_documents({"kind": "a"}, skip=1, limit=3) == 3
    assert sorted(coll.distinct("kind")) == ["a", "b"]
    assert coll.find({"n": {"$lt": 4}}).distinct("kind") in (["a", "b"], ["b", "a"])
    res = coll.update_one({"_id": 1}, {"$set": {"x": 1}})
    assert (res.matched_count, res.modified_count, res.upserted_id) == (1, 1, None)
    res = coll.update_many({"kind": "a"}, {"$inc": {"n": 100}})
    assert res.matched_count == res.modified_count == 6
    res = coll.replace_one({"_id": 500}, {"kind": "c"}, upsert=True)
    assert res.upserted_id == 500 and res.matched_count == 0
    doc = coll.find_one_and_update({"_id": 2}, {"$inc": {"n": 1}}, return_document=ReturnDocument.AFTER)
    assert doc["n"] == 103
    doc = coll.find_one_and_replace({"_id": 2}, {"kind": "z"}, projection={"kind": 1})
    assert doc == {"_id": 2, "kind": "a"}
    doc = coll.find_one_and_delete({"kind": "z"})
    assert doc["_id"] == 2 and coll.find_one({"_id": 2}) is None
    assert coll.delete_one({"kind": "b"}).deleted_count == 1
    assert coll.delete_many({"kind": "b"}).deleted_count == 4
    bulk = coll.bulk_write([InsertOne({"_id": 900}), UpdateOne({"_id": 900}, {"$set": {"a": 1}}),
                            UpdateMany({"kind": "a"}, {"$set": {"b": 1}}),
                            ReplaceOne({"_id": 901}, {"r": 1}, upsert=True),
                            DeleteOne({"_id": 900}), DeleteMany({"kind": "c"})], ordered=True)
    assert (bulk.inserted_count, bulk.upserted_ids, bulk.deleted_count) == (1, {3: 901}, 2)
    assert bulk.matched_count == 1 + 5 and bulk.modified_count == 1 + 5


@pytest.mark.cluster
def test_cursor_streams_and_snapshot(client: helogale.MongoClient) -> None:
    coll = client.cursors.docs
    coll.drop()
    coll.insert_many([{"_id": i, "v": i % 7, "pad": "x"} for i in range(300)])
    cursor = coll.find({}, batch_size=25)
    first = next(cursor)
    assert first["_id"] in range(300)
    assert cursor.cursor_id  # more batches remain on the server
    assert len(list(cursor)) == 299
    assert [d["_id"] for d in coll.find().sort("_id", DESCENDING).skip(5).limit(3)] == [294, 293, 292]
    assert [d["v"] for d in coll.find(sort=[("v", ASCENDING), ("_id", DESCENDING)], limit=2)] == [0, 0]
    assert coll.find({"v": 3}).count() == len([i for i in range(300) if i % 7 == 3])
    assert coll.find().limit(10).count(with_limit_and_skip=True) == 10
    early = coll.find(batch_size=10)
    next(early)
    early.close()
    assert not early.alive
    cursor = coll.find({"v": 0}).limit(4)
    assert len(list(cursor)) == 4
    assert len(list(cursor.rewind())) == 4 and len(list(cursor.clone())) == 4
    assert coll.find()[10]["_id"] == 10
    # snapshot: documents grow (and may move) while we iterate; each is returned once
    seen = []
    for doc in coll.find(snapshot=True, batch_size=16):
        seen.append(doc["_id"])
        if len(seen) % 10 == 0:
            coll.update_many({"_id": {"$gt": doc["_id"]}}, {"$set": {"pad": "y" * 500}})
    assert sorted(seen) == list(range(300)) and len(seen) == len(set(seen))


@pytest.mark.cluster
def test_indexes_and_management(client: helogale.MongoClient) -> None:
    db = client.mgmt
    coll = db.places
    coll.insert_one({"loc": [1, 2], "name": "a", "rank": 1})
    assert coll.create_index([("loc", helogale.GEO2D)]) == "loc_2d"
    names = coll.create_indexes([helogale.IndexModel([("name", ASCENDING)], unique=True),
                                 helogale.IndexModel([("rank", DESCENDING)], name="by_rank")])
    assert names == ["name_1", "by_rank"]
    info = coll.index_information()
    assert info["name_1"]["key"] == [("name", 1)] and info["name_1"]["unique"] is True
    assert set(info) == {"_id_", "loc_2d", "name_1", "by_rank"}
    assert {i["name"] for i in coll.list_indexes()} == set(info)
    coll.drop_index("by_rank")
    coll.drop_index([("name", ASCENDING)])
    assert set(coll.index_information()) == {"_id_", "loc_2d"}
    coll.drop_indexes()
    assert set(coll.index_information()) == {"_id_"}
    assert "places" in db.list_collection_names()
    assert "mgmt" in client.list_database_names()
    db.other.insert_one({})
    db.drop_collection("other")
    assert "other" not in db.list_collection_names()
    coll.drop()
    assert "places" not in db.list_collection_names()
    client.drop_database("mgmt")
    assert "mgmt" not in client.list_database_names()


@pytest.mark.cluster
def test_secondary_reads(client: helogale.MongoClient) -> None:
    coll = client.reads.get_collection("c", write_concern=helogale.WriteConcern(w=3))
    coll.insert_one({"_id": "r"})
    secondary = coll.with_options(read_preference=helogale.ReadPreference.SECONDARY)
    _wait(lambda: secondary.find_one({"_id": "r"}) is not None)
    assert secondary.count_documents({"_id": "r"}) == 1


@pytest.mark.cluster
def test_one_client_shared_by_threads(client: helogale.MongoClient) -> None:
    import threading

    coll = client.threads.c
    coll.drop()
    coll.insert_one({"_id": "total", "n": 0})
    errors: list[BaseException] = []

    def work(t: int) -> None:
        try:
            for i in range(40):
                coll.insert_one({"t": t, "i": i})
                coll.update_one({"_id": "total"}, {"$inc": {"n": 1}})
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(t,)) for t in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert errors == []
    assert coll.count_documents({"t": {"$exists": True}}) == 240
    assert coll.find_one({"_id": "total"})["n"] == 240


def test_explain_rename_and_command_options(scripted: tuple[ScriptedServer, helogale.MongoClient]) -> None:
    from bson.codec_options import CodecOptions
    from bson.son import SON

    server, client = scripted
    server.script("explain", {"ok": 1.0, "queryPlanner": {"winningPlan": {"stage": "COLLSCAN"}}})
    server.script("renameCollection", {"ok": 1.0})
    server.script("listCollections", {"ok": 1.0, "cursor": {
        "firstBatch": [{"name": "a", "type": "collection"}], "id": Int64(0), "ns": "db.$cmd.listCollections"}})
    server.script("ping", {"ok": 1.0, "nested": {"b": 1, "a": 2}})
    coll = client.db.c
    plan = coll.find({"x": 1}).sort("y", 1).limit(-5).explain()
    assert plan["queryPlanner"]["winningPlan"]["stage"] == "COLLSCAN"
    (db, explain), = [(d, c) for d, c in server.received if "explain" in c]
    assert db == "db" and explain["explain"] == {"find": "c", "filter": {"x": 1}, "sort": {"y": 1}, "limit": 5}
    coll.rename("d", dropTarget=True)
    assert server.commands("renameCollection")[0] == {"renameCollection": "db.c", "to": "db.d", "dropTarget": True}
    assert server.received[-1][0] == "admin"
    assert client.db.list_collection_names() == ["a"]
    assert server.commands("listCollections")[0]["nameOnly"] is True
    reply = client.db.command("ping", codec_options=CodecOptions(document_class=SON))
    assert isinstance(reply, SON) and list(reply["nested"]) == ["b", "a"]


@pytest.mark.cluster
def test_aggregate_streams(client: helogale.MongoClient) -> None:
    coll = client.agg.sales
    coll.drop()
    coll.insert_many([{"item": "abc"[i % 3], "qty": i} for i in range(60)])
    cursor = coll.aggregate([{"$match": {"qty": {"$gte": 10}}},
                             {"$group": {"_id": "$item", "total": {"$sum": "$qty"}}},
                             {"$sort": {"_id": 1}}], batch_size=2)
    totals = {d["_id"]: d["total"] for d in cursor}
    expected = {k: sum(i for i in range(10, 60) if "abc"[i % 3] == k) for k in "abc"}
    assert totals == expected
    many = coll.aggregate([{"$match": {}}], batch_size=7)
    assert len(list(many)) == 60


def test_aggregate_batch_size_spellings_reach_every_get_more(
        scripted: tuple[ScriptedServer, helogale.MongoClient]) -> None:
    """``batch_size=`` and pymongo's ``batchSize=`` both size the first batch (the cursor
    option) and every getMore after it."""
    server, client = scripted
    docs = [{"_id": i} for i in range(8)]
    for kwargs in ({"batch_size": 3}, {"batchSize": 3}):
        state: dict[str, Any] = {}

        def answer(db: str, cmd: dict[str, Any], state: dict[str, Any] = state) -> dict[str, Any]:
            if "aggregate" in cmd:
                size = cmd["cursor"].get("batchSize", 101)
                state["rest"] = docs[size:]
                return {"ok": 1.0, "cursor": {"firstBatch": docs[:size], "id": Int64(9),
                                              "ns": f"{db}.c"}}
            size = cmd.get("batchSize", 101)
            batch, state["rest"] = state["rest"][:size], state["rest"][size:]
            return {"ok": 1.0, "cursor": {"nextBatch": batch,
                                          "id": Int64(9 if state["rest"] else 0),
                                          "ns": f"{db}.c"}}

        server.default = answer
        server.received.clear()
        assert list(client.db.c.aggregate([], **kwargs)) == docs
        sizes = [cmd["cursor"].get("batchSize") if "aggregate" in cmd else cmd.get("batchSize")
                 for _, cmd in server.received if "aggregate" in cmd or "getMore" in cmd]
        assert sizes == [3, 3, 3], (kwargs, sizes)


def test_read_concern_travels_with_reads_only(scripted: tuple[ScriptedServer, helogale.MongoClient]) -> None:
    server, client = scripted
    _cursor_server(server, [{"_id": 1}])
    coll = client.db.get_collection("c", read_concern=helogale.ReadConcern("linearizable"))
    assert coll.find_one({"_id": 1}) == {"_id": 1}
    find = next(cmd for _, cmd in server.received if "find" in cmd)
    assert find["readConcern"] == {"level": "linearizable"}
    server.received.clear()
    server.default = lambda db, cmd: {"ok": 1.0, "n": 1}
    coll.insert_one({"_id": 2})
    [(_, insert)] = server.received
    assert "readConcern" not in insert
    plain = client.db.c
    server.received.clear()
    _cursor_server(server, [])
    plain.find_one({})
    assert "readConcern" not in server.received[0][1]
    assert coll.with_options().read_concern == helogale.ReadConcern("linearizable")


@pytest.mark.cluster
def test_linearizable_reads_on_the_primary(client: helogale.MongoClient) -> None:
    coll = client.reads.get_collection("lin", read_concern=helogale.ReadConcern("linearizable"))
    coll.insert_one({"_id": "x", "v": 1})
    assert coll.find_one({"_id": "x"}) == {"_id": "x", "v": 1}
    assert coll.count_documents({"v": 1}) == 1
