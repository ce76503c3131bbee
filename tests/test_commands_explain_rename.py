"""``explain`` and ``renameCollection``: the engine rename, the dispatcher commands, and (marked
``cluster``) a real replica set through the helogale client and through pymongo on the wire."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from node.commands.context import RequestContext
from node.commands.engine_ops import open_engine
from node.engine import indexes as idx
from node.engine.errors import MongoError
from node.engine.memory_store import MemoryStore
from node.engine.rename import rename_collection
from node.server.standalone import standalone_dispatcher

CTX = RequestContext()


# --- engine ----------------------------------------------------------------------------------


def _engine_with_users() -> Any:
    engine = open_engine(MemoryStore())
    users = engine.collection("app", "users")
    users.insert([{"_id": i, "email": f"u{i}@x", "age": i % 7} for i in range(50)])
    with engine.store.write() as txn:
        idx.create_index(txn, "app", "users", [("email", 1)], unique=True)
        idx.create_index(txn, "app", "users", [("age", -1)])
    return engine


def _tables(engine: Any) -> list[str]:
    with engine.store.read() as txn:
        return txn.tables()


def test_engine_rename_moves_records_indexes_and_catalog() -> None:
    engine = _engine_with_users()
    with engine.store.write() as txn:
        rename_collection(engine, txn, "app", "users", "app", "people")
    assert engine.collection_names("app") == ["people"]
    assert engine.catalog_entry("app", "users") is None
    assert not [t for t in _tables(engine) if "app.users" in t]
    people = engine.collection("app", "people")
    assert people.count({}) == 50
    assert [d["_id"] for d in people.find({"age": 3})] == [3, 10, 17, 24, 31, 38, 45]
    with engine.store.read() as txn:
        assert [s.name for s in idx.load_indexes(txn, "app", "people")] == \
            ["_id_", "email_1", "age_-1"]
        assert idx.load_indexes(txn, "app", "users") == [idx.ID_INDEX]
        plan = engine.planner.explain(txn, "app.people", {"email": "u7@x"},
                                      verbosity="queryPlanner")
    assert plan["queryPlanner"]["winningPlan"]["inputStage"]["indexName"] == "email_1"
    dup = people.insert([{"_id": 100, "email": "u7@x"}])
    assert dup.n == 0 and [e.code for e in dup.write_errors] == [11000]
    assert people.count({"email": "u7@x"}) == 1
    people.insert([{"_id": 101, "email": "new@x", "age": 3}])
    assert [d["_id"] for d in people.find({"age": 3}, sort=[("_id", -1)], limit=1)] == [101]


def test_engine_rename_across_databases_and_drop_target() -> None:
    engine = _engine_with_users()
    engine.collection("other", "people").insert([{"_id": "old"}])
    with engine.store.write() as txn, pytest.raises(MongoError) as err:
        rename_collection(engine, txn, "app", "users", "other", "people")
    assert err.value.code == 48
    assert engine.collection("other", "people").count({}) == 1
    with engine.store.write() as txn:
        rename_collection(engine, txn, "app", "users", "other", "people", drop_target=True)
    assert engine.collection_names("app") == []
    moved = engine.collection("other", "people")
    assert moved.count({}) == 50 and moved.count({"_id": "old"}) == 0
    with engine.store.read() as txn:
        assert "email_1" in idx.index_information(txn, "other", "people")


def test_engine_rename_large_collection_on_lmdb(tmp_path: Any) -> None:
    """More records than one copy chunk, on the LMDB store; the old target's own index goes."""
    from node.engine.lmdb_store import LMDBStore

    with LMDBStore(tmp_path / "db", map_size=1 << 28, sync=False) as store:
        engine = open_engine(store)
        engine.collection("app", "big").insert([{"_id": i, "k": i % 97} for i in range(2500)])
        engine.collection("app", "dst").insert([{"_id": "x", "only": 1}])
        with store.write() as txn:
            idx.create_index(txn, "app", "big", [("k", 1)])
            idx.create_index(txn, "app", "dst", [("only", 1)])
        with store.write() as txn:
            rename_collection(engine, txn, "app", "big", "app", "dst", drop_target=True)
        dst = engine.collection("app", "dst")
        assert dst.count({}) == 2500
        assert dst.count({"k": 5}) == len([i for i in range(2500) if i % 97 == 5])
        assert sorted(d["_id"] for d in dst.find({"_id": {"$gte": 2497}})) == [2497, 2498, 2499]
        with store.read() as txn:
            assert [s.name for s in idx.load_indexes(txn, "app", "dst")] == ["_id_", "k_1"]
            assert [t for t in txn.tables() if "app.big" in t or "only" in t] == []
            keys = list(txn.scan(idx.index_table("app", "dst", "k_1")))
        assert len(keys) == 2500


