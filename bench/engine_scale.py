"""How Helogale's engine scales with the collection: per-operation cost at several sizes.

``python -m bench engine --docs 10000,100000,1000000 [--json PATH] [--plot PATH]`` loads each
size into a fresh in-process engine (LMDB in a temp dir, no fsync per commit, as a node runs
it) and measures, per operation:

* ``find_one_id``: ``find_one({"_id": k})`` (the clustered ``_id`` index);
* ``find_one_k``: ``find_one({"k": k})`` (a secondary B-tree index);
* ``near_k10``: ``find({"loc": {"$near": p, "$maxDistance": 2}}, limit=10)`` (2d index): the
  ten nearest within the radius -- the same result size at every collection size once the
  circle holds ten points;
* ``near_all``: the same query without a limit: every point within the radius, so its result
  grows with the collection (about 2 points at 10k, 19 at 100k, 194 at 1M); ``results_per_op``
  says how many, and ``cpu_us_per_result`` divides by it.

Each figure is CPU time of this process per operation (``time.process_time``, steadier than wall
time on a shared machine) and the wall-time p50; the load average is recorded with each size.
The data set is loaded by batched ``Collection.insert`` (10,000 documents a batch, the engine's
fastest write path: records and index entries written together in one transaction); the
load time is reported too. ``--plot`` draws CPU time per operation against size (log-log).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from typing import Any

from bench.engine import make_doc

LOAD_BATCH = 10_000
NEAR_DISTANCE = 2.0
WORKLOADS = ("find_one_id", "find_one_k", "near_k10", "near_all")
OPS = {"find_one_id": 3000, "find_one_k": 3000, "near_k10": 600, "near_all": 300}


def iter_batches(n: int, seed: int = 42) -> Iterator[list[dict[str, Any]]]:
    """The documents of ``bench.engine.make_docs(n, seed)``, generated a batch at a time."""
    rng = random.Random(seed)
    for lo in range(0, n, LOAD_BATCH):
        yield [make_doc(i, rng) for i in range(lo, min(n, lo + LOAD_BATCH))]


class Loaded:
    """One engine holding ``n`` documents with indexes on ``k`` and ``loc`` (2d)."""

    def __init__(self, n: int) -> None:
        from node.engine.database import Engine
        from node.engine.indexes import IndexManager
        from node.engine.lmdb_store import LMDBStore
        from node.engine.planner import Planner

        self.n = n
        self.path = tempfile.mkdtemp(prefix="bench-scale-")
        self.store = LMDBStore(self.path, sync=False)
        indexes = IndexManager()
        self.coll = Engine(self.store, indexes=indexes, planner=Planner()).collection("b", "d")
        with self.store.write() as txn:
            indexes.create_index(txn, "b.d", [("k", 1)])
            indexes.create_index(txn, "b.d", [("loc", "2d")])
        cpu0, wall0 = time.process_time(), time.perf_counter()
        for batch in iter_batches(n):
            result = self.coll.insert(batch)
            if result.write_errors:
                raise RuntimeError(f"insert failed: {result.write_errors[0]}")
        self.load_cpu_s = time.process_time() - cpu0
        self.load_wall_s = time.perf_counter() - wall0

    def close(self) -> None:
        self.store.close()
        shutil.rmtree(self.path, ignore_errors=True)


def operations(db: Loaded, seed: int = 7) -> dict[str, Callable[[int], int]]:
    """Each workload's i-th operation, returning how many documents it gave back."""
    rng = random.Random(seed)
    n, coll = db.n, db.coll
    keys = [rng.randrange(n) for _ in range(5000)]
    centers = [(rng.uniform(-170, 170), rng.uniform(-80, 80)) for _ in range(1000)]

    def find_one_id(i: int) -> int:
        k = keys[i % len(keys)]
        doc = coll.find_one({"_id": k})
        assert doc is not None and doc["_id"] == k
        return 1

    def find_one_k(i: int) -> int:
        k = keys[-1 - i % len(keys)]
        doc = coll.find_one({"k": k})
        assert doc is not None and doc["k"] == k
        return 1

    def near(limit: int) -> Callable[[int], int]:
        def op(i: int) -> int:
            x, y = centers[i % len(centers)]
            q = {"loc": {"$near": [x, y], "$maxDistance": NEAR_DISTANCE}}
            return len(list(coll.find(q, limit=limit)))

        return op

    return {"find_one_id": find_one_id, "find_one_k": find_one_k,
            "near_k10": near(10), "near_all": near(0)}


