"""Operations on the shared sharded cluster: ``helogale status --json`` and the metrics
endpoints move when work happens (an insert burst, a migration held at a phase, a killed
member), ``killOp`` through a router interrupts a shard's read, and the routers' status page
shows the cluster in headless Chromium."""

from __future__ import annotations

import shutil
import subprocess
import threading
import urllib.request
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from helogale.status import collect
from node.local_cluster import LocalCluster, wait_until
from node.ops.current import INTERRUPTED
from node.sharded_cluster import ShardedCluster
from tests.sharded_helpers import ok, shard_docs

pytestmark = pytest.mark.cluster

PHASES = ("registered", "cloning", "catching up", "critical section", "committing",
          "committed", "done")


def scrape(port: int) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of a metrics endpoint: (name, labels) -> value."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read()
    return {(s.name, frozenset(s.labels.items())): s.value
            for fam in text_string_to_metric_families(text.decode())
            for s in fam.samples}


def sample(metrics: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str,
           **labels: str) -> float:
    return metrics.get((name, frozenset(labels.items())), 0.0)


def fail_point(s: LocalCluster, i: int, name: str, mode: str, **data: Any) -> int:
    cmd: dict[str, Any] = {"configureFailPoint": name, "mode": mode}
    if data:
        cmd["data"] = data
    return int(ok(s.command(i, cmd))["count"])


def holder(cluster: ShardedCluster, db: str, coll: str) -> int:
    """Index of the shard holding an unsharded collection's documents."""
    return next(k for k in range(len(cluster.shards)) if shard_docs(cluster, k, coll, db=db))


def set_of(status: dict[str, Any], name: str) -> dict[str, Any]:
    return next(s for s in status["sets"] if s["name"] == name)


def test_an_insert_burst_raises_opcounters_and_the_commit_index(sharded: ShardedCluster
                                                                ) -> None:
    ok(sharded.router_command(0, {"insert": "burst", "documents": [{"n": -1}]},
                              db="ops_burst"))
    k = holder(sharded, "ops_burst", "burst")
    shard = sharded.shards[k]
    p = shard.wait_for_primary()
    before_status = collect(sharded.uri)
    before_router = scrape(sharded.routers[0].metrics_port)
    before_member = scrape(shard.members[p].metrics_port)
    before_ss = ok(sharded.router_command(0, {"serverStatus": 1}))["opcounters"]["insert"]
    for lo in range(0, 300, 100):
        ok(sharded.router_command(0, {"insert": "burst", "documents": [
            {"n": i} for i in range(lo, lo + 100)]}, db="ops_burst"))
    after_status = collect(sharded.uri)
    after_router = scrape(sharded.routers[0].metrics_port)
    after_member = scrape(shard.members[p].metrics_port)
    assert ok(sharded.router_command(0, {"serverStatus": 1}))["opcounters"]["insert"] \
        - before_ss == 300
    ins = {"type": "insert"}
    assert sample(after_router, "helogale_opcounters_total", **ins) \
        - sample(before_router, "helogale_opcounters_total", **ins) == 300
    assert sample(after_member, "helogale_opcounters_total", **ins) \
        - sample(before_member, "helogale_opcounters_total", **ins) >= 300
    assert sample(after_router, "helogale_commands_total", command="insert", outcome="ok") \
        - sample(before_router, "helogale_commands_total", command="insert", outcome="ok") == 3
    name = shard.replset
    assert set_of(after_status, name)["members"][p]["commitIndex"] \
        >= set_of(before_status, name)["members"][p]["commitIndex"] + 3
    raft = {"set": name}
    assert sample(after_member, "helogale_raft_commit_index", **raft) \
        >= sample(before_member, "helogale_raft_commit_index", **raft) + 3
    assert sample(after_member, "helogale_raft_is_leader", **raft) == 1
    assert sample(after_member, "helogale_raft_proposal_duration_seconds_count", **raft) \
        > sample(before_member, "helogale_raft_proposal_duration_seconds_count", **raft)


def test_a_migration_shows_its_phases(sharded: ShardedCluster) -> None:
    ns = "ops_mig.c"
    ok(sharded.router_command(0, {"enableSharding": "ops_mig"}))
    ok(sharded.router_command(0, {"shardCollection": ns, "key": {"_id": 1}}))
    ok(sharded.router_command(0, {"insert": "c", "documents": [{"_id": i} for i in range(200)]},
                              db="ops_mig"))
    ok(sharded.router_command(0, {"split": ns, "middle": {"_id": 100}}))
    status = collect(sharded.uri)
    coll = next(c for c in status["collections"] if c["ns"] == ns)
    donor_name = next(s for s, n in coll["chunks"].items() if n)
    to = "shard2" if donor_name == "shard1" else "shard1"
    donor = sharded.shards[int(donor_name[-1]) - 1]
    dp = donor.wait_for_primary()
    port = donor.members[dp].metrics_port
    before = scrape(port)
    fail_point(donor, dp, "migrationHang.cloning", "alwaysOn")
    result: dict[str, Any] = {}
    mover = threading.Thread(target=lambda: result.update(reply=sharded.try_router(
        0, {"moveChunk": ns, "find": {"_id": 150}, "to": to}, timeout=120) or {}))
    mover.start()
    try:
        wait_until(lambda: fail_point(donor, dp, "migrationHang.cloning", "alwaysOn") > 0, 60,
                   "the migration to reach cloning")
        held = collect(sharded.uri)
        mig = next(m for m in held["migrations"] if m["from"] == donor_name)
        assert mig["ns"] == ns and mig["to"] == to and mig["phase"] == "cloning"
        assert sample(scrape(port), "helogale_migrations_running") == 1
        ops = ok(sharded.router_command(0, {"currentOp": 1, "op": "migration"}))["inprog"]
        task = next(o for o in ops if o.get("shard") == donor_name)
        assert task["ns"] == ns and task["phase"] == "cloning"
    finally:
        fail_point(donor, dp, "migrationHang.cloning", "off")
        mover.join(120)
    assert result["reply"].get("ok") == 1.0, result
    after = scrape(port)
    for phase in PHASES:
        rose = sample(after, "helogale_migration_phases_total", phase=phase) \
            - sample(before, "helogale_migration_phases_total", phase=phase)
        assert rose == 1, phase
    assert sample(after, "helogale_migrations_total", outcome="committed") \
        - sample(before, "helogale_migrations_total", outcome="committed") == 1
    assert sample(after, "helogale_migrations_running") == 0
    moved = collect(sharded.uri)
    assert next(c for c in moved["collections"] if c["ns"] == ns)["chunks"] == {
        donor_name: 1, to: 1}
    stats = ok(sharded.router_command(0, {"collStats": "c"}, db="ops_mig"))
    assert stats["count"] == 200 and stats["size"] > 0
    assert {s: r["count"] for s, r in stats["shards"].items()} == {donor_name: 100, to: 100}


