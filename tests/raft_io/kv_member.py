"""A tiny replicated key-value process: one ``RaftNode`` member plus a client endpoint.

Used by the real-process cluster tests and by ``python -m bench raft``. Clients talk to it
through the ``helogale.Command`` gRPC service (BSON command in, BSON reply out):

* ``{"put": key, "value": bytes}`` -> ``{"ok": 1, "index": n}`` once committed and applied here
* ``{"get": key, "linearizable": bool}`` -> ``{"ok": 1, "value": bytes | None, "applied": n}``
* ``{"status": 1}`` -> role, term, leader, commit, applied, log bounds, match indexes
* ``{"transfer": id}``, ``{"snapshot_now": 1}``
* ``{"wait_match": index, "n": n, "timeout": s}`` -> ``{"ok": 1, "reached": bool}``
* ``{"load": proposers, "duration": s, "size": bytes}`` -> in-process proposers' throughput

Puts also have a streaming form, ``/helogale.raftio.KV/Puts`` (bidirectional stream, raw bytes,
no protobuf): each request message is ``key + b"\0" + value`` (the log entry itself), each reply
``b"\1" + 8-byte big-endian index`` once committed and applied here, or ``b"\0" + BSON error
reply``; replies come in request order. A client holding one stream sends a put per message
instead of paying for one unary call per put.

Errors: not the leader -> ``{"ok": 0, "code": 10107, "codeName": "NotWritablePrimary",
"leader": id}``. Run: ``python -m tests.raft_io.kv_member --id 1 --dir D --peers
1=127.0.0.1:7001,2=...  --client 127.0.0.1:7101``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import struct
import sys
import threading
from collections import deque
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Future
from typing import Any

import bson
import grpc

from proto import helogale_pb2, helogale_pb2_grpc
from raft import trace
from raft.auth import load_keyfile
from raft.node import NotLeader, RaftNode, RaftNodeConfig, Snapshotter
from raft.types import Entry, RaftError, StateRole


class KV:
    """The state machine: a dict, applied in log order; snapshots are JSON of the dict."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.data: dict[str, bytes] = {}
        self.applied = 0

    def apply(self, entries: list[Entry]) -> None:
        with self.lock:
            for e in entries:
                if e.data:
                    key, _, value = e.data.partition(b"\0")
                    self.data[key.decode()] = value
                self.applied = e.index

    def take(self) -> bytes:
        with self.lock:
            return json.dumps({k: v.hex() for k, v in self.data.items()}).encode()

    def install(self, data: bytes) -> None:
        with self.lock:
            self.data = {k: bytes.fromhex(v) for k, v in json.loads(data).items()}


PUTS_METHOD = "/helogale.raftio.KV/Puts"


class LoopProposer:
    """Bridges the asyncio server to ``RaftNode`` in batches: proposals made during one event
    loop turn go to the node in ONE ``propose_many``; proposals the persist thread resolves
    are handed back to the loop with one ``call_soon_threadsafe`` per burst, not per future."""

    def __init__(self, node: RaftNode, loop: asyncio.AbstractEventLoop, timeout: float = 10.0) -> None:
        self.node = node
        self.loop = loop
        self.timeout = timeout
        self._batch: list[tuple[bytes, asyncio.Future[int]]] = []
        self._recent: deque[tuple[float, list[asyncio.Future[int]]]] = deque()
        self._done: deque[tuple[asyncio.Future[int], Future[int]]] = deque()
        self._lock = threading.Lock()
        self._wake_pending = False

    def propose(self, data: bytes) -> asyncio.Future[int]:
        fut: asyncio.Future[int] = self.loop.create_future()
        if not self._batch:
            self.loop.call_soon(self._flush)
        self._batch.append((data, fut))
        return fut

    async def expire(self) -> None:
        """Fail proposals still unresolved ``timeout`` seconds after they were handed over
        (checked every second; a per-proposal ``wait_for`` would cost a timer each)."""
        while True:
            await asyncio.sleep(1.0)
            old = self.loop.time() - self.timeout
            while self._recent and self._recent[0][0] < old:
                for fut in self._recent.popleft()[1]:
                    if not fut.done():
                        fut.set_exception(TimeoutError("proposal not committed in time"))

    def _flush(self) -> None:
        batch, self._batch = self._batch, []
        self._recent.append((self.loop.time(), [f for _, f in batch]))
        for (_, afut), cfut in zip(batch, self.node.propose_many([d for d, _ in batch])):
            cfut.add_done_callback(lambda cf, af=afut: self._resolved(af, cf))

    def _resolved(self, afut: asyncio.Future[int], cfut: Future[int]) -> None:
        with self._lock:  # called on the persist thread (or the loop thread on errors)
            self._done.append((afut, cfut))
            if self._wake_pending:
                return
            self._wake_pending = True
        self.loop.call_soon_threadsafe(self._drain)

    def _drain(self) -> None:
        with self._lock:
            done = list(self._done)
            self._done.clear()
            self._wake_pending = False
        for afut, cfut in done:
            if afut.done():
                continue
            exc = cfut.exception()
            if exc is None:
                if trace.ENABLED:
                    trace.mark(self.node.id, "reply", cfut.result())
                afut.set_result(cfut.result())
            else:
                afut.set_exception(exc)


