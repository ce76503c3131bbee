"""The real pymongo driver against a three-member Helogale replica set over the wire protocol.

One cluster serves the whole module (starting members is the slow part); every test uses its
own collection. The two tests that stop members (``w=3`` with a member down, SIGKILL failover)
run last and bring the set back to three live members.
"""

from __future__ import annotations

import math
import queue
import re
import socket
import struct
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import bson
import grpc
import pytest
from bson import SON, Int64
from bson.raw_bson import RawBSONDocument
from pymongo import (
    ASCENDING,
    DESCENDING,
    DeleteMany,
    InsertOne,
    MongoClient,
    ReadPreference,
    ReplaceOne,
    ReturnDocument,
    UpdateOne,
    WriteConcern,
)
from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.errors import (
    BulkWriteError,
    DuplicateKeyError,
    ExecutionTimeout,
    NotPrimaryError,
    OperationFailure,
    PyMongoError,
    WriteConcernError,
    WriteError,
)
from pymongo.monitoring import (
    CommandFailedEvent,
    CommandListener,
    CommandStartedEvent,
    CommandSucceededEvent,
)

import helogale
import helogale.errors
from node.local_cluster import LocalCluster, wait_until
from node.wire.protocol import encode_op_msg_request
from proto import helogale_pb2, helogale_pb2_grpc

pytestmark = [pytest.mark.cluster, pytest.mark.timeout(240)]

DB = "wiretest"


class Recorder(CommandListener):
    """Keeps the commands pymongo sends (name, db, a copy of the command)."""

    def __init__(self) -> None:
        self.commands: list[tuple[str, dict[str, Any]]] = []
        self._lock = threading.Lock()

    def started(self, event: CommandStartedEvent) -> None:
        with self._lock:
            self.commands.append((event.command_name, dict(event.command)))

    def succeeded(self, event: CommandSucceededEvent) -> None:
        pass

    def failed(self, event: CommandFailedEvent) -> None:
        pass

    def names(self) -> list[str]:
        with self._lock:
            return [name for name, _ in self.commands]

    def clear(self) -> None:
        with self._lock:
            self.commands.clear()


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    with LocalCluster(members=3, wire=True, extra_args=["--enable-test-commands"]) as c:
        yield c


@pytest.fixture(scope="module")
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture(scope="module")
def client(cluster: LocalCluster, recorder: Recorder) -> Iterator[MongoClient[dict[str, Any]]]:
    assert cluster.wire_uri is not None
    c: MongoClient[dict[str, Any]] = MongoClient(
        cluster.wire_uri, serverSelectionTimeoutMS=30_000, event_listeners=[recorder])
    yield c
    c.close()


@pytest.fixture
def db(client: MongoClient[dict[str, Any]]) -> Database[dict[str, Any]]:
    return client[DB]


def direct(cluster: LocalCluster, i: int, **kw: Any) -> MongoClient[dict[str, Any]]:
    """A client connected to member ``i`` alone (reads allowed on a secondary)."""
    return MongoClient(f"mongodb://{cluster.members[i].wire_address}/?directConnection=true",
                       serverSelectionTimeoutMS=30_000, **kw)


def wire_hosts(cluster: LocalCluster) -> set[str]:
    return {str(m.wire_address) for m in cluster.members}


# --- handshake ------------------------------------------------------------------------------


