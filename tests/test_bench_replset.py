"""Smoke test of ``python -m bench replset``'s insert load clients against a real replica set
(acknowledged inserts counted, stored, unique ids per client process)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bench.replset import run_insert_clients
from node.local_cluster import LocalCluster

pytestmark = [pytest.mark.bench, pytest.mark.cluster]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    with LocalCluster(3, data_dir=str(tmp_path_factory.mktemp("rs")), log_level="WARNING") as c:
        yield c


@pytest.mark.parametrize("w", [1, "majority"])
def test_insert_clients_measure_acknowledged_inserts(cluster: LocalCluster, w: object) -> None:
    p = cluster.wait_for_primary()
    coll = f"smoke_{w}"
    r = run_insert_clients(cluster.members[p].address, 3, 1.0, coll, w)
    assert r["ops_per_s"] > 0
    assert 0 < r["p50_ms"] <= r["p99_ms"]
    assert r["client_cpu"] >= 0
    # every insert counted was acknowledged, so it is stored (warm-up inserts come on top)
    stored = cluster.command(cluster.wait_for_primary(), {"count": coll}, db="bench")["n"]
    assert stored >= r["ops_per_s"] * 1.0


def test_two_client_processes_share_the_clients(cluster: LocalCluster) -> None:
    p = cluster.wait_for_primary()
    r = run_insert_clients(cluster.members[p].address, 40, 1.0, "smoke_split", "majority")
    assert r["ops_per_s"] > 0
    p = cluster.wait_for_primary()  # the clients follow a new primary if one was elected
    ids = [d["_id"] for d in cluster.command(p, {"find": "smoke_split", "batchSize": 100000},
                                             db="bench")["cursor"]["firstBatch"]]
    # 40 clients over ceil(40 / 32) = 2 processes: ids "<coll>-<run>-<process>-<client>-<seq>"
    parts = [i.split("-") for i in ids]
    assert {x[2] for x in parts} == {"0", "1"}
    assert {(x[2], x[3]) for x in parts} <= {(str(k // 20), str(k % 20)) for k in range(40)}
    assert len(ids) == len(set(ids)) >= r["ops_per_s"]
