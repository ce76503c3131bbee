"""``helogale status [URI] [--json] [--watch] [--targets]``: a cluster on one screen.

Given a router (a sharded cluster) or members of a replica set, :func:`collect` asks every
process what it knows, in parallel, with a short timeout each: the routers that registered in
``config.mongos``; for the config set and each shard, every member's state, term, health,
applied/commit index and (from the primary) its lag in entries and seconds; per sharded
collection the chunks and data per shard and any jumbo chunks; the balancer; running
migrations with their phase and progress. An unreachable member is ``DOWN``.

The result is a plain JSON-able document (its shape is documented in docs/operations.md and
kept stable); :mod:`helogale.status_render` draws it as text. ``--targets`` prints the
Prometheus targets (every process's metrics endpoint) as a ``file_sd`` JSON list.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import json
import sys
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TextIO

from bson import ObjectId

from helogale.channel import Channel

DEFAULT_URI = "helogale://127.0.0.1:27027/"
TIMEOUT_S = 2.0
ROUTER_STALE_S = 30.0
"""A router whose last ``config.mongos`` ping is older than this is shown as down."""
STATE_NAMES = {0: "STARTUP", 1: "PRIMARY", 2: "SECONDARY", 3: "RECOVERING", 5: "STARTUP2",
               7: "ARBITER", 8: "DOWN", 9: "ROLLBACK", 10: "REMOVED"}


def hosts_of(uri: str) -> list[str]:
    """``helogale://h1:p1,h2:p2/?opts`` (or ``set/h1:p1,h2``, or ``h:p``) -> hosts."""
    text = uri.split("://", 1)[-1]
    text = text.split("/?", 1)[0].rstrip("/")
    if "/" in text:
        text = text.split("/", 1)[1]
    return [h for h in text.split(",") if h]


def _addr(host: str) -> tuple[str, int]:
    name, _, port = host.rpartition(":")
    return name, int(port)


