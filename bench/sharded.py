"""``python -m bench sharded [--json PATH] [--quick]``: what the router costs, in one run.

Three systems, started one after the other on loopback (each stopped before the next starts,
so they never share the machine with each other):

* ``replset``: a 3-member replica set, the clients talking straight to its primary;
* ``router-1-shard``: config servers (3), one 3-member shard and one router, the clients
  talking to the router;
* ``router-2-shards``: the same with two shards; both collections are pre-split at
  ``{_id: 0}`` and the upper chunk moved to the second shard before any document is written.

Documents get ``_id``s that spread over the shard key space: random signed 64-bit integers
(ObjectIds grow monotonically, so they would all land in the last chunk). The preloaded
documents' ``_id``s are a hash of their index, so a load client reads back ids known to exist
without being told them. Both sharded systems shard their collections by ``_id`` (one chunk
on one shard for ``router-1-shard``), so each write carries the shard version as it would in a
real cluster.

Workloads, each for ``--duration`` seconds after a 0.5 s warm-up, at N = 1, 16, 64 clients
(``--quick``: 1 and 16, short windows):

* ``insert-majority-N``: each client ``insert_one`` of ``{_id: <random int64>, v: <200 bytes>}``
  with ``w: "majority"``, one outstanding at a time;
* ``find-id-N``: each client ``find_one({_id: <a preloaded id>})``;
* ``find-sorted-N`` (N = 1, 16): ``find({k: {$gte: x, $lt: x + 500}}).sort(k).batch_size(100)``
  read to the end (a first batch, then ``getMore``s of 100), on the indexed non-``_id`` field ``k``
  over 500 documents whose ``_id``s, and so shards, are random: on ``router-2-shards`` every
  query is scatter-gather with the router merging two sorted streams. ``ops_per_s`` counts
  queries, ``docs_per_s`` documents.

The load client is the ``helogale`` client library (gRPC, ``MongoClient`` with retryable writes
on, as an application uses it): ceil(N / 32) processes, each one ``MongoClient`` shared by its
threads (one pipelined command stream per server), driven by :mod:`bench.load`. The three
systems differ only in the URI the clients get.

Each row also has ``cpu_ms_per_op``: the CPU time of every process of the system (members,
config servers, router; sampled at the window's edges) and of its clients, over the operations
finished in the window. On a shared machine it moves less than throughput and latency do.

On ``router-1-shard`` the run then measures the router's cost on that one cluster
(:func:`paired`, ``--paired-rounds``): 1-client and N-client insert windows straight to the
shard's primary and through the router, alternating, with the router process's own CPU per
write. Two systems started one after the other see different neighbours; one cluster measured
both ways in turn does not, so this ratio is the steadier one.

On the sharded systems (config servers with ``--balancer-interval-secs 1``; the balancer
stopped but for its own parts) the run then measures the ObjectId hot spot and, with two
shards, the balancer's convergence from one shard to balanced (:mod:`bench.hotspot`;
``--hotspot-duration``, ``--converge-mib``; 0 skips either).

``--json PATH`` writes ``{"results": [{workload, system, ops_per_s, p50_ms, p99_ms,
cpu_ms_per_op, errors, docs_per_s (sorted queries)}], "ratios": [...], "targets": [...],
"placement": {...}, "machine": {...}}``: ``ratios`` are each sharded system's throughput,
latency and CPU per operation over the replica set's for the same workload;
``targets`` the router-overhead aims (``router-1-shard`` >= 0.8x the replica set's throughput
at the most clients, <= 1.5x its p50 latency at one client); ``placement`` how many documents
each shard of ``router-2-shards`` holds; ``machine`` the CPU count and load averages;
``hotspot`` and ``convergence`` the rows and figures of :mod:`bench.hotspot`; ``paired``
the paired rounds (each side's p50 per round, ``p50_x`` the median per-round ratio,
``router_cpu_ms_per_op``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import hashlib
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bench import hotspot
from bench.load import run_client_processes, run_window, split_clients
from node.local_cluster import LocalCluster
from node.ops.progress import Progress, terminal
from node.sharded_cluster import ShardedCluster

SYSTEMS = ("replset", "router-1-shard", "router-2-shards")
CLIENTS = (1, 16, 64)
QUICK_CLIENTS = (1, 16)
SORTED_CLIENTS = (1, 16)
DB = "bench"
INSERTS = "inserts"
DOCS = "docs"
PAYLOAD = "x" * 200
PRELOAD = 20_000
QUICK_PRELOAD = 3_000
PRELOAD_BATCH = 1000
SORT_SPAN = 500  # documents per sorted query
SORT_BATCH = 100  # documents per batch: a first batch and 4 getMores bring 500
SPLIT_AT = 0  # the middle of the signed 64-bit _id space
BALANCER_INTERVAL_S = 1  # balancer rounds in the sharded systems (stopped but for its parts)
HOT_DURATION = 10.0
QUICK_HOT_DURATION = 3.0
PAIRED_ROUNDS = 4
CONVERGE_MIB = 16.0
QUICK_CONVERGE_MIB = 5.0


def doc_id(i: int) -> int:
    """The ``_id`` of preloaded document ``i``: a signed 64-bit hash, spread over both halves."""
    h = int.from_bytes(hashlib.blake2b(i.to_bytes(8, "big"), digest_size=8).digest(), "big")
    return h - (1 << 63)


def random_id(rng: random.Random) -> int:
    return rng.getrandbits(64) - (1 << 63)


# ---------------------------------------------------------------------- load client process
def _operation(coll: Any, workload: str, docs: int, rng: random.Random) -> Callable[[], None]:
    """One client's request: raises unless the reply is what an application expects."""
    if workload == "insert":
        def insert() -> None:
            result = coll.insert_one({"_id": random_id(rng), "v": PAYLOAD})
            if not result.acknowledged:
                raise RuntimeError("insert not acknowledged")
        return insert
    if workload == "insert-oid":
        def insert_oid() -> None:  # the client library gives the document an ObjectId
            result = coll.insert_one({"v": PAYLOAD})
            if not result.acknowledged:
                raise RuntimeError("insert not acknowledged")
        return insert_oid
    if workload == "find":
        def find() -> None:
            i = rng.randrange(docs)
            got = coll.find_one({"_id": doc_id(i)})
            if got is None or got["k"] != i:
                raise RuntimeError(f"document {i} not found: {got}")
        return find
    if workload == "sorted":
        def find_sorted() -> None:
            lo = rng.randrange(docs - SORT_SPAN)
            got = [d["k"] for d in coll.find({"k": {"$gte": lo, "$lt": lo + SORT_SPAN}},
                                             {"k": 1}).sort("k", 1).batch_size(SORT_BATCH)]
            if got != list(range(lo, lo + SORT_SPAN)):
                raise RuntimeError(f"sorted query from {lo}: {len(got)} documents, "
                                   "not the expected run")
        return find_sorted
    raise ValueError(f"unknown workload {workload!r}")


