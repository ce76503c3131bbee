"""Engine benchmark: Helogale's document engine against montydb (LMDB) and mongomock.

``python -m bench engine [--docs N] [--json PATH]`` runs, in one process and one run, the same
workload on every system: batched inserts of N small documents, ``find_one`` by an indexed
field, a range query on an indexed field returning 1% of the documents, a filtered scan on an
unindexed field, and a ``$near`` query with ``$maxDistance`` over the N points. It prints a
table of operations per second and Helogale's ratio to each peer; ``--json PATH`` writes
``{"results": [{"workload", "system", "ops_per_s", "p50_ms", "p99_ms"}, ...]}``.

Systems run side by side: insert batches and query operations alternate round-robin between
them, so that load changes on a shared machine hit every system alike; ops/s is operations over
the time spent in them (``--budget`` seconds per query workload and system, at least 3 ops).

Durability settings are the same for both LMDB systems. By default neither fsyncs each commit:
that is how a Helogale node runs its engine (the Raft WAL, fsynced in group commits, is the
durable record; ``python -m bench replset`` measures that path), and montydb is given the same
LMDB setting. ``--fsync`` makes both fsync every commit (each insert batch). mongomock keeps
everything in memory either way.

With several sizes, ``--docs 10000,100000,1000000 [--plot PATH]`` measures instead how
Helogale's own per-operation cost grows with the collection (:mod:`bench.engine_scale`).

Neither peer implements ``$near``; for them the near workload runs what a user would write
instead: a bounding-box query on ``loc.0``/``loc.1`` plus a client-side distance filter and sort
(marked ``*`` in the table, ``"emulated": true`` in the JSON).
"""

from __future__ import annotations

import argparse
import json
import math
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

SYSTEMS = ("helogale", "montydb", "mongomock")
W_INSERT = "insert_batch"
W_FIND_ONE = "find_one_indexed"
W_RANGE = "range_1pct"
W_SCAN = "scan_filtered"
W_NEAR = "near_maxdistance"
WORKLOADS = (W_INSERT, W_FIND_ONE, W_RANGE, W_SCAN, W_NEAR)
BATCH = 1000
NEAR_DISTANCE = 2.0


class Target(Protocol):
    """One system under test, with a pymongo-like collection underneath."""

    name: str
    near_emulated: bool

    def create_indexes(self) -> None: ...
    def insert_many(self, docs: list[dict[str, Any]]) -> None: ...
    def find_one(self, flt: dict[str, Any]) -> dict[str, Any] | None: ...
    def find(self, flt: dict[str, Any]) -> list[dict[str, Any]]: ...
    def near(self, x: float, y: float, d: float) -> list[dict[str, Any]]: ...
    def close(self) -> None: ...


def emulated_near(
    find: Callable[[dict[str, Any]], list[dict[str, Any]]], x: float, y: float, d: float
) -> list[dict[str, Any]]:
    """``$near`` with ``$maxDistance`` for systems without it: box query, then distance sort."""
    box = {"loc.0": {"$gte": x - d, "$lte": x + d}, "loc.1": {"$gte": y - d, "$lte": y + d}}
    hits = []
    for doc in find(box):
        dist = math.hypot(doc["loc"][0] - x, doc["loc"][1] - y)
        if dist <= d:
            hits.append((dist, doc))
    hits.sort(key=lambda pair: pair[0])
    return [doc for _, doc in hits[:100]]


class PymongoLike:
    """A target over any collection with pymongo's method names."""

    near_emulated = True

    def __init__(self, name: str, collection: Any, cleanup: Callable[[], None]) -> None:
        self.name = name
        self.coll = collection
        self._cleanup = cleanup

    def create_indexes(self) -> None:
        self.coll.create_index("k")

    def insert_many(self, docs: list[dict[str, Any]]) -> None:
        self.coll.insert_many(docs)

    def find_one(self, flt: dict[str, Any]) -> dict[str, Any] | None:
        return self.coll.find_one(flt)

    def find(self, flt: dict[str, Any]) -> list[dict[str, Any]]:
        return list(self.coll.find(flt))

    def near(self, x: float, y: float, d: float) -> list[dict[str, Any]]:
        return emulated_near(self.find, x, y, d)

    def close(self) -> None:
        self._cleanup()