def test_hello_reports_wire_addresses_and_driver_limits(cluster: LocalCluster,
                                                        client: MongoClient[Any]) -> None:
    client.admin.command("ping")

    def settled() -> list[tuple[dict[str, Any], dict[str, Any]]] | None:
        """Every member's (hello, isMaster) once they agree on one primary."""
        answers = []
        for i in range(len(cluster.members)):
            with direct(cluster, i) as one:
                answers.append((one.admin.command("hello", helloOk=True),
                                one.admin.command("isMaster")))
        primaries = [h["me"] for h, legacy in answers
                     if h["isWritablePrimary"] and legacy["ismaster"]]
        agreed = len(primaries) == 1 and all(h.get("primary") == primaries[0]
                                             for h, _ in answers)
        return answers if agreed else None

    answers = wait_until(settled, 30, "members to agree on a primary")
    for m, (hello, _) in zip(cluster.members, answers, strict=True):
        assert hello["me"] == m.wire_address
        assert set(hello["hosts"]) == wire_hosts(cluster)
        assert hello["primary"] in wire_hosts(cluster)
        assert hello["setName"] == "rs0"
        assert hello["secondary"] is not hello["isWritablePrimary"]
        assert hello["minWireVersion"] == 0
        assert 17 <= hello["maxWireVersion"] <= 25
        assert hello["logicalSessionTimeoutMinutes"] > 0
        assert hello["maxBsonObjectSize"] == 16 * 1024 * 1024
        assert hello["maxMessageSizeBytes"] >= 48_000_000
        assert hello["maxWriteBatchSize"] >= 1000
        assert hello["helloOk"] is True
        assert isinstance(hello["connectionId"], int)
        assert "localTime" in hello
        # streaming hello is not served: no topologyVersion, so drivers poll
        assert "topologyVersion" not in hello
    # the driver discovers the whole set through the wire addresses
    wait_until(lambda: {f"{h}:{port}" for h, port in client.nodes} == wire_hosts(cluster), 30,
               "pymongo to know every member")
    assert client.primary is not None
    assert f"{client.primary[0]}:{client.primary[1]}" in wire_hosts(cluster)


def test_admin_commands(client: MongoClient[Any], db: Database[Any]) -> None:
    assert client.admin.command("ping")["ok"] == 1.0
    assert client.server_info()["version"].count(".") == 2
    db.admin_probe.insert_one({"x": 1})
    assert DB in client.list_database_names()
    assert "admin_probe" in db.list_collection_names()
    with client.start_session() as s:
        db.admin_probe.insert_one({"x": 2}, session=s)
        assert db.admin_probe.count_documents({}, session=s) == 2
        assert client.admin.command("endSessions", [s.session_id])["ok"] == 1.0
    def states() -> bool:
        status = client.admin.command("replSetGetStatus")
        assert status["set"] == "rs0"
        return sorted(m["stateStr"] for m in status["members"]) == ["PRIMARY", "SECONDARY",
                                                                    "SECONDARY"]
    wait_until(states, 30, "one PRIMARY and two SECONDARY in replSetGetStatus")
    assert db.command("count", "admin_probe", query={"x": 2})["n"] == 1
    # what mongosh asks at start: answered, or refused with CommandNotFound
    for cmd in (SON([("getParameter", 1), ("featureCompatibilityVersion", 1)]),
                SON([("getLog", "startupWarnings")]), SON([("atlasVersion", 1)])):
        try:
            assert client.admin.command(cmd)["ok"] == 1.0
        except OperationFailure as exc:
            assert exc.code == 59 and exc.details is not None
            assert exc.details["codeName"] == "CommandNotFound"


# --- CRUD and cursors -----------------------------------------------------------------------


def test_crud(db: Database[Any]) -> None:
    c = db.crud
    one = c.insert_one({"name": "meerkat", "g": 720})
    many = c.insert_many([{"name": "dwarf mongoose", "g": 310},
                          {"name": "banded mongoose", "g": 1500}])
    assert len(many.inserted_ids) == 2
    assert c.find_one({"_id": one.inserted_id})["name"] == "meerkat"
    light = [d["name"] for d in c.find({"g": {"$lt": 1000}}, {"_id": 0}).sort("g", ASCENDING)]
    assert light == ["dwarf mongoose", "meerkat"]
    up = c.update_one({"name": "meerkat"}, {"$inc": {"g": 5}})
    assert (up.matched_count, up.modified_count) == (1, 1)
    up = c.update_many({}, {"$set": {"family": "Herpestidae"}})
    assert (up.matched_count, up.modified_count) == (3, 3)
    ups = c.update_one({"name": "fossa"}, {"$set": {"g": 9000}}, upsert=True)
    assert ups.upserted_id is not None and ups.matched_count == 0
    rep = c.replace_one({"name": "fossa"}, {"name": "fossa", "g": 8000})
    assert rep.modified_count == 1
    assert c.find_one({"name": "fossa"}, {"_id": 0}) == {"name": "fossa", "g": 8000}
    assert c.delete_one({"name": "fossa"}).deleted_count == 1
    assert c.delete_many({"g": {"$gt": 1000}}).deleted_count == 1
    assert sorted(d["g"] for d in c.find()) == [310, 725]


