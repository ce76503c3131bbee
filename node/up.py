"""``helogale up``: start a local cluster, print its URIs, run a short demo, wait for Ctrl-C or
SIGTERM, stop cleanly.

Two shapes, one harness each way (:class:`~node.sharded_cluster.ShardedCluster` is built from
:class:`~node.local_cluster.LocalCluster` sets): by default a sharded cluster (a config set,
``shards`` shard sets, ``routers`` routers; the URIs list the routers), or with ``shards=0``
a single replica set (the URIs list its members). Every process runs in a process group of its
own, so a Ctrl-C at the terminal reaches only ``helogale up``, which stops them in order:
routers, then shards, then the config servers.

A sharded cluster balances itself as it is loaded: its config servers run a balancer round
every :data:`BALANCER_INTERVAL_S` seconds, and a new cluster gets a chunk size of
:data:`UP_CHUNK_MB` MiB (``--chunk-size-mb`` to choose; the product default, 128 MiB, would
let a laptop-sized collection sit in one chunk on one shard). A restarted cluster keeps the
chunk size it has (:func:`set_chunk_size`).

Unless ``restart`` is off (``--no-restart``), a :class:`~node.supervisor.Supervisor` restarts
any member or router that dies, after a backoff, with one line on stderr.

The URIs go to stdout, one a line (first ``helogale://``, then ``mongodb://``), then the demo's
lines; progress and status go to stderr.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
import threading
from collections.abc import Callable
from typing import Any, TextIO

from node.local_cluster import LOOPBACK, LocalCluster
from node.security.up import SecureUp
from node.sharded_cluster import CONFIG_SET, ShardedCluster
from node.supervisor import Supervisor

DEMO_NS = "demo.animals"
ANIMALS = [
    ("meerkat", 720), ("dwarf mongoose", 310), ("banded mongoose", 1500),
    ("yellow mongoose", 600), ("slender mongoose", 640), ("marsh mongoose", 3100),
    ("white-tailed mongoose", 4100), ("Ethiopian dwarf mongoose", 290),
]
"""The demo's documents: ``_id`` 1..8 with a name and a weight in grams."""
UP_CHUNK_MB = 4
"""The chunk size (MiB) ``helogale up`` gives a new sharded cluster."""
BALANCER_INTERVAL_S = 2
"""Seconds between the balancer's rounds in a cluster ``helogale up`` starts."""


def set_chunk_size(config_command: Callable[[dict[str, Any]], dict[str, Any]],
                   mb: int | None) -> int:
    """Write the chunk size ``mb`` (MiB) to ``config.settings``, or, with ``mb`` None, keep the
    one the cluster has (set by an earlier ``up`` or through a router) and give a cluster
    without one :data:`UP_CHUNK_MB`. ``config_command`` runs a command on the ``config``
    database (through a router). Returns the chunk size in force."""
    if mb is None:
        found = config_command({"find": "settings", "filter": {"_id": "chunksize"}})
        docs = found.get("cursor", {}).get("firstBatch", []) if found.get("ok") == 1.0 else []
        if docs and docs[0].get("value"):
            return int(docs[0]["value"])
        mb = UP_CHUNK_MB
    reply = config_command({"update": "settings", "updates": [
        {"q": {"_id": "chunksize"}, "u": {"$set": {"value": mb}}, "upsert": True}],
        "writeConcern": {"w": "majority"}})
    if reply.get("ok") != 1.0 or reply.get("writeErrors"):
        raise RuntimeError(f"cannot set the chunk size: {reply}")
    return mb


def _check_data_dir(data_dir: str, shards: int) -> str | None:
    """Why ``data_dir`` cannot hold a cluster of this shape (it holds another), or None."""
    try:
        entries = set(os.listdir(data_dir))
    except FileNotFoundError:
        return None
    if shards == 0 and CONFIG_SET in entries:
        return f"{data_dir} holds a sharded cluster: start it without --shards 0"
    if shards > 0 and any(e.startswith("member") for e in entries):
        return f"{data_dir} holds a single replica set: start it with --shards 0"
    kept = sorted(e for e in entries if e.startswith("shard") and e[5:].isdigit())
    if len(kept) > shards > 0:
        return (f"{data_dir} holds {len(kept)} shards ({', '.join(kept)}): start it with "
                f"--shards {len(kept)} or more")
    return None


def _ports(cluster: LocalCluster | ShardedCluster) -> list[int]:
    sets = cluster.sets if isinstance(cluster, ShardedCluster) else [cluster]
    ports = [p for c in sets for m in c.members
             for p in (m.port, m.raft_port, m.wire_port, m.metrics_port) if p]
    if isinstance(cluster, ShardedCluster):
        ports += [p for r in cluster.routers for p in (r.port, r.wire_port, r.metrics_port)
                  if p]
    return sorted(ports)


