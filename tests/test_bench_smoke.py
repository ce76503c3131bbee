"""Smoke test of ``python -m bench engine``: a tiny run on every system, JSON shape checked."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.engine import SYSTEMS, WORKLOADS, format_table, run

pytestmark = pytest.mark.bench

ROOT = Path(__file__).resolve().parents[1]


def _bench(*args: str) -> subprocess.CompletedProcess[str]:
    """``python -m bench ARGS`` from the repository root; it must succeed."""
    proc = subprocess.run([sys.executable, "-m", "bench", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    return proc


def test_engine_bench_json_shape(tmp_path: Path) -> None:
    out = tmp_path / "engine.json"
    proc = _bench("engine", "--docs", "400", "--budget", "0.05", "--json", str(out))
    assert "x montydb" in proc.stdout and "x mongomock" in proc.stdout
    data = json.loads(out.read_text())
    assert set(data) == {"results"}
    rows = data["results"]
    assert {(r["workload"], r["system"]) for r in rows} == {
        (w, s) for w in WORKLOADS for s in SYSTEMS
    }
    for row in rows:
        assert {"workload", "system", "ops_per_s", "p50_ms", "p99_ms"} <= set(row)
        assert row["ops_per_s"] > 0
        assert 0 <= row["p50_ms"] <= row["p99_ms"]
    for needle in ("insert", "indexed", "range", "scan", "near"):
        assert sum(needle in w for w in WORKLOADS) == 1, needle
    emulated = {r["system"] for r in rows if r.get("emulated")}
    assert "helogale" not in emulated


def test_engine_bench_helogale_alone() -> None:
    results = run(300, systems=("helogale",), budget_s=0.02)
    assert [m.workload for m in results] == list(WORKLOADS)
    assert all(m.items > 0 and m.latencies for m in results)
    assert "helogale ops/s" in format_table(results)


def test_dispatcher_usage_and_unknown_subcommand() -> None:
    from bench.__main__ import SUBCOMMANDS, main

    assert SUBCOMMANDS["engine"] == "bench.engine"
    assert main(["no-such-bench"]) == 2
    assert main(["--help"]) == 0


@pytest.mark.parametrize("fsync", [False, True])
def test_engine_bench_lmdb_durability_setting_reaches_both_lmdb_systems(fsync: bool) -> None:
    """``--fsync`` decides LMDB's per-commit sync for Helogale and montydb alike."""
    from bench.engine import FACTORIES

    helogale = FACTORIES["helogale"](fsync)
    montydb = FACTORIES["montydb"](fsync)
    try:
        flags = helogale.store._env.flags()  # type: ignore[attr-defined]
        assert flags["sync"] is fsync and flags["metasync"] is fsync
        opt = montydb.coll.database.client._storage._conn.opt  # type: ignore[attr-defined]
        assert opt.get("sync", True) is fsync and opt.get("metasync", True) is fsync
    finally:
        helogale.close()
        montydb.close()


def test_regex_bench_json_shape(tmp_path: Path) -> None:
    out = tmp_path / "regex.json"
    _bench("regex", "--docs", "300", "--repeat", "1", "--json", str(out))
    data = json.loads(out.read_text())
    assert set(data) == {"engine", "match", "pathological"}
    assert all(r["re2_ms"] > 0 and r["re_ms"] > 0 for r in data["engine"])
    longest = max(data["pathological"], key=lambda r: r["a_count"])
    assert longest["a_count"] == 100_000 and longest["re_ms"] is None


def test_engine_scaling_json_and_plot(tmp_path: Path) -> None:
    out, png = tmp_path / "scale.json", tmp_path / "scale.png"
    proc = _bench("engine", "--docs", "300,900", "--json", str(out), "--plot", str(png))
    assert "near_k10" in proc.stdout and "x smallest" in proc.stdout
    data = json.loads(out.read_text())
    assert data["sizes"] == [300, 900] and [ld["docs"] for ld in data["loads"]] == [300, 900]
    from bench.engine_scale import WORKLOADS as SCALE_WORKLOADS

    assert {(r["workload"], r["docs"]) for r in data["results"]} == {
        (w, n) for w in SCALE_WORKLOADS for n in (300, 900)
    }
    for row in data["results"]:
        assert row["cpu_us_per_op"] > 0 and row["p50_us"] > 0
    near_k10 = [r for r in data["results"] if r["workload"] == "near_k10"]
    assert all(r["results_per_op"] <= 10 for r in near_k10)
    assert png.stat().st_size > 0