async def _load(uri: str, workload: str, clients: int, docs: int, seed: int,
                coll_name: str | None = None) -> dict[str, Any]:
    """``clients`` threads sharing one ``MongoClient``, each one request outstanding."""
    from helogale import MongoClient

    client = MongoClient(uri, w="majority")
    coll = client[DB][coll_name or (INSERTS if workload == "insert" else DOCS)]
    ops = [_operation(coll, workload, docs, random.Random(seed * 1000 + k))
           for k in range(clients)]
    loop = asyncio.get_running_loop()
    pool = ThreadPoolExecutor(max_workers=clients)
    try:
        warm = [loop.run_in_executor(pool, op) for op in ops]  # connect before the clock
        await asyncio.gather(*warm, return_exceptions=True)
        print("READY", flush=True)
        line = await loop.run_in_executor(None, sys.stdin.readline)
        start, stop_at = (float(x) for x in line.split())

        def call(op: Callable[[], None], seq: int) -> Any:
            return loop.run_in_executor(pool, op)

        return await run_window([functools.partial(call, op) for op in ops], start, stop_at)
    finally:
        pool.shutdown(wait=False)
        client.close()


def load_client(argv: list[str]) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--uri", required=True)
    ap.add_argument("--workload", choices=("insert", "insert-oid", "find", "sorted"),
                    required=True)
    ap.add_argument("--coll", help="collection (default: by workload)")
    ap.add_argument("--clients", type=int, required=True)
    ap.add_argument("--docs", type=int, required=True)
    ap.add_argument("--seed", type=int, required=True)
    args = ap.parse_args(argv)
    out = asyncio.run(_load(args.uri, args.workload, args.clients, args.docs, args.seed,
                            args.coll))
    print("RESULT " + json.dumps(out), flush=True)
    return 0


