"""The ObjectId hot spot and the balancer's convergence, for ``python -m bench sharded``.

**Hot spot.** ``HOTSPOT_CLIENTS`` clients insert ``{v: <200 bytes>}`` through a router with
``w: "majority"``; the client library gives each document an ObjectId, and ObjectIds grow,
so every insert targets the chunk holding "now". Workloads (one fresh collection each, sharded
by ``_id``):

* ``insert-objectid-16`` on ``router-1-shard`` and ``router-2-shards``: one chunk, on the
  database's primary shard;
* ``insert-objectid-presplit-16`` (2 shards): ``shardCollection`` with ``numInitialChunks``
  and ``presplitWindowSecs: 1``, so chunk *k* holds the ObjectIds of the *k*-th second from
  then, dealt to the shards in turn (ObjectIds count whole seconds: a shorter window makes
  empty chunks);
* ``insert-objectid-balancer-16`` (2 shards): one chunk, 1 MiB chunks and the balancer on
  during the window (it splits the top chunk off for the least loaded shard).

Each row has the inserts each shard holds at the end (counted on each shard's primary, only
within the chunks it owns, so a migration's leftovers do not count twice), their share, a
per-second timeline (for each second of ObjectId time, the shard holding its documents: ``1``,
``2``, ``+`` for both, ``.`` for none), and its throughput over the one-shard row's.

**Convergence.** ``converge_mib`` MiB (1 KiB documents) are loaded into one chunk on one shard
with the balancer stopped; then 1 MiB chunks are set and ``balancerStart`` sent, and the clock
runs until the shards' data (as the balancer measures it: ``_shardsvrChunkSizes`` on each
shard's primary) differs by at most three chunk sizes, the balancer's own rule. The balancer's
rounds, moves and splits in that time come from ``balancerStatus``.
"""

from __future__ import annotations

import datetime as _dt
import math
import time
from collections.abc import Callable
from typing import Any

from bson import MaxKey, MinKey, ObjectId

from node.sharded_cluster import ShardedCluster

DB = "bench"
HOTSPOT_CLIENTS = 16
ONE_CHUNK = "oid"
PRESPLIT = "oid_presplit"
BALANCED = "oid_balancer"
CONVERGE = "converge"
BALANCER_CHUNK_MB = 1
IMBALANCE_CHUNKS = 3  # node.sharding.balancer's rule
MIB = 1024 * 1024
CONVERGE_DOC_PAD = "c" * 1000
CONVERGE_TIMEOUT_S = 600.0

RunClients = Callable[[str, int, float, str], dict[str, float]]
"""``(workload, clients, duration, collection)`` -> the load harness's row."""


def _ok(reply: dict[str, Any], what: str) -> dict[str, Any]:
    if reply.get("ok") != 1.0:
        raise RuntimeError(f"{what} failed: {reply}")
    return reply


def _admin(cluster: ShardedCluster, cmd: dict[str, Any], what: str,
           db: str = "admin") -> dict[str, Any]:
    return _ok(cluster.router_command(0, cmd, db=db, timeout=300), what)


def set_chunk_size(cluster: ShardedCluster, mb: int | None) -> None:
    """``config.settings`` chunk size in MiB; None removes it (the 128 MiB default)."""
    if mb is None:
        cmd: dict[str, Any] = {"delete": "settings", "deletes": [
            {"q": {"_id": "chunksize"}, "limit": 1}]}
    else:
        cmd = {"update": "settings", "updates": [
            {"q": {"_id": "chunksize"}, "u": {"$set": {"value": mb}}, "upsert": True}]}
    _admin(cluster, cmd, "setting the chunk size", db="config")


def balancer_status(cluster: ShardedCluster) -> dict[str, Any]:
    return _admin(cluster, {"balancerStatus": 1}, "balancerStatus")


def stop_balancer(cluster: ShardedCluster) -> None:
    """``balancerStop``, then wait for the round in progress to end."""
    _admin(cluster, {"balancerStop": 1}, "balancerStop")
    deadline = time.monotonic() + 120
    while balancer_status(cluster).get("inBalancerRound") and time.monotonic() < deadline:
        time.sleep(0.2)


def drop(cluster: ShardedCluster, colls: list[str]) -> None:
    """Drop ``colls`` (so balancer rounds stop measuring them)."""
    for coll in colls:
        reply = cluster.router_command(0, {"drop": coll}, db=DB, timeout=300)
        if reply.get("ok") != 1.0 and reply.get("code") != 26:  # NamespaceNotFound: fine
            raise RuntimeError(f"drop {coll} failed: {reply}")


def shard_collection(cluster: ShardedCluster, coll: str, **options: Any) -> None:
    _admin(cluster, {"shardCollection": f"{DB}.{coll}", "key": {"_id": 1}, **options},
           f"shardCollection {coll}")


