"""The FastAPI example (``examples/fastapi``) through FastAPI's TestClient against the shared
sharded cluster: the counter, the hit log and the GridFS upload page, then a burst of requests
from several threads while the owning shard's primary is SIGKILLed: no request fails and every
hit is counted exactly once (the counter and the hit log)."""

from __future__ import annotations

import importlib.util
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from fastapi.testclient import TestClient

from node.sharded_cluster import ShardedCluster
from tests.sharded_helpers import ok

pytestmark = pytest.mark.cluster
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "fastapi" / "helogale_fastapi.py"
PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000"
                    "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082")


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("helogale_fastapi", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _primary_shard(cluster: ShardedCluster, db: str) -> int:
    reply = ok(cluster.router_command(0, {"find": "databases", "filter": {"_id": db}},
                                      db="config"))
    return int(reply["cursor"]["firstBatch"][0]["primary"][-1]) - 1


@pytest.fixture
def client(sharded: ShardedCluster, request: pytest.FixtureRequest) -> Iterator[TestClient]:
    db_name = f"fastapi_{request.node.name[5:25]}"
    ok(sharded.router_command(0, {"dropDatabase": 1}, db=db_name))
    app = _load().create_app(sharded.uri, db_name)
    with TestClient(app) as test_client:
        test_client.db_name = db_name  # type: ignore[attr-defined]
        yield test_client


def test_counter_hits_and_images(client: TestClient) -> None:
    assert [client.get("/counter").json()["counter_value"] for _ in range(3)] == [1, 2, 3]
    hits = client.get("/hits").json()
    assert hits["count"] == 4  # three counter requests and this one
    assert hits["recent"][0]["url"].endswith("/hits")
    uploaded = client.post("/images", files={"image": ("dot.png", PNG, "image/png")},
                           follow_redirects=False)
    assert uploaded.status_code == 303
    image = client.get(uploaded.headers["location"])
    assert image.status_code == 200 and image.content == PNG
    assert image.headers["content-type"] == "image/png"
    page = client.get("/")
    assert "viewed 4 times" in page.text and uploaded.headers["location"] in page.text
    refused = client.post("/images", files={"image": ("a.txt", b"hello", "text/plain")})
    assert refused.status_code == 415
    assert client.get("/images/000000000000000000000000").status_code == 404


def test_a_burst_across_a_shard_primary_kill(client: TestClient,
                                             sharded: ShardedCluster) -> None:
    """Threads request ``/counter`` through the TestClient (the app's one client serves them
    all on its event loop) while the shard primary holding the database is killed."""
    client.get("/counter")  # creates the database: its primary shard is now known
    shard = sharded.shards[_primary_shard(sharded, client.db_name)]  # type: ignore[attr-defined]
    lock = threading.Lock()
    answers: list[int] = []
    failures: list[Any] = []
    stop = threading.Event()
    progress = threading.Condition(lock)

    def hammer() -> None:
        while not stop.is_set():
            response = client.get("/counter")
            with lock:
                if response.status_code != 200:
                    failures.append((response.status_code, response.text))
                else:
                    answers.append(response.json()["counter_value"])
                progress.notify_all()

    def wait_for(count: int) -> None:
        with lock:
            assert progress.wait_for(lambda: len(answers) + len(failures) >= count, 120)

    threads = [threading.Thread(target=hammer) for _ in range(8)]
    victim = None
    try:
        for t in threads:
            t.start()
        wait_for(40)
        victim = shard.wait_for_primary(60)
        shard.kill(victim)
        with lock:
            after_kill = len(answers)
        wait_for(after_kill + 40)  # answered by the new primary
    finally:
        stop.set()
        for t in threads:
            t.join(120)
        if victim is not None:
            shard.restart(victim)
            shard.wait_ready(victim, 60)
    assert victim is not None
    assert failures == []
    total = len(answers) + 1  # and the first request
    # the counter moved once per request: each answer is a distinct value, the last is total
    assert sorted(answers) == list(range(2, total + 1))
    hits = client.get("/hits").json()
    assert hits["count"] == total + 1  # every request logged once, and this one