def run_clients(uri: str, workload: str, clients: int, duration: float, docs: int,
                server_pids: list[int] | None = None, coll: str | None = None
                ) -> dict[str, float]:
    """``clients`` concurrent clients over ceil(clients / 32) processes (bench.load)."""
    seed = time.time_ns() % 1_000_000_000
    argvs = [["bench", "sharded", "load-client", "--uri", uri, "--workload", workload,
              "--clients", str(k), "--docs", str(docs), "--seed", str(seed + i),
              *(["--coll", coll] if coll else [])]
             for i, k in enumerate(split_clients(clients))]
    return run_client_processes(argvs, duration, workload, server_pids)


def server_pids(cluster: LocalCluster | ShardedCluster) -> list[int]:
    """Every process of the system: members of every replica set, and the routers."""
    sets = cluster.sets if isinstance(cluster, ShardedCluster) else [cluster]
    procs = [m.proc for s in sets for m in s.members]
    if isinstance(cluster, ShardedCluster):
        procs += [r.proc for r in cluster.routers]
    return [p.pid for p in procs if p is not None]


# ---------------------------------------------------------------------- systems under test
def _ok(reply: dict[str, Any], what: str) -> dict[str, Any]:
    if reply.get("ok") != 1.0:
        raise RuntimeError(f"{what} failed: {reply}")
    return reply


def _shard_collections(cluster: ShardedCluster) -> None:
    """Shard both collections by ``_id``; with two shards, split at ``SPLIT_AT`` and move the
    upper chunk to the second shard while the collections are still empty."""
    names = [s["_id"] for s in _ok(cluster.router_command(0, {"listShards": 1}),
                                   "listShards")["shards"]]
    _ok(cluster.router_command(0, {"enableSharding": DB}), "enableSharding")
    for coll in (INSERTS, DOCS):
        ns = f"{DB}.{coll}"
        _ok(cluster.router_command(0, {"shardCollection": ns, "key": {"_id": 1}}),
            f"shardCollection {ns}")
        if len(names) < 2:
            continue
        _ok(cluster.router_command(0, {"split": ns, "middle": {"_id": SPLIT_AT}}),
            f"split {ns}")
        chunks = _ok(cluster.router_command(0, {"find": "chunks", "filter": {
            "ns": ns, "min": {"_id": SPLIT_AT}}}, db="config"), "reading config.chunks")
        owner = chunks["cursor"]["firstBatch"][0]["shard"]
        other = next(n for n in names if n != owner)
        _ok(cluster.router_command(0, {"moveChunk": ns, "find": {"_id": SPLIT_AT},
                                       "to": other}), f"moveChunk {ns}")


@contextlib.contextmanager
def start_system(name: str, root: Path, members: int) -> Iterator[tuple[str, Any]]:
    """Start ``name``; yields (the clients' URI, the cluster object). Whatever was started
    is stopped on the way out, also when start-up itself fails (the harnesses' ``with``
    would leave the processes running then)."""
    cluster: LocalCluster | ShardedCluster
    if name == "replset":
        cluster = LocalCluster(members, data_dir=str(root / name), log_level="WARNING")
    else:
        cluster = ShardedCluster(shards=2 if name == "router-2-shards" else 1,
                                 members=members, routers=1, wire=False,
                                 data_dir=str(root / name), log_level="WARNING",
                                 extra_args=["--balancer-interval-secs",
                                             str(BALANCER_INTERVAL_S)])
    try:
        cluster.start(timeout=120)
        if isinstance(cluster, ShardedCluster):
            # only the balancer parts run it: its rounds would measure the other collections
            _ok(cluster.router_command(0, {"balancerStop": 1}), "balancerStop")
            _shard_collections(cluster)
        yield cluster.uri, cluster
    finally:
        cluster.stop()