def test_cursor_get_more_batches(db: Database[Any], recorder: Recorder) -> None:
    c = db.cursor
    c.insert_many([{"i": i} for i in range(250)])
    recorder.clear()
    got = [d["i"] for d in c.find({}, batch_size=7).sort("i", DESCENDING)]
    assert got == list(range(249, -1, -1))
    assert recorder.names().count("getMore") == math.ceil(250 / 7) - 1
    # a cursor abandoned early is killed on the server
    recorder.clear()
    cur = c.find({}, batch_size=5)
    assert next(cur)["i"] == 0
    cur.close()
    assert "killCursors" in recorder.names()
    assert [d["i"] for d in c.find().sort("i", ASCENDING).skip(10).limit(3)] == [10, 11, 12]


def test_counts_and_distinct(db: Database[Any], recorder: Recorder) -> None:
    c = db.counts
    docs = [{"k": i % 7, "even": i % 2 == 0} for i in range(100)]
    c.insert_many(docs)
    recorder.clear()
    assert c.count_documents({}) == 100
    assert c.count_documents({"even": True}) == 50
    expected = len([d for d in docs if d["k"] > 2])
    assert c.count_documents({"k": {"$gt": 2}}, skip=5, limit=30) == min(30, expected - 5)
    assert c.count_documents({"k": 99}) == 0
    assert "aggregate" in recorder.names()  # count_documents is a $match/$group pipeline
    assert c.estimated_document_count() == 100
    assert sorted(c.distinct("k")) == list(range(7))
    assert sorted(c.distinct("k", {"even": True})) == list(range(7))


def test_find_and_modify_family(db: Database[Any]) -> None:
    c = db.fam
    c.insert_many([{"_id": 1, "n": 1}, {"_id": 2, "n": 2}])
    before = c.find_one_and_update({"_id": 1}, {"$inc": {"n": 10}})
    assert before == {"_id": 1, "n": 1}
    after = c.find_one_and_update({"_id": 2}, {"$inc": {"n": 10}},
                                  return_document=ReturnDocument.AFTER)
    assert after == {"_id": 2, "n": 12}
    new = c.find_one_and_update({"_id": 3}, {"$set": {"n": 3}}, upsert=True,
                                return_document=ReturnDocument.AFTER)
    assert new == {"_id": 3, "n": 3}
    assert c.find_one_and_update({"_id": 99}, {"$set": {"n": 0}}) is None
    assert c.find_one_and_replace({"_id": 3}, {"m": 1}) == {"_id": 3, "n": 3}
    assert c.find_one_and_delete({"_id": 3}) == {"_id": 3, "m": 1}
    assert c.count_documents({}) == 2


def test_index_management(db: Database[Any]) -> None:
    c = db.idx
    assert c.create_index([("email", ASCENDING)], unique=True) == "email_1"
    assert c.create_index([("a", ASCENDING), ("b", DESCENDING)], name="ab") == "ab"
    names = {ix["name"] for ix in c.list_indexes()}
    assert names == {"_id_", "email_1", "ab"}
    info = c.index_information()
    assert info["email_1"]["key"] == [("email", 1)]
    assert info["email_1"].get("unique") is True
    assert info["ab"]["key"] == [("a", 1), ("b", -1)]
    c.insert_one({"email": "a@example.org"})
    with pytest.raises(DuplicateKeyError) as exc:
        c.insert_one({"email": "a@example.org"})
    assert exc.value.code == 11000
    c.drop_index("ab")
    assert set(c.index_information()) == {"_id_", "email_1"}
    c.drop_indexes()
    assert set(c.index_information()) == {"_id_"}
    with pytest.raises(OperationFailure) as missing:
        c.drop_index("nope_1")
    assert missing.value.code == 27