class Member(helogale_pb2_grpc.CommandServicer):
    """The client endpoint, on gRPC's asyncio server: waiting requests cost no thread."""

    def __init__(self, node: RaftNode, kv: KV, proposer: LoopProposer) -> None:
        self.node = node
        self.kv = kv
        self.proposer = proposer

    async def Puts(self, requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext) -> AsyncIterator[bytes]:
        """The streaming put endpoint (see the module docstring)."""
        async for data in requests:
            try:
                index = await self.proposer.propose(data)
            except NotLeader as exc:
                yield b"\0" + bson.encode({"ok": 0, "code": 10107, "codeName": "NotWritablePrimary",
                                           "errmsg": str(exc), "leader": exc.leader})
            except (RaftError, TimeoutError) as exc:
                yield b"\0" + bson.encode({"ok": 0, "code": 1,
                                           "errmsg": f"{type(exc).__name__}: {exc}"})
            else:
                yield b"\1" + struct.pack(">Q", index)

    async def Run(self, request: helogale_pb2.CommandRequest, context: grpc.aio.ServicerContext) -> helogale_pb2.CommandReply:
        cmd = bson.decode(request.command)
        try:
            reply = await self.handle(cmd)
        except NotLeader as exc:
            reply = {"ok": 0, "code": 10107, "codeName": "NotWritablePrimary",
                     "errmsg": str(exc), "leader": exc.leader}
        except (RaftError, TimeoutError) as exc:
            reply = {"ok": 0, "code": 1, "errmsg": f"{type(exc).__name__}: {exc}"}
        return helogale_pb2.CommandReply(reply=bson.encode(reply))

    async def handle(self, cmd: dict[str, Any]) -> dict[str, Any]:
        node = self.node
        if "put" in cmd:
            fut = self.proposer.propose(cmd["put"].encode() + b"\0" + bytes(cmd["value"]))
            index = await (asyncio.wait_for(fut, cmd["timeout"]) if "timeout" in cmd else fut)
            return {"ok": 1, "index": index}
        if "get" in cmd:
            if cmd.get("linearizable"):
                await asyncio.wait_for(asyncio.wrap_future(node.read_index()), 5.0)
            with self.kv.lock:
                return {"ok": 1, "value": self.kv.data.get(cmd["get"]), "applied": self.kv.applied}
        if "status" in cmd:
            v = node.view
            return {
                "ok": 1, "id": node.id, "role": StateRole(v.role).name, "term": v.term,
                "leader": v.leader, "commit": v.commit, "applied": node.applied_index,
                "last_index": node.storage.last_index(),
                "first_index": node.storage.first_index(),
                "snapshot_index": node.storage.snapshot().meta.index,
                "match": {str(k): m for k, m in v.match.items()},
                "keys": len(self.kv.data),
                "snapshots_installed": node.snapshots_installed,
            }
        if "transfer" in cmd:
            node.transfer_leadership(int(cmd["transfer"]))
            return {"ok": 1}
        if "load" in cmd:  # the benchmark's embedded proposers: no client RPC per proposal
            from bench.raft import run_load

            def make_call(w: int) -> Callable[[int], None]:
                def call(seq: int) -> None:
                    node.propose(f"L{w}-{seq}".encode() + b"\0" + b"v" * int(cmd["size"])).result(10)
                return call
            stats = await asyncio.get_running_loop().run_in_executor(
                None, run_load, make_call, int(cmd["load"]), float(cmd["duration"]))
            return {"ok": 1, **stats}
        if "wait_match" in cmd:
            ok = await asyncio.get_running_loop().run_in_executor(
                None, node.wait_for_match, int(cmd["wait_match"]), int(cmd["n"]),
                float(cmd.get("timeout", 5.0)))
            return {"ok": 1, "reached": ok}
        return {"ok": 0, "code": 59, "errmsg": f"no such command: {sorted(cmd)}"}


async def serve(node: RaftNode, kv: KV, address: str) -> None:
    server = grpc.aio.server()
    proposer = LoopProposer(node, asyncio.get_running_loop())
    expiry = asyncio.ensure_future(proposer.expire())
    member = Member(node, kv, proposer)
    helogale_pb2_grpc.add_CommandServicer_to_server(member, server)
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(
        "helogale.raftio.KV", {"Puts": grpc.stream_stream_rpc_method_handler(member.Puts)})])
    server.add_insecure_port(address)
    node.start()
    await server.start()
    done = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, done.set)
    loop.add_signal_handler(signal.SIGINT, done.set)
    print("READY", flush=True)
    await done.wait()
    await server.stop(0.5)
    expiry.cancel()
    node.stop()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--id", type=int, required=True)
    ap.add_argument("--dir", required=True)
    ap.add_argument("--peers", required=True, help="1=host:port,2=host:port,...")
    ap.add_argument("--client", required=True, help="host:port of the client endpoint")
    ap.add_argument("--tick", type=float, default=RaftNodeConfig.tick_interval)
    ap.add_argument("--election-tick", type=int, default=RaftNodeConfig.election_tick)
    ap.add_argument("--snapshot-every", type=int, default=RaftNodeConfig.snapshot_every)
    ap.add_argument("--keep-entries", type=int, default=RaftNodeConfig.keep_entries)
    ap.add_argument("--no-fsync", action="store_true")
    ap.add_argument("--keyfile", help="cluster key file (raft.auth)")
    args = ap.parse_args(argv)
    sys.setswitchinterval(0.0005)  # many I/O-bound threads: hand the GIL over sooner
    peers = {int(k): v for k, v in (p.split("=", 1) for p in args.peers.split(","))}
    kv = KV()
    cfg = RaftNodeConfig(tick_interval=args.tick, election_tick=args.election_tick,
                         snapshot_every=args.snapshot_every, keep_entries=args.keep_entries,
                         fsync=not args.no_fsync)
    key = load_keyfile(args.keyfile) if args.keyfile else None
    node = RaftNode(args.id, args.dir, peers, kv.apply, snapshotter=Snapshotter(kv.take, kv.install),
                    config=cfg, cluster_key=key)
    asyncio.run(serve(node, kv, args.client))

if __name__ == "__main__":
    main()