def preload(uri: str, docs: int) -> None:
    """``docs`` documents ``{_id: doc_id(i), k: i, v: <200 bytes>}`` and an index on ``k``,
    written with ``w: "majority"`` through the same URI the clients use."""
    from helogale import MongoClient

    client = MongoClient(uri, w="majority")
    try:
        coll = client[DB][DOCS]
        coll.create_index("k")
        with Progress("bench preload", total=docs, unit="docs", stream=terminal()) as work:
            for lo in range(0, docs, PRELOAD_BATCH):
                batch = [{"_id": doc_id(i), "k": i, "v": PAYLOAD}
                         for i in range(lo, min(docs, lo + PRELOAD_BATCH))]
                coll.insert_many(batch, ordered=False)  # one shard round trip per run of ids
                work.advance(len(batch))
        client[DB][INSERTS].insert_one({"_id": 0, "v": PAYLOAD})  # the collection exists
    finally:
        client.close()


def placement(cluster: ShardedCluster) -> dict[str, dict[str, int]]:
    """Documents per shard and collection, counted on each shard's primary directly."""
    out: dict[str, dict[str, int]] = {}
    for shard in cluster.shards:
        p = shard.wait_for_primary()
        out[shard.replset] = {coll: int(shard.command(p, {"count": coll}, db=DB).get("n", 0))
                              for coll in (INSERTS, DOCS)}
    return out


def bench_system(name: str, root: Path, members: int, duration: float,
                 clients: tuple[int, ...], sorted_clients: tuple[int, ...], docs: int,
                 hot_duration: float = 0.0, converge_mib: float = 0.0,
                 paired_rounds: int = 0) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """One system's rows; ``extra`` has its ``placement`` and, for the sharded systems with
    ``hot_duration``, its ``hotspot`` rows and (two shards, ``converge_mib``) its
    ``convergence`` (:mod:`bench.hotspot`)."""
    results: list[dict[str, Any]] = []
    extra: dict[str, Any] = {}
    t0 = time.monotonic()
    with start_system(name, root, members) as (uri, cluster):
        preload(uri, docs)
        print(f"  ({name} up and {docs} documents loaded in {time.monotonic() - t0:.1f} s)",
              flush=True)
        for workload, label, counts in (("insert", "insert-majority", clients),
                                        ("find", "find-id", clients),
                                        ("sorted", "find-sorted", sorted_clients)):
            for n in counts:
                r = run_clients(uri, workload, n, duration, docs, server_pids(cluster))
                row: dict[str, Any] = {"workload": f"{label}-{n}", "system": name, **r}
                if r["ops_per_s"] and "server_cpu" in r:
                    row["cpu_ms_per_op"] = ((r["server_cpu"] + r["client_cpu"]) * 1000
                                            / r["ops_per_s"])
                if workload == "sorted":
                    row["docs_per_s"] = r["ops_per_s"] * SORT_SPAN
                results.append(row)
                _print(row)
        if isinstance(cluster, ShardedCluster):
            extra["placement"] = placement(cluster)
            if paired_rounds > 0 and len(cluster.shards) == 1:
                extra["paired"] = paired(cluster, uri, paired_rounds, duration, clients, docs)
            if hot_duration > 0:
                pids = server_pids(cluster)

                def run(workload: str, n: int, secs: float, coll: str) -> dict[str, float]:
                    return run_clients(uri, workload, n, secs, docs, pids, coll=coll)

                hotspot.drop(cluster, [DOCS, INSERTS])  # the balancer parts measure less
                extra["hotspot"] = hotspot.hotspot(cluster, name, hot_duration, run)
                for row in extra["hotspot"]:
                    _print(row)
            if converge_mib > 0 and len(cluster.shards) > 1:
                extra["convergence"] = hotspot.convergence(cluster, converge_mib)
                print("  " + hotspot.format_convergence(extra["convergence"]), flush=True)
    extra["loadavg_after"] = list(os.getloadavg())
    return results, extra