# --- bulk writes and errors -----------------------------------------------------------------


def test_bulk_write_ordered_stops_unordered_continues(db: Database[Any]) -> None:
    ops: list[Any] = [InsertOne({"_id": 1}), InsertOne({"_id": 1}), InsertOne({"_id": 2})]
    with pytest.raises(BulkWriteError) as ordered:
        db.bulk_ordered.bulk_write(ops)
    d = ordered.value.details
    assert d["nInserted"] == 1
    assert [(e["index"], e["code"]) for e in d["writeErrors"]] == [(1, 11000)]
    assert db.bulk_ordered.count_documents({}) == 1

    with pytest.raises(BulkWriteError) as unordered:
        db.bulk_unordered.bulk_write(ops, ordered=False)
    d = unordered.value.details
    assert d["nInserted"] == 2
    assert [(e["index"], e["code"]) for e in d["writeErrors"]] == [(1, 11000)]
    assert db.bulk_unordered.count_documents({}) == 2


def test_bulk_write_mixed_and_insert_many(db: Database[Any]) -> None:
    c = db.bulk_mixed
    assert len(c.insert_many([{"_id": i, "v": i} for i in range(10)]).inserted_ids) == 10
    res = c.bulk_write([
        UpdateOne({"_id": 0}, {"$set": {"v": 100}}),
        DeleteMany({"v": {"$lt": 5}}),
        ReplaceOne({"_id": 77}, {"v": 77}, upsert=True),
        InsertOne({"_id": 50, "v": 50}),
    ])
    assert (res.matched_count, res.modified_count) == (1, 1)
    assert res.deleted_count == 4
    assert res.upserted_ids == {2: 77}
    assert res.inserted_count == 1
    assert sorted(d["_id"] for d in c.find()) == [0, 5, 6, 7, 8, 9, 50, 77]
    # a big insert_many is split by the driver into several batches and all arrive
    big = c.insert_many([{"big": i} for i in range(3000)])
    assert len(big.inserted_ids) == 3000
    assert c.count_documents({"big": {"$exists": True}}) == 3000


def test_client_bulk_write_of_mongodb_8(client: MongoClient[Any], db: Database[Any]) -> None:
    ns_a, ns_b = f"{DB}.cbw_a", f"{DB}.cbw_b"
    result = client.bulk_write([
        InsertOne({"_id": 1, "v": 1}, namespace=ns_a),
        InsertOne({"_id": 2, "v": 1}, namespace=ns_b),
        UpdateOne({"_id": 1}, {"$inc": {"v": 1}}, namespace=ns_a),
        UpdateOne({"_id": 9}, {"$set": {"v": 9}}, upsert=True, namespace=ns_b),
        DeleteMany({"v": 1}, namespace=ns_b),
    ], verbose_results=True)
    assert (result.inserted_count, result.modified_count, result.upserted_count,
            result.deleted_count) == (2, 1, 1, 1)
    assert result.update_results[3].upserted_id == 9
    assert list(db.cbw_a.find()) == [{"_id": 1, "v": 2}]
    assert list(db.cbw_b.find()) == [{"_id": 9, "v": 9}]


def test_error_replies_have_mongodb_shape(db: Database[Any]) -> None:
    with pytest.raises(OperationFailure) as unknown:
        db.command("noSuchCommand")
    assert unknown.value.code == 59
    details = unknown.value.details or {}
    assert details["ok"] == 0.0 and details["codeName"] == "CommandNotFound"
    assert "noSuchCommand" in details["errmsg"]
    db.shape.insert_one({"_id": 1})
    with pytest.raises(WriteError) as bad:
        db.shape.update_one({"_id": 1}, {"$bogus": {"a": 1}})
    assert bad.value.code == 9
    assert (bad.value.details or {})["index"] == 0
    # drop: absent collection answered NamespaceNotFound; pymongo's drop() tolerates it
    with pytest.raises(OperationFailure) as absent:
        db.command("drop", "never_created")
    assert absent.value.code == 26
    db.never_created.drop()
    db.shape.drop()
    assert "shape" not in db.list_collection_names()


