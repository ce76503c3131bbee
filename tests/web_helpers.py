"""What the web-example tests (``test_web_examples.py``) share: a tiny PNG, and a burst of
requests through a framework's test client while the primary of the shard owning the example's
database is SIGKILLed and another is elected (helper module, not a test file)."""

from __future__ import annotations

import struct
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field

from node.local_cluster import wait_until
from node.sharded_cluster import ShardedCluster
from tests.sharded_helpers import ok


def tiny_png() -> bytes:
    """A valid 1x1 PNG."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data)))
    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(b"\x00\xff\x80\x00")) + chunk(b"IEND", b""))


def owning_shard(cluster: ShardedCluster, db: str) -> int:
    """The index of the shard that is ``db``'s primary shard (its unsharded collections, such
    as the examples' counters and hit log, live there)."""
    reply = ok(cluster.router_command(0, {"find": "databases", "filter": {"_id": db}},
                                      db="config"))
    name = reply["cursor"]["firstBatch"][0]["primary"]
    return [s.replset for s in cluster.shards].index(name)


@dataclass
class Burst:
    """What a burst saw: successful requests and what each returned, failures (with what went
    wrong), each request's latency, and the burst's length in seconds."""

    ok: int = 0
    results: list[object] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    seconds: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def summary(self, framework: str) -> str:
        return (f"{framework}: {self.ok} requests in {self.seconds:.1f} s "
                f"({self.ok / self.seconds:.0f}/s) across a shard failover, "
                f"{len(self.failures)} failed, max latency {max(self.latencies):.2f} s")


def failover_burst(cluster: ShardedCluster, db: str,
                   client_factory: Callable[[], Callable[[], object]], threads: int = 4,
                   before: int = 20, after: int = 20) -> Burst:
    """``threads`` threads, each with its own test client (``client_factory()`` returns a
    function making one request and returning what it got, None when it failed), request the
    page in a loop; once
    ``before`` requests succeeded, the primary of the shard owning ``db`` is SIGKILLed; the
    burst ends once another member is primary and ``after`` more requests succeeded. The killed
    member is restarted (and ready) before this returns."""
    shard = cluster.shards[owning_shard(cluster, db)]
    old = shard.wait_for_primary(60)
    burst = Burst()
    stop = threading.Event()

    def loop() -> None:
        request = client_factory()
        while not stop.is_set():
            started = time.monotonic()
            try:
                got, why = request(), "the page did not show a count"
            except Exception as exc:  # a failed request, whatever the framework made of it
                got, why = None, repr(exc)
            with burst.lock:
                burst.latencies.append(time.monotonic() - started)
                if got is not None:
                    burst.ok += 1
                    burst.results.append(got)
                else:
                    burst.failures.append(why)

    workers = [threading.Thread(target=loop, daemon=True) for _ in range(threads)]
    began = time.monotonic()
    for w in workers:
        w.start()
    try:
        wait_until(lambda: burst.ok >= before or burst.failures, 60, "requests before the kill")
        shard.kill(old)
        shard.wait_for_primary(60, exclude=old)
        elected = burst.ok
        wait_until(lambda: burst.ok >= elected + after or burst.failures, 60,
                   "requests served after the new primary was elected")
    finally:
        stop.set()
        for w in workers:
            w.join(120)
        burst.seconds = time.monotonic() - began
        shard.restart(old)
        shard.wait_ready(old, 60)
    return burst