def busy_ports(ports: list[int]) -> list[int]:
    """Those of ``ports`` something already listens on (on loopback)."""
    busy = []
    for port in ports:
        with socket.socket() as s:
            # as a server binds: a port held only by connections closing (TIME_WAIT, after
            # a previous `up`) is free; one something listens on is not
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind((LOOPBACK, port))
            except OSError:
                busy.append(port)
    return busy


def run_up(data_dir: str | None, base_port: int | None, members: int = 3, wire: bool = True,
           demo: bool = True, shards: int = 2, routers: int = 2,
           out: TextIO | None = None, restart: bool = True, metrics: bool = True,
           chunk_size_mb: int | None = None, auth: bool = False, tls: bool = False) -> int:
    """``helogale up`` (see module docstring); returns the exit status. ``auth``/``tls``:
    :mod:`node.security.up` (a first ``root`` user, a throwaway CA and certificates)."""
    out = out or sys.stdout
    if data_dir is not None:
        problem = _check_data_dir(data_dir, shards)
        if problem:
            print(f"helogale up: {problem}", file=sys.stderr)
            return 2
        os.makedirs(data_dir, exist_ok=True)
    cluster: LocalCluster | ShardedCluster
    secure = SecureUp(data_dir, auth, tls)
    if shards == 0:
        cluster = LocalCluster(members, data_dir=data_dir, base_port=base_port, wire=wire,
                               own_process_group=True, metrics=metrics, tls=secure.pki,
                               extra_args=["--auth"] if auth else None)
    else:
        cluster = ShardedCluster(shards, members=members, routers=routers, data_dir=data_dir,
                                 base_port=base_port, wire=wire, own_process_group=True,
                                 metrics=metrics, auth=auth, tls=secure.pki,
                                 extra_args=["--balancer-interval-secs",
                                             str(BALANCER_INTERVAL_S)])
    busy = busy_ports(_ports(cluster))
    if busy:
        print(f"helogale up: port(s) {', '.join(map(str, busy))} already in use (another "
              "`helogale up`, or a mongod?): choose other ports with --port", file=sys.stderr)
        cluster.stop()  # removes a temporary data directory; nothing was started
        return 2
    done = threading.Event()
    previous = {s: signal.signal(s, lambda *_: done.set())
                for s in (signal.SIGINT, signal.SIGTERM)}

    def say(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    supervisor: Supervisor | None = None
    try:
        if isinstance(cluster, ShardedCluster):
            say(f"starting config servers ({members}), {shards} shard(s) of {members} "
                f"member(s), {routers} router(s)...")
            cluster.start(progress=say)
            mb = set_chunk_size(lambda cmd: cluster.router_command(0, cmd, db="config"),
                                chunk_size_mb)
            say(f"chunk size {mb} MiB; the balancer runs every {BALANCER_INTERVAL_S} s")
        else:
            say(f"starting replica set {cluster.replset} ({members} member(s))...")
            cluster.start()
        if restart:
            supervisor = _supervise(cluster, say)
        secure.first_user(cluster, say)
        print(cluster.uri, file=out, flush=True)
        if cluster.wire_uri:
            print(cluster.wire_uri, file=out, flush=True)
        if isinstance(cluster, ShardedCluster):
            say(f"sharded cluster up: {shards} shard(s), {routers} router(s), data in "
                f"{cluster.data_dir}; connect to the URIs above; Ctrl-C stops")
            if metrics:
                say("metrics: every process at its gRPC port + 1000 (/metrics); status page "
                    f"http://127.0.0.1:{cluster.routers[0].metrics_port}/ ; "
                    "`helogale status` for a summary")
        else:
            say(f"replica set {cluster.replset}: {members} members, data in "
                f"{cluster.data_dir}; Ctrl-C stops")
        if demo and not done.is_set() and auth and not isinstance(cluster, ShardedCluster):
            say("demo skipped: it talks to members without credentials")
        elif demo and not done.is_set():
            if isinstance(cluster, ShardedCluster):
                demo_sharded(cluster, out)
            else:
                demo_replset(cluster, out)
            out.flush()
        done.wait()
    except (TimeoutError, RuntimeError) as exc:
        print(f"helogale up: {exc} (logs in {cluster.data_dir})", file=sys.stderr)
        return 1
    finally:
        if supervisor is not None:
            supervisor.stop()
        if isinstance(cluster, ShardedCluster):
            say("stopping routers, then shards, then config servers...")
        cluster.stop()
        secure.close()
        for s, handler in previous.items():
            signal.signal(s, handler)
    say("stopped")
    return 0


def _supervise(cluster: LocalCluster | ShardedCluster, say: Any) -> Supervisor:
    """Watch every member and router of ``cluster``: one that dies is started again."""
    sup = Supervisor(say)
    sets = cluster.sets if isinstance(cluster, ShardedCluster) else [cluster]
    for c in sets:
        for i, m in enumerate(c.members):
            sup.watch(f"{c.replset} member {m.member_id} ({m.address})",
                      lambda m=m: m.alive or m.paused,
                      lambda c=c, i=i: c._spawn(i),
                      lambda m=m: m.proc.poll() if m.proc is not None else None)
    if isinstance(cluster, ShardedCluster):
        for i, r in enumerate(cluster.routers):
            sup.watch(f"router{i + 1} ({r.address})", lambda r=r: r.alive,
                      lambda i=i: cluster.start_router(i),
                      lambda r=r: r.proc.poll() if r.proc is not None else None)
    return sup.start()


def demo_replset(cluster: LocalCluster, out: Any) -> None:
    """A few majority writes and a read against the primary, printed."""
    p = cluster.wait_for_primary()
    docs = [{"name": n, "weight_g": w} for n, w in ANIMALS[:3]]
    reply = cluster.command(p, {"insert": "animals", "documents": docs,
                                "writeConcern": {"w": "majority"}}, db="demo")
    print(f"demo: inserted {reply.get('n')} documents into demo.animals (w=majority) "
          f"on primary {cluster.members[p].address}", file=out)
    reply = cluster.command(p, {"update": "animals", "updates": [
        {"q": {"name": "dwarf mongoose"}, "u": {"$inc": {"weight_g": 5}}}]}, db="demo")
    print(f"demo: updated {reply.get('nModified')} document", file=out)
    reply = cluster.command(p, {"find": "animals", "filter": {"weight_g": {"$lt": 1000}},
                                "sort": {"weight_g": 1}, "projection": {"_id": 0}}, db="demo")
    for doc in reply.get("cursor", {}).get("firstBatch", []):
        print(f"demo: found {doc}", file=out)


def _bound(doc: Any) -> str:
    value = doc.get("_id") if isinstance(doc, dict) else doc
    return type(value).__name__ if type(value).__name__ in ("MinKey", "MaxKey") else repr(value)


def demo_sharded(cluster: ShardedCluster, out: Any) -> None:
    """Through the routers, with the helogale client: shard ``demo.animals`` by ``_id``, insert
    the animals, split the collection and move the upper half to another shard; print the
    chunks, how many documents each shard holds, and a sorted query merged across shards. On a
    restarted cluster (the collection is already sharded) only the printing runs."""
    import helogale

    def say(text: str) -> None:
        print(f"demo: {text}", file=out, flush=True)

    middle = len(ANIMALS) // 2 + 1
    with helogale.MongoClient(cluster.uri, w="majority") as client:
        admin, coll = client.admin, client.demo.animals
        if client.config.collections.find_one({"_id": DEMO_NS}) is None:
            admin.command({"enableSharding": "demo"})
            admin.command({"shardCollection": DEMO_NS, "key": {"_id": 1}})
            result = coll.insert_many([{"_id": i, "name": n, "weight_g": w}
                                       for i, (n, w) in enumerate(ANIMALS, start=1)])
            say(f"sharded {DEMO_NS} by _id and inserted {len(result.inserted_ids)} documents "
                "through the routers (w=majority)")
            admin.command({"split": DEMO_NS, "middle": {"_id": middle}})
            say(f"split {DEMO_NS} at _id {middle}")
            chunk = client.config.chunks.find_one({"ns": DEMO_NS, "min": {"_id": middle}})
            others = [s.replset for s in cluster.shards if s.replset != chunk["shard"]]
            if others:
                admin.command({"moveChunk": DEMO_NS, "find": {"_id": middle},
                               "to": others[0], "_waitForDelete": True})
                say(f"moved chunk [_id {middle}, MaxKey) from {chunk['shard']} to {others[0]}")
        else:
            say(f"{DEMO_NS} was sharded by an earlier run; its data survived the restart")
        for c in client.config.chunks.find({"ns": DEMO_NS}).sort("min", 1):
            say(f"chunk [{_bound(c['min'])}, {_bound(c['max'])}) on {c['shard']}")
        for shard in [] if cluster.auth else cluster.shards:  # (shards have no user root)
            with helogale.MongoClient(shard.uri) as direct:
                n = direct.demo.animals.count_documents({})
            say(f"{shard.replset} holds {n} documents of {DEMO_NS}")
        say("find weight_g < 1000 sorted by weight_g, merged across shards by a router:")
        for doc in coll.find({"weight_g": {"$lt": 1000}}, {"_id": 0}).sort("weight_g", 1):
            say(f"found {doc}")
