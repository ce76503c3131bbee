"""Smoke test of ``python -m bench sharded``: a tiny run of all three systems (one member per
replica set to keep it short), the JSON's shape, the second shard really taking half; the
ObjectId hot spot (one chunk: one shard takes everything; presplit by the second: both shards,
never both in one second) and the balancer's convergence."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench.sharded import QUICK_CLIENTS, SORTED_CLIENTS, SPLIT_AT, SYSTEMS, doc_id

pytestmark = [pytest.mark.bench, pytest.mark.cluster]

ROOT = Path(__file__).resolve().parents[1]


def test_preloaded_ids_spread_over_both_halves_of_the_split() -> None:
    ids = [doc_id(i) for i in range(2000)]
    assert len(set(ids)) == len(ids)
    upper = sum(i >= SPLIT_AT for i in ids)
    assert 800 < upper < 1200
    assert all(-(1 << 63) <= i < (1 << 63) for i in ids)  # BSON int64


@pytest.mark.timeout(900)  # three systems one after the other; slow on a loaded machine
def test_sharded_bench_quick_json_shape(tmp_path: Path) -> None:
    out = tmp_path / "sharded.json"
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "sharded", "--quick", "--members", "1",
         "--duration", "1", "--docs", "1000", "--hotspot-duration", "2",
         "--converge-mib", "4", "--json", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=840,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "router-2-shards" in proc.stdout and "target router-1-shard" in proc.stdout
    data = json.loads(out.read_text())
    _hot_spot_and_convergence(data)  # first: the rows below are the more load-sensitive
    assert {"results", "ratios", "targets", "placement", "machine"} <= set(data)
    workloads = ([f"insert-majority-{n}" for n in QUICK_CLIENTS]
                 + [f"find-id-{n}" for n in QUICK_CLIENTS]
                 + [f"find-sorted-{n}" for n in SORTED_CLIENTS])
    rows = {(r["workload"], r["system"]): r for r in data["results"]}
    assert set(rows) == {(w, s) for w in workloads for s in SYSTEMS}
    for row in rows.values():
        assert row["ops_per_s"] > 0, row
        assert 0 < row["p50_ms"] <= row["p99_ms"], row
        assert row["errors"] == 0, row
        assert row["cpu_ms_per_op"] > 0, row  # the system's processes, sampled in the window
    for n in SORTED_CLIENTS:
        row = rows[(f"find-sorted-{n}", "replset")]
        assert row["docs_per_s"] == pytest.approx(row["ops_per_s"] * 500)
    assert {(r["workload"], r["system"]) for r in data["ratios"]} == {
        (w, s) for w in workloads for s in SYSTEMS[1:]}
    assert all(r["throughput_x"] > 0 and r["cpu_x"] > 0 for r in data["ratios"])
    assert [t["workload"] for t in data["targets"]] == [
        "insert-majority-16", "insert-majority-1", "find-id-16", "find-id-1"]
    # the second shard took its half: of the preloaded documents and of the inserts
    two = data["placement"]["router-2-shards"]
    assert len(two) == 2
    for coll in ("docs", "inserts"):
        counts = [c[coll] for c in two.values()]
        assert min(counts) > 0.3 * sum(counts), two
    assert sum(c["docs"] for c in two.values()) == 1000
    (one,) = data["placement"]["router-1-shard"].values()
    assert one["docs"] == 1000


def _hot_spot_and_convergence(data: dict[str, Any]) -> None:
    hot = {(r["workload"], r["system"]): r for r in data["hotspot"]}
    assert set(hot) == {("insert-objectid-16", "router-1-shard"),
                        ("insert-objectid-16", "router-2-shards"),
                        ("insert-objectid-presplit-16", "router-2-shards"),
                        ("insert-objectid-balancer-16", "router-2-shards")}
    for row in hot.values():
        assert row["ops_per_s"] > 0 and row["errors"] == 0, row
        assert sum(row["per_shard"].values()) > 0, row
    for system in ("router-1-shard", "router-2-shards"):
        one = hot[("insert-objectid-16", system)]  # one chunk: one shard takes every insert
        assert sorted(one["per_shard"].values())[:-1] == [0] * (len(one["per_shard"]) - 1)
        assert len(set(one["timeline"]) - {"."}) == 1, one  # ".": a second nothing landed
    presplit = hot[("insert-objectid-presplit-16", "router-2-shards")]
    assert min(presplit["per_shard"].values()) > 0, presplit
    assert "+" not in presplit["timeline"] and {"1", "2"} <= set(presplit["timeline"]), presplit
    assert "balancer" in hot[("insert-objectid-balancer-16", "router-2-shards")]
    conv = data["convergence"]
    assert conv["converged"], conv
    assert conv["moves"] > 0 and conv["splits"] > 0, conv
    assert max(conv["start_mib"].values()) > 3.5 and min(conv["start_mib"].values()) == 0
    assert max(conv["end_mib"].values()) - min(conv["end_mib"].values()) <= 3 * conv["chunk_mb"]
