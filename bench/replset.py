"""``python -m bench replset [--json PATH] [--tls]``: a 3-member Helogale replica set on
loopback. ``--tls`` runs only ``insert-majority-N`` twice in one run, on a plain set and on a
set with TLS on every port and ``--auth`` (clients authenticate with SCRAM-SHA-256 once per
connection), and prints the throughput ratio.

Workloads, each for ``--duration`` seconds after a 0.5 s warm-up, against the primary:

* ``insert-w1-N`` and ``insert-majority-N`` for N = 1, 16, 64 concurrent clients: each client
  has ONE single-document insert outstanding at a time (``writeConcern`` ``w: 1`` /
  ``"majority"``; no client-side batching or pipelining);
* ``insert_many-batch-1000``: 4 clients inserting batches of 1,000 documents with
  ``w: "majority"`` (``ops_per_s`` counts documents);
* failover: ``--kills`` times (>= 10), SIGKILL the primary under a steady ``w: "majority"`` write
  load and time until the first write acknowledged after the kill; then restart the member and
  wait until it caught up (each kill hits a healthy set).

In the same run, a 3-member etcd on loopback (Debian ``etcd-server``, default settings) takes
puts of the same size at the same concurrency right after each ``insert-majority-N`` (both
clusters stay up, so load from elsewhere on a shared machine drifts over both alike), reported
as ``insert-majority-N`` for system ``etcd`` (every etcd put is majority-committed and applied
before its reply); etcd idles during the other phases. Each line also shows the servers' CPU
per acknowledged write (steadier than throughput on a shared machine) and the load average.

How each system is driven: ceil(N / 32) separate client processes, each an asyncio event loop
(``grpc.aio``) running its share of the N clients, all aimed at the primary / leader:

* helogale: as the helogale client library does, over one pipelined ``helogale.Command/Stream``
  per client process, i.e. one TCP connection per 32 clients (the clients' requests are batched
  onto it and replies matched back by request id, as a helogale client shared by 32 threads
  does; etcd's Go server multiplexes its clients' calls over HTTP/2 the same way), each request
  carrying the BSON command ``{insert: <coll>, documents:
  [{_id: <unique str>, v: <200 bytes>}], writeConcern: {w: ...}}`` (what a driver sends for
  ``insert_one``); a reply counts only with ``ok: 1``, ``n: 1`` and no writeConcernError;
* etcd: ``etcdserverpb.KV/Put`` with a unique key and a 200-byte value, via ``bench.raft``'s
  harness (the same process split, one TCP connection per 8 clients, one unary call each,
  which etcd's server multiplexes over HTTP/2; etcd's own benchmark tool drives it the same way).

Each line shows the client processes' CPU (cores), so a client-bound figure shows. Members,
clients and etcd share the same machine. ``--json PATH`` writes ``{"results": [{workload,
system, ops_per_s, p50_ms, p99_ms}], "failover": {p50_s, p99_s, n}}``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import itertools
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from unittest import mock

import bson
import grpc

from bench import raft as raft_bench
from bench.load import percentile, run_client_processes, run_window, split_clients
from bench.raft import run_load
from node.local_cluster import CHANNEL_OPTIONS, LocalCluster, wait_until
from proto import helogale_pb2, helogale_pb2_grpc

CLIENTS = (1, 16, 64)
PASSWORD_ENV = "HELOGALE_BENCH_PASSWORD"
PAYLOAD = "x" * 200
BATCH = 1000
BATCH_CLIENTS = 4
STREAM_CLIENTS = 32  # clients sharing one command stream: a whole load process, as the
                     # helogale client shares one channel per server among all its threads


def _stubs(address: str, n: int) -> tuple[list[grpc.Channel], list[Any]]:
    chans = [grpc.insecure_channel(address, options=CHANNEL_OPTIONS) for _ in range(n)]
    return chans, [helogale_pb2_grpc.CommandStub(c) for c in chans]


def _run(stub: Any, cmd: dict[str, Any], timeout: float = 30.0) -> dict[str, Any]:
    raw = stub.Run(helogale_pb2.CommandRequest(db="bench", command=bson.encode(cmd)),
                   timeout=timeout)
    reply = bson.decode(raw.reply)
    if reply.get("ok") != 1.0 or reply.get("writeErrors") or reply.get("writeConcernError"):
        raise RuntimeError(f"write failed: {reply}")
    return reply


# ---------------------------------------------------------------------- insert load clients
class _AioStream:
    """One pipelined ``Command.Stream`` on an asyncio channel: a writer task drains queued
    requests into batches, a reader task resolves each request's future by request id; when
    the stream breaks every pending request fails and the next request opens a new stream (the
    helogale client's ``StreamMux``, in asyncio)."""

    def __init__(self, channel: Any, metadata: tuple[tuple[str, str], ...] = ()) -> None:
        self._stub = helogale_pb2_grpc.CommandStub(channel)
        self._metadata = metadata
        self._ids = itertools.count(1)
        self._call: Any = None
        self._queue: asyncio.Queue[tuple[int, bytes]] = asyncio.Queue()
        self._pending: dict[int, asyncio.Future[bytes]] = {}
        self._tasks: list[asyncio.Task[None]] = []

    def _open(self) -> None:
        self._call = call = self._stub.Stream(metadata=self._metadata or None)
        self._queue = asyncio.Queue()
        self._pending = {}
        self._tasks = [asyncio.create_task(self._write(call, self._queue, self._pending)),
                       asyncio.create_task(self._read(call, self._pending))]

    async def _write(self, call: Any, q: asyncio.Queue[tuple[int, bytes]],
                     pending: dict[int, asyncio.Future[bytes]]) -> None:
        make = helogale_pb2.StreamCommand
        try:
            while True:
                rid, cmd = await q.get()
                batch = [make(request_id=rid, db="bench", command=cmd)]
                while not q.empty():
                    rid, cmd = q.get_nowait()
                    batch.append(make(request_id=rid, db="bench", command=cmd))
                await call.write(helogale_pb2.CommandBatch(commands=batch))
        except Exception as exc:
            self._fail(call, pending, exc)

    async def _read(self, call: Any, pending: dict[int, asyncio.Future[bytes]]) -> None:
        try:
            while True:
                batch = await call.read()
                if batch is grpc.aio.EOF:
                    raise ConnectionError("the server closed the command stream")
                for r in batch.replies:
                    fut = pending.pop(r.request_id, None)
                    if fut is not None and not fut.done():
                        fut.set_result(r.reply)
        except Exception as exc:
            self._fail(call, pending, exc)

    def _fail(self, call: Any, pending: dict[int, asyncio.Future[bytes]],
              exc: BaseException) -> None:
        if self._call is call:
            self._call = None
            for t in self._tasks:
                t.cancel()
            call.cancel()
        for fut in pending.values():
            if not fut.done():
                fut.set_exception(ConnectionError(f"command stream broken: {exc}"))
        pending.clear()

    async def run(self, cmd: bytes, timeout: float) -> bytes:
        if self._call is None:
            self._open()
        rid = next(self._ids)
        fut: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._pending[rid] = fut
        self._queue.put_nowait((rid, cmd))
        return await asyncio.wait_for(fut, timeout)

    def close(self) -> None:
        if self._call is not None:
            self._fail(self._call, self._pending, ConnectionError("closed"))


async def _login(channel: Any, user: str, password: str) -> tuple[tuple[str, str], ...]:
    """SCRAM-SHA-256 on this connection (as the helogale client does); the metadata naming
    the authenticated session."""
    from helogale.auth import ClientConversation

    stub = helogale_pb2_grpc.CommandStub(channel)
    conv = ClientConversation(user, password)

    async def run(cmd: dict[str, Any], md: Any) -> tuple[dict[str, Any], Any]:
        call = stub.Run(helogale_pb2.CommandRequest(db="admin", command=bson.encode(cmd)),
                        metadata=md)
        reply = bson.decode((await call).reply)
        if reply.get("ok") != 1.0:
            raise RuntimeError(f"authentication failed: {reply}")
        return reply, await call.trailing_metadata()

    first, trailing = await run({"saslStart": 1, "mechanism": "SCRAM-SHA-256",
                                 "payload": conv.first(),
                                 "options": {"skipEmptyExchange": True}}, None)
    token = dict(trailing or ())["x-helogale-session"]
    md = (("x-helogale-session", token),)
    final, _ = await run({"saslContinue": 1, "conversationId": first["conversationId"],
                          "payload": conv.final(first["payload"])}, md)
    conv.verify(final["payload"])
    return md


async def _insert_client(address: str, n: int, coll: str, w: Any, prefix: str,
                         secure: dict[str, str] | None = None) -> dict[str, Any]:
    """One client process: ``n`` asyncio clients, each ONE insert of a single document
    outstanding at a time, all on one TCP connection carrying one pipelined command stream
    (what one helogale client shared by ``n`` threads does)."""
    loop = asyncio.get_running_loop()
    per_conn = STREAM_CLIENTS
    runs: dict[str, list[Any]] = {}  # member address -> one stream per TCP connection
    channels: list[Any] = []
    streams: list[_AioStream] = []
    target = [address]  # the primary as last learned (NotWritablePrimary names the new one)

    async def connect(addr: str) -> list[Any]:
        if addr not in runs:
            count = -(-n // per_conn)
            if secure:
                from helogale.tls import ClientTLS

                creds = ClientTLS(secure["ca"]).credentials()
                chans = [grpc.aio.secure_channel(addr, creds, options=raft_bench._CLIENT_OPTIONS)
                         for _ in range(count)]
            else:
                chans = [grpc.aio.insecure_channel(addr, options=raft_bench._CLIENT_OPTIONS)
                         for _ in range(count)]
            channels.extend(chans)
            for ch in chans:
                await asyncio.wait_for(ch.channel_ready(), 30)
            made = [_AioStream(ch, await _login(ch, secure["user"], secure["password"])
                               if secure else ()) for ch in chans]
            streams.extend(made)
            runs[addr] = [s.run for s in made]
        return runs[addr]

    await connect(address)
    wc = {"w": w}

    async def call(worker: int, seq: int) -> None:
        cmd = bson.encode({"insert": coll, "documents": [{"_id": f"{prefix}-{worker}-{seq}",
                                                           "v": PAYLOAD}],
                           "writeConcern": wc})
        addr = target[0]
        run = (await connect(addr))[worker // per_conn]
        reply = bson.decode(await run(cmd, 30))
        if reply.get("code") == 10107 and reply.get("primary"):
            target[0] = reply["primary"]  # follow the new primary, as a driver does
        if reply.get("ok") != 1.0 or reply.get("n") != 1 or reply.get("writeConcernError"):
            raise RuntimeError(f"write failed: {reply}")

    for worker in range(n):  # warm every connection before the clock starts
        with contextlib.suppress(Exception):
            await call(worker, -1)
    print("READY", flush=True)
    line = await loop.run_in_executor(None, sys.stdin.readline)
    start, stop_at = (float(x) for x in line.split())
    out = await run_window([functools.partial(call, worker) for worker in range(n)],
                           start, stop_at)
    for s in streams:
        s.close()
    for ch in channels:
        await ch.close()
    return out


def load_client(argv: list[str]) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--address", required=True)
    ap.add_argument("--clients", type=int, required=True)
    ap.add_argument("--coll", required=True)
    ap.add_argument("--w", required=True)
    ap.add_argument("--prefix", required=True)
    ap.add_argument("--tls-ca")
    ap.add_argument("--user")
    args = ap.parse_args(argv)
    w: Any = int(args.w) if args.w.isdigit() else args.w
    secure = ({"ca": args.tls_ca, "user": args.user,
               "password": os.environ.get(PASSWORD_ENV, "")} if args.tls_ca else None)
    out = asyncio.run(_insert_client(args.address, args.clients, args.coll, w, args.prefix,
                                     secure))
    print("RESULT " + json.dumps(out), flush=True)
    return 0


def run_insert_clients(address: str, clients: int, duration: float, coll: str, w: Any,
                       secure: dict[str, str] | None = None,
                       server_pids: list[int] | None = None) -> dict[str, float]:
    """``clients`` concurrent inserters spread over ceil(clients / 32) processes (the split
    bench.raft uses for etcd); throughput counts inserts finished inside the window.
    ``secure``: TLS (``ca``) and SCRAM (``user``; the password reaches the load processes in
    their environment, not their command line)."""
    extra = ["--tls-ca", secure["ca"], "--user", secure["user"]] if secure else []
    if secure:
        os.environ[PASSWORD_ENV] = secure["password"]
    argvs = [["bench", "replset", "load-client", "--address", address, "--clients", str(k),
              "--coll", coll, "--w", str(w), "--prefix", f"{coll}-{time.time_ns():x}-{i}",
              *extra]
             for i, k in enumerate(split_clients(clients))]
    return run_client_processes(argvs, duration, "insert", server_pids)


# ---------------------------------------------------------------------- helogale workloads
def bench_inserts(cluster: LocalCluster, duration: float,
                  clients: tuple[int, ...] = CLIENTS, etcd_address: str | None = None
                  ) -> list[dict[str, Any]]:
    """The insert workloads; with ``etcd_address`` (a running etcd leader) etcd's puts run
    right after each ``insert-majority-N``, so load from elsewhere on a shared machine drifts
    over both alike."""
    results: list[dict[str, Any]] = []
    p = cluster.wait_for_primary()
    address = cluster.members[p].address
    for w, label in ((1, "w1"), ("majority", "majority")):
        for n in clients:
            r = run_insert_clients(cluster.members[cluster.wait_for_primary()].address, n,
                                   duration, f"{label}{n}", w,
                                   server_pids=[m.proc.pid for m in cluster.members
                                                if m.proc is not None])
            results.append({"workload": f"insert-{label}-{n}", "system": "helogale", **r})
            _print(results[-1])
            if label == "majority" and etcd_address is not None:
                row = raft_bench._etcd_row(etcd_address, n, duration)
                results.append({**row, "workload": f"insert-majority-{n}"})
    chans, stubs = _stubs(address, BATCH_CLIENTS)
    try:
        def make_batch(worker: int) -> Callable[[int], None]:
            stub = stubs[worker % len(stubs)]

            def call(seq: int) -> None:
                docs = [{"_id": f"{worker}-{seq}-{k}", "v": PAYLOAD} for k in range(BATCH)]
                _run(stub, {"insert": "batches", "documents": docs,
                            "writeConcern": {"w": "majority"}}, timeout=60)
            return call
        r = run_load(make_batch, BATCH_CLIENTS, max(duration, 3.0))
        r["ops_per_s"] *= BATCH
        results.append({"workload": f"insert_many-batch-{BATCH}", "system": "helogale", **r})
        _print(results[-1])
    finally:
        for c in chans:
            c.close()
    return results


def bench_failover(cluster: LocalCluster, kills: int) -> dict[str, Any]:
    """SIGKILL the primary ``kills`` times under load; seconds to the next acknowledged write."""
    times: list[float] = []
    counter = itertools.count()
    acks: list[tuple[float, int]] = []  # (time, member index that acknowledged)
    stop = threading.Event()
    lock = threading.Lock()

    def writer() -> None:
        while not stop.is_set():
            p = cluster.primary_index()
            reply = None if p is None else cluster.try_command(p, {
                "insert": "failover", "documents": [{"_id": next(counter)}],
                "writeConcern": {"w": "majority", "wtimeout": 5000}}, db="bench", timeout=5)
            if reply and reply.get("ok") == 1.0 and reply.get("n") == 1 \
                    and "writeConcernError" not in reply:
                with lock:
                    acks.append((time.monotonic(), p))
            else:
                stop.wait(0.02)  # client retry backoff while there is no primary

    threads = [threading.Thread(target=writer, daemon=True) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        for k in range(kills):
            wait_until(lambda: len(acks) > 0 and time.monotonic() - acks[-1][0] < 0.5, 60,
                       "writes flowing")
            p = cluster.wait_for_primary()
            killed_at = time.monotonic()
            cluster.kill(p)

            def after(at: float = killed_at, old: int = p) -> list[float]:
                with lock:
                    return [t for t, member in acks if t > at and member != old]

            wait_until(after, 60, "a write acknowledged by a new primary after the kill")
            times.append(min(after()) - killed_at)
            print(f"  kill {k + 1:2d}: first majority write after {times[-1]:.3f} s",
                  flush=True)
            cluster.restart(p)
            cluster.wait_ready(p)
            wait_until(lambda: _all_caught_up(cluster), 60, "the restarted member caught up")
    finally:
        stop.set()
        for t in threads:
            t.join(10)
    times.sort()
    return {"p50_s": percentile(times, 0.5), "p99_s": percentile(times, 0.99), "n": len(times)}


def bench_tls(root: Path, duration: float, clients: tuple[int, ...] = CLIENTS
              ) -> list[dict[str, Any]]:
    """``insert-majority-N`` on a plain set and on a set with ``requireTLS`` on every port
    (mutual TLS between members) and ``--auth`` (each client connection authenticated with
    SCRAM-SHA-256), both up at once and measured alternately (plain, then tls+auth, for each
    N), so the pairs see the same machine; the rows carry ``system`` "plain" and
    "tls+auth"."""
    from helogale import MongoClient
    from node.security.certs import make_pki

    rows: list[dict[str, Any]] = []
    pki = make_pki(str(root / "pki"))
    password = "bench-" + os.urandom(8).hex()
    plain = LocalCluster(3, data_dir=str(root / "plain"), log_level="WARNING")
    tls = LocalCluster(3, data_dir=str(root / "tls"), log_level="WARNING", tls=pki,
                       extra_args=["--auth"])
    try:
        plain.start(120)
        tls.start(120)
        with MongoClient(tls.uri, serverSelectionTimeoutMS=30000) as first:
            first.admin.command("createUser", "bench", pwd=password,
                                roles=["readWriteAnyDatabase"])
        secure = {"ca": pki.ca_file, "user": "bench", "password": password}
        for n in clients:
            for system, cluster, how in (("plain", plain, None), ("tls+auth", tls, secure)):
                address = cluster.members[cluster.wait_for_primary()].address
                r = run_insert_clients(address, n, duration, f"tls{n}", "majority", how)
                rows.append({"workload": f"insert-majority-{n}", "system": system, **r})
                _print(rows[-1])
    finally:
        plain.stop()
        tls.stop()
    return rows


def _all_caught_up(cluster: LocalCluster) -> bool:
    """True when the primary sees every member healthy with no log lag (a healthy set)."""
    p = cluster.primary_index()
    status = None if p is None else cluster.try_command(p, {"replSetGetStatus": 1})
    if not status or status.get("ok") != 1.0:
        return False
    return all(m["health"] == 1.0 and m.get("lagEntries", 1) < 50 for m in status["members"])


def bench_etcd(root: Path, duration: float) -> list[dict[str, Any]]:
    """etcd puts at the same client counts, via bench.raft's etcd harness."""
    with mock.patch.object(raft_bench, "PROPOSERS", CLIENTS):
        rows = raft_bench.bench_etcd(root, duration)
    return [{**r, "workload": r["workload"].replace("proposers-", "insert-majority-")}
            for r in rows]


def _print(r: dict[str, Any]) -> None:
    cpu = f"  clients {r['client_cpu']:.2f} cores" if "client_cpu" in r else ""
    print(f"  {r['system']:<9} {r['workload']:<24} {r['ops_per_s']:10.0f} ops/s  "
          f"p50 {r['p50_ms']:8.2f} ms  p99 {r['p99_ms']:8.2f} ms{cpu}"
          f"{raft_bench.server_cpu_text(r)}", flush=True)


def _main_tls(root: Path, args: argparse.Namespace) -> int:
    try:
        print("helogale replica set (3 members): plain, then requireTLS + --auth (SCRAM)",
              flush=True)
        results = bench_tls(root, args.duration)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    plain = {r["workload"]: r for r in results if r["system"] == "plain"}
    for r in results:
        base = plain.get(r["workload"])
        if r["system"] == "tls+auth" and base and base["ops_per_s"]:
            print(f"ratio tls+auth/plain {r['workload']}: "
                  f"{r['ops_per_s'] / base['ops_per_s']:.2f}x throughput, p50 "
                  f"{r['p50_ms']:.2f} vs {base['p50_ms']:.2f} ms")
    if args.json:
        shaped = [{k: r[k] for k in ("workload", "system", "ops_per_s", "p50_ms", "p99_ms")}
                  for r in results]
        Path(args.json).write_text(json.dumps({"results": shaped}, indent=2))
    return 0


def main(argv: list[str]) -> int:
    if argv and argv[0] == "load-client":
        return load_client(argv[1:])
    ap = argparse.ArgumentParser(prog="python -m bench replset", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", help="write the figures to this file")
    ap.add_argument("--duration", type=float, default=5.0, help="seconds per workload")
    ap.add_argument("--kills", type=int, default=10, help="primary kills for failover timing")
    ap.add_argument("--skip-etcd", action="store_true")
    ap.add_argument("--tls", action="store_true",
                    help="only: majority inserts with TLS + auth against without (same run)")
    args = ap.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="bench-replset-"))
    if args.tls:
        return _main_tls(root, args)
    try:
        print("helogale replica set (3 members, Raft WAL fsync, Raft over TCP on loopback)",
              flush=True)
        with contextlib.ExitStack() as stack:
            etcd_address = (None if args.skip_etcd
                            else stack.enter_context(raft_bench.etcd_cluster(root)))
            cluster = stack.enter_context(LocalCluster(3, data_dir=str(root / "helogale"),
                                                       log_level="WARNING"))
            results = bench_inserts(cluster, args.duration, etcd_address=etcd_address)
            failover = bench_failover(cluster, args.kills) if args.kills else {
                "p50_s": None, "p99_s": None, "n": 0}
    finally:
        shutil.rmtree(root, ignore_errors=True)
    if failover["n"]:
        print(f"failover: p50 {failover['p50_s']:.3f} s  p99 {failover['p99_s']:.3f} s  "
              f"(n={failover['n']})")
    ours = {r["workload"]: r for r in results if r["system"] == "helogale"}
    for r in results:
        if r["system"] == "etcd" and r["workload"] in ours and r["ops_per_s"]:
            ratio = ours[r["workload"]]["ops_per_s"] / r["ops_per_s"]
            print(f"ratio helogale/etcd {r['workload']}: {ratio:.2f}x throughput")
    if args.json:
        shaped = [{k: r[k] for k in ("workload", "system", "ops_per_s", "p50_ms", "p99_ms")}
                  for r in results]
        Path(args.json).write_text(json.dumps({"results": shaped, "failover": failover},
                                              indent=2))
    return 0
