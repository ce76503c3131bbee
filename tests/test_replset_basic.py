"""A 3-member replica set of real processes: election, writes, reads, topology, status; and
(same set) forged Raft streams refused and replSetReconfig's checks."""

from __future__ import annotations

import datetime
import os
import stat
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path
from typing import Any

import bson
import grpc
import pytest
from pymongo import MongoClient

from node.local_cluster import LocalCluster, free_ports, wait_until
from proto import helogale_pb2, helogale_pb2_grpc
from raft.types import ConfState, Message, MessageType, Snapshot, SnapshotMeta
from tests.raft_io import forge
from tests.replset_helpers import SECONDARY, wait_has, write_primary

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    with LocalCluster(3, wire=True) as c:
        yield c


def test_one_primary_and_topology(cluster: LocalCluster) -> None:
    p = cluster.wait_for_primary()

    def all_know_primary() -> list | None:
        hs = [cluster.command(i, {"hello": 1}) for i in range(3)]
        return hs if all("primary" in h for h in hs) else None

    hellos = wait_until(all_know_primary, 10, "every member to learn the primary")
    assert [h["isWritablePrimary"] for h in hellos].count(True) == 1
    assert hellos[p]["isWritablePrimary"] and not hellos[p]["secondary"]
    for i, h in enumerate(hellos):
        assert h["setName"] == "rs0"
        assert sorted(h["hosts"]) == sorted(cluster.addresses)
        assert h["me"] == cluster.members[i].address
        assert h["primary"] == cluster.members[p].address
        if i != p:
            assert h["secondary"] is True


def test_writes_replicate_and_secondaries_serve_reads_by_preference(cluster: LocalCluster
                                                                   ) -> None:
    p = cluster.wait_for_primary()
    reply = cluster.command(p, {"insert": "c", "documents": [{"_id": i} for i in range(20)],
                                "writeConcern": {"w": "majority"}}, db="app")
    assert reply == {"n": 20, "ok": 1.0}
    s = (p + 1) % 3
    refused = cluster.command(s, {"find": "c"}, db="app")
    assert refused["ok"] == 0.0 and refused["code"] == 13435
    wait_has(cluster, s, set(range(20)))
    hello = cluster.command(s, {"hello": 1})
    age = datetime.datetime.now(datetime.UTC) - hello["lastWrite"]["lastWriteDate"]
    assert datetime.timedelta(0) <= age < datetime.timedelta(seconds=60)
    reply = cluster.command(s, {"find": "c", "filter": {"_id": {"$lt": 3}},
                                "$readPreference": SECONDARY}, db="app")
    assert [d["_id"] for d in reply["cursor"]["firstBatch"]] == [0, 1, 2]


def test_secondary_refuses_writes_with_primary_address(cluster: LocalCluster) -> None:
    p = cluster.wait_for_primary()
    s = (p + 2) % 3
    wait_until(lambda: "primary" in cluster.command(s, {"hello": 1}), 10, "a known primary")
    reply = cluster.command(s, {"insert": "c", "documents": [{"_id": "x"}]}, db="app")
    assert reply["ok"] == 0.0 and reply["code"] == 10107
    assert reply["codeName"] == "NotWritablePrimary"
    assert reply["primary"] == cluster.members[p].address
    found = cluster.command(p, {"find": "c", "filter": {"_id": "x"}}, db="app")
    assert found["cursor"]["firstBatch"] == []


def test_linearizable_read_on_primary(cluster: LocalCluster) -> None:
    p = cluster.wait_for_primary()
    cluster.command(p, {"insert": "lin", "documents": [{"_id": 1}]}, db="app")
    reply = cluster.command(p, {"find": "lin", "readConcern": {"level": "linearizable"}},
                            db="app")
    assert reply["cursor"]["firstBatch"] == [{"_id": 1}]
    s = (p + 1) % 3
    reply = cluster.command(s, {"find": "lin", "readConcern": {"level": "linearizable"},
                                "$readPreference": SECONDARY}, db="app")
    assert reply["ok"] == 0.0 and reply["code"] == 10107


def test_repl_set_get_status_reports_every_member(cluster: LocalCluster) -> None:
    p = cluster.wait_for_primary()
    cluster.command(p, {"insert": "st", "documents": [{"_id": 1}], "writeConcern": {"w": 3}},
                    db="app")

    def caught_up() -> dict | None:
        st = cluster.command(p, {"replSetGetStatus": 1})
        if all(m.get("lagEntries", 0) == 0 for m in st["members"]):
            return st
        return None

    st = wait_until(caught_up, 10, "members caught up")
    assert st["set"] == "rs0" and st["myState"] == 1 and st["term"] >= 1
    states = sorted(m["stateStr"] for m in st["members"])
    assert states == ["PRIMARY", "SECONDARY", "SECONDARY"]
    me = next(m for m in st["members"] if m.get("self"))
    assert me["appliedIndex"] == st["appliedIndex"] and me["commitIndex"] >= me["appliedIndex"]
    s = (p + 1) % 3
    sst = cluster.command(s, {"replSetGetStatus": 1})
    assert sst["myState"] == 2 and "lagEntries" in next(m for m in sst["members"]
                                                         if m.get("self"))


