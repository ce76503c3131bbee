"""The asyncio client (``helogale.asyncio.AsyncMongoClient``). Part 1: the API against an
in-process node. Part 2: against scripted servers, that it sends exactly the threaded client's
commands and retries as it does (same ``lsid``/``txnNumber`` on every attempt; never a write
that went without them). Part 3 (``sharded``): a burst of ``$inc`` upserts through the routers
while the owning shard's primary is SIGKILLed. Tests drive coroutines with ``asyncio.run``."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest

import helogale
from helogale import ReturnDocument, UpdateOne
from helogale.asyncio import AsyncMongoClient
from helogale.asyncio.gridfs import AsyncGridFSBucket
from helogale.errors import (
    AutoReconnect,
    BulkWriteError,
    DuplicateKeyError,
    InvalidOperation,
    OperationFailure,
)
from helogale.gridfs import GridFSBucket, NoFile
from node.local_cluster import free_ports
from node.server.app import NodeApp
from node.server.config import NodeConfig
from node.sharded_cluster import ShardedCluster
from tests.client_scripted_server import UNAVAILABLE, ScriptedServer
from tests.sharded_helpers import ok


async def until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait on the event loop (its monitor tasks keep running) until ``predicate()``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        assert loop.time() < deadline, "the condition did not become true"
        await asyncio.sleep(0.01)


def run(coro_fn: Callable[[AsyncMongoClient], Awaitable[Any]], uri: str, **options: Any) -> Any:
    """``coro_fn(client)`` on a fresh event loop, with a client closed afterwards."""
    options.setdefault("serverSelectionTimeoutMS", 5000)

    async def main() -> Any:
        async with AsyncMongoClient(uri, **options) as client:
            return await coro_fn(client)

    return asyncio.run(main())


# --- part 1: the API against an in-process node ----------------------------------------------------
@pytest.fixture(scope="module")
def node_uri() -> Iterator[str]:
    [port] = free_ports(1)
    app = NodeApp(NodeConfig(member_id=1, listen=f"127.0.0.1:{port}"), standalone=True).start()
    yield f"helogale://127.0.0.1:{port}/"
    app.stop()


def test_crud_round_trip(node_uri: str) -> None:
    async def body(client: AsyncMongoClient) -> None:
        coll = client.crud.things
        await coll.drop()
        one = await coll.insert_one({"_id": 0, "kind": "first"})
        assert one.inserted_id == 0
        many = await coll.insert_many([{"_id": i, "n": i} for i in range(1, 251)])
        assert many.inserted_ids == list(range(1, 251))
        assert await coll.count_documents({}) == 251
        assert await coll.count_documents({"n": {"$gte": 200}}) == 51
        assert await coll.estimated_document_count() == 251
        assert await coll.find_one({"kind": "first"}) == {"_id": 0, "kind": "first"}
        assert await coll.find_one(3) == {"_id": 3, "n": 3}
        assert await coll.find_one({"_id": "missing"}) is None
        # a cursor streams in batches: async for, to_list, limit, skip, sort
        seen = [d["_id"] async for d in coll.find({"n": {"$gte": 1}}).batch_size(40)]
        assert seen == list(range(1, 251))
        top = await coll.find({}, {"_id": 1}).sort("n", -1).limit(3).to_list()
        assert top == [{"_id": 250}, {"_id": 249}, {"_id": 248}]
        assert len(await coll.find().skip(200).to_list(10)) == 10
        result = await coll.update_one({"_id": 1}, {"$inc": {"n": 100}})
        assert (result.matched_count, result.modified_count) == (1, 1)
        result = await coll.update_many({"n": {"$lte": 10}}, {"$set": {"small": True}})
        assert result.modified_count == 9  # 2..10 (1 is 101 now)
        result = await coll.replace_one({"_id": "new"}, {"v": 1}, upsert=True)
        assert result.upserted_id == "new"
        doc = await coll.find_one_and_update({"_id": "ctr"}, {"$inc": {"v": 1}}, upsert=True,
                                             return_document=ReturnDocument.AFTER)
        assert doc == {"_id": "ctr", "v": 1}
        before = await coll.find_one_and_update({"_id": "ctr"}, {"$inc": {"v": 1}})
        assert before == {"_id": "ctr", "v": 1}
        assert (await coll.find_one_and_delete({"_id": "ctr"})) == {"_id": "ctr", "v": 2}
        assert (await coll.delete_one({"_id": "new"})).deleted_count == 1
        assert (await coll.delete_many({"small": True})).deleted_count == 9
        assert sorted(await coll.distinct("kind")) == ["first"]
        cursor = await coll.aggregate([{"$match": {"n": {"$gte": 1}}},
                                       {"$group": {"_id": None, "total": {"$sum": "$n"}}}])
        [row] = await cursor.to_list()
        assert row["total"] == sum(range(1, 251)) + 100 - sum(range(2, 11))
        bulk = await coll.bulk_write([UpdateOne({"_id": 0}, {"$set": {"b": 1}})])
        assert bulk.modified_count == 1
        assert await coll.create_index("n") == "n_1"
        names = [i["name"] async for i in await coll.list_indexes()]
        assert names == ["_id_", "n_1"]
        assert "things" in await client.crud.list_collection_names()
        assert (await client.crud.command("ping"))["ok"] == 1.0

    run(body, node_uri)


def test_errors_are_the_threaded_clients(node_uri: str) -> None:
    async def body(client: AsyncMongoClient) -> None:
        coll = client.errs.c
        await coll.drop()
        await coll.insert_one({"_id": 1})
        with pytest.raises(DuplicateKeyError):
            await coll.insert_one({"_id": 1})
        with pytest.raises(BulkWriteError) as info:
            await coll.insert_many([{"_id": 2}, {"_id": 1}, {"_id": 3}])
        assert info.value.details["nInserted"] == 1
        with pytest.raises(ValueError):
            await coll.update_one({}, {"no_operator": 1})
        with pytest.raises(InvalidOperation):
            coll.find(cursor_type=helogale.CursorType.TAILABLE)

    run(body, node_uri)


def test_many_tasks_share_the_client(node_uri: str) -> None:
    async def body(client: AsyncMongoClient) -> int:
        coll = client.tasks.c
        await coll.drop()
        await asyncio.gather(*(coll.update_one({"_id": "n"}, {"$inc": {"v": 1}}, upsert=True)
                               for _ in range(300)))
        doc = await coll.find_one({"_id": "n"})
        return int(doc["v"])

    assert run(body, node_uri) == 300


def test_a_closed_client_refuses_work(node_uri: str) -> None:
    async def body() -> None:
        client = AsyncMongoClient(node_uri, serverSelectionTimeoutMS=2000)
        assert (await client.admin.command("ping"))["ok"] == 1.0
        await client.close()
        with pytest.raises(InvalidOperation):
            await client.db.c.find_one()

    asyncio.run(body())


def test_async_gridfs_shares_the_threaded_layout(node_uri: str) -> None:
    data = bytes(range(256)) * 2000  # 512000 bytes: a whole chunk of 255 KiB and a tail

    async def body(client: AsyncMongoClient) -> Any:
        bucket = AsyncGridFSBucket(client.gfs)
        file_id = await bucket.upload_from_stream("a.bin", data, metadata={"k": 1})
        out = await bucket.open_download_stream(file_id)
        assert (out.filename, out.length, out.metadata) == ("a.bin", len(data), {"k": 1})
        assert await out.read() == data
        assert [d["filename"] async for d in bucket.find({})] == ["a.bin"]
        return file_id

    file_id = run(body, node_uri)
    sync = helogale.MongoClient(node_uri)
    try:  # the threaded bucket reads it, and the chunks are where it expects them
        assert GridFSBucket(sync.gfs).open_download_stream(file_id).read() == data
        assert sync.gfs["fs.chunks"].count_documents({"files_id": file_id}) == 2
    finally:
        sync.close()

    async def delete(client: AsyncMongoClient) -> None:
        await AsyncGridFSBucket(client.gfs).delete(file_id)
        with pytest.raises(NoFile):
            await AsyncGridFSBucket(client.gfs).open_download_stream(file_id)

    run(delete, node_uri)


def test_a_client_from_before_a_fork_refuses_work(node_uri: str) -> None:
    """Its channels belong to the process that made it (``ProcessBound``, as the threaded
    client's; a real fork is tested in test_client_fork.py): here the pool is told it was made
    by another process."""
    async def body() -> None:
        client = AsyncMongoClient(node_uri, serverSelectionTimeoutMS=2000)
        assert (await client.admin.command("ping"))["ok"] == 1.0
        real_pid, client._channels.pid = client._channels.pid, -1
        with pytest.raises(InvalidOperation, match="after the fork"):
            await client.db.c.find_one()
        await client.close()  # does nothing in a "child"
        client._channels.pid = real_pid
        assert (await client.admin.command("ping"))["ok"] == 1.0
        await client.close()

    asyncio.run(body())


def test_scram_authentication() -> None:
    """Against an in-process node with ``auth``: SCRAM-SHA-256 (the threaded client's
    conversation) before the first command; a wrong password or none is refused."""
    [port] = free_ports(1)
    app = NodeApp(NodeConfig(member_id=1, listen=f"127.0.0.1:{port}", auth=True),
                  standalone=True).start()
    try:
        with helogale.MongoClient(f"helogale://127.0.0.1:{port}/") as bare:  # localhost exception
            bare.admin.command("createUser", "ann", pwd="ann-pw", roles=["root"])

        async def body(client: AsyncMongoClient) -> Any:
            await client.app.c.insert_one({"_id": 1})
            return await client.app.c.find_one()

        uri = f"helogale://ann:ann-pw@127.0.0.1:{port}/"
        assert run(body, uri) == {"_id": 1}
        with pytest.raises(OperationFailure) as refused:
            run(body, f"helogale://ann:wrong@127.0.0.1:{port}/")
        assert refused.value.code == 18
        with pytest.raises(OperationFailure) as anonymous:
            run(body, f"helogale://127.0.0.1:{port}/")
        assert anonymous.value.code == 13
    finally:
        app.stop()


# --- part 2: commands and retries against scripted servers ------------------------------------------
def _strip(cmd: dict[str, Any]) -> dict[str, Any]:
    """A command without what differs between runs (session id, generated ids)."""
    out = {k: v for k, v in cmd.items() if k != "lsid"}
    if "documents" in out:
        out["documents"] = [{k: v for k, v in d.items() if k != "_id"} for d in out["documents"]]
    return out


def test_it_sends_the_threaded_clients_commands() -> None:
    server = ScriptedServer()
    server.default = lambda db, cmd: (
        {"ok": 1.0, "cursor": {"firstBatch": [], "id": 0, "ns": f"{db}.c"}}
        if next(iter(cmd)) in ("find", "aggregate") else {"ok": 1.0, "n": 1, "value": None})
    uri = f"helogale://{server.host}/?replicaSet=rs0&w=majority"
    calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = [
        ("insert_one", ({"a": 1},), {}),
        ("insert_many", ([{"a": 1}, {"a": 2}],), {"ordered": False}),
        ("update_one", ({"a": 1}, {"$set": {"b": 2}}), {"upsert": True}),
        ("update_many", ({"a": 1}, {"$set": {"b": 2}}), {}),
        ("replace_one", ({"a": 1}, {"b": 2}), {}),
        ("delete_one", ({"a": 1},), {}),
        ("delete_many", ({"a": 1},), {}),
        ("find_one_and_update", ({"a": 1}, {"$inc": {"n": 1}}),
         {"upsert": True, "return_document": ReturnDocument.AFTER, "sort": [("a", -1)]}),
        ("count_documents", ({"a": 1},), {"limit": 5}),
        ("find_one", ({"a": 1},), {"projection": {"a": 1}}),
        ("aggregate", ([{"$match": {"a": 1}}],), {}),
        ("create_index", ([("a", 1), ("b", -1)],), {"unique": True}),
    ]
    try:
        sync = helogale.MongoClient(uri, serverSelectionTimeoutMS=3000)
        for name, args, kwargs in calls:
            getattr(sync.db.c, name)(*args, **kwargs)
        sync.close()
        threaded = [(db, _strip(cmd)) for db, cmd in server.received]
        server.received.clear()

        async def body(client: AsyncMongoClient) -> None:
            for name, args, kwargs in calls:
                await getattr(client.db.c, name)(*args, **kwargs)

        run(body, uri)
        asynchronous = [(db, _strip(cmd)) for db, cmd in server.received]
        assert asynchronous == threaded
        assert len(threaded) == len(calls)
    finally:
        server.stop()


def test_a_write_is_retried_on_another_router_with_the_same_session() -> None:
    routers = [ScriptedServer(set_name=None) for _ in range(2)]
    failed: list[int] = []

    def flaky(db: str, cmd: dict[str, Any]) -> dict[str, Any]:
        """The first update (on whichever router) fails as a lost shard would."""
        if not failed:
            failed.append(1)
            return {"ok": 0.0, "code": 6, "errmsg": "HostUnreachable", "codeName": "HostUnreachable"}
        return {"ok": 1.0, "n": 1, "nModified": 1}

    for s in routers:
        s.router()
        s.script("update", flaky)
    hosts = ",".join(s.host for s in routers)
    try:
        async def body(client: AsyncMongoClient) -> Any:
            await client.admin.command("ping")
            await until(lambda: client.nodes == {s.address for s in routers})
            return await client.db.c.update_one({"_id": 1}, {"$inc": {"n": 1}})

        result = run(body, f"helogale://{hosts}/", heartbeatFrequencyMS=200)
        assert result.matched_count == 1
        sent = [cmd for s in routers for cmd in s.commands("update")]
        assert len(sent) == 2  # the failed attempt on one router, the retry on the other
        assert {tuple(sorted(c["lsid"].items())) for c in sent} == {
            tuple(sorted(sent[0]["lsid"].items()))}
        assert {c["txnNumber"] for c in sent} == {sent[0]["txnNumber"]}
        assert all(len(s.commands("update")) == 1 for s in routers)  # one router each
    finally:
        for s in routers:
            s.stop()


def test_a_write_without_a_session_is_not_run_again() -> None:
    server = ScriptedServer(set_name=None)  # a standalone: takes no sessions
    server.script("insert", UNAVAILABLE)
    try:
        async def body(client: AsyncMongoClient) -> None:
            with pytest.raises(AutoReconnect):
                await client.db.c.insert_one({"x": 1})

        run(body, f"helogale://{server.host}/")
        [sent] = server.commands("insert")
        assert "lsid" not in sent and "txnNumber" not in sent
    finally:
        server.stop()


def test_it_follows_the_primary_of_a_replica_set() -> None:
    """A NotWritablePrimary answer: the member is marked unknown, the client finds the new
    primary and runs the write there with the same lsid and txnNumber."""
    a, b = ScriptedServer(), ScriptedServer()
    hosts = [a.host, b.host]
    a.primary(True, hosts)
    b.primary(False, hosts, primary=a.host)
    not_primary = {"ok": 0.0, "code": 10107, "errmsg": "not primary",
                   "codeName": "NotWritablePrimary"}

    def step_down(db: str, cmd: dict[str, Any]) -> dict[str, Any]:
        a.primary(False, hosts, primary=b.host)
        b.primary(True, hosts)
        return not_primary

    a.script("insert", step_down)
    a.default = lambda db, cmd: not_primary  # a deposed primary answers so from then on
    try:
        async def body(client: AsyncMongoClient) -> None:
            await client.db.c.insert_one({"_id": 7})

        run(body, f"helogale://{a.host}/?replicaSet=rs0", heartbeatFrequencyMS=200)
        # (a monitor's reply from before the step-down may send one more attempt to a)
        [retry] = b.commands("insert")
        for attempt in a.commands("insert"):
            assert (attempt["lsid"], attempt["txnNumber"]) == (retry["lsid"], retry["txnNumber"])
    finally:
        a.stop()
        b.stop()


# --- part 3: a burst through the routers across a shard-primary kill -------------------------------
def _primary_shard(cluster: ShardedCluster, db: str) -> int:
    reply = ok(cluster.router_command(0, {"find": "databases", "filter": {"_id": db}},
                                      db="config"))
    return int(reply["cursor"]["firstBatch"][0]["primary"][-1]) - 1


class Burst:
    """Tasks ``$inc``-upserting a few counters through one client until stopped; counts what
    was acknowledged; ``after(n)`` waits until ``n`` more were acknowledged."""

    def __init__(self, coll: Any, tasks: int, keys: int) -> None:
        self.coll = coll
        self.keys = [f"k{i}" for i in range(keys)]
        self.acked: Counter[str] = Counter()
        self.stop = asyncio.Event()
        self._progress = asyncio.Event()
        self.tasks = [asyncio.create_task(self._worker(k)) for k in range(tasks)]

    async def _worker(self, k: int) -> None:
        i = k
        while not self.stop.is_set():
            key = self.keys[i % len(self.keys)]
            await self.coll.update_one({"_id": key}, {"$inc": {"n": 1}}, upsert=True)
            self.acked[key] += 1
            self._progress.set()
            i += 1

    async def after(self, more: int) -> None:
        target = sum(self.acked.values()) + more
        while sum(self.acked.values()) < target:
            self._progress.clear()
            await asyncio.wait_for(self._progress.wait(), 120)

    async def finish(self) -> None:
        self.stop.set()
        await asyncio.gather(*self.tasks)  # raises the first failed request, if any


@pytest.mark.cluster
def test_async_upserts_survive_a_shard_primary_kill(sharded: ShardedCluster) -> None:
    """The shard's failover is waited out by the router; then a router is SIGKILLed under
    the burst, and the client itself retries the writes in flight on the other router, with
    the same session fields, so none is applied twice."""
    db_name = "async_burst"
    killed: list[tuple[Any, int]] = []
    router_killed: list[int] = []
    retries: list[int] = []

    async def body(client: AsyncMongoClient) -> tuple[Counter[str], dict[str, int]]:
        coll = client[db_name].counters
        await coll.delete_many({})
        shard = sharded.shards[_primary_shard(sharded, db_name)]
        burst = Burst(coll, tasks=16, keys=5)
        try:
            await burst.after(200)
            victim = await asyncio.to_thread(shard.wait_for_primary, 60)
            await asyncio.to_thread(shard.kill, victim)
            killed.append((shard, victim))
            await burst.after(200)  # acknowledged by the new primary
            await asyncio.to_thread(sharded.kill_router, 0)
            router_killed.append(0)
            await burst.after(200)  # through the other router
        finally:
            await burst.finish()
        stored = {d["_id"]: d["n"] async for d in coll.find()}
        retries.append(client.executor.retries)
        print(f"asyncio burst: {sum(burst.acked.values())} acknowledged $inc upserts across a "
              f"shard-primary kill and a router kill, {retries[0]} operations retried by the "
              "client")
        return burst.acked, stored

    try:
        acked, stored = run(body, sharded.uri, w="majority", serverSelectionTimeoutMS=60000)
    finally:
        for shard, victim in killed:
            shard.restart(victim)
            shard.wait_ready(victim, 60)
        for i in router_killed:
            sharded.start_router(i)
            sharded.wait_router(i)
    assert killed and router_killed, "a process was not killed"
    assert stored == dict(acked)  # every acknowledged increment counted exactly once
    assert retries[0] >= 1  # the router kill failed requests in flight: the client ran them again
