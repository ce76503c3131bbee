"""The client against routers (a seed list of ``msg: "isdbgrid"`` servers), as pymongo treats
mongos: a Sharded topology, any router used for reads and writes, failover between routers.

Part 1 (no cluster): scripted in-process servers answering as routers, for the topology rules
and the retry policy's rules (a shard's NotWritablePrimary relayed by a router never marks the
router unknown). Part 2 (``cluster``): two real routers in front of a one-member shard; one is
SIGKILLed while a writer runs, and the writer sees no error."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

import helogale
from helogale.channel import Address
from helogale.errors import NotPrimaryError
from helogale.read_preferences import ReadPreference
from tests.client_scripted_server import UNAVAILABLE, ScriptedServer, wait_for

NOT_PRIMARY = {"ok": 0.0, "errmsg": "not primary (from shard1)", "code": 10107,
               "codeName": "NotWritablePrimary"}
CURSOR = {"ok": 1.0, "cursor": {"firstBatch": [{"_id": 1}], "id": 0, "ns": "db.c"}}


# --- part 1: scripted routers -------------------------------------------------------------------
@pytest.fixture
def routers() -> Iterator[list[ScriptedServer]]:
    servers = [ScriptedServer(set_name=None) for _ in range(2)]
    for s in servers:
        s.router()
        s.default = lambda db, cmd: ({**CURSOR} if next(iter(cmd)) == "find"
                                     else {"ok": 1.0, "n": 1})
    yield servers
    for s in servers:
        s.stop()


def _client(servers: list[ScriptedServer], **options: Any) -> helogale.MongoClient:
    options.setdefault("serverSelectionTimeoutMS", 3000)
    options.setdefault("heartbeatFrequencyMS", 200)
    hosts = ",".join(s.host for s in servers)
    return helogale.MongoClient(f"helogale://{hosts}/", **options)


def _both_known(client: helogale.MongoClient, servers: list[ScriptedServer]) -> None:
    wait_for(lambda: client.nodes == {s.address for s in servers})


class MarkSpy:
    """Records the addresses the retry policy marks unknown (and still marks them)."""

    def __init__(self, client: helogale.MongoClient) -> None:
        self.marked: list[Address] = []
        topology = client.topology
        original = topology.mark_unknown

        def mark(address: Address, error: BaseException) -> None:
            self.marked.append(address)
            original(address, error)

        topology.mark_unknown = mark  # type: ignore[method-assign]


def test_router_seeds_make_a_sharded_topology_using_every_router(
        routers: list[ScriptedServer]) -> None:
    # a wide window: the first hello's round trip includes connecting, tens of ms on a busy box
    with _client(routers, localThresholdMS=1000) as client:
        _both_known(client, routers)
        assert client.topology.topology_type == "Sharded"
        assert client.is_mongos and client.is_primary and client.primary is None
        for i in range(40):
            client.db.c.insert_one({"i": i})
            client.db.c.find_one({"i": i})
        # any router within the latency window serves reads and writes
        for r in routers:
            assert len(r.commands("insert")) > 0 and len(r.commands("find")) > 0
            assert all("lsid" in c and "txnNumber" in c for c in r.commands("insert"))


def test_read_preference_goes_to_the_router_but_does_not_select(
        routers: list[ScriptedServer]) -> None:
    with _client(routers, readPreference="secondaryPreferred") as client:
        _both_known(client, routers)
        client.db.c.find_one({})
        client.db.get_collection("c", read_preference=ReadPreference.NEAREST).find_one({})
        client.db.get_collection("c", read_preference=ReadPreference.PRIMARY).find_one({})
    finds = [c for r in routers for c in r.commands("find")]
    prefs = sorted(str(c.get("$readPreference")) for c in finds)
    assert prefs == sorted(["{'mode': 'secondaryPreferred'}", "{'mode': 'nearest'}", "None"])


def test_all_routers_down_keeps_the_topology_sharded(routers: list[ScriptedServer]) -> None:
    with _client(routers) as client:
        _both_known(client, routers)
        for r in routers:
            r.hello_reply = UNAVAILABLE  # type: ignore[assignment]
        wait_for(lambda: client.nodes == frozenset())
        assert client.topology.topology_type == "Sharded"
        routers[1].router()
        wait_for(lambda: client.nodes == {routers[1].address})
        assert client.db.c.insert_one({"x": 1}).acknowledged


def test_a_replica_set_member_among_router_seeds_is_dropped(
        routers: list[ScriptedServer]) -> None:
    member = ScriptedServer()  # a replica-set primary of rs0, answering once routers are seen
    member.hello_reply = UNAVAILABLE  # type: ignore[assignment]
    try:
        with _client([*routers, member]) as client:
            _both_known(client, routers)
            member.primary(True)
            wait_for(lambda: member.address not in {s.address for s in client.topology.servers()})
            assert client.topology.topology_type == "Sharded"
    finally:
        member.stop()


def test_replica_set_option_drops_router_seeds(routers: list[ScriptedServer]) -> None:
    """``replicaSet=`` says the seeds are members of that set: a router is not one."""
    with _client(routers, replicaSet="rs0", serverSelectionTimeoutMS=300) as client:
        wait_for(lambda: client.topology.servers() == [])
        assert client.topology.topology_type == "ReplicaSetNoPrimary"
        with pytest.raises(helogale.errors.ServerSelectionTimeoutError):
            client.db.c.insert_one({"x": 1})


def test_not_primary_from_a_router_keeps_it_known_and_retries_on_the_other(
        routers: list[ScriptedServer]) -> None:
    """A router relays a shard's NotWritablePrimary (its shard failed over and the router gave
    up waiting): the router itself is fine, so it is not marked unknown; the retryable write
    runs again, with the same lsid and txnNumber, on the other router."""
    order: list[int] = []
    lock = threading.Lock()

    def answer_for(i: int) -> Any:
        def answer(db: str, cmd: dict[str, Any]) -> dict[str, Any]:
            with lock:
                order.append(i)
                first = len(order) == 1
            return NOT_PRIMARY if first else {"ok": 1.0, "n": 1}
        return answer

    for i, r in enumerate(routers):
        r.default = answer_for(i)
    with _client(routers) as client:
        _both_known(client, routers)
        spy = MarkSpy(client)
        assert client.db.c.insert_one({"x": 1}).acknowledged
        assert spy.marked == []
        assert client.nodes == {r.address for r in routers}
        assert client.executor.retries == 1
        assert order[0] != order[1]  # the retry went to the other router
        first = routers[order[0]].commands("insert")[0]
        second = routers[order[1]].commands("insert")[0]
        assert repr(first["lsid"]) == repr(second["lsid"])
        assert first["txnNumber"] == second["txnNumber"]

        # a write that is not retryable fails with the router's error, still not marking it
        order.clear()
        with pytest.raises(NotPrimaryError):
            client.db.c.update_many({}, {"$set": {"a": 1}})
        assert len(order) == 1 and spy.marked == []


def test_network_error_marks_the_router_unknown_and_moves_to_the_other(
        routers: list[ScriptedServer]) -> None:
    routers[0].script("insert", UNAVAILABLE)  # router 0's first insert: connection reset
    with _client(routers) as client:
        _both_known(client, routers)
        spy = MarkSpy(client)
        for k in range(60):  # until an insert picks router 0 (random within the window)
            client.db.c.insert_one({"k": k})
            if client.executor.retries:
                break
        assert client.executor.retries == 1
        assert spy.marked == [routers[0].address]
        # the attempt that failed on router 0 ran again on router 1, same lsid and txnNumber
        failed = routers[0].commands("insert")[0]
        retried = routers[1].commands("insert")[-1]
        assert failed["txnNumber"] == retried["txnNumber"]
        assert repr(failed["lsid"]) == repr(retried["lsid"])


def test_read_moves_to_the_other_router_after_a_network_error(
        routers: list[ScriptedServer]) -> None:
    routers[0].script("find", *[UNAVAILABLE] * 20)
    with _client(routers) as client:
        _both_known(client, routers)
        for _ in range(10):
            assert client.db.c.find_one({}) == {"_id": 1}
        assert client.executor.retries >= 1
        assert routers[1].commands("find")


# --- part 2: two real routers -------------------------------------------------------------------
@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    from node.sharded_cluster import ShardedCluster

    c = ShardedCluster(shards=1, members=1, routers=2, wire=False).start(timeout=90)
    try:
        yield c
    finally:
        c.stop()


@pytest.mark.cluster
def test_operations_through_two_routers(cluster: Any) -> None:
    with helogale.MongoClient(cluster.uri, serverSelectionTimeoutMS=20000) as client:
        wait_for(lambda: len(client.nodes) == 2, 30)
        assert client.topology.topology_type == "Sharded"
        coll = client.routed.animals
        coll.insert_many([{"_id": i, "name": f"a{i}"} for i in range(250)])
        assert coll.update_one({"_id": 3}, {"$set": {"x": 1}}).modified_count == 1
        assert coll.find_one({"_id": 3}) == {"_id": 3, "name": "a3", "x": 1}
        # a cursor longer than one batch: its getMores stay on the router that opened it
        assert [d["_id"] for d in coll.find().sort("_id", 1).batch_size(40)] == list(range(250))
        assert coll.count_documents({"_id": {"$lt": 100}}) == 100
        assert coll.delete_one({"_id": 249}).deleted_count == 1


class Writer(threading.Thread):
    """Inserts ``{seq: i}`` and reads each back, until stopped."""

    def __init__(self, coll: helogale.Collection) -> None:
        super().__init__(name="router-writer", daemon=True)
        self.coll = coll
        self.stop_event = threading.Event()
        self.acked: list[int] = []
        self.errors: list[BaseException] = []

    def run(self) -> None:
        seq = 0
        try:
            while not self.stop_event.is_set():
                self.coll.insert_one({"seq": seq})
                self.acked.append(seq)
                assert self.coll.find_one({"seq": seq}) is not None
                seq += 1
        except BaseException as exc:  # the test asserts there is none
            self.errors.append(exc)


@pytest.mark.cluster
def test_client_moves_to_the_other_router_when_one_is_killed(cluster: Any) -> None:
    # a wide latency window: the writer uses both routers, so the kill hits requests
    with helogale.MongoClient(cluster.uri, serverSelectionTimeoutMS=20000, localThresholdMS=1000,
                              heartbeatFrequencyMS=500, connectTimeoutMS=2000) as client:
        wait_for(lambda: len(client.nodes) == 2, 30)
        coll = client.routed.failover
        writer = Writer(coll)
        writer.start()
        try:
            wait_for(lambda: len(writer.acked) >= 30 or bool(writer.errors), 60)
            before = len(writer.acked)
            cluster.kill_router(0)
            wait_for(lambda: len(writer.acked) >= before + 60 or bool(writer.errors), 60)
        finally:
            writer.stop_event.set()
            writer.join(30)
        assert writer.errors == [], writer.errors
        assert client.executor.retries >= 1  # the kill was survived by retrying
        survivor = helogale.uri.parse_host(cluster.routers[1].address)
        assert client.nodes == {survivor}
        seqs = Counter(d["seq"] for d in coll.find({}, {"seq": 1}))
        assert set(seqs) == set(writer.acked) and all(n == 1 for n in seqs.values())
        # the router comes back and the client uses it again
        cluster.start_router(0)
        cluster.wait_router(0)
        wait_for(lambda: len(client.nodes) == 2, 30)