def test_bad_input_keeps_the_member_serving(cluster: LocalCluster) -> None:
    p = cluster.wait_for_primary()
    channel = grpc.insecure_channel(cluster.members[p].address)
    stub = helogale_pb2_grpc.CommandStub(channel)
    for junk in (b"", b"\x01\x02", b"\x10\x00\x00\x00\x03a\x00" + b"\xff" * 9):
        raw = stub.Run(helogale_pb2.CommandRequest(db="app", command=junk), timeout=10)
        reply = bson.decode(raw.reply)
        assert reply["ok"] == 0.0 and reply["code"] == 22, reply
    channel.close()
    for cmd in ({"nonsense": 1}, {"insert": 3}, {"find": "c", "filter": {"$where": 1}},
                {"insert": "c", "documents": [{"_id": 1, "$x": 1}]}):
        reply = cluster.command(p, cmd, db="app")
        assert reply["ok"] == 0.0 or reply.get("writeErrors"), reply
    assert cluster.command(p, {"ping": 1}) == {"ok": 1.0}


def test_thousands_of_open_cursors_leave_hello_and_replication_alone(cluster: LocalCluster
                                                                      ) -> None:
    """Reported by hand: 5,000 open cursors took every LMDB reader slot (4,096), and the
    primary answered even ``hello`` with ReadersFullError. Open cursors are capped (4,096 per
    member by default, 1,024 per connection) below a reader reserve for everything else."""
    p = cluster.wait_for_primary()
    seed = cluster.command(p, {"insert": "cursors", "documents": [{"_id": 1}, {"_id": 2}],
                               "writeConcern": {"w": "majority"}}, db="app")
    assert seed["ok"] == 1.0, seed
    # five client connections (a local subchannel pool each: no shared TCP connection)
    channels = [grpc.insecure_channel(cluster.members[p].address,
                                      options=[("grpc.use_local_subchannel_pool", 1)])
                for _ in range(5)]
    stubs = [helogale_pb2_grpc.CommandStub(c) for c in channels]
    opened: list[list[int]] = [[] for _ in channels]
    refused: list[int] = []

    def run(k: int, cmd: dict) -> dict:
        raw = stubs[k].Run(helogale_pb2.CommandRequest(db="app", command=bson.encode(cmd)),
                           timeout=30)
        return bson.decode(raw.reply)

    def open_cursors(k: int) -> None:
        for _ in range(1000):
            reply = run(k, {"find": "cursors", "batchSize": 1})
            if reply["ok"] == 1.0:
                opened[k].append(int(reply["cursor"]["id"]))
            else:
                refused.append(reply["code"])

    threads = [threading.Thread(target=open_cursors, args=(k,)) for k in range(len(channels))]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sum(len(ids) for ids in opened) == 4096
        assert len(refused) == 904 and set(refused) == {146}
        hello = cluster.command(p, {"hello": 1}, timeout=5)
        assert hello["ok"] == 1.0 and hello["isWritablePrimary"] is True
        assert cluster.command(p, {"ping": 1}, timeout=5) == {"ok": 1.0}
        write = cluster.command(p, {"insert": "cursors", "documents": [{"_id": 3}],
                                    "writeConcern": {"w": 3, "wtimeout": 20_000}}, db="app")
        assert write["ok"] == 1.0 and write["n"] == 1 and "writeConcernError" not in write
        for i in range(3):
            if i != p:
                wait_has(cluster, i, {1, 2, 3}, coll="cursors")
        # a read that needs no cursor is still answered
        one = cluster.command(p, {"find": "cursors", "filter": {"_id": 3}}, db="app")
        assert one["cursor"]["firstBatch"] == [{"_id": 3}]
    finally:
        for k, ids in enumerate(opened):
            if ids:
                run(k, {"killCursors": "cursors", "cursors": ids})
            channels[k].close()
    status = cluster.command(p, {"serverStatus": 1})
    assert status["metrics"]["cursor"]["open"]["total"] == 0
# ---------------------------------------------------------------------- cluster authentication
def _self_status(cluster: LocalCluster, i: int) -> dict[str, Any]:
    st = cluster.command(i, {"replSetGetStatus": 1})
    return {**next(m for m in st["members"] if m.get("self")), "term": int(st["term"])}