def make_montydb(fsync: bool) -> Target:
    from montydb import MontyClient, set_storage

    path = tempfile.mkdtemp(prefix="bench-montydb-")
    # montydb defaults otherwise; its 10 MiB default LMDB map cannot hold 100k documents
    set_storage(path, storage="lightning", use_bson=False, map_size=str(4 << 30))
    client = MontyClient(path)
    if not fsync:
        # montydb's API has no sync option; its storage passes these to lmdb.open per write
        client._storage._conn.opt.update(sync=False, metasync=False)

    def cleanup() -> None:
        client.close()
        shutil.rmtree(path, ignore_errors=True)

    return PymongoLike("montydb", client["bench"]["docs"], cleanup)


def make_mongomock(fsync: bool) -> Target:
    import mongomock

    client = mongomock.MongoClient()
    return PymongoLike("mongomock", client["bench"]["docs"], client.close)


class HelogaleTarget:
    """Helogale's engine in-process: LMDB store in a temp dir, indexes and the planner."""

    name = "helogale"
    near_emulated = False

    def __init__(self, fsync: bool) -> None:
        from node.engine.database import Engine
        from node.engine.indexes import IndexManager
        from node.engine.lmdb_store import LMDBStore
        from node.engine.planner import Planner

        self.path = tempfile.mkdtemp(prefix="bench-helogale-")
        self.store = LMDBStore(self.path, sync=fsync)
        self.indexes = IndexManager()
        self.engine = Engine(self.store, indexes=self.indexes, planner=Planner())
        self.coll = self.engine.collection("bench", "docs")

    def create_indexes(self) -> None:
        with self.store.write() as txn:
            self.indexes.create_index(txn, "bench.docs", [("k", 1)])
            self.indexes.create_index(txn, "bench.docs", [("loc", "2d")])

    def insert_many(self, docs: list[dict[str, Any]]) -> None:
        result = self.coll.insert(docs)
        if result.write_errors:
            raise RuntimeError(f"insert failed: {result.write_errors[0]}")

    def find_one(self, flt: dict[str, Any]) -> dict[str, Any] | None:
        return self.coll.find_one(flt)

    def find(self, flt: dict[str, Any]) -> list[dict[str, Any]]:
        return list(self.coll.find(flt))

    def near(self, x: float, y: float, d: float) -> list[dict[str, Any]]:
        return list(self.coll.find({"loc": {"$near": [x, y], "$maxDistance": d}}))

    def close(self) -> None:
        self.store.close()
        shutil.rmtree(self.path, ignore_errors=True)


def make_helogale(fsync: bool) -> Target:
    return HelogaleTarget(fsync)


FACTORIES: dict[str, Callable[[bool], Target]] = {
    "helogale": make_helogale,
    "montydb": make_montydb,
    "mongomock": make_mongomock,
}


# --- workload data ------------------------------------------------------------------------------


def make_doc(i: int, rng: random.Random) -> dict[str, Any]:
    """Document ``i``: indexed ``k``, unindexed ``grp``, a name and a 2d location (drawn from
    ``rng``, so a sequence of calls with one generator is reproducible)."""
    return {
        "_id": i,
        "k": i,
        "grp": rng.randrange(1000),
        "name": f"user{i}",
        "loc": [rng.uniform(-180, 179.999), rng.uniform(-90, 89.999)],
    }


def make_docs(n: int, seed: int = 42) -> list[dict[str, Any]]:
    """N small documents (:func:`make_doc`)."""
    rng = random.Random(seed)
    return [make_doc(i, rng) for i in range(n)]