@pytest.mark.parametrize(("src", "dst", "code"), [
    (("app", "missing"), ("app", "b"), 26),
    (("app", "users"), ("app", "users"), 20),
    (("app", "users"), ("app", "a$b"), 73),
    (("app", "users"), ("app", ""), 73),
    (("app", "users"), ("app", "system.x"), 20),
])
def test_engine_rename_errors_change_nothing(src: tuple[str, str], dst: tuple[str, str],
                                            code: int) -> None:
    engine = _engine_with_users()
    before = _tables(engine)
    with pytest.raises(MongoError) as err, engine.store.write() as txn:
        rename_collection(engine, txn, *src, *dst)
    assert err.value.code == code
    assert _tables(engine) == before
    assert engine.collection("app", "users").count({}) == 50


# --- dispatcher ------------------------------------------------------------------------------


@pytest.fixture
def dispatcher() -> Any:
    d = standalone_dispatcher()
    docs = [{"_id": i, "x": i % 10, "y": i} for i in range(100)]
    assert d.run("app", {"insert": "c", "documents": docs}, CTX)["n"] == 100
    return d


def _stages(plan: dict[str, Any]) -> list[str]:
    out = []
    node: dict[str, Any] | None = plan
    while node is not None:
        out.append(node["stage"])
        node = node.get("inputStage")
    return out


def test_explain_find_collscan_then_ixscan(dispatcher: Any) -> None:
    cmd = {"explain": {"find": "c", "filter": {"x": 3}}, "verbosity": "executionStats"}
    before = dispatcher.run("app", cmd, CTX)
    assert before["ok"] == 1.0
    assert before["queryPlanner"]["namespace"] == "app.c"
    assert _stages(before["queryPlanner"]["winningPlan"]) == ["COLLSCAN"]
    assert before["executionStats"]["nReturned"] == 10
    assert before["executionStats"]["totalDocsExamined"] == 100
    created = dispatcher.run("app", {"createIndexes": "c",
                                     "indexes": [{"key": {"x": 1}, "name": "x_1"}]}, CTX)
    assert created["ok"] == 1.0
    after = dispatcher.run("app", cmd, CTX)
    assert _stages(after["queryPlanner"]["winningPlan"]) == ["FETCH", "IXSCAN"]
    assert after["executionStats"]["totalKeysExamined"] == 10
    assert after["executionStats"]["totalDocsExamined"] == 10


def test_explain_find_options_and_verbosity(dispatcher: Any) -> None:
    inner = {"find": "c", "filter": {"y": {"$gte": 50}}, "sort": {"y": -1}, "skip": 2,
             "limit": 5, "projection": {"y": 1, "_id": 0}}
    qp = dispatcher.run("app", {"explain": inner, "verbosity": "queryPlanner"}, CTX)
    assert "executionStats" not in qp
    assert _stages(qp["queryPlanner"]["winningPlan"]) == \
        ["PROJECTION_SIMPLE", "SKIP", "SORT", "COLLSCAN"]
    assert qp["command"]["find"] == "c"
    full = dispatcher.run("app", {"explain": inner}, CTX)  # allPlansExecution by default
    assert full["executionStats"]["nReturned"] == 5
    assert full["executionStats"]["allPlansExecution"] == []
    hinted = dispatcher.run("app", {"explain": {"find": "c", "filter": {}, "hint": {"_id": 1}},
                                    "verbosity": "queryPlanner"}, CTX)
    assert _stages(hinted["queryPlanner"]["winningPlan"])[-1] == "IXSCAN"
    missing = dispatcher.run("app", {"explain": {"find": "nope"}}, CTX)
    assert missing["queryPlanner"]["winningPlan"] == {"stage": "EOF"}