def paired(cluster: ShardedCluster, uri: str, rounds: int, duration: float,
           clients: tuple[int, ...], docs: int) -> list[dict[str, Any]]:
    """The router's cost on ONE cluster: ``rounds`` pairs of ``insert-majority-N`` windows,
    straight to the shard's primary (collection ``paired``) and through the router (the
    sharded ``inserts``), in alternating order. Both see the same processes and the same
    neighbours, so the per-round ratio moves far less than the ratio of two systems started
    one after the other. Per N: each side's p50 per round, the median of the per-round
    ratios, and the router process's CPU per write (its own ``/proc`` time, nothing else)."""
    router_pid = [r.proc.pid for r in cluster.routers if r.proc is not None]
    shard_uri = cluster.shards[0].uri
    out = []
    for n in clients:
        direct: list[float] = []
        routed: list[float] = []
        router_cpu: list[float] = []
        for k in range(rounds):
            for side in (("direct", "router") if k % 2 == 0 else ("router", "direct")):
                if side == "direct":
                    r = run_clients(shard_uri, "insert", n, duration, docs, coll="paired")
                    direct.append(r["p50_ms"])
                    continue
                r = run_clients(uri, "insert", n, duration, docs, router_pid)
                routed.append(r["p50_ms"])
                if r["ops_per_s"] and "server_cpu" in r:
                    router_cpu.append(r["server_cpu"] * 1000 / r["ops_per_s"])
        ratios = [b / a for a, b in zip(direct, routed, strict=True) if a]
        row = {"workload": f"insert-majority-{n}", "direct_p50_ms": direct,
               "router_p50_ms": routed, "p50_x": statistics.median(ratios) if ratios else None,
               "round_p50_x": ratios,
               "router_cpu_ms_per_op": statistics.median(router_cpu) if router_cpu else None}
        print("  " + format_paired(row), flush=True)
        out.append(row)
    return out


def format_paired(row: dict[str, Any]) -> str:
    cpu = row["router_cpu_ms_per_op"]
    return (f"paired {row['workload']}: router/direct p50 {_x(row['p50_x'])} (rounds "
            + " ".join(f"{x:.2f}" for x in row["round_p50_x"])
            + f"; direct {statistics.median(row['direct_p50_ms']):.2f} ms, router "
            f"{statistics.median(row['router_p50_ms']):.2f} ms); router CPU "
            + ("-" if cpu is None else f"{cpu:.2f} ms/write"))


# ---------------------------------------------------------------------- report
def _print(r: dict[str, Any]) -> None:
    docs = f"  {r['docs_per_s']:8.0f} docs/s" if "docs_per_s" in r else ""
    if "server_cpu" in r:
        docs = f"  servers {r['server_cpu']:.2f} cores" + docs
    if "cpu_ms_per_op" in r:
        docs = f"  cpu {r['cpu_ms_per_op']:6.2f} ms/op" + docs
    err = f"  {int(r['errors'])} errors" if r.get("errors") else ""
    print(f"  {r['system']:<15} {r['workload']:<20} {r['ops_per_s']:8.0f} ops/s  "
          f"p50 {r['p50_ms']:7.2f} ms  p99 {r['p99_ms']:7.2f} ms  "
          f"clients {r['client_cpu']:.2f} cores{docs}{err}", flush=True)


