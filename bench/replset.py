"""``python -m bench replset [--json PATH]``: a 3-member Helogale replica set on loopback.

Workloads, each for ``--duration`` seconds, through the gRPC command endpoint of the primary:

* ``insert-w1-N`` and ``insert-majority-N`` for N = 1, 16, 64 concurrent clients: one
  single-document insert outstanding per client (``writeConcern`` ``w: 1`` / ``"majority"``);
* ``insert_many-batch-1000``: 4 clients inserting batches of 1,000 documents with
  ``w: "majority"`` (``ops_per_s`` counts documents);
* failover: ``--kills`` times (>= 10), SIGKILL the primary under a steady ``w: "majority"`` write
  load and time until the first write acknowledged after the kill; then restart the member and
  wait until it caught up (each kill hits a healthy set).

In the same run, a 3-member etcd on loopback (Debian ``etcd-server``) takes puts of the same
size at the same concurrency (``bench.raft.bench_etcd``), reported as ``insert-majority-N``
for system ``etcd`` (every etcd put is majority-committed). ``--json PATH`` writes
``{"results": [{workload, system, ops_per_s, p50_ms, p99_ms}], "failover": {p50_s, p99_s, n}}``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import shutil
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
from bench.raft import percentile, run_load
from node.local_cluster import CHANNEL_OPTIONS, LocalCluster, wait_until
from proto import helogale_pb2, helogale_pb2_grpc

CLIENTS = (1, 16, 64)
PAYLOAD = "x" * 200
BATCH = 1000
BATCH_CLIENTS = 4


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


def bench_inserts(cluster: LocalCluster, duration: float) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = []
    p = cluster.wait_for_primary()
    chans, stubs = _stubs(cluster.members[p].address, 8)
    try:
        for w, label in ((1, "w1"), ("majority", "majority")):
            for n in CLIENTS:
                def make_call(worker: int, n: int = n, w: Any = w, label: str = label
                              ) -> Callable[[int], None]:
                    stub = stubs[worker % len(stubs)]

                    def call(seq: int) -> None:
                        _run(stub, {"insert": f"{label}{n}", "documents": [
                            {"_id": f"{worker}-{seq}", "v": PAYLOAD}],
                            "writeConcern": {"w": w}})
                    return call
                r = run_load(make_call, n, duration)
                results.append({"workload": f"insert-{label}-{n}", "system": "helogale", **r})
                _print(results[-1])

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
    print(f"  {r['system']:<9} {r['workload']:<24} {r['ops_per_s']:10.0f} ops/s  "
          f"p50 {r['p50_ms']:8.2f} ms  p99 {r['p99_ms']:8.2f} ms", flush=True)


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench replset", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", help="write the figures to this file")
    ap.add_argument("--duration", type=float, default=5.0, help="seconds per workload")
    ap.add_argument("--kills", type=int, default=10, help="primary kills for failover timing")
    ap.add_argument("--skip-etcd", action="store_true")
    args = ap.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="bench-replset-"))
    try:
        print("helogale replica set (3 members, Raft WAL fsync, gRPC on loopback)", flush=True)
        with LocalCluster(3, data_dir=str(root / "helogale"), log_level="WARNING") as cluster:
            results = bench_inserts(cluster, args.duration)
            failover = bench_failover(cluster, args.kills) if args.kills else {
                "p50_s": None, "p99_s": None, "n": 0}
        if not args.skip_etcd:
            print("etcd (3 members on loopback)", flush=True)
            results += bench_etcd(root, args.duration)
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
