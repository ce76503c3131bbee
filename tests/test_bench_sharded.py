"""Smoke test of ``python -m bench sharded``: a tiny run of all three systems (one member per
replica set to keep it short), the JSON's shape, and the second shard really taking half."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

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


def test_sharded_bench_quick_json_shape(tmp_path: Path) -> None:
    out = tmp_path / "sharded.json"
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "sharded", "--quick", "--members", "1",
         "--duration", "0.5", "--docs", "1000", "--json", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "router-2-shards" in proc.stdout and "target router-1-shard" in proc.stdout
    data = json.loads(out.read_text())
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
