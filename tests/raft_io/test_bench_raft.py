"""Smoke test of ``python -m bench raft``: it runs end to end and writes the documented JSON."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.raft_io.kv_cluster import REPO

pytestmark = pytest.mark.bench


def test_bench_raft_json_shape(tmp_path: Path) -> None:
    out = tmp_path / "raft.json"
    subprocess.run([sys.executable, "-m", "bench", "raft", "--duration", "0.5", "--kills", "2",
                    "--skip-etcd", "--skip-pysyncobj", "--json", str(out)],
                   cwd=REPO, check=True, timeout=240)
    doc = json.loads(out.read_text())
    systems = {(r["system"], r["workload"]) for r in doc["results"]}
    for n in (1, 16, 128):
        assert ("helogale", f"proposers-{n}") in systems
    for r in doc["results"]:
        assert set(r) == {"workload", "system", "ops_per_s", "p50_ms", "p99_ms"}
        assert r["ops_per_s"] > 0
    assert doc["failover"]["n"] == 2 and 0 < doc["failover"]["p50_s"] < 30