def measure(db: Loaded, ops_scale: float = 1.0) -> list[dict[str, Any]]:
    """Every workload on one loaded engine: CPU time per op, wall p50, results per op."""
    rows = []
    for name, op in operations(db).items():
        count = max(3, int(OPS[name] * ops_scale))
        op(0)  # warm the path (imports, first-use caches)
        walls, results = [], 0
        cpu0 = time.process_time()
        for i in range(count):
            t0 = time.perf_counter()
            results += op(i)
            walls.append(time.perf_counter() - t0)
        cpu = time.process_time() - cpu0
        rows.append({
            "docs": db.n,
            "workload": name,
            "ops": count,
            "cpu_us_per_op": round(cpu / count * 1e6, 1),
            "p50_us": round(statistics.median(walls) * 1e6, 1),
            "results_per_op": round(results / count, 2),
            "cpu_us_per_result": round(cpu / max(results, 1) * 1e6, 1),
        })
    return rows


def run(sizes: list[int], *, ops_scale: float = 1.0,
        log: Callable[[str], None] = print) -> dict[str, Any]:
    """Load and measure each size in turn (one engine alive at a time)."""
    out: dict[str, Any] = {"sizes": sizes, "loads": [], "results": []}
    for n in sizes:
        db = Loaded(n)
        try:
            load = {"docs": n, "cpu_s": round(db.load_cpu_s, 2), "wall_s": round(db.load_wall_s, 2),
                    "docs_per_s": round(n / db.load_wall_s), "loadavg": os.getloadavg()[0]}
            log(f"loaded {n:,} documents in {db.load_wall_s:.1f} s "
                f"({load['docs_per_s']:,} docs/s, load average {load['loadavg']:.2f})")
            out["loads"].append(load)
            rows = measure(db, ops_scale)
            for row in rows:
                row["loadavg"] = os.getloadavg()[0]
            out["results"].extend(rows)
        finally:
            db.close()
    return out


def format_table(data: dict[str, Any]) -> str:
    """CPU µs per operation by workload and size, and the largest size's ratio to the smallest."""
    sizes = data["sizes"]
    by = {(r["workload"], r["docs"]): r for r in data["results"]}
    head = f"{'workload':<13}" + "".join(f"{n:>18,}" for n in sizes) + f"{'x smallest':>12}"
    lines = ["CPU us per operation (results per op in brackets where not 1)", head,
             "-" * len(head)]
    for w in WORKLOADS:
        row = f"{w:<13}"
        for n in sizes:
            r = by[(w, n)]
            extra = "" if r["results_per_op"] == 1 else f" [{r['results_per_op']:g}]"
            row += f"{str(r['cpu_us_per_op']) + extra:>18}"
        first, last = by[(w, sizes[0])], by[(w, sizes[-1])]
        row += f"{last['cpu_us_per_op'] / first['cpu_us_per_op']:>11.2f}x"
        lines.append(row)
    return "\n".join(lines)


def plot(data: dict[str, Any], path: str) -> None:
    """CPU time per operation against collection size, one line per workload (log-log)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for w in WORKLOADS:
        rows = sorted((r for r in data["results"] if r["workload"] == w), key=lambda r: r["docs"])
        ax.plot([r["docs"] for r in rows], [r["cpu_us_per_op"] for r in rows], marker="o",
                label=w)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("documents in the collection")
    ax.set_ylabel("CPU µs per operation")
    ax.set_title("Helogale engine: per-operation cost against collection size")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(sizes: list[int], json_path: str | None, plot_path: str | None,
         ops_scale: float = 1.0) -> int:
    print(f"engine scaling: {', '.join(f'{n:,}' for n in sizes)} documents", flush=True)
    data = run(sizes, ops_scale=ops_scale, log=lambda s: print(s, flush=True))
    print(format_table(data))
    if json_path:
        with open(json_path, "w", encoding="utf-8") as fh:
            json.dump(data, fh, indent=2)
            fh.write("\n")
    if plot_path:
        plot(data, plot_path)
    return 0
