"""``python -m bench client [--uri URI] [--seconds 3] [--concurrency 1,16,64]``: the threaded
client against the asyncio client, in one run, on the same server.

Each row is ``insert_one`` of ``{v: <200 bytes>}`` with ``w: "majority"`` for ``--seconds``:
the threaded ``MongoClient`` with N threads, then ``AsyncMongoClient`` with N tasks on one
event loop (in this process, one after the other, the same collection), with the client
process's CPU time per insert (all its threads: the client's, gRPC's). Without ``--uri`` a one-member replica set
is started (a separate process) and stopped afterwards. Prints one JSON line per row.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import threading
import time
from typing import Any

import helogale
from helogale.asyncio import AsyncMongoClient

PAYLOAD = "x" * 200


def threaded(uri: str, n: int, seconds: float) -> int:
    client = helogale.MongoClient(uri, w="majority")
    coll = client.bench_client.docs
    coll.insert_one({"warm": 1})
    done = threading.Event()
    counts = [0] * n

    def worker(k: int) -> None:
        while not done.is_set():
            coll.insert_one({"v": PAYLOAD})
            counts[k] += 1

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(n)]
    for t in threads:
        t.start()
    time.sleep(seconds)
    done.set()
    for t in threads:
        t.join()
    client.close()
    return sum(counts)


async def tasks(uri: str, n: int, seconds: float) -> int:
    async with AsyncMongoClient(uri, w="majority") as client:
        coll = client.bench_client.docs
        await coll.insert_one({"warm": 1})
        done = asyncio.Event()
        counts = [0] * n

        async def worker(k: int) -> None:
            while not done.is_set():
                await coll.insert_one({"v": PAYLOAD})
                counts[k] += 1

        running = [asyncio.create_task(worker(k)) for k in range(n)]
        await asyncio.sleep(seconds)
        done.set()
        await asyncio.gather(*running)
        return sum(counts)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench client")
    parser.add_argument("--uri")
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--concurrency", default="1,16,64")
    args = parser.parse_args(argv)
    cluster: Any = None
    uri = args.uri
    if uri is None:
        from node.local_cluster import LocalCluster

        cluster = LocalCluster(1).start()
        uri = cluster.uri
    try:
        for n in (int(x) for x in args.concurrency.split(",")):
            for name in ("threads", "asyncio"):
                cpu = time.process_time()
                if name == "threads":
                    inserted = threaded(uri, n, args.seconds)
                else:
                    inserted = asyncio.run(tasks(uri, n, args.seconds))
                cpu_us = (time.process_time() - cpu) * 1e6 / max(inserted, 1)
                print(json.dumps({"client": name, "concurrency": n,
                                  "inserts_per_s": round(inserted / args.seconds),
                                  "client_cpu_us_per_insert": round(cpu_us)}), flush=True)
    finally:
        if cluster is not None:
            cluster.stop()
    return 0