# ---------------------------------------------------------------------- where inserts landed
def _inside(value: Any, lo: Any, hi: Any) -> bool:
    """``lo <= value < hi`` for an ObjectId and chunk bounds (MinKey, MaxKey or ObjectIds)."""
    above = isinstance(lo, MinKey) or (isinstance(lo, ObjectId) and value >= lo)
    below = isinstance(hi, MaxKey) or (isinstance(hi, ObjectId) and value < hi)
    return above and below


def owned_ids(cluster: ShardedCluster, coll: str) -> list[list[ObjectId]]:
    """Per shard (in ``cluster.shards`` order), the ObjectId ``_id``s its primary holds inside
    the chunks it owns (what it measures for the balancer; leftovers of a migration whose
    range is not deleted yet are not counted)."""
    out = []
    ns = f"{DB}.{coll}"
    for shard in cluster.shards:
        p = shard.wait_for_primary()
        owned = _ok(shard.command(p, {"_shardsvrChunkSizes": ns}), "chunk sizes")["chunks"]
        found = _ok(shard.command(p, {"find": coll, "projection": {"_id": 1},
                                      "batchSize": 10_000_000}, db=DB), f"reading {coll}")
        ids = [d["_id"] for d in found["cursor"]["firstBatch"]]
        out.append([i for i in ids if isinstance(i, ObjectId)
                    and any(_inside(i, c["min"], c["max"]) for c in owned)])
    return out


def timeline(per_shard: list[list[ObjectId]]) -> str:
    """One character per second of ObjectId time, first to last: the shard (1-based) holding
    that second's documents, ``+`` when several do, ``.`` when none."""
    seconds: dict[int, set[int]] = {}
    for k, ids in enumerate(per_shard):
        for i in ids:
            seconds.setdefault(int(i.generation_time.timestamp()), set()).add(k + 1)
    if not seconds:
        return ""
    chars = []
    for s in range(min(seconds), max(seconds) + 1):
        owners = seconds.get(s, set())
        chars.append("." if not owners else "+" if len(owners) > 1 else str(next(iter(owners))))
    return "".join(chars)


def _row(cluster: ShardedCluster, system: str, workload: str, coll: str,
         r: dict[str, float]) -> dict[str, Any]:
    per = owned_ids(cluster, coll)
    counts = {s.replset: len(ids) for s, ids in zip(cluster.shards, per, strict=True)}
    total = sum(counts.values())
    row: dict[str, Any] = {
        "workload": workload, "system": system, **r, "per_shard": counts,
        "share": {s: (n / total if total else 0.0) for s, n in counts.items()},
        "timeline": timeline(per)}
    if r["ops_per_s"] and "server_cpu" in r:
        row["cpu_ms_per_op"] = (r["server_cpu"] + r["client_cpu"]) * 1000 / r["ops_per_s"]
    return row


# ---------------------------------------------------------------------- the parts
def hotspot(cluster: ShardedCluster, system: str, duration: float, run: RunClients
            ) -> list[dict[str, Any]]:
    """The hot-spot rows of one system (see module docstring); two shards: all three."""
    n = HOTSPOT_CLIENTS
    rows = []
    shard_collection(cluster, ONE_CHUNK)
    rows.append(_row(cluster, system, f"insert-objectid-{n}", ONE_CHUNK,
                     run("insert-oid", n, duration, ONE_CHUNK)))
    if len(cluster.shards) < 2:
        return rows
    # enough one-second chunks for the clients' start-up, warm-up and window, and margin
    chunks = math.ceil(duration) + 60
    shard_collection(cluster, PRESPLIT, numInitialChunks=chunks, presplitWindowSecs=1)
    rows.append(_row(cluster, system, f"insert-objectid-presplit-{n}", PRESPLIT,
                     run("insert-oid", n, duration, PRESPLIT)))
    drop(cluster, [ONE_CHUNK, PRESPLIT])
    set_chunk_size(cluster, BALANCER_CHUNK_MB)
    shard_collection(cluster, BALANCED)
    before = balancer_status(cluster)
    _admin(cluster, {"balancerStart": 1}, "balancerStart")
    try:
        r = run("insert-oid", n, duration, BALANCED)
    finally:
        stop_balancer(cluster)
    after = balancer_status(cluster)
    row = _row(cluster, system, f"insert-objectid-balancer-{n}", BALANCED, r)
    row["balancer"] = {"moves": after["chunksMoved"] - before["chunksMoved"],
                       "splits": after["splits"] - before["splits"],
                       "chunk_mb": BALANCER_CHUNK_MB}
    rows.append(row)
    drop(cluster, [BALANCED])
    set_chunk_size(cluster, None)
    return rows


def shard_bytes(cluster: ShardedCluster, ns: str) -> dict[str, int]:
    """Bytes of ``ns`` each shard owns, as the balancer measures them."""
    out = {}
    for shard in cluster.shards:
        p = shard.wait_for_primary()
        reply = _ok(shard.command(p, {"_shardsvrChunkSizes": ns}), "chunk sizes")
        out[shard.replset] = sum(int(c["bytes"]) for c in reply["chunks"])
    return out