@dataclass
class Measurement:
    """Latencies (seconds) of the operations of one workload on one system."""

    workload: str
    system: str
    latencies: list[float] = field(default_factory=list)
    items: int = 0  # units counted for ops/s (documents for inserts, queries otherwise)
    elapsed: float = 0.0
    emulated: bool = False

    @property
    def ops_per_s(self) -> float:
        return self.items / self.elapsed if self.elapsed > 0 else 0.0

    def percentile_ms(self, q: float) -> float:
        if not self.latencies:
            return 0.0
        ordered = sorted(self.latencies)
        index = min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))
        return ordered[index] * 1000.0

    def to_json(self) -> dict[str, Any]:
        row: dict[str, Any] = {
            "workload": self.workload,
            "system": self.system,
            "ops_per_s": round(self.ops_per_s, 3),
            "p50_ms": round(self.percentile_ms(0.50), 4),
            "p99_ms": round(self.percentile_ms(0.99), 4),
        }
        if self.emulated:
            row["emulated"] = True
        return row


@dataclass
class Workload:
    """One query workload: ``op(target, i)`` runs the i-th operation."""

    name: str
    op: Callable[[Target, int], object]
    max_ops: int


def query_workloads(n: int, seed: int = 7) -> list[Workload]:
    """The query workloads over ``n`` loaded documents; the same operations for every system."""
    rng = random.Random(seed)
    keys = [rng.randrange(n) for _ in range(5000)]
    width = max(1, n // 100)
    starts = [rng.randrange(max(1, n - width)) for _ in range(500)]
    groups = [rng.randrange(1000) for _ in range(100)]
    centers = [(rng.uniform(-170, 170), rng.uniform(-80, 80)) for _ in range(500)]

    def find_one(t: Target, i: int) -> None:
        k = keys[i % len(keys)]
        doc = t.find_one({"k": k})
        assert doc is not None and doc["k"] == k

    def range_query(t: Target, i: int) -> None:
        a = starts[i % len(starts)]
        assert len(t.find({"k": {"$gte": a, "$lt": a + width}})) == min(width, n - a)

    def scan(t: Target, i: int) -> None:
        t.find({"grp": groups[i % len(groups)], "name": {"$ne": ""}})

    def near(t: Target, i: int) -> None:
        x, y = centers[i % len(centers)]
        got = t.near(x, y, NEAR_DISTANCE)
        dists = [math.hypot(d["loc"][0] - x, d["loc"][1] - y) for d in got]
        assert dists == sorted(dists) and all(d <= NEAR_DISTANCE for d in dists)

    return [
        Workload(W_FIND_ONE, find_one, 5000),
        Workload(W_RANGE, range_query, 500),
        Workload(W_SCAN, scan, 100),
        Workload(W_NEAR, near, 500),
    ]


def _interleaved(
    targets: list[Target], workload: Workload, *, budget_s: float, min_ops: int = 3
) -> list[Measurement]:
    """Round-robin one operation per system until each has run ``max_ops`` operations or spent
    ``budget_s`` seconds in them (at least ``min_ops``), so that load changes on the machine
    hit every system alike. Ops/s is operations over the time spent in them."""
    ms = [
        Measurement(workload.name, t.name, emulated=workload.name == W_NEAR and t.near_emulated)
        for t in targets
    ]
    active = list(range(len(targets)))
    i = 0
    while active:
        for j in list(active):
            t0 = time.perf_counter()
            workload.op(targets[j], i)
            ms[j].latencies.append(time.perf_counter() - t0)
            ms[j].items += 1
            ms[j].elapsed += ms[j].latencies[-1]
            done = ms[j].items >= workload.max_ops
            if ms[j].items >= min_ops and ms[j].elapsed >= budget_s:
                done = True
            if done:
                active.remove(j)
        i += 1
    return ms


def run_targets(
    targets: list[Target], docs: list[dict[str, Any]], *, budget_s: float
) -> list[Measurement]:
    """Load ``docs`` into every target (batches interleaved across systems), then run every
    query workload interleaved."""
    inserts = [Measurement(W_INSERT, t.name) for t in targets]
    for t in targets:
        t.create_indexes()
    for lo in range(0, len(docs), BATCH):
        for t, m in zip(targets, inserts):
            batch = [dict(d, loc=list(d["loc"])) for d in docs[lo : lo + BATCH]]
            t0 = time.perf_counter()
            t.insert_many(batch)
            m.latencies.append(time.perf_counter() - t0)
            m.elapsed += m.latencies[-1]
            m.items += len(batch)
    results = list(inserts)
    for workload in query_workloads(len(docs)):
        results.extend(_interleaved(targets, workload, budget_s=budget_s))
    return results


def run(
    n: int, *, systems: tuple[str, ...] = SYSTEMS, budget_s: float = 2.0, fsync: bool = False
) -> list[Measurement]:
    """The whole benchmark: every workload on every system, same data, same queries."""
    docs = make_docs(n)
    targets: list[Target] = []
    try:
        for name in systems:
            targets.append(FACTORIES[name](fsync))
        return run_targets(targets, docs, budget_s=budget_s)
    finally:
        for t in targets:
            t.close()


def format_table(results: list[Measurement]) -> str:
    """Ops/s per workload and system, and Helogale's ratio to each peer."""
    by = {(m.workload, m.system): m for m in results}
    systems = [s for s in SYSTEMS if any(m.system == s for m in results)]
    peers = [s for s in systems if s != "helogale"]
    header = f"{'workload':<18}" + "".join(f"{s + ' ops/s':>18}" for s in systems)
    header += "".join(f"{'x ' + p:>14}" for p in peers if "helogale" in systems)
    lines = [header, "-" * len(header)]
    for w in WORKLOADS:
        row = f"{w:<18}"
        for s in systems:
            m = by.get((w, s))
            cell = "-" if m is None else f"{m.ops_per_s:,.1f}{'*' if m.emulated else ''}"
            row += f"{cell:>18}"
        mine = by.get((w, "helogale"))
        for p in peers:
            if mine is None:
                continue
            other = by.get((w, p))
            ratio = mine.ops_per_s / other.ops_per_s if other and other.ops_per_s else math.nan
            row += f"{ratio:>13.1f}x"
        lines.append(row)
    if any(m.emulated for m in results):
        lines.append("* no $near: bounding-box query plus client-side distance filter and sort")
    p50 = {m.system: statistics.median(m.latencies) for m in results if m.workload == W_FIND_ONE}
    if p50:
        lines.append(
            "find_one p50: " + ", ".join(f"{s} {v * 1000:.3f} ms" for s, v in p50.items())
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench engine", description=__doc__)
    parser.add_argument(
        "--docs", default="100000",
        help="documents (default 100000); several, comma-separated (10000,100000,1000000): "
        "measure how Helogale's per-operation cost scales with them (bench/engine_scale.py)",
    )
    parser.add_argument("--json", metavar="PATH", help="also write the figures as JSON")
    parser.add_argument(
        "--plot", metavar="PATH", help="with several --docs: plot cost per op against size (PNG)"
    )
    parser.add_argument(
        "--systems", default=",".join(SYSTEMS), help="comma-separated subset of " + ",".join(SYSTEMS)
    )
    parser.add_argument(
        "--budget", type=float, default=2.0, help="seconds per query workload per system"
    )
    parser.add_argument(
        "--fsync", action="store_true", help="both LMDB systems fsync every commit (batch)"
    )
    args = parser.parse_args(argv)
    try:
        sizes = [int(v.replace("_", "")) for v in args.docs.split(",") if v]
    except ValueError:
        parser.error("--docs takes a number or comma-separated numbers")
    if not sizes or min(sizes) < 1:
        parser.error("--docs must be positive")
    if len(sizes) > 1 or args.plot:
        from bench import engine_scale

        return engine_scale.main(sizes, args.json, args.plot)
    args.docs = sizes[0]
    systems = tuple(s for s in args.systems.split(",") if s)
    unknown = [s for s in systems if s not in FACTORIES]
    if unknown:
        parser.error(f"unknown systems {unknown}")
    sync = "fsync every commit" if args.fsync else "no fsync per commit, as in a node"
    print(
        f"engine benchmark: {args.docs} documents, systems {', '.join(systems)}; LMDB: {sync}",
        flush=True,
    )
    results = run(args.docs, systems=systems, budget_s=args.budget, fsync=args.fsync)
    print(format_table(results))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump({"results": [m.to_json() for m in results]}, fh, indent=2)
            fh.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