def _log(cluster: LocalCluster, i: int) -> str:
    path = os.path.join(cluster.data_dir, f"member{cluster.members[i].member_id}.log")
    with open(path, encoding="utf-8", errors="replace") as fh:
        return fh.read()


def test_forged_raft_streams_are_refused_and_the_set_keeps_working(cluster: LocalCluster
                                                                    ) -> None:
    """Before cluster keys, anyone reaching a Raft port could acknowledge entries for the
    followers: with both followers stopped, a forged APPEND_RESP made the leader commit (and
    acknowledge) a write only it held. Now such streams are refused (``forge`` reports it as UNAUTHENTICATED)."""
    c = cluster
    assert stat.S_IMODE(os.stat(c.keyfile).st_mode) == 0o600
    p = first = c.wait_for_primary()
    lead = c.members[p]
    followers = [i for i in range(3) if i != p]
    c.command(p, {"insert": "auth", "documents": [{"_id": "before"}],
                  "writeConcern": {"w": 3}}, db="app")
    before = _self_status(c, p)
    for i in followers:
        c.pause(i)
    pool = ThreadPoolExecutor(1)
    try:
        pending = pool.submit(c.command, p, {"insert": "auth", "documents": [{"_id": "held"}]},
                              "app", 60.0)
        last = wait_until(lambda: (lambda s: int(s["lastIndex"]) if int(s["lastIndex"])
                                   > int(before["lastIndex"]) else None)(_self_status(c, p)),
                          10, "the leader to append the write")
        for i in followers:
            fid = c.members[i].member_id
            ack = Message(MessageType.APPEND_RESP, to=lead.member_id, frm=fid,
                          term=before["term"], index=last)
            assert forge.send(lead.raft_address, [forge.batch(fid, [ack])], kind="tcp") \
                == grpc.StatusCode.UNAUTHENTICATED
        wrong_key = forge.credentials(lead.raft_address, b"bm90LXRoZS1rZXk=",
                                      c.members[followers[0]].member_id, lead.member_id,
                                      kind="tcp")
        assert forge.send(lead.raft_address, [forge.batch(
            c.members[followers[0]].member_id, [])], wrong_key, kind="tcp") \
            == grpc.StatusCode.UNAUTHENTICATED
        try:  # nobody else holds it: it must not be acknowledged (the leader may step down)
            early = pending.result(timeout=1.0)
        except FutureTimeout:
            early = None
        assert early is None or early.get("ok") == 0.0, early
        assert int(_self_status(c, p)["commitIndex"]) < last
    finally:
        for i in followers:
            c.resume(i)
        pool.shutdown(wait=False)
    # a forged heartbeat (huge commit) and a forged snapshot at a follower: refused too
    p = c.wait_for_primary()
    lead = c.members[p]
    f = c.members[next(i for i in range(3) if i != p)]
    term = _self_status(c, p)["term"]
    meta = SnapshotMeta(10**6, term, ConfState(voters=frozenset({1, 2, 3})))
    for m in (Message(MessageType.HEARTBEAT, to=f.member_id, frm=lead.member_id, term=term,
                      commit=10**9),
              Message(MessageType.SNAPSHOT, to=f.member_id, frm=lead.member_id, term=term,
                      index=meta.index, log_term=term, snapshot=Snapshot(meta, b"junk"),
                      done=True)):
        assert forge.send(f.raft_address, [forge.batch(lead.member_id, [m])], kind="tcp") \
            == grpc.StatusCode.UNAUTHENTICATED
    reply = write_primary(c, {"insert": "auth", "documents": [{"_id": "after"}],
                              "writeConcern": {"w": 3, "wtimeout": 20000}})
    assert reply == {"n": 1, "ok": 1.0}
    wait_has(c, c.members.index(f), {"before", "after"}, coll="auth")
    assert not list((Path(f.data_dir) / "raft" / "snap").glob(f"{meta.index:016x}.snap"))
    assert "refused a stream" in _log(c, first)
    assert "refused a stream" in _log(c, c.members.index(f))
    assert all("without a cluster key" not in _log(c, i) for i in range(3))


