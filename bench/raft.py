"""``python -m bench raft [--json PATH]``: Raft replication throughput, latency and failover.

Runs a 3-member Helogale Raft cluster (``tests/raft_io/kv_member.py`` processes, WAL with fsync,
Raft over ``raft.tcp_transport`` on loopback) and, in the same run, two peers:

* **etcd** (3 members on loopback, if the ``etcd`` binary is installed: Debian ``etcd-server``,
  default settings), driven through its gRPC ``KV.Put``;
* **PySyncObj** (PyPI ``pysyncobj``): 3 processes on loopback replicating a counter with its
  journal on disk (``flushJournal``); its proposers run inside one member process, since
  PySyncObj has no network client API.

Workloads ``proposers-1``, ``proposers-16``, ``proposers-128``: that many concurrent proposers
each put 200-byte values with ONE request outstanding at a time (no client-side batching or
pipelining), for ``--duration`` seconds after a 0.5 s warm-up; reported as puts acknowledged
per second (committed by a majority and applied on the leader) and client-side p50/p99 latency.

How each system is driven (the same harness for all network clients): ceil(N / 32) separate
client processes, each an asyncio event loop running its share of the proposers over gRPC
(``grpc.aio``), one TCP connection per 8 proposers, all aimed at the leader. Each system gets
its own API's cheapest put path:

* ``helogale``: each proposer holds one bidirectional stream (``/helogale.raftio.KV/Puts``)
  and sends a put per stream message, waiting for its reply before the next;
* ``helogale-unary``: one unary ``Command.Run`` call per put (BSON command) -- shown for
  comparison with etcd's unary API;
* ``etcd``: one unary ``KV.Put`` call per put (etcd's API has no streaming put; this is also
  how etcd's own benchmark tool drives it);
* ``helogale-embedded``: the same proposer loop run as threads inside the leader process
  (comparable to PySyncObj's in-process proposers): Raft cost without client RPCs.

Helogale members snapshot every 100,000 entries (etcd 3.4's default ``--snapshot-count``).
Each line prints the client processes' CPU use (cores) so a client-bound result shows. The
machine is shared (2 cores): clients, members and etcd compete for it alike, so both clusters
stay up together and each proposer count runs ``helogale``, ``helogale-unary`` and ``etcd``
back to back (load from other work on the machine drifts over all three alike); etcd idles
during the embedded and failover phases.
Failover: SIGKILL the Helogale leader ``--kills`` times (>= 20) and time until another member
reports leadership. ``--json PATH`` writes ``{"results": [{workload, system, ops_per_s, p50_ms,
p99_ms}, ...], "failover": {p50_s, p99_s, n}}``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import bson
import grpc

from bench.load import REPO, percentile, run_client_processes, run_window, split_clients
from proto import helogale_pb2, helogale_pb2_grpc

VALUE = b"v" * 200
PROPOSERS = (1, 16, 128)


# ---------------------------------------------------------------------- load generator
def run_load(make_call: Callable[[int], Callable[[int], None]], proposers: int,
             duration: float, warmup: float = 0.5) -> dict[str, float]:
    """``make_call(worker)`` returns ``call(seq)`` doing one synchronous proposal."""
    lats: list[list[float]] = [[] for _ in range(proposers)]
    errors = [0] * proposers
    start = time.monotonic() + warmup
    stop_at = start + duration
    barrier = threading.Barrier(proposers)

    def worker(w: int) -> None:
        call = make_call(w)
        barrier.wait()
        seq = 0
        mine = lats[w]
        while True:
            t0 = time.monotonic()
            if t0 >= stop_at:
                return
            try:
                call(seq)
            except Exception:
                errors[w] += 1
                time.sleep(0.01)
                continue
            t1 = time.monotonic()
            if t0 >= start:
                mine.append(t1 - t0)
            seq += 1

    threads = [threading.Thread(target=worker, args=(w,), daemon=True) for w in range(proposers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    allv = sorted(v for ls in lats for v in ls)
    return {"ops_per_s": len(allv) / duration, "p50_ms": percentile(allv, 0.5) * 1000,
            "p99_ms": percentile(allv, 0.99) * 1000, "errors": float(sum(errors))}


def _line(system: str, n: int, r: dict[str, float]) -> None:
    errs = f"  ({r['errors']:.0f} failed: leader changes)" if r.get("errors") else ""
    cpu = f"  clients {r['client_cpu']:.2f} cores" if "client_cpu" in r else ""
    print(f"  {system:<14} proposers-{n:<4} {r['ops_per_s']:9.0f} ops/s  p50 {r['p50_ms']:7.2f} ms"
          f"  p99 {r['p99_ms']:7.2f} ms{cpu}{server_cpu_text(r)}{errs}", flush=True)


def server_cpu_text(r: dict[str, float]) -> str:
    """The servers' CPU inside the window, in cores and in CPU-ms per acknowledged write (the
    steadier figure on a shared machine), plus the 1-minute load average."""
    if "server_cpu" not in r or not r["ops_per_s"]:
        return ""
    return (f"  servers {r['server_cpu']:.2f} cores = "
            f"{r['server_cpu'] * 1000 / r['ops_per_s']:.2f} CPU-ms/write"
            f"  load {os.getloadavg()[0]:.1f}")


ETCD_PIDS: list[int] = []
"""The running etcd members' pids (their CPU is sampled like Helogale's)."""


# ---------------------------------------------------------------------- client processes
PROPOSERS_PER_CONNECTION = 8
_CLIENT_OPTIONS = [("grpc.use_local_subchannel_pool", 1)]  # a TCP connection per channel


class _Target:
    """A client process's connections: ``channels(member)[w // 8]`` for proposer ``w``, made
    when first needed; ``leader`` follows helogale's NotWritablePrimary hints."""

    def __init__(self, members: dict[int, str], leader: int, n: int) -> None:
        self.members = members
        self.leader = leader
        self.n = n
        self._channels: dict[int, list[Any]] = {}

    def channels(self, member: int) -> list[Any]:
        if member not in self._channels:
            self._channels[member] = [
                grpc.aio.insecure_channel(self.members[member], options=_CLIENT_OPTIONS)
                for _ in range(-(-self.n // PROPOSERS_PER_CONNECTION))]
        return self._channels[member]

    def refused(self, reply: dict[str, Any]) -> RuntimeError:
        if reply.get("leader") in self.members:
            self.leader = reply["leader"]
        return RuntimeError(reply.get("errmsg", "refused"))

    async def close(self) -> None:
        for chans in self._channels.values():
            for ch in chans:
                await ch.close()


def _proposer_calls(kind: str, target: _Target, prefix: str) -> list[Callable[[int], Any]]:
    """One ``async call(seq)`` per proposer, for the three client kinds (see the docstring)."""
    calls: list[Callable[[int], Any]] = []
    for w in range(target.n):
        conn = w // PROPOSERS_PER_CONNECTION
        if kind == "etcd":
            put = target.channels(target.leader)[conn].unary_unary(
                "/etcdserverpb.KV/Put", request_serializer=None, response_deserializer=None)

            async def call(seq: int, put: Any = put, w: int = w) -> None:
                await put(etcd_put_request(f"{prefix}-{w}-{seq}".encode(), VALUE), timeout=10)
        elif kind == "helogale-unary":
            stubs: dict[int, Any] = {}

            async def call(seq: int, w: int = w, conn: int = conn,
                           stubs: dict[int, Any] = stubs) -> None:
                lead = target.leader
                if lead not in stubs:
                    stubs[lead] = helogale_pb2_grpc.CommandStub(target.channels(lead)[conn])
                cmd = bson.encode({"put": f"{prefix}-{w}-{seq}", "value": VALUE})
                reply = bson.decode((await stubs[lead].Run(
                    helogale_pb2.CommandRequest(db="admin", command=cmd), timeout=10)).reply)
                if not reply["ok"]:
                    raise target.refused(reply)
        elif kind == "helogale":
            held: dict[int, Any] = {}  # the proposer's one stream, to the member it leads to

            async def call(seq: int, w: int = w, conn: int = conn, held: dict[int, Any] = held) -> None:
                lead = target.leader
                if lead not in held:
                    held.clear()
                    held[lead] = target.channels(lead)[conn].stream_stream(
                        "/helogale.raftio.KV/Puts", request_serializer=None,
                        response_deserializer=None)()
                s = held[lead]
                try:
                    await s.write(f"{prefix}-{w}-{seq}".encode() + b"\0" + VALUE)
                    reply = await s.read()
                except Exception:
                    held.clear()
                    raise
                if reply is grpc.aio.EOF or not reply:
                    held.clear()
                    raise RuntimeError("stream ended")
                if reply[0] != 1:
                    raise target.refused(bson.decode(reply[1:]))
        else:
            raise ValueError(kind)
        calls.append(call)
    return calls


async def _client_async(kind: str, members: dict[int, str], leader: int, n: int,
                        prefix: str) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    target = _Target(members, leader, n)
    for ch in target.channels(leader):
        await asyncio.wait_for(ch.channel_ready(), 30)
    calls = _proposer_calls(kind, target, prefix)
    for call in calls:  # connect every stream and warm every path before the clock starts
        with contextlib.suppress(Exception):
            await call(-1)
    print("READY", flush=True)
    start, stop_at = (float(x) for x in (await loop.run_in_executor(None, sys.stdin.readline)).split())
    out = await run_window(calls, start, stop_at)
    await target.close()
    return out


def load_client(argv: list[str]) -> int:
    """A client process: ``--proposers`` asyncio proposers, each one request outstanding."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--kind", required=True, choices=("helogale", "helogale-unary", "etcd"))
    ap.add_argument("--members", required=True, help="id=host:port,...")
    ap.add_argument("--leader", type=int, required=True)
    ap.add_argument("--proposers", type=int, required=True)
    ap.add_argument("--prefix", required=True)
    args = ap.parse_args(argv)
    members = {int(k): v for k, v in (m.split("=", 1) for m in args.members.split(","))}
    out = asyncio.run(_client_async(args.kind, members, args.leader, args.proposers,
                                    args.prefix))
    print("RESULT " + json.dumps(out), flush=True)
    return 0


def run_clients(kind: str, members: dict[int, str], leader: int, proposers: int,
                duration: float, prefix: str, server_pids: list[int] | None = None
                ) -> dict[str, float]:
    """Drive ``proposers`` concurrent proposers from ceil(proposers / 32) client processes
    aimed at ``members[leader]`` (helogale clients follow NotWritablePrimary hints to another
    member) and merge their latencies: throughput counts requests finished in the window."""
    spec = ",".join(f"{k}={v}" for k, v in members.items())
    argvs = [["bench.raft", "load-client", "--kind", kind, "--members", spec,
              "--leader", str(leader), "--proposers", str(k), "--prefix", f"{prefix}-{i}"]
             for i, k in enumerate(split_clients(proposers))]
    return run_client_processes(argvs, duration, kind, server_pids)


# ---------------------------------------------------------------------- helogale
def bench_helogale(root: Path, duration: float, kills: int, etcd_address: str | None = None,
                   ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Helogale's workloads and failover; with ``etcd_address`` (a running etcd leader) each
    proposer count runs etcd right after Helogale, so a shared machine's load drifts alike."""
    sys.path.insert(0, str(REPO))
    from tests.raft_io.kv_cluster import KVCluster, wait_until

    # Snapshot (a JSON image of the whole KV) every 100,000 entries, as etcd 3.4's default
    # --snapshot-count does; kv_member's default (RaftNodeConfig's 10,000) would re-serialize
    # the ever-growing key set every few seconds of this benchmark.
    c = KVCluster(root / "helogale", 3, extra_args=["--snapshot-every", "100000"])
    (root / "helogale").mkdir(parents=True, exist_ok=True)
    c.start_all()
    results: list[dict[str, Any]] = []
    try:
        for n in PROPOSERS:
            for kind in ("helogale", "helogale-unary"):
                lead = c.wait_leader()
                r = run_clients(kind, c.client_addr, lead, n, duration, f"{kind}-{n}",
                                [p.pid for p in c.procs.values()])
                results.append({"workload": f"proposers-{n}", "system": kind, **r})
                _line(kind, n, r)
            if etcd_address is not None:
                results.append(_etcd_row(etcd_address, n, duration))
        for n in PROPOSERS:  # the same proposers inside the leader: Raft without client RPCs
            lead = c.wait_leader()
            r = c.clients[lead].call({"load": n, "duration": duration, "size": len(VALUE)},
                                     timeout=duration + 60)
            r = {k: r[k] for k in ("ops_per_s", "p50_ms", "p99_ms", "errors")}
            results.append({"workload": f"proposers-{n}", "system": "helogale-embedded", **r})
            _line("embedded", n, r)
        times: list[float] = []
        for k in range(kills):
            lead = c.wait_leader(timeout=30)
            term = c.status(lead)["term"]
            t0 = time.monotonic()
            c.kill(lead)

            def new_leader(old: int = lead, term: int = term) -> bool:
                for i in list(c.procs):
                    st = c.status(i)
                    if st and st["role"] == "LEADER" and st["term"] > term and i != old:
                        return True
                return False
            wait_until(new_leader, 30, "a new leader")
            times.append(time.monotonic() - t0)
            c.start(lead)
            wait_until(lambda i=lead: (c.status(i) or {}).get("role") == "FOLLOWER"
                       and c.status(i)["leader"] != 0, 30, "the restarted member to follow")
            print(f"  failover {k + 1:2d}: {times[-1]:.3f} s", flush=True)
        times.sort()
        failover = {"p50_s": percentile(times, 0.5), "p99_s": percentile(times, 0.99),
                    "n": len(times)}
    finally:
        c.stop_all()
    return results, failover


# ---------------------------------------------------------------------- etcd
def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def etcd_put_request(key: bytes, value: bytes) -> bytes:
    """etcdserverpb.PutRequest{key = 1, value = 2} encoded by hand (no generated stubs)."""
    return b"\x0a" + _varint(len(key)) + key + b"\x12" + _varint(len(value)) + value


def _free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _etcd_row(address: str, n: int, duration: float) -> dict[str, Any]:
    r = run_clients("etcd", {0: address}, 0, n, duration, f"p{n}", list(ETCD_PIDS))
    _line("etcd", n, r)
    return {"workload": f"proposers-{n}", "system": "etcd", **r}


def bench_etcd(root: Path, duration: float) -> list[dict[str, Any]]:
    """etcd's rows alone, at every count in ``PROPOSERS`` (also used by ``bench replset``)."""
    with etcd_cluster(root) as address:
        if address is None:
            return []
        return [_etcd_row(address, n, duration) for n in PROPOSERS]


@contextlib.contextmanager
def etcd_cluster(root: Path) -> Iterator[str | None]:
    """A 3-member etcd on loopback (default settings); yields its leader's client address,
    or None when the ``etcd`` binary is not installed."""
    etcd = shutil.which("etcd")
    if etcd is None:
        print("  etcd: not installed (apt-get install etcd-server); skipped", flush=True)
        yield None
        return
    names = ["e1", "e2", "e3"]
    peer = {n: _free_port() for n in names}
    client = {n: _free_port() for n in names}
    cluster = ",".join(f"{n}=http://127.0.0.1:{peer[n]}" for n in names)
    procs = []
    for n in names:
        d = root / "etcd" / n
        d.mkdir(parents=True, exist_ok=True)
        log = open(root / "etcd" / f"{n}.log", "wb")  # noqa: SIM115 - handed to the child
        procs.append(subprocess.Popen([
            etcd, "--name", n, "--data-dir", str(d),
            "--listen-client-urls", f"http://127.0.0.1:{client[n]}",
            "--advertise-client-urls", f"http://127.0.0.1:{client[n]}",
            "--listen-peer-urls", f"http://127.0.0.1:{peer[n]}",
            "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer[n]}",
            "--initial-cluster", cluster, "--initial-cluster-state", "new",
            "--initial-cluster-token", "bench", "--log-level", "error",
        ], stdout=log, stderr=log))
        log.close()
    try:
        ETCD_PIDS[:] = [p.pid for p in procs]
        yield _etcd_leader(client)
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()


def _etcd_leader(client: dict[str, int]) -> str:
    endpoints = ",".join(f"127.0.0.1:{p}" for p in client.values())
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        out = subprocess.run(["etcdctl", "--endpoints", endpoints, "endpoint", "status",
                              "-w", "json"], capture_output=True, text=True,
                             env=dict(os.environ, ETCDCTL_API="3"))
        if out.returncode == 0:
            for st in json.loads(out.stdout):
                s = st["Status"]
                if s["leader"] and s["leader"] == s["header"]["member_id"]:
                    return st["Endpoint"]
        time.sleep(0.1)
    raise TimeoutError("etcd elected no leader")


# ---------------------------------------------------------------------- pysyncobj
def pysyncobj_member(argv: list[str]) -> int:
    """One PySyncObj member process; with ``--drive`` it also runs the workloads."""
    from pysyncobj import SyncObj, SyncObjConf, replicated

    ap = argparse.ArgumentParser()
    ap.add_argument("--self", required=True)
    ap.add_argument("--partners", required=True)
    ap.add_argument("--dir", required=True)
    ap.add_argument("--drive", default="")
    ap.add_argument("--duration", type=float, default=5.0)
    args = ap.parse_args(argv)

    class Counter(SyncObj):
        def __init__(self) -> None:
            conf = SyncObjConf(journalFile=os.path.join(args.dir, "journal"),
                               fullDumpFile=os.path.join(args.dir, "dump"),
                               flushJournal=True, dynamicMembershipChange=False)
            super().__init__(args.self, args.partners.split(","), conf)
            self.n = 0

        @replicated
        def incr(self, payload: bytes) -> int:
            self.n += 1
            return self.n

    obj = Counter()
    deadline = time.monotonic() + 60
    while obj._getLeader() is None:
        if time.monotonic() > deadline:
            raise TimeoutError("pysyncobj elected no leader")
        time.sleep(0.05)
    if not args.drive:
        signal.sigwait({signal.SIGTERM})
        return 0
    out = []
    for n in (int(x) for x in args.drive.split(",")):
        def make_call(w: int) -> Callable[[int], None]:
            def call(seq: int) -> None:
                obj.incr(VALUE, sync=True, timeout=10)
            return call
        r = run_load(make_call, n, args.duration)
        out.append({"workload": f"proposers-{n}", "system": "pysyncobj", **r})
    print("RESULT " + json.dumps(out), flush=True)
    return 0


def bench_pysyncobj(root: Path, duration: float) -> list[dict[str, Any]]:
    try:
        import pysyncobj  # noqa: F401
    except ImportError:
        print("  pysyncobj: not installed (pip install pysyncobj); skipped", flush=True)
        return []
    addrs = [f"127.0.0.1:{_free_port()}" for _ in range(3)]
    procs = []
    env = dict(os.environ, PYTHONPATH=str(REPO))
    for i, a in enumerate(addrs):
        d = root / "pysyncobj" / str(i)
        d.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "bench.raft", "pysyncobj-member", "--self", a,
               "--partners", ",".join(x for x in addrs if x != a), "--dir", str(d)]
        if i == 0:
            cmd += ["--drive", ",".join(map(str, PROPOSERS)), "--duration", str(duration)]
        procs.append(subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.DEVNULL, text=True))
    try:
        out, _ = procs[0].communicate(timeout=60 + 4 * duration * len(PROPOSERS))
    finally:
        for p in procs[1:]:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
    results: list[dict[str, Any]] = []
    for line in out.splitlines():
        if line.startswith("RESULT "):
            results = json.loads(line[7:])
    for r in results:
        _line("pysyncobj", int(r["workload"].split("-")[1]), r)
    return results


# ---------------------------------------------------------------------- main
def main(argv: list[str]) -> int:
    if argv and argv[0] == "pysyncobj-member":
        return pysyncobj_member(argv[1:])
    if argv and argv[0] == "load-client":
        return load_client(argv[1:])
    ap = argparse.ArgumentParser(prog="python -m bench raft", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", help="write the figures to this file")
    ap.add_argument("--duration", type=float, default=5.0, help="seconds per workload")
    ap.add_argument("--kills", type=int, default=20, help="leader kills for failover timing")
    ap.add_argument("--skip-etcd", action="store_true")
    ap.add_argument("--skip-pysyncobj", action="store_true")
    args = ap.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="bench-raft-"))
    try:
        print("helogale (3 members, WAL fsync, Raft over TCP on loopback)"
              + ("" if args.skip_etcd else ", interleaved with etcd (3 members on loopback)"),
              flush=True)
        with (contextlib.nullcontext(None) if args.skip_etcd
              else etcd_cluster(root)) as etcd_address:
            results, failover = bench_helogale(root, args.duration, args.kills, etcd_address)
        if not args.skip_pysyncobj:
            print("pysyncobj (3 processes, journal on disk)", flush=True)
            results += bench_pysyncobj(root, args.duration)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print(f"failover: p50 {failover['p50_s']:.3f} s  p99 {failover['p99_s']:.3f} s  "
          f"(n={failover['n']})")
    ours = {r["workload"]: r for r in results if r["system"] == "helogale"}
    for r in results:
        if r["system"] in ("etcd", "pysyncobj") and r["workload"] in ours and r["ops_per_s"]:
            ratio = ours[r["workload"]]["ops_per_s"] / r["ops_per_s"]
            print(f"ratio helogale/{r['system']} {r['workload']}: {ratio:.2f}x throughput")
    if args.json:
        shaped = [{k: r[k] for k in ("workload", "system", "ops_per_s", "p50_ms", "p99_ms")}
                  for r in results]
        Path(args.json).write_text(json.dumps({"results": shaped, "failover": failover},
                                              indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
