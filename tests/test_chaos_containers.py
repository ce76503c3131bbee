"""The container backend of the chaos harness (chaos/containers.py, chaos/container_net.py):
the link bookkeeping and move count without Docker, and a short container chaos run with it
(marker ``docker``: .ci/containers.sh runs it)."""

from __future__ import annotations

import json
import os
from typing import Any

import pytest
from bson import Timestamp

from chaos import containers
from chaos.container_net import ContainerMesh
from chaos.report import RunReport
from chaos.runner import RunConfig, run_and_report
from tests.docker_helpers import IMAGE, leftovers, require_engine_and_image


def test_chunk_moves_are_major_version_steps(monkeypatch: pytest.MonkeyPatch) -> None:
    cluster = containers.ContainerCluster(project="unit")
    versions = [[Timestamp(3, 0), Timestamp(1, 5)], [Timestamp(3, 0), Timestamp(7, 2),
                                                     Timestamp(6, 0)]]

    def router(cmd: dict[str, Any], db: str = "admin") -> dict[str, Any]:
        assert cmd["find"] == "chunks" and db == "config"
        return {"ok": 1.0, "cursor": {"firstBatch": [{"lastmod": v} for v in versions[0]]}}

    monkeypatch.setattr(cluster, "_router", router)
    cluster.initial_version = cluster.collection_major_version()
    assert cluster.initial_version == 3
    versions.pop(0)
    assert cluster.report_extra() == {"backend": "containers", "containers": 11,
                                      "chunk_moves": 4}
    report = RunReport("set", 7, 1.0, [], [], 0, 0, 0, [], extra=cluster.report_extra())
    assert report.summary()["chunk_moves"] == 4


def test_mesh_cuts_links_in_the_receiving_container(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, ...]] = []
    monkeypatch.setattr("chaos.container_net.docker", lambda *a, **_k: calls.append(a) or "")
    cluster = containers.ContainerCluster(project="unit")
    for i, m in enumerate(cluster.members):
        m.container, m._ip = f"c{i}", f"10.0.0.{i + 1}"
    mesh = ContainerMesh(cluster)
    mesh.cut(0, 4)
    assert mesh.cut_links() == [(0, 4)]
    (call,) = calls
    assert call[:2] == ("exec", "c4") and "iptables -A HELOGALE-CHAOS -s 10.0.0.1 -j DROP" \
        in call[-1]
    calls.clear()
    mesh.partition([[0, 1], [2, 3, 4, 5, 6, 7, 8]])
    assert len(mesh.cut_links()) == 2 * 2 * 7  # both directions between the sides
    assert {c[1] for c in calls} == {f"c{i}" for i in range(9)}
    calls.clear()
    mesh.heal()
    assert mesh.cut_links() == []
    assert {c[1] for c in calls} == {f"c{i}" for i in range(9)}
    assert all("iptables -F HELOGALE-CHAOS" in c[-1] for c in calls)
    mesh.close()


@pytest.mark.docker
@pytest.mark.timeout(900)
def test_container_chaos_run_is_valid_moves_chunks_and_cleans_up(tmp_path: Any) -> None:
    require_engine_and_image()
    project = f"helogale-chaos-test-{os.getpid()}"
    config = RunConfig(workload="set", time=float(os.environ.get("HELOGALE_CHAOS_S", "45")),
                       seed=7, faults=["kill", "pause", "partition", "restart-all"],
                       processes=5, backend="containers", recovery_timeout_s=180.0,
                       backend_options={"image": IMAGE, "project": project})
    json_path, png_path = str(tmp_path / "run.json"), str(tmp_path / "run.png")
    try:
        report = run_and_report(config, json_path, png_path)
    finally:
        left = leftovers(project)
    with open(json_path) as fh:
        summary = json.load(fh)
    print(json.dumps({k: v for k, v in summary.items()
                      if k not in ("fault_windows", "anomaly_details")}))
    assert report.anomalies == [], summary
    assert summary["valid"] and summary["lost"] == 0 and summary["acknowledged"] > 100
    assert sum(summary["faults"].values()) >= 3, summary["faults"]
    assert summary["chunk_moves"] >= 1, summary
    assert os.path.getsize(png_path) > 10_000
    assert left == {}, left