def test_reconfig_refuses_bad_or_unreachable_configs_and_changes_nothing(
        cluster: LocalCluster) -> None:
    c = cluster
    p = c.wait_for_primary()
    before = c.command(p, {"replSetGetConfig": 1})["config"]
    hosts = sorted(c.command(p, {"hello": 1})["hosts"])
    version = int(before["version"])
    good = [c.member_doc(i) for i in range(3)]
    port, raft_port = free_ports(2)
    ghost = {"_id": 9, "host": f"127.0.0.1:{port}", "raftHost": f"127.0.0.1:{raft_port}"}
    ghost2 = {"_id": 10, "host": f"127.0.0.1:{raft_port}", "raftHost": f"127.0.0.1:{port}"}
    cases: list[tuple[dict[str, Any], int]] = [
        ({"members": [{**good[0], "priority": "high"}, *good[1:]]}, 14),
        ({"members": [{**good[0], "arbiterOnly": True}, *good[1:]]}, 93),
        ({"members": [{**good[0], "raftHost": "127.0.0.1"}, *good[1:]]}, 93),
        ({"members": [good[0], {**good[1], "host": good[0]["host"]}, good[2]]}, 93),
        ({"members": good, "version": version}, 103),
        ({"members": good, "_id": "other"}, 103),
        ({"members": [good[p], ghost, ghost2]}, 74),  # 1 of 3 new voters reachable
    ]
    for extra, code in cases:
        cfg = {"_id": "rs0", "version": version + 1, **extra}
        reply = c.command(p, {"replSetReconfig": cfg}, timeout=30)
        assert reply["ok"] == 0.0 and reply["code"] == code, (extra, reply)
    assert c.command(p, {"replSetGetConfig": 1})["config"] == before
    assert sorted(c.command(p, {"hello": 1})["hosts"]) == hosts
    assert len(c.command(p, {"replSetGetStatus": 1})["members"]) == 3


def test_tagged_write_concerns_wait_for_the_tags_they_name(cluster: LocalCluster) -> None:
    """Member tags and ``getLastErrorModes``: ``w: "twoDCs"`` waits until the members holding
    the write cover two ``dc`` values. With the only ``west`` member paused, ``w: 2`` is still
    met (two ``east`` members) but ``w: "twoDCs"`` times out with a writeConcernError, and the
    write stays applied."""
    c = cluster
    p = c.wait_for_primary()
    east2, west = [i for i in range(3) if i != p]
    dcs = {p: "east", east2: "east", west: "west"}
    version = int(c.command(p, {"replSetGetConfig": 1})["config"]["version"])
    cfg = {"_id": "rs0", "version": version + 1,
           "members": [{**c.member_doc(i), "tags": {"dc": dcs[i]}} for i in range(3)],
           "settings": {"getLastErrorModes": {"twoDCs": {"dc": 2}}}}
    assert c.command(p, {"replSetReconfig": cfg}, timeout=30)["ok"] == 1.0
    stored = c.command(p, {"replSetGetConfig": 1})["config"]
    assert stored["settings"] == {"getLastErrorModes": {"twoDCs": {"dc": 2}}}
    assert sorted(m["tags"]["dc"] for m in stored["members"]) == ["east", "east", "west"]
    for i in range(3):  # hello shows each member's tags: drivers' tag-set read preferences
        wait_until(lambda i=i: c.command(i, {"hello": 1}).get("tags") == {"dc": dcs[i]}, 30,
                   f"member {i}'s tags in hello")

    def insert(doc_id: int, w: Any) -> dict[str, Any]:
        return c.command(p, {"insert": "tagged", "documents": [{"_id": doc_id}],
                             "writeConcern": {"w": w, "wtimeout": 1500}}, db="app", timeout=30)

    ok = insert(1, "twoDCs")
    assert ok["ok"] == 1.0 and ok["n"] == 1 and "writeConcernError" not in ok
    assert insert(2, {"dc": 3})["code"] == 100  # only two dc values exist
    assert insert(3, "threeDCs")["code"] == 79
    tagged_read = MongoClient(c.wire_uri, serverSelectionTimeoutMS=20000,
                              readPreference="secondary", readPreferenceTags="dc:west")
    try:  # pymongo's tag-set read preference picks the west member by its hello tags
        served: list[str] = []

        def read_on_west() -> bool:  # west holds _id 1 durably, may not have applied it yet
            cursor = tagged_read.app.tagged.find({"_id": 1})
            found = list(cursor)
            served.append(f"{cursor.address[0]}:{cursor.address[1]}")
            return found == [{"_id": 1}]

        wait_until(read_on_west, 30, "the west member to serve the tagged read")
        assert set(served) == {c.members[west].wire_address}
    finally:
        tagged_read.close()
    c.pause(west)
    try:
        assert "writeConcernError" not in insert(4, 2)  # the two east members hold it
        short = insert(5, "twoDCs")
        assert short["n"] == 1 and short["writeConcernError"]["code"] == 64
        assert short["writeConcernError"]["errInfo"]["writeConcern"]["w"] == "twoDCs"
        found = c.command(p, {"find": "tagged", "filter": {"_id": 5}}, db="app")
        assert found["cursor"]["firstBatch"] == [{"_id": 5}]  # never undone
    finally:
        c.resume(west)
    assert "writeConcernError" not in insert(6, {"dc": 2})
