"""GridFS and tailable cursors on a three-member replica set whose primary is SIGKILLed.

One set serves the module. Each failover test kills the primary of the moment while a client is
in the middle of something (a GridFS upload, a download, a tailing loop), then restarts the
member so the next test again has three. The 320 MiB round trip is ``-m slow``.
"""

from __future__ import annotations

import hashlib
import io
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator
from typing import Any

import pymongo
import pytest

import helogale
from helogale.gridfs import GridFSBucket
from node.local_cluster import LocalCluster, wait_until

pytestmark = pytest.mark.cluster
MiB = 1024 * 1024


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    running = LocalCluster(members=3, wire=True).start(180)  # a loaded machine is slow
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def client(cluster: LocalCluster) -> Iterator[helogale.MongoClient]:
    with helogale.MongoClient(cluster.uri, serverSelectionTimeoutMS=60000) as running:
        yield running


def _restart_dead(cluster: LocalCluster) -> None:
    for i, member in enumerate(cluster.members):
        if not member.alive:
            cluster.restart(i)
            cluster.wait_ready(i, 300)  # a loaded machine starts processes slowly


class Source(io.RawIOBase):
    """``size`` bytes made as they are read; calls ``at(offset)`` hooks once each."""

    def __init__(self, size: int, hooks: dict[int, Callable[[], None]] | None = None) -> None:
        self.size = size
        self.offset = 0
        self.hooks = dict(hooks or {})
        self.digest = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        n = self.size - self.offset if n is None or n < 0 else min(n, self.size - self.offset)
        data = ((self.offset // 8).to_bytes(8, "big") * (n // 8 + 1))[:n]
        self.offset += n
        self.digest.update(data)
        for at in [a for a in self.hooks if a <= self.offset]:
            self.hooks.pop(at)()
        return data


KILLED: list[int] = []


def _kill_primary(cluster: LocalCluster) -> Callable[[], None]:
    def kill() -> None:
        p = cluster.wait_for_primary(60)
        cluster.kill(p)
        KILLED.append(p)
    return kill


def _anon_rss_mib(cluster: LocalCluster) -> float:
    """The largest anonymous resident size (RssAnon: heap, not LMDB's mapped file pages)
    among the members running now."""
    sizes = [0.0]
    for member in cluster.members:
        if member.proc is None or not member.alive:
            continue
        try:
            with open(f"/proc/{member.proc.pid}/status") as status:
                for line in status:
                    if line.startswith("RssAnon:"):
                        sizes.append(int(line.split()[1]) / 1024)
        except OSError:
            continue
    return max(sizes)


class MemberMemory:
    """Samples the members' anonymous memory every half second while in a ``with`` block."""

    def __init__(self, cluster: LocalCluster) -> None:
        self.cluster = cluster
        self.peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while True:
            self.peak = max(self.peak, _anon_rss_mib(self.cluster))
            if self._stop.wait(0.5):
                return

    def __enter__(self) -> MemberMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _round_trip(cluster: LocalCluster, client: helogale.MongoClient, size: int,
                name: str) -> dict[str, float]:
    """Upload ``size`` bytes killing the primary halfway, download killing it again halfway."""
    bucket = GridFSBucket(client[name])
    kills = len(KILLED)
    source = Source(size, {size // 2: _kill_primary(cluster)})
    tracemalloc.start()
    started = time.monotonic()
    try:
        with MemberMemory(cluster) as members:
            file_id = bucket.upload_from_stream("big.bin", source)
        up_s = time.monotonic() - started
        _, up_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    member_up = members.peak
    print(f"gridfs {size // MiB} MiB upload through a failover: {up_s:.1f} s, client peak "
          f"{up_peak / MiB:.1f} MiB, member peak anonymous memory {member_up:.0f} MiB")
    _restart_dead(cluster)
    digest = hashlib.sha256()
    read = 0
    killed = False
    tracemalloc.start()
    started = time.monotonic()
    try:
        for chunk in bucket.open_download_stream(file_id):
            digest.update(chunk)
            read += len(chunk)
            if not killed and read >= size // 2:
                killed = True
                _kill_primary(cluster)()
        down_s = time.monotonic() - started
        _, down_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    _restart_dead(cluster)
    assert len(KILLED) == kills + 2  # one primary killed during each direction
    assert read == size
    assert digest.digest() == source.digest.digest()
    numbers = {"up_s": up_s, "down_s": down_s, "up_peak_mib": up_peak / MiB,
               "down_peak_mib": down_peak / MiB,
               "member_up_anon_peak_mib": member_up}
    print(f"gridfs {size // MiB} MiB through two failovers: {numbers}")
    return numbers


def test_tailing_over_grpc_and_the_wire(cluster: LocalCluster,
                                        client: helogale.MongoClient) -> None:
    db = client.tail_basics
    db.create_collection("log", capped=True, size=1 << 20)
    db.log.insert_many([{"_id": i} for i in range(3)])
    cursor = db.log.find(cursor_type=helogale.CursorType.TAILABLE_AWAIT).max_await_time_ms(100)
    assert [d["_id"] for d in cursor] == [0, 1, 2] and cursor.alive
    assert list(cursor) == [] and cursor.alive  # waited, nothing new
    db.log.insert_one({"_id": 3})
    assert [d["_id"] for d in cursor] == [3]
    assert cursor.resume_token == {"$recordId": 4}
    classic = db.log.find(tailable=True, await_data=False)
    assert [d["_id"] for d in classic] == [0, 1, 2, 3]
    assert cluster.wire_uri is not None
    with pymongo.MongoClient(cluster.wire_uri, serverSelectionTimeoutMS=30000) as py:
        pycursor = py.tail_basics.log.find(
            cursor_type=pymongo.CursorType.TAILABLE_AWAIT).max_await_time_ms(100)
        assert [d["_id"] for d in pycursor] == [0, 1, 2, 3]
        db.log.insert_one({"_id": 4})
        got: list[Any] = []
        wait_until(lambda: got.extend(d["_id"] for d in pycursor) or got == [4], 10,
                   "pymongo's tailable cursor to see the insert")
        assert pycursor.alive
        assert py.tail_basics.command("collStats", "log")["capped"] is True


def test_tailable_cursor_sees_every_insert_once_across_failover(
        cluster: LocalCluster, client: helogale.MongoClient) -> None:
    db = client.tail_failover
    db.create_collection("log", capped=True, size=1 << 24)
    total = 400
    db.log.insert_one({"_id": 0})
    seen: list[int] = []
    done = threading.Event()

    def tail() -> None:
        cursor = db.log.find(cursor_type=helogale.CursorType.TAILABLE_AWAIT) \
            .max_await_time_ms(200)
        while not done.is_set() and len(seen) < total:
            seen.extend(d["_id"] for d in cursor)

    reader = threading.Thread(target=tail)
    reader.start()
    kills = len(KILLED)
    try:
        for i in range(1, total):
            if i == total // 2:
                _kill_primary(cluster)()
            db.log.insert_one({"_id": i})  # a retryable write: lands once
        wait_until(lambda: len(seen) >= total, 60, "the tailing reader to see every insert")
    finally:
        done.set()
        reader.join(30)
        _restart_dead(cluster)
    assert len(KILLED) == kills + 1
    assert seen == list(range(total))


def test_gridfs_48_mib_round_trip_through_failovers(cluster: LocalCluster,
                                                     client: helogale.MongoClient) -> None:
    numbers = _round_trip(cluster, client, 48 * MiB, "gridfs48")
    assert numbers["up_peak_mib"] < 32 and numbers["down_peak_mib"] < 32


@pytest.mark.slow
def test_gridfs_320_mib_round_trip_through_failovers(cluster: LocalCluster,
                                                      client: helogale.MongoClient) -> None:
    numbers = _round_trip(cluster, client, 320 * MiB, "gridfs320")
    assert numbers["up_peak_mib"] < 32 and numbers["down_peak_mib"] < 32
