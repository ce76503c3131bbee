"""The one sharded cluster the sharded tests share (a session fixture in ``conftest.py``):
config servers (3), two shards (3 members each) and two routers, all real processes."""

from __future__ import annotations

import os
import random
import threading
from collections import Counter
from collections.abc import Sequence
from typing import Any

from pymongo.errors import PyMongoError

from node.sharded_cluster import ShardedCluster


def start_shared_cluster() -> ShardedCluster:
    """``HELOGALE_TEST_CLUSTER_DIR`` keeps its data and logs there (to read after a failure).
    The balancer runs a round a second when started, and is stopped: tests that want it
    start it (``balancerStart``) and stop it again."""
    cluster = ShardedCluster(shards=2, members=3, routers=2, wire=True, metrics=True,
                             data_dir=os.environ.get("HELOGALE_TEST_CLUSTER_DIR"),
                             extra_args=["--enable-test-commands",
                                         "--balancer-interval-secs", "0.5"]).start(timeout=300)
    ok(cluster.router_command(0, {"balancerStop": 1}))
    return cluster


def ok(reply: dict[str, Any]) -> dict[str, Any]:
    assert reply.get("ok") == 1.0, reply
    return reply


def shard_docs(cluster: ShardedCluster, k: int, coll: str, db: str = "app",
               filt: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    """What shard ``k``'s primary returns for a direct (unrouted) find."""
    shard = cluster.shards[k]
    p = shard.wait_for_primary()
    reply = ok(shard.command(p, {"find": coll, "filter": filt or {}, "batchSize": 1_000_000},
                             db=db))
    return list(reply["cursor"]["firstBatch"])


class WriteLoad:
    """Writers through a router while chunks move: one thread inserts fresh ``_id``s from
    ``first_id`` up, ``inc_threads`` threads ``$inc`` field ``n`` of random ``inc_ids``. It
    records what was acknowledged and what ended in an error (outcome unknown), and
    ``check`` proves every acknowledged write is present exactly once."""

    def __init__(self, coll: Any, first_id: int, inc_ids: Sequence[int],
                 inc_threads: int = 1) -> None:
        self.coll = coll
        self.first_id = first_id
        self.inc_ids = list(inc_ids)
        self.inserted: list[int] = []
        self.unknown_inserts: list[int] = []
        self.incs: Counter[int] = Counter()
        self.unknown_incs: Counter[int] = Counter()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._insert_loop)] + [
            threading.Thread(target=self._inc_loop, args=(seed,))
            for seed in range(inc_threads)]

    def start(self) -> WriteLoad:
        for t in self._threads:
            t.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            if t.is_alive():
                t.join(120)

    def __enter__(self) -> WriteLoad:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _insert_loop(self) -> None:
        _id = self.first_id
        while not self._stop.is_set():
            try:
                self.coll.insert_one({"_id": _id, "n": 0})
                self.inserted.append(_id)
            except PyMongoError:
                self.unknown_inserts.append(_id)
            _id += 1

    def _inc_loop(self, seed: int) -> None:
        rng = random.Random(seed)
        while not self._stop.is_set():
            _id = rng.choice(self.inc_ids)
            try:
                self.coll.update_one({"_id": _id}, {"$inc": {"n": 1}})
                self.incs[_id] += 1
            except PyMongoError:
                self.unknown_incs[_id] += 1

    @property
    def failed(self) -> bool:
        return bool(self.unknown_inserts or self.unknown_incs)

    def check(self, cluster: ShardedCluster, coll: str, db: str,
              preloaded: set[int]) -> Counter[Any]:
        """Every document on exactly one shard, every acknowledged write present once;
        returns how many copies of each ``_id`` the shards hold (all 1)."""
        per_shard = [Counter(d["_id"] for d in shard_docs(cluster, k, coll, db=db))
                     for k in range(len(cluster.shards))]
        both: Counter[Any] = sum(per_shard, Counter())
        assert all(c == 1 for c in both.values()), [i for i, c in both.items() if c > 1][:10]
        ids = set(both)
        assert preloaded <= ids, sorted(preloaded - ids)[:10]
        assert set(self.inserted) <= ids, sorted(set(self.inserted) - ids)[:10]
        assert ids - preloaded - set(self.inserted) <= set(self.unknown_inserts)
        docs = {d["_id"]: d for k in range(len(cluster.shards))
                for d in shard_docs(cluster, k, coll, db=db)}
        for _id in self.inc_ids:
            n = docs[_id]["n"]
            assert self.incs[_id] <= n <= self.incs[_id] + self.unknown_incs[_id], (_id, n)
        return both