def test_explain_count_and_distinct(dispatcher: Any) -> None:
    count = dispatcher.run("app", {"explain": {"count": "c", "query": {"x": {"$lt": 2}}},
                                   "verbosity": "executionStats"}, CTX)
    stages = count["executionStats"]["executionStages"]
    assert stages["stage"] == "COUNT" and stages["nCounted"] == 20
    assert count["queryPlanner"]["winningPlan"]["stage"] == "COUNT"
    distinct = dispatcher.run("app", {"explain": {"distinct": "c", "key": "x",
                                                  "query": {"y": 4}}}, CTX)
    assert distinct["ok"] == 1.0 and distinct["executionStats"]["nReturned"] == 1


@pytest.mark.parametrize(("cmd", "code"), [
    ({"explain": 1}, 9),
    ({"explain": {"find": "c"}, "verbosity": "loud"}, 9),
    ({"explain": {"nosuch": "c"}}, 59),
    ({"explain": {"insert": "c", "documents": [{}]}}, 115),
    ({"explain": {"find": "c", "filter": 3}}, 14),
    ({"explain": {"find": "c", "hint": "no_such_index"}}, 2),
])
def test_explain_errors(dispatcher: Any, cmd: dict[str, Any], code: int) -> None:
    reply = dispatcher.run("app", cmd, CTX)
    assert reply["ok"] == 0.0 and reply["code"] == code, reply
    assert dispatcher.run("app", {"count": "c"}, CTX)["n"] == 100


def test_rename_command(dispatcher: Any) -> None:
    dispatcher.run("app", {"createIndexes": "c", "indexes": [
        {"key": {"y": 1}, "name": "y_1", "unique": True}]}, CTX)
    denied = dispatcher.run("app", {"renameCollection": "app.c", "to": "app.d"}, CTX)
    assert denied["code"] == 13
    reply = dispatcher.run("admin", {"renameCollection": "app.c", "to": "app.d"}, CTX)
    assert reply == {"ok": 1.0}
    names = dispatcher.run("app", {"listCollections": 1, "nameOnly": True}, CTX)
    assert [c["name"] for c in names["cursor"]["firstBatch"]] == ["d"]
    indexes = dispatcher.run("app", {"listIndexes": "d"}, CTX)["cursor"]["firstBatch"]
    assert [i["name"] for i in indexes] == ["_id_", "y_1"]
    dup = dispatcher.run("app", {"insert": "d", "documents": [{"_id": 500, "y": 5}]}, CTX)
    assert dup["writeErrors"][0]["code"] == 11000
    assert dispatcher.run("app", {"count": "d", "query": {"x": 4}}, CTX)["n"] == 10
    assert dispatcher.run("app", {"count": "c"}, CTX)["n"] == 0


def test_rename_command_drop_target_and_cross_database(dispatcher: Any) -> None:
    dispatcher.run("app", {"insert": "t", "documents": [{"_id": "t"}]}, CTX)
    exists = dispatcher.run("admin", {"renameCollection": "app.c", "to": "app.t"}, CTX)
    assert exists["code"] == 48 and exists["codeName"] == "NamespaceExists"
    ok = dispatcher.run("admin", {"renameCollection": "app.c", "to": "app.t",
                                  "dropTarget": True}, CTX)
    assert ok["ok"] == 1.0
    assert dispatcher.run("app", {"count": "t"}, CTX)["n"] == 100
    moved = dispatcher.run("admin", {"renameCollection": "app.t", "to": "arch.t2"}, CTX)
    assert moved["ok"] == 1.0
    assert dispatcher.run("arch", {"count": "t2", "query": {"x": 1}}, CTX)["n"] == 10
    dbs = dispatcher.run("admin", {"listDatabases": 1, "nameOnly": True}, CTX)
    assert [d["name"] for d in dbs["databases"]] == ["arch"]