def test_a_killed_member_is_down_with_growing_lag(sharded: ShardedCluster) -> None:
    ok(sharded.router_command(0, {"insert": "lag", "documents": [{"n": 0}]}, db="ops_lag"))
    k = holder(sharded, "ops_lag", "lag")
    shard = sharded.shards[k]
    p = shard.wait_for_primary()
    victim = next(i for i in range(len(shard.members)) if i != p)
    host = shard.members[victim].address
    shard.kill(victim)
    try:
        def burst() -> None:
            for _ in range(5):
                ok(sharded.router_command(0, {"insert": "lag", "documents": [{"n": 1}]},
                                          db="ops_lag"))

        burst()
        first = next(m for m in set_of(collect(sharded.uri), shard.replset)["members"]
                     if m["host"] == host)
        assert first["state"] == "DOWN" and first["health"] == 0
        burst()
        second = next(m for m in set_of(collect(sharded.uri), shard.replset)["members"]
                      if m["host"] == host)
        assert second["state"] == "DOWN"
        assert second["lagEntries"] >= first["lagEntries"] + 5 >= 10
        assert second["lagSecs"] > first["lagSecs"] > 0
        lag = sample(scrape(shard.members[p].metrics_port), "helogale_raft_peer_lag_entries",
                     set=shard.replset, peer=host)
        assert lag >= second["lagEntries"]
    finally:
        shard.restart(victim)
        shard.wait_ready(victim, 60)


def test_kill_op_through_a_router_interrupts_a_shard_read(sharded: ShardedCluster) -> None:
    ok(sharded.router_command(0, {"insert": "c", "documents": [{"n": i} for i in range(10)]},
                              db="ops_kill"))
    k = holder(sharded, "ops_kill", "c")
    shard = sharded.shards[k]
    p = shard.wait_for_primary()
    point = "waitInFindBeforeMakingBatch"
    fail_point(shard, p, point, "alwaysOn", ns="ops_kill.c")
    result: dict[str, Any] = {}
    reader = threading.Thread(target=lambda: result.update(reply=sharded.try_router(
        1, {"find": "c", "filter": {}}, db="ops_kill", timeout=60) or {}))
    reader.start()
    try:
        wait_until(lambda: fail_point(shard, p, point, "alwaysOn", ns="ops_kill.c") > 0, 30,
                   "the shard's find to start")
        ops = ok(sharded.router_command(0, {"currentOp": 1, "ns": "ops_kill.c",
                                            "op": "query"}))["inprog"]
        remote = [o for o in ops if o.get("shard") == shard.replset]
        assert len(remote) == 1 and str(remote[0]["opid"]).startswith(f"{shard.replset}:")
        assert ok(sharded.router_command(0, {"killOp": 1, "op": remote[0]["opid"]}))["found"]
    finally:
        fail_point(shard, p, point, "off")
        reader.join(60)
    reply = result["reply"]
    assert reply.get("ok") == 0.0 and reply.get("code") == INTERRUPTED, reply
    again = ok(sharded.router_command(1, {"count": "c"}, db="ops_kill"))
    assert again["n"] == 10


def test_the_status_page_in_headless_chromium(sharded: ShardedCluster) -> None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("chromium is not installed")
    ok(sharded.router_command(0, {"enableSharding": "ops_page"}))
    ok(sharded.router_command(0, {"shardCollection": "ops_page.c", "key": {"_id": 1}}))
    url = f"http://127.0.0.1:{sharded.routers[0].metrics_port}/"
    dom = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu",
                          "--disable-dev-shm-usage", "--dump-dom", url],
                         capture_output=True, text=True, timeout=120).stdout
    assert "<h1>Helogale cluster</h1>" in dom
    for name in ("cfg", "shard1", "shard2"):
        assert f'data-set="{name}"' in dom
    assert dom.count('class="member"') == 9
    assert dom.count('data-state="PRIMARY"') == 3
    assert 'data-ns="ops_page.c"' in dom and 'data-chunks="1"' in dom
    assert 'id="elections"' in dom and 'id="migrations"' in dom
    for r in sharded.routers:
        assert r.address in dom
