"""The monitoring dashboard against the shared sharded cluster: every query names a metric
the processes serve, and (with Debian's ``prometheus`` installed) a real Prometheus scrapes
every process found by ``helogale status --targets`` and runs every query."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
from typing import Any

import pytest

from helogale.status import collect, targets
from node.local_cluster import free_ports, wait_until
from node.ops.dashboard import PANELS, dashboard, metric_names
from node.sharded_cluster import ShardedCluster

pytestmark = pytest.mark.cluster

_TYPE = re.compile(r"^# TYPE (\S+) (\S+)$", re.M)
_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)[{ ]", re.M)


def served_names(text: str) -> set[str]:
    """Sample names a scrape serves, and the ones its declared families will serve."""
    names = set(_SAMPLE.findall(text))
    for family, kind in _TYPE.findall(text):
        if kind == "histogram":
            names |= {f"{family}_bucket", f"{family}_sum", f"{family}_count"}
        elif kind == "counter":
            names |= {family if family.endswith("_total") else f"{family}_total"}
        else:
            names.add(family)
    return names


def every_endpoint(cluster: ShardedCluster) -> list[str]:
    ports = [m.metrics_port for s in cluster.sets for m in s.members if m.alive]
    ports += [r.metrics_port for r in cluster.routers if r.alive]
    return [f"127.0.0.1:{p}" for p in ports]


def test_the_committed_dashboard_is_the_generated_one() -> None:
    path = os.path.join(os.path.dirname(__file__), "..", "compose", "monitoring", "grafana",
                        "dashboards", "helogale.json")
    with open(path, encoding="utf-8") as fh:
        assert json.load(fh) == dashboard()


def test_every_dashboard_query_names_a_metric_the_cluster_serves(sharded: ShardedCluster
                                                                  ) -> None:
    served: set[str] = set()
    for host in every_endpoint(sharded):
        served |= served_names(urllib.request.urlopen(f"http://{host}/metrics", timeout=10)
                               .read().decode())
    missing = {title: sorted(metric_names(expr) - served) for title, expr, _ in PANELS
               if metric_names(expr) - served}
    assert not missing
    assert all(metric_names(expr) for _, expr, _ in PANELS)


def _query(port: int, expr: str) -> dict[str, Any]:
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    return json.loads(urllib.request.urlopen(url, timeout=10).read())


def test_a_real_prometheus_scrapes_every_process_and_runs_every_query(
        sharded: ShardedCluster) -> None:
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.skip("prometheus is not installed (Debian package prometheus)")
    everyone = 3 * 3 + len(sharded.routers)

    def all_listed() -> list[dict[str, Any]] | None:
        # the shared cluster may still be bringing back a member an earlier test killed
        found = targets(collect(sharded.uri))
        return found if sum(len(g["targets"]) for g in found) == everyone else None

    groups = wait_until(all_listed, 90, "every process listed by helogale status --targets")
    with tempfile.TemporaryDirectory(prefix="helogale-prom-") as tmp:
        sd = os.path.join(tmp, "targets.json")
        with open(sd, "w", encoding="utf-8") as fh:
            json.dump(groups, fh)
        config = os.path.join(tmp, "prometheus.yml")
        with open(config, "w", encoding="utf-8") as fh:
            fh.write("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
                     "scrape_configs:\n  - job_name: helogale\n    file_sd_configs:\n"
                     f"      - files: ['{sd}']\n        refresh_interval: 1s\n")
        port = free_ports(1)[0]
        log = open(os.path.join(tmp, "prometheus.log"), "wb")  # noqa: SIM115
        proc = subprocess.Popen([binary, f"--config.file={config}",
                                 f"--storage.tsdb.path={tmp}/data",
                                 f"--web.listen-address=127.0.0.1:{port}"],
                                stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        try:
            def all_up() -> bool:
                try:
                    res = _query(port, "up")["data"]["result"]
                except OSError:
                    return False
                return len(res) == everyone and all(r["value"][1] == "1" for r in res)

            wait_until(all_up, 60, "Prometheus to scrape every process")
            ok(sharded_insert(sharded))
            started = time.monotonic()
            wait_until(lambda: _query(port, "sum(helogale_opcounters_total)")["data"]["result"],
                       30, "samples to arrive")
            for title, expr, _ in PANELS:
                reply = _query(port, expr)
                assert reply["status"] == "success", (title, reply)
            assert time.monotonic() - started < 60
        finally:
            proc.terminate()
            proc.wait(30)
            log.close()


def sharded_insert(cluster: ShardedCluster) -> dict[str, Any]:
    return cluster.router_command(0, {"insert": "dash", "documents": [{"n": 1}]}, db="ops_dash")


def ok(reply: dict[str, Any]) -> dict[str, Any]:
    assert reply.get("ok") == 1.0, reply
    return reply