@pytest.mark.parametrize(("cmd", "code"), [
    ({"renameCollection": "app.missing", "to": "app.x"}, 26),
    ({"renameCollection": "app.c", "to": "app.c"}, 20),
    ({"renameCollection": "app.c", "to": "app.a$b"}, 73),
    ({"renameCollection": "app.c", "to": "app."}, 73),
    ({"renameCollection": "app.c", "to": "nodot"}, 73),
    ({"renameCollection": "app.c", "to": "b$d.x"}, 73),
    ({"renameCollection": "", "to": "app.x"}, 73),
    ({"renameCollection": "app.c"}, 40414),
    ({"renameCollection": "app.c", "to": 5}, 14),
    ({"renameCollection": "app.c", "to": "app.x", "dropTarget": "yes"}, 14),
])
def test_rename_errors(dispatcher: Any, cmd: dict[str, Any], code: int) -> None:
    reply = dispatcher.run("admin", cmd, CTX)
    assert reply["ok"] == 0.0 and reply["code"] == code, reply
    assert dispatcher.run("app", {"count": "c"}, CTX)["n"] == 100


# --- a real replica set ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    from node.local_cluster import LocalCluster

    with LocalCluster(members=3, wire=True) as c:
        yield c


@pytest.mark.cluster
@pytest.mark.timeout(240)
def test_cluster_explain_and_rename_helogale(cluster: Any) -> None:
    import helogale
    from node.local_cluster import wait_until

    with helogale.MongoClient(cluster.uri, serverSelectionTimeoutMS=30000) as client:
        coll = client.xr.events
        coll.insert_many([{"_id": i, "kind": i % 4} for i in range(40)])
        plan = coll.find({"kind": 2}).explain()
        assert _stages(plan["queryPlanner"]["winningPlan"]) == ["COLLSCAN"]
        coll.create_index("kind")
        plan = coll.find({"kind": 2}).limit(3).explain("executionStats")
        assert "IXSCAN" in _stages(plan["queryPlanner"]["winningPlan"])
        assert plan["executionStats"]["nReturned"] == 3
        coll.create_index("tag", unique=True, sparse=True)
        coll.rename("archived")
        assert client.xr.list_collection_names() == ["archived"]
        archived = client.xr.archived
        assert archived.count_documents({"kind": 1}) == 10
        assert "kind_1" in archived.index_information()
        archived.insert_one({"_id": 100, "tag": "a"})
        with pytest.raises(helogale.errors.DuplicateKeyError):
            archived.insert_one({"_id": 101, "tag": "a"})
        client.xr.other.insert_one({})
        with pytest.raises(helogale.errors.OperationFailure) as err:
            archived.rename("other")
        assert err.value.code == 48
        for i in range(len(cluster.members)):
            def moved(i: int = i) -> bool:
                reply = cluster.try_command(i, {"count": "archived",
                                                "$readPreference": {"mode": "nearest"}},
                                            db="xr", timeout=5)
                gone = cluster.try_command(i, {"count": "events",
                                               "$readPreference": {"mode": "nearest"}},
                                           db="xr", timeout=5)
                return bool(reply and gone and reply.get("n") == 41 and gone.get("n") == 0)
            wait_until(moved, 30, f"member {i} to see the rename")


@pytest.mark.cluster
@pytest.mark.timeout(240)
def test_cluster_explain_and_rename_pymongo(cluster: Any) -> None:
    from pymongo import MongoClient
    from pymongo.errors import OperationFailure

    with MongoClient(cluster.wire_uri, serverSelectionTimeoutMS=30000) as client:
        coll = client.wr.items
        coll.insert_many([{"_id": i, "n": i} for i in range(30)])
        plan = coll.find({"n": {"$gt": 20}}).explain()
        assert _stages(plan["queryPlanner"]["winningPlan"]) == ["COLLSCAN"]
        coll.create_index("n")
        plan = coll.find({"n": {"$gt": 20}}).explain()
        assert _stages(plan["queryPlanner"]["winningPlan"]) == ["FETCH", "IXSCAN"]
        assert plan["executionStats"]["nReturned"] == 9
        coll.rename("things")
        assert client.wr.list_collection_names() == ["things"]
        assert client.wr.things.count_documents({"n": {"$lt": 5}}) == 5
        with pytest.raises(OperationFailure) as err:
            client.wr.nothing.rename("x")
        assert err.value.code == 26
        client.wr.things.rename("things2", dropTarget=True)
        assert sorted(client.wr.things2.index_information()) == ["_id_", "n_1"]