def load_one_shard(uri: str, mib: float) -> int:
    """``mib`` MiB of 1 KiB documents with ``_id`` 0, 1, ... into ``bench.converge``, through
    the router (unordered batches of 1,000); the number of documents."""
    from helogale import MongoClient

    docs = int(mib * MIB / (len(CONVERGE_DOC_PAD) + 24))  # ~1,024 bytes of BSON each
    with MongoClient(uri, w="majority") as client:
        coll = client[DB][CONVERGE]
        for lo in range(0, docs, 1000):
            coll.insert_many([{"_id": i, "pad": CONVERGE_DOC_PAD}
                              for i in range(lo, min(docs, lo + 1000))], ordered=False)
    return docs


def convergence(cluster: ShardedCluster, mib: float, timeout: float = CONVERGE_TIMEOUT_S
                ) -> dict[str, Any]:
    """Load ``mib`` MiB on one shard with the balancer stopped, set 1 MiB chunks, start the
    balancer and time it to balanced (see module docstring)."""
    ns = f"{DB}.{CONVERGE}"
    shard_collection(cluster, CONVERGE)
    t0 = time.monotonic()
    docs = load_one_shard(cluster.uri, mib)
    loaded_s = time.monotonic() - t0
    start_bytes = shard_bytes(cluster, ns)
    set_chunk_size(cluster, BALANCER_CHUNK_MB)
    limit = IMBALANCE_CHUNKS * BALANCER_CHUNK_MB * MIB
    before = balancer_status(cluster)
    started = time.monotonic()
    _admin(cluster, {"balancerStart": 1}, "balancerStart")
    converged = False
    sizes = start_bytes
    try:
        while time.monotonic() - started < timeout:
            sizes = shard_bytes(cluster, ns)
            if max(sizes.values()) - min(sizes.values()) <= limit:
                converged = True
                break
            time.sleep(0.2)
        elapsed = time.monotonic() - started
        after = balancer_status(cluster)
    finally:
        stop_balancer(cluster)
        set_chunk_size(cluster, None)
    chunks = _admin(cluster, {"find": "chunks", "filter": {"ns": ns}}, "reading config.chunks",
                    db="config")["cursor"]["firstBatch"]
    return {"mib": mib, "docs": docs, "load_s": loaded_s, "converged": converged,
            "seconds": elapsed, "chunk_mb": BALANCER_CHUNK_MB,
            "rounds": after["numBalancerRounds"] - before["numBalancerRounds"],
            "moves": after["chunksMoved"] - before["chunksMoved"],
            "splits": after["splits"] - before["splits"],
            "chunks": len(chunks),
            "start_mib": {s: b / MIB for s, b in start_bytes.items()},
            "end_mib": {s: b / MIB for s, b in sizes.items()},
            "at": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")}


# ---------------------------------------------------------------------- report
def with_ratios(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each row's throughput over the one-shard, one-chunk row's (``x``)."""
    base = next((r for r in rows if r["system"] == "router-1-shard"
                 and r["workload"] == f"insert-objectid-{HOTSPOT_CLIENTS}"), None)
    for r in rows:
        r["x"] = (r["ops_per_s"] / base["ops_per_s"]
                  if base is not None and base["ops_per_s"] else None)
    return rows


def format_hotspot(rows: list[dict[str, Any]]) -> str:
    head = (f"{'workload':<30} {'system':<16} {'ins/s':>6} {'x':>6} {'cpu ms':>7} "
            f"{'per shard':<24} timeline")
    lines = [head, "-" * len(head)]
    for r in rows:
        x = "-" if r.get("x") is None else f"{r['x']:.2f}x"
        cpu = r.get("cpu_ms_per_op")
        per = " / ".join(f"{n:,} ({r['share'][s]:.0%})" for s, n in r["per_shard"].items())
        extra = ""
        if "balancer" in r:
            extra = f"  [{r['balancer']['moves']} moves, {r['balancer']['splits']} splits]"
        lines.append(f"{r['workload']:<30} {r['system']:<16} {r['ops_per_s']:6.0f} {x:>6} "
                     f"{'-' if cpu is None else f'{cpu:.2f}':>7} {per:<24} "
                     f"{r['timeline']}{extra}")
    return "\n".join(lines)


def format_convergence(c: dict[str, Any]) -> str:
    end = " / ".join(f"{s} {m:.1f}" for s, m in c["end_mib"].items())
    state = f"balanced in {c['seconds']:.1f} s" if c["converged"] else \
        f"NOT balanced after {c['seconds']:.0f} s"
    return (f"balancer convergence: {c['mib']:g} MiB ({c['docs']:,} docs, loaded in "
            f"{c['load_s']:.1f} s) on one shard, {c['chunk_mb']} MiB chunks: {state}; "
            f"{c['rounds']} rounds, {c['moves']} moves, {c['splits']} splits, "
            f"{c['chunks']} chunks; MiB at the end: {end}")