def test_secondary_refuses_writes_with_retryable_label(cluster: LocalCluster) -> None:
    p = cluster.wait_for_primary()
    s = next(i for i in range(len(cluster.members)) if i != p)
    with direct(cluster, s) as one:
        with pytest.raises(NotPrimaryError) as exc:
            one[DB].notprimary.insert_one({"x": 1})
        assert (exc.value.details or {})["code"] == 10107
        assert (exc.value.details or {})["codeName"] == "NotWritablePrimary"
        # a retryable write (session + txnNumber) is labelled safe to retry
        with one.start_session() as session, pytest.raises(NotPrimaryError) as labelled:
            one[DB].command(SON([("insert", "notprimary"), ("documents", [{"x": 2}]),
                                 ("txnNumber", Int64(1))]), session=session)
        assert labelled.value.has_error_label("RetryableWriteError")


def test_same_lsid_and_txn_number_apply_once(cluster: LocalCluster) -> None:
    # its own client: the explicit txnNumber must not collide with the driver's counter
    assert cluster.wire_uri is not None
    with MongoClient(cluster.wire_uri, serverSelectionTimeoutMS=30_000) as c:
        with c.start_session() as session:
            cmd = SON([("update", "dedup"),
                       ("updates", [{"q": {"_id": 1}, "u": {"$inc": {"n": 1}},
                                     "upsert": True}]),
                       ("txnNumber", Int64(7))])
            first = c[DB].command(cmd, session=session)
            again = c[DB].command(cmd, session=session)
        assert first["n"] == again["n"] == 1
        assert c[DB].dedup.find_one({"_id": 1}) == {"_id": 1, "n": 1}


def test_write_concern_majority(db: Database[Any]) -> None:
    c = db.get_collection("wc", write_concern=WriteConcern(w="majority", wtimeout=10_000))
    assert c.insert_one({"_id": "maj"}).acknowledged
    unack = db.get_collection("wc", write_concern=WriteConcern(w=0))
    assert not unack.insert_one({"_id": "fire-and-forget"}).acknowledged
    wait_until(lambda: db.wc.find_one({"_id": "fire-and-forget"}), 10, "the w=0 write")


def test_causal_session_reads_its_write_on_a_secondary(cluster: LocalCluster,
                                                      client: MongoClient[Any],
                                                      recorder: Recorder) -> None:
    """Read-your-writes on a secondary: the session's read carries the write's operationTime
    as afterClusterTime, and a secondary that has not applied the write yet waits for it
    (here held back by a fail point) instead of answering without it."""
    coll = client[DB].causal
    primary = cluster.wait_for_primary()
    secondaries = [i for i in range(len(cluster.members)) if i != primary]
    hold = {"ns": f"{DB}.causal", "timeoutMS": 60_000}
    on_secondary = coll.with_options(read_preference=ReadPreference.SECONDARY)
    with client.start_session(causal_consistency=True) as session:
        for i in secondaries:  # they receive (and acknowledge) entries, but do not apply
            cluster.command(i, {"configureFailPoint": "rsSyncApplyStop", "mode": "alwaysOn",
                                "data": hold})
        try:
            coll.insert_one({"_id": 1}, session=session)  # w: 1
            written = session.operation_time
            assert written is not None
            recorder.clear()
            with pytest.raises(ExecutionTimeout):  # it waited for the write, in vain
                on_secondary.find_one({"_id": 1}, session=session, max_time_ms=300)
            finds = [c for name, c in recorder.commands if name == "find"]
            assert finds[-1]["readConcern"] == {"afterClusterTime": written}
        finally:
            for i in secondaries:
                cluster.command(i, {"configureFailPoint": "rsSyncApplyStop", "mode": "off"})
        assert on_secondary.find_one({"_id": 1}, session=session) == {"_id": 1}
        assert session.operation_time >= written
        # the session's writes carry afterClusterTime too (pymongo adds it): accepted
        assert coll.update_one({"_id": 1}, {"$set": {"x": 1}}, session=session).modified_count
        assert on_secondary.find_one({"_id": 1}, session=session) == {"_id": 1, "x": 1}