def ratios(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each sharded system's figures over the replica set's, workload by workload."""
    base = {r["workload"]: r for r in results if r["system"] == "replset"}
    out = []
    for r in results:
        a = base.get(r["workload"])
        if r["system"] == "replset" or a is None:
            continue
        out.append({"workload": r["workload"], "system": r["system"],
                    "throughput_x": _div(r["ops_per_s"], a["ops_per_s"]),
                    "p50_x": _div(r["p50_ms"], a["p50_ms"]),
                    "p99_x": _div(r["p99_ms"], a["p99_ms"]),
                    "cpu_x": (_div(r["cpu_ms_per_op"], a["cpu_ms_per_op"])
                              if "cpu_ms_per_op" in r and "cpu_ms_per_op" in a else None)})
    return out


def _div(a: float, b: float) -> float | None:
    return a / b if b and b == b and a == a else None


def targets(rows: list[dict[str, Any]], clients: tuple[int, ...]) -> list[dict[str, Any]]:
    """The router-overhead aims for ``router-1-shard``: throughput >= 0.8x the replica set's
    at the most clients measured, p50 latency <= 1.5x at one client."""
    by = {(r["workload"], r["system"]): r for r in rows}
    most, one = max(clients), min(clients)
    out = []
    for op in ("insert-majority", "find-id"):
        for workload, key, aim in ((f"{op}-{most}", "throughput_x", 0.8),
                                   (f"{op}-{one}", "p50_x", 1.5)):
            r = by.get((workload, "router-1-shard"))
            value = None if r is None else r[key]
            met = value is not None and (value >= aim if key == "throughput_x"
                                         else value <= aim)
            out.append({"workload": workload, "measure": key, "value": value,
                        "aim": (">= " if key == "throughput_x" else "<= ") + str(aim),
                        "met": met})
    return out


def format_table(results: list[dict[str, Any]]) -> str:
    """One line per workload and system: throughput, p50 latency and CPU per operation (all
    processes of the system plus its clients), the sharded systems with their ratio to the
    replica set's."""
    by = {(r["workload"], r["system"]): r for r in results}
    head = (f"{'workload':<20} {'system':<16} {'ops/s':>8} {'':>6} {'p50 ms':>8} {'':>6} "
            f"{'p99 ms':>8} {'cpu ms/op':>10} {'':>6}")
    lines = [head, "-" * len(head)]
    for w in dict.fromkeys(r["workload"] for r in results):
        a = by.get((w, "replset"))
        for s in SYSTEMS:
            r = by.get((w, s))
            if r is None:
                continue
            base = a if s != "replset" else None
            cpu = r.get("cpu_ms_per_op")
            lines.append(f"{w if s == SYSTEMS[0] or a is None else '':<20} {s:<16} "
                         f"{r['ops_per_s']:8.0f} {_vs(r, base, 'ops_per_s'):>6} "
                         f"{r['p50_ms']:8.2f} {_vs(r, base, 'p50_ms'):>6} {r['p99_ms']:8.2f} "
                         f"{'-' if cpu is None else f'{cpu:.2f}':>10} "
                         f"{_vs(r, base, 'cpu_ms_per_op'):>6}")
    return "\n".join(lines)


def _vs(r: dict[str, Any], base: dict[str, Any] | None, key: str) -> str:
    """``r[key]`` over ``base[key]`` as a ratio ("" without a base)."""
    if base is None or key not in r or key not in base:
        return ""
    return _x(_div(r[key], base[key]))


def _x(v: float | None) -> str:
    return f"{v:.2f}x" if v is not None else "-"


def main(argv: list[str]) -> int:
    if argv and argv[0] == "load-client":
        return load_client(argv[1:])
    ap = argparse.ArgumentParser(prog="python -m bench sharded", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", help="write the figures to this file")
    ap.add_argument("--quick", action="store_true",
                    help="short windows, 1 and 16 clients, fewer preloaded documents")
    ap.add_argument("--duration", type=float, help="seconds per workload (5, --quick 1)")
    ap.add_argument("--docs", type=int, help=f"preloaded documents ({PRELOAD}, "
                                             f"--quick {QUICK_PRELOAD})")
    ap.add_argument("--members", type=int, default=3, help="members per replica set")
    ap.add_argument("--hotspot-duration", type=float,
                    help=f"seconds per ObjectId hot-spot workload ({HOT_DURATION:g}, --quick "
                    f"{QUICK_HOT_DURATION:g}; 0 skips them)")
    ap.add_argument("--converge-mib", type=float,
                    help=f"MiB loaded on one shard for the balancer's convergence "
                    f"({CONVERGE_MIB:g}, --quick {QUICK_CONVERGE_MIB:g}; 0 skips it)")
    ap.add_argument("--paired-rounds", type=int, default=PAIRED_ROUNDS,
                    help="router-1-shard: rounds of inserts straight to the shard and through "
                    f"the router, alternating, on the same cluster ({PAIRED_ROUNDS}; 0 skips)")
    ap.add_argument("--systems", default=",".join(SYSTEMS),
                    help="comma-separated subset of " + ",".join(SYSTEMS))
    args = ap.parse_args(argv)
    duration = args.duration or (1.0 if args.quick else 5.0)
    docs = args.docs or (QUICK_PRELOAD if args.quick else PRELOAD)
    if docs <= SORT_SPAN:
        ap.error(f"--docs must be more than {SORT_SPAN}")
    clients = QUICK_CLIENTS if args.quick else CLIENTS
    hot_duration = args.hotspot_duration if args.hotspot_duration is not None else (
        QUICK_HOT_DURATION if args.quick else HOT_DURATION)
    converge_mib = args.converge_mib if args.converge_mib is not None else (
        QUICK_CONVERGE_MIB if args.quick else CONVERGE_MIB)
    systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    if unknown := set(systems) - set(SYSTEMS):
        ap.error(f"unknown system(s): {', '.join(sorted(unknown))}")
    machine: dict[str, Any] = {"cpus": os.cpu_count(), "loadavg_before": list(os.getloadavg()),
                               "loadavg_after": {}}
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())} "
          f"on {os.cpu_count()} cores", flush=True)
    results: list[dict[str, Any]] = []
    placed: dict[str, Any] = {}
    hot_rows: list[dict[str, Any]] = []
    paired_rows: list[dict[str, Any]] = []
    converged: dict[str, Any] | None = None
    root = Path(tempfile.mkdtemp(prefix="bench-sharded-"))
    try:
        for name in systems:
            print(f"{name} ({args.members} members per set, gRPC on loopback)", flush=True)
            rows, extra = bench_system(name, root, args.members, duration, clients,
                                       SORTED_CLIENTS, docs, hot_duration, converge_mib,
                                       args.paired_rounds)
            results += rows
            machine["loadavg_after"][name] = extra["loadavg_after"]
            if "placement" in extra:
                placed[name] = extra["placement"]
            hot_rows += extra.get("hotspot", [])
            paired_rows += extra.get("paired", [])
            converged = extra.get("convergence", converged)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    print()
    print(format_table(results))
    for name, shards in placed.items():
        print(f"placement {name}: " + ", ".join(
            f"{s} {c[INSERTS]} inserts / {c[DOCS]} docs" for s, c in shards.items()))
    if hot_rows:
        print()
        print(hotspot.format_hotspot(hotspot.with_ratios(hot_rows)))
    if converged is not None:
        print(hotspot.format_convergence(converged))
    for row in paired_rows:
        print(format_paired(row))
    ratio_rows = ratios(results)
    aims = targets(ratio_rows, clients)
    for t in aims:
        value = "-" if t["value"] is None else f"{t['value']:.2f}x"
        print(f"target router-1-shard {t['workload']} {t['measure']}: {value} "
              f"(aim {t['aim']}x) {'met' if t['met'] else 'MISSED'}")
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    if args.json:
        shaped = [{k: r[k] for k in ("workload", "system", "ops_per_s", "p50_ms", "p99_ms",
                                     "docs_per_s", "cpu_ms_per_op", "errors") if k in r}
                  for r in results]
        Path(args.json).write_text(json.dumps({
            "results": shaped, "ratios": ratio_rows, "targets": aims, "placement": placed,
            "machine": machine, "duration_s": duration, "preloaded_docs": docs,
            "hotspot": [{k: r[k] for k in (
                "workload", "system", "ops_per_s", "p50_ms", "p99_ms", "cpu_ms_per_op",
                "errors", "x", "per_shard", "share", "timeline", "balancer") if k in r}
                for r in hot_rows],
            "hotspot_duration_s": hot_duration, "convergence": converged,
            "paired": paired_rows}, indent=2))
    return 0