def plain(value: Any) -> Any:
    """A BSON reply as JSON-able values (datetimes as ISO text, ObjectIds as hex)."""
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, _dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=_dt.UTC)
        return value.astimezone(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    if isinstance(value, ObjectId):
        return str(value)
    if isinstance(value, bool | str | float) or value is None:
        return value
    if isinstance(value, int):
        return int(value)
    return str(value)


class Prober:
    """One channel per address, commands with a timeout, failures as None."""

    def __init__(self, timeout: float = TIMEOUT_S) -> None:
        self.timeout = timeout
        self._channels: dict[str, Channel] = {}
        self.pool = ThreadPoolExecutor(max_workers=16, thread_name_prefix="status")

    def run(self, host: str, cmd: Mapping[str, Any], db: str = "admin"
            ) -> dict[str, Any] | None:
        try:
            ch = self._channels.get(host)
            if ch is None:
                ch = self._channels[host] = Channel(_addr(host), self.timeout)
            reply = ch.run(db, dict(cmd), timeout=self.timeout)
        except Exception:
            return None
        return reply if reply.get("ok") == 1.0 else None

    def many(self, calls: list[tuple[str, Mapping[str, Any], str]]
             ) -> list[dict[str, Any] | None]:
        futures = [self.pool.submit(self.run, h, c, d) for h, c, d in calls]
        return [f.result() for f in futures]

    def find(self, hosts: list[str], db: str, coll: str, filt: Mapping[str, Any] | None = None
             ) -> list[dict[str, Any]]:
        """All documents of a small collection from the first host that answers (a
        primary: the set's own hosts are tried in order)."""
        for host in hosts:
            reply = self.run(host, {"find": coll, "filter": dict(filt or {}),
                                    "batchSize": 100_000}, db)
            if reply is not None:
                return list(reply["cursor"]["firstBatch"])
        return []

    def close(self) -> None:
        self.pool.shutdown(wait=False)
        for ch in self._channels.values():
            with contextlib.suppress(Exception):
                ch.close()


def set_status(prober: Prober, name: str, hosts: list[str], role: str) -> dict[str, Any]:
    """Every member's own view, lag from the primary's; unreachable members are DOWN."""
    replies = prober.many([(h, {"replSetGetStatus": 1}, "admin") for h in hosts]
                          + [(h, {"serverStatus": 1}, "admin") for h in hosts])
    rs, ss = replies[:len(hosts)], replies[len(hosts):]
    primary = None
    for host, r in zip(hosts, rs, strict=True):
        if r is not None and r.get("myState") == 1 and (
                primary is None or r["term"] > primary[1]["term"]):
            primary = (host, r)
    lag: dict[str, dict[str, Any]] = {}
    if primary is not None:
        for m in primary[1]["members"]:
            lag[str(m["name"])] = m
    members = []
    for host, r, s in zip(hosts, rs, ss, strict=True):
        row: dict[str, Any] = {"host": host}
        if r is None:
            row.update({"state": "DOWN", "health": 0, "term": None, "appliedIndex": None,
                        "commitIndex": None})
        else:
            me = next((m for m in r["members"] if m.get("self")), {})
            row.update({"state": STATE_NAMES.get(int(me.get("state", r.get("myState", 0))),
                                                 "UNKNOWN"),
                        "health": 1, "term": int(r["term"]),
                        "appliedIndex": int(r["appliedIndex"]),
                        "commitIndex": int(r["commitIndex"])})
        seen = lag.get(host)
        if seen is not None and not seen.get("self"):
            row["lagEntries"] = int(seen.get("lagEntries", 0))
            row["lagSecs"] = (round(float(seen["lagSecs"]), 3)
                              if seen.get("lagSecs") is not None else None)
            if r is None or seen.get("health") == 0:
                row["health"] = 0
        elif seen is not None:
            row["lagEntries"], row["lagSecs"] = 0, 0.0
        if s is not None and s.get("metricsPort"):
            row["metricsPort"] = int(s["metricsPort"])
        members.append(row)
    out: dict[str, Any] = {"name": name, "role": role, "members": members,
                           "primary": primary[0] if primary else None,
                           "term": int(primary[1]["term"]) if primary else None}
    if primary is not None and primary[1].get("lastElectionDate") is not None:
        out["lastElection"] = plain(primary[1]["lastElectionDate"])
    return out


def _primary_first(s: Mapping[str, Any]) -> list[str]:
    hosts = [m["host"] for m in s["members"] if m["state"] != "DOWN"]
    if s.get("primary"):
        hosts.sort(key=lambda h: h != s["primary"])
    return hosts


def collect(uri: str, timeout: float = TIMEOUT_S) -> dict[str, Any]:
    """The status document of the cluster behind ``uri`` (see module docstring)."""
    prober = Prober(timeout)
    try:
        return _collect(prober, hosts_of(uri))
    finally:
        prober.close()


def _collect(prober: Prober, hosts: list[str]) -> dict[str, Any]:
    now = _dt.datetime.now(_dt.UTC)
    hello = None
    for host in hosts:
        hello = prober.run(host, {"hello": 1})
        if hello is not None:
            break
    if hello is None:
        raise ConnectionError(f"no server answered at {', '.join(hosts)}")
    if hello.get("msg") != "isdbgrid":
        name = str(hello.get("setName") or "rs0")
        members = list(hello.get("hosts", [])) + list(hello.get("passives", [])) or hosts
        return {"kind": "replicaSet", "time": plain(now), "routers": [],
                "sets": [set_status(prober, name, members, "replicaSet")],
                "collections": [], "balancer": None, "migrations": []}
    router = next(h for h in hosts if prober.run(h, {"ping": 1}) is not None)
    rstatus = prober.run(router, {"serverStatus": 1}) or {}
    shards = (prober.run(router, {"listShards": 1}) or {}).get("shards", [])
    cfg_conn = rstatus.get("sharding", {}).get("configsvrConnectionString", "")
    cfg_name, _, cfg_hosts = cfg_conn.partition("/")
    specs = [(cfg_name, cfg_hosts.split(","), "config")]
    for s in shards:
        conn = str(s.get("grpcHost") or s["host"])
        specs.append((str(s["_id"]), conn.partition("/")[2].split(","), "shard"))
    futures = [prober.pool.submit(set_status, prober, n, h, r) for n, h, r in specs]
    sets = [f.result() for f in futures]
    config_hosts = _primary_first(sets[0])
    routers = []
    for doc in prober.find(config_hosts, "config", "mongos"):
        ping = doc.get("ping")
        if isinstance(ping, _dt.datetime) and ping.tzinfo is None:
            ping = ping.replace(tzinfo=_dt.UTC)
        age = (now - ping).total_seconds() if isinstance(ping, _dt.datetime) else None
        routers.append({"host": str(doc["_id"]), "up": age is not None and age < ROUTER_STALE_S,
                        "lastPing": plain(ping), "pingAgeSecs": round(age, 1) if age else age,
                        "uptimeSecs": doc.get("up"), "metricsPort": doc.get("metricsPort")})
    routers.sort(key=lambda r: r["host"])
    collections = _collections(prober, config_hosts, sets[1:])
    balancer = prober.run(router, {"balancerStatus": 1})
    migrations = []
    for s in sets[1:]:
        hosts_ = _primary_first(s)
        st = prober.run(hosts_[0], {"serverStatus": 1}) if hosts_ else None
        mig = (st or {}).get("sharding", {}).get("migration")
        if mig:
            migrations.append({"from": s["name"], **plain(mig)})
    return {"kind": "sharded", "time": plain(now), "routers": routers, "sets": sets,
            "collections": collections,
            "balancer": None if balancer is None else {
                "mode": balancer.get("mode"), "inRound": balancer.get("inBalancerRound"),
                "rounds": balancer.get("numBalancerRounds"),
                "chunksMoved": balancer.get("chunksMoved"),
                **({"migration": plain(balancer["migration"])}
                   if balancer.get("migration") else {})},
            "migrations": migrations}


def _collections(prober: Prober, config_hosts: list[str], shard_sets: list[dict[str, Any]]
                 ) -> list[dict[str, Any]]:
    colls = [c for c in prober.find(config_hosts, "config", "collections")
             if not c.get("dropped")]
    chunks = prober.find(config_hosts, "config", "chunks")
    out = []
    for coll in sorted(colls, key=lambda c: str(c["_id"])):
        ns = str(coll["_id"])
        mine = [c for c in chunks if c.get("ns") == ns]
        per: dict[str, int] = {}
        for c in mine:
            per[str(c["shard"])] = per.get(str(c["shard"]), 0) + 1
        data: dict[str, int] = {}
        docs: dict[str, int] = {}
        for s in shard_sets:
            hosts = _primary_first(s)
            reply = prober.run(hosts[0], {"_shardsvrChunkSizes": ns}) if hosts else None
            if reply is not None:
                data[s["name"]] = sum(int(c["bytes"]) for c in reply["chunks"])
                docs[s["name"]] = sum(int(c["count"]) for c in reply["chunks"])
        out.append({"ns": ns, "chunks": per, "dataSize": data, "count": docs,
                    "jumbo": [plain({"min": c["min"], "max": c["max"], "shard": c["shard"]})
                              for c in mine if c.get("jumbo")]})
    return out


def targets(status: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Prometheus ``file_sd`` groups: every process that serves metrics, with labels."""
    groups = []
    for s in status["sets"]:
        hosts = [f"{m['host'].rpartition(':')[0]}:{m['metricsPort']}" for m in s["members"]
                 if m.get("metricsPort")]
        if hosts:
            groups.append({"targets": hosts, "labels": {"set": s["name"], "role": s["role"]}})
    routers = [f"{r['host'].rpartition(':')[0]}:{r['metricsPort']}" for r in status["routers"]
               if r.get("metricsPort") and r.get("up")]
    if routers:
        groups.append({"targets": routers, "labels": {"role": "router"}})
    return groups


def watch(fetch: Callable[[], str], out: TextIO, interval: float, *,
          iterations: int | None = None, sleep: Callable[[float], None] = time.sleep) -> None:
    """Redraw ``fetch()`` in place every ``interval`` seconds (``iterations``: then stop)."""
    n = 0
    while iterations is None or n < iterations:
        try:
            text = fetch()
        except Exception as exc:  # the cluster went away: say so, keep watching
            text = f"status unavailable: {exc}\n"
        out.write("\x1b[H\x1b[2J" + text)
        out.flush()
        n += 1
        if iterations is None or n < iterations:
            sleep(interval)


def main(argv: list[str] | None = None, out: TextIO | None = None) -> int:
    parser = argparse.ArgumentParser(prog="helogale status",
                                     description="a cluster's state on one screen")
    add_arguments(parser)
    return run(parser.parse_args(argv), out)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("uri", nargs="?", default=DEFAULT_URI,
                   help=f"a router or replica set members (default {DEFAULT_URI})")
    p.add_argument("--json", action="store_true", help="the status document as JSON")
    p.add_argument("--watch", nargs="?", type=float, const=2.0, default=None,
                   metavar="SECS", help="redraw in place every SECS seconds (default 2)")
    p.add_argument("--targets", action="store_true",
                   help="Prometheus file_sd targets: every process's metrics endpoint")
    p.add_argument("--timeout", type=float, default=TIMEOUT_S,
                   help="seconds to wait for each process (default 2)")


def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    from helogale.status_render import render

    out = out or sys.stdout

    def text() -> str:
        status = collect(args.uri, args.timeout)
        if args.targets:
            return json.dumps(targets(status), indent=2) + "\n"
        if args.json:
            return json.dumps(status, indent=2, sort_keys=True) + "\n"
        return render(status)

    if args.watch:
        with contextlib.suppress(KeyboardInterrupt):
            watch(text, out, args.watch)
        return 0
    try:
        out.write(text())
    except ConnectionError as exc:
        print(f"helogale status: {exc}", file=sys.stderr)
        return 1
    return 0