def test_snapshot_session_reads_one_point_in_time(client: MongoClient[Any]) -> None:
    """pymongo's snapshot session: its first read's atClusterTime is sent with the next
    reads, which see the same state despite writes in between (the member keeps that
    snapshot for a while)."""
    coll = client[DB].snapshot_session
    coll.insert_many([{"_id": i} for i in range(5)])
    with client.start_session(snapshot=True) as session:
        assert [d["_id"] for d in coll.find({}, session=session)] == list(range(5))
        coll.insert_one({"_id": 5})
        assert coll.count_documents({}) == 6
        assert [d["_id"] for d in coll.find({}, session=session)] == list(range(5))
        assert coll.distinct("_id", session=session) == list(range(5))
        cursor = coll.find({}, session=session, batch_size=2)
        assert [d["_id"] for d in cursor] == list(range(5))


def test_readme_example_runs(cluster: LocalCluster, capsys: pytest.CaptureFixture[str]) -> None:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    section = readme.split("## Connecting with pymongo", 1)[1].split("\n## ", 1)[0]
    code = section.split("```python", 1)[1].split("```", 1)[0]
    uri = re.search(r'"(mongodb://[^"]+)"', code)
    assert uri is not None and cluster.wire_uri is not None
    exec(code.replace(uri.group(1), cluster.wire_uri), {})
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "1"
    assert "'weight_g': 725" in out[1]


# --- hostile input: a catastrophic regex, deep nesting -------------------------------------

REDOS = "^(a+)+$"  # exponential for a backtracking engine on EVIL; linear on RE2
EVIL = "a" * 40 + "!"


def nested_raw(depth: int) -> bytes:
    """BSON bytes of ``{"a": {"a": ... {"a": 1}}}``, ``depth`` documents deep (built without
    recursion: no encoder could build 2,000 levels)."""
    leaf = bson.encode({"a": 1})
    heads = [struct.pack("<i", len(leaf) + 8 * k) + b"\x03a\x00" for k in range(depth - 1, 0, -1)]
    return b"".join(heads) + leaf + b"\x00" * (depth - 1)


@pytest.mark.timeout(60)
def test_catastrophic_regex_delete_is_linear_on_every_member(cluster: LocalCluster,
                                                             db: Database[Any]) -> None:
    c = db.get_collection("redos", write_concern=WriteConcern(w=3, wtimeout=30_000))
    c.insert_many([{"_id": 1, "s": EVIL}, {"_id": 2, "s": "aaaa"}])
    # applied by all three members (w: 3) in linear time; before RE2 this froze every member
    assert c.delete_many({"s": {"$regex": REDOS}}).deleted_count == 1
    assert c.find_one({"s": {"$regex": REDOS}}) is None
    p = cluster.wait_for_primary()
    reply = cluster.command(p, {"delete": "redos", "writeConcern": {"w": 3},
                                "deletes": [{"q": {"s": {"$regex": REDOS}}, "limit": 0}]},
                            db=DB, timeout=30)
    assert reply["ok"] == 1.0 and reply["n"] == 0
    # a pattern RE2 cannot run is refused by the primary as the statement's write error
    with pytest.raises(WriteError) as refused:
        c.update_many({"s": {"$regex": r"(a)\1"}}, {"$set": {"x": 1}})
    assert refused.value.code == 51091
    assert refused.value.details is not None
    assert refused.value.details["errmsg"].startswith("Regular expression is invalid: ")
    c.insert_one({"_id": 3})  # w: 3 again: every member still applies the log
    assert sorted(d["_id"] for d in c.find()) == [1, 3]
    assert cluster.wait_for_primary() == p


def _exchange_op_msg(sock: socket.socket, command: dict[str, Any], request_id: int
                     ) -> dict[str, Any]:
    sock.sendall(encode_op_msg_request(command, request_id))
    header = _recv(sock, 16)
    length, _, response_to, _ = struct.unpack("<iiii", header)
    assert response_to == request_id
    body = _recv(sock, length - 16)
    return bson.decode(body[5:])


def _recv(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        assert chunk, "the node closed the connection"
        data += chunk
    return data


def test_deeply_nested_bson_is_answered_and_connections_stay_usable(
        cluster: LocalCluster, db: Database[Any]) -> None:
    deep = RawBSONDocument(nested_raw(2000))
    # pymongo (the raw bytes go out as they are): an error reply, not a dropped connection
    with pytest.raises(OperationFailure) as insert:
        db.deep.insert_one(deep)
    assert insert.value.code == 15
    with pytest.raises(OperationFailure) as query:
        db.deep.find_one(deep)
    assert query.value.code == 15
    # past MongoDB's storage limit (180 levels) but within the BSON limit: a write error
    with pytest.raises(WriteError) as too_deep:
        db.deep.insert_one(RawBSONDocument(nested_raw(185)))
    assert too_deep.value.code == 15
    db.deep.insert_one(RawBSONDocument(nested_raw(150)))
    assert db.deep.count_documents({}) == 1
    # one wire connection: the error reply, then the same connection serves the next command
    p = cluster.wait_for_primary()
    wire_host, wire_port = str(cluster.members[p].wire_address).rsplit(":", 1)
    with socket.create_connection((wire_host, int(wire_port)), timeout=20) as sock:
        reply = _exchange_op_msg(sock, {"insert": "deep", "documents": [deep], "$db": DB}, 1)
        assert reply["ok"] == 0.0 and reply["code"] == 15, reply
        assert _exchange_op_msg(sock, {"ping": 1, "$db": "admin"}, 2)["ok"] == 1.0
    # gRPC: Run answers; on one Stream the error reply comes and the stream serves on
    payload = bson.encode({"insert": "deep", "documents": [deep]})
    with grpc.insecure_channel(cluster.members[p].address) as channel:
        stub = helogale_pb2_grpc.CommandStub(channel)
        run = stub.Run(helogale_pb2.CommandRequest(db=DB, command=payload), timeout=20)
        assert bson.decode(run.reply)["code"] == 15
        requests: queue.SimpleQueue[Any] = queue.SimpleQueue()
        replies = stub.Stream(iter(requests.get, None), timeout=30)
        for rid, cmd in ((1, payload), (2, bson.encode({"ping": 1}))):
            requests.put(helogale_pb2.CommandBatch(commands=[
                helogale_pb2.StreamCommand(request_id=rid, db=DB, command=cmd)]))
            (answer,) = next(replies).replies
            assert answer.request_id == rid
            got = bson.decode(answer.reply)
            assert (got["code"] == 15) if rid == 1 else (got["ok"] == 1.0), got
        requests.put(None)
    # the helogale client refuses to encode 2,000 levels at once, and keeps working
    nested: dict[str, Any] = {}
    inner = nested
    for _ in range(2000):
        inner["a"] = {}
        inner = inner["a"]
    with helogale.MongoClient(cluster.uri, serverSelectionTimeoutMS=30_000) as hc:
        with pytest.raises(helogale.errors.InvalidDocument):
            hc[DB].deep.insert_one(nested)
        assert hc[DB].deep.count_documents({}) == 1
    assert cluster.wait_for_primary() == p


# --- members stopped: run last --------------------------------------------------------------


def test_w3_with_a_member_down_times_out_then_replicates(cluster: LocalCluster,
                                                         db: Database[Any]) -> None:
    p = cluster.wait_for_primary()
    s = next(i for i in range(len(cluster.members)) if i != p)
    w3 = db.get_collection("w3", write_concern=WriteConcern(w=3, wtimeout=10_000))
    w3.insert_one({"_id": "before"})  # everyone holds the collection
    cluster.kill(s)
    try:
        short = db.get_collection("w3", write_concern=WriteConcern(w=3, wtimeout=700))
        with pytest.raises(WriteConcernError) as exc:
            short.insert_one({"_id": "during"})
        assert exc.value.code == 64
        details = exc.value.details or {}
        assert details["codeName"] == "WriteConcernFailed"
        assert details["errInfo"]["wtimeout"] is True
        # the write itself was applied and stays
        assert db.w3.find_one({"_id": "during"}) == {"_id": "during"}
    finally:
        cluster.restart(s)
    with direct(cluster, s) as back:
        wait_until(lambda: back[DB].w3.find_one({"_id": "during"}), 30,
                   "the restarted member to receive the write")
    w3.insert_one({"_id": "after"})  # w=3 is satisfiable again


def test_retryable_writes_survive_primary_sigkill(cluster: LocalCluster) -> None:
    assert cluster.wire_uri is not None
    recorder = Recorder()
    client: MongoClient[dict[str, Any]] = MongoClient(
        cluster.wire_uri, retryWrites=True, serverSelectionTimeoutMS=30_000,
        event_listeners=[recorder])
    wc = WriteConcern(w="majority", wtimeout=20_000)
    docs: Collection[Any] = client[DB].get_collection("failover", write_concern=wc)
    log: Collection[Any] = client[DB].get_collection("failover_log", write_concern=wc)
    log.insert_one({"_id": "log", "seq": [], "n": 0})
    acked: list[int] = []
    failed: list[tuple[int, str]] = []
    stop = threading.Event()

    def writer() -> None:
        i = 0
        while not stop.is_set():
            i += 1
            try:
                docs.insert_one({"_id": i})
                log.update_one({"_id": "log"}, {"$push": {"seq": i}, "$inc": {"n": 1}})
                acked.append(i)
            except PyMongoError as exc:  # an ambiguous outcome: at most once, checked below
                failed.append((i, repr(exc)))

    thread = threading.Thread(target=writer, name="pymongo-writer", daemon=True)
    old = cluster.wait_for_primary()
    thread.start()
    try:
        wait_until(lambda: len(acked) >= 30, 30, "writes before the kill")
        cluster.kill(old)
        killed_at = len(acked)
        cluster.wait_for_primary(30, exclude=old)
        wait_until(lambda: len(acked) >= killed_at + 30, 60, "writes after the failover")
    finally:
        stop.set()
        thread.join(60)
        cluster.restart(old)
    assert not thread.is_alive()
    try:
        seq = log.find_one({"_id": "log"})
        assert seq is not None
        present = {d["_id"] for d in docs.find({}, {"_id": 1})}
        # every acknowledged write is there, exactly once
        assert set(acked) <= present
        for i in acked:
            assert seq["seq"].count(i) == 1
        # an ambiguous write (error seen by the client) is there at most once
        assert all(seq["seq"].count(i) <= 1 for i, _ in failed)
        assert seq["n"] == len(seq["seq"])
        assert not [f for f in failed if "E11000" in f[1]], "a retry was applied twice"
        assert len(failed) <= 2, failed
    finally:
        client.close()
    cluster.wait_ready(old)
    assert len(acked) >= killed_at + 30
    retries = _retried_commands(recorder)
    print(f"failover: {len(acked)} acked, {len(failed)} failed, {retries} driver retries")
    # the write in flight when the primary died was resent with the same (lsid, txnNumber)
    assert retries >= 1


def _retried_commands(recorder: Recorder) -> int:
    """How many writes pymongo sent again with the same (lsid, txnNumber)."""
    seen: set[tuple[bytes, int]] = set()
    again = 0
    for name, cmd in list(recorder.commands):
        if name in ("insert", "update") and "txnNumber" in cmd:
            key = (bytes(cmd["lsid"]["id"]), int(cmd["txnNumber"]))
            again += key in seen
            seen.add(key)
    return again


def test_cluster_serves_after_everything(cluster: LocalCluster, db: Database[Any]) -> None:
    cluster.wait_for_primary()
    c = db.get_collection("final", write_concern=WriteConcern(w=3, wtimeout=30_000),
                          read_preference=ReadPreference.PRIMARY)
    c.insert_one({"_id": time.time()})
    assert c.count_documents({}) == 1
