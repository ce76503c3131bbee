"""compose/docker-compose.yml on one host (marker ``docker``): the 9 members and 2 routers come
up, init adds both shards, pymongo sees a sharded cluster through the routers and the helogale
client works; then every container's main process in turn is SIGKILLed from the host while a
writer writes, Docker restarts it (restart: unless-stopped), and no acknowledged write is lost.
Everything the test made is removed afterwards."""

from __future__ import annotations

import os
import subprocess
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from chaos.docker_cli import compose, docker
from node.cluster_admin import ping
from node.local_cluster import free_ports, wait_until
from tests.docker_helpers import IMAGE, leftovers, require_engine_and_image

pytestmark = [pytest.mark.docker, pytest.mark.timeout(900)]
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FILES = [os.path.join(ROOT, "compose", "docker-compose.yml")]
SERVICES = [f"config-{i}" for i in (1, 2, 3)] + [f"shard{k}-{i}" for k in (1, 2)
                                                 for i in (1, 2, 3)] + ["router-1", "router-2"]


class Stack:
    def __init__(self) -> None:
        self.project = f"helogale-stack-test-{os.getpid()}"
        ports = free_ports(4)
        self.grpc, self.wire = ports[:2], ports[2:]
        self.env = {"HELOGALE_IMAGE": IMAGE,
                    "HELOGALE_ROUTER1_PORT": str(ports[0]), "HELOGALE_ROUTER2_PORT": str(ports[1]),
                    "HELOGALE_ROUTER1_WIRE_PORT": str(ports[2]),
                    "HELOGALE_ROUTER2_WIRE_PORT": str(ports[3])}

    def compose(self, *args: str, **kw: Any) -> str:
        return compose(self.project, FILES, *args, env=self.env, **kw)

    def container(self, service: str) -> str:
        return self.compose("ps", "-q", service).strip()

    @property
    def mongodb_uri(self) -> str:
        return "mongodb://" + ",".join(f"127.0.0.1:{p}" for p in self.wire) + "/"

    @property
    def helogale_uri(self) -> str:
        return "helogale://" + ",".join(f"127.0.0.1:{p}" for p in self.grpc) + "/"


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    require_engine_and_image()
    s = Stack()
    try:
        s.compose("up", "-d", timeout=600)
        init = s.container("init")
        assert docker("wait", init, timeout=600).strip() == "0", docker("logs", init)
        yield s
    finally:
        s.compose("down", "-v", "--remove-orphans", "-t", "5", check=False, timeout=300)
        assert leftovers(s.project) == {}


def test_both_clients_reach_the_sharded_cluster_through_the_routers(stack: Stack) -> None:
    from pymongo import MongoClient

    import helogale

    with MongoClient(stack.mongodb_uri, w="majority", serverSelectionTimeoutMS=60_000) as c:
        c.zoo.animals.insert_one({"_id": 1, "name": "meerkat"})
        assert c.topology_description.topology_type_name == "Sharded"
        shards = c.admin.command("listShards")["shards"]
        assert sorted(s["_id"] for s in shards) == ["shard1", "shard2"]
    with helogale.MongoClient(stack.helogale_uri, w="majority") as h:
        assert h.zoo.animals.find_one({"_id": 1})["name"] == "meerkat"
    # routers advertise the host's addresses
    for port in stack.grpc:
        assert ping(f"127.0.0.1:{port}") == (True, f"127.0.0.1:{port}: router")


def _main_pid(container: str) -> tuple[int, int]:
    pid, restarts = docker("inspect", "-f", "{{.State.Pid}} {{.RestartCount}}",
                           container).split()
    return int(pid), int(restarts)


def test_killing_any_one_container_loses_no_acknowledged_write(stack: Stack) -> None:
    from pymongo import MongoClient
    from pymongo.errors import PyMongoError

    acked: list[int] = []
    failed = [0]
    stop = threading.Event()

    def writer() -> None:
        with MongoClient(stack.mongodb_uri, w="majority", retryWrites=True,
                         serverSelectionTimeoutMS=30_000) as c:
            coll, n = c.kill_test.docs, 0
            while not stop.is_set():
                try:
                    coll.insert_one({"_id": n})
                    acked.append(n)
                except PyMongoError:
                    failed[0] += 1
                n += 1

    t = threading.Thread(target=writer, daemon=True)
    t.start()
    try:
        for service in SERVICES:
            ctr = stack.container(service)
            pid, restarts = _main_pid(ctr)
            before = len(acked)
            subprocess.run(["kill", "-9", str(pid)], check=True)
            wait_until(lambda ctr=ctr, r=restarts: _main_pid(ctr)[1] > r and
                       _main_pid(ctr)[0] > 0, 120, f"Docker restarting {service}")
            # writes go on after each restart
            wait_until(lambda b=before: len(acked) >= b + 10, 180, f"writes after {service}")
    finally:
        stop.set()
        t.join(60)
    with MongoClient(stack.mongodb_uri, serverSelectionTimeoutMS=60_000) as c:
        found = {d["_id"] for d in c.kill_test.docs.find({}, {"_id": 1})}
    print(f"acknowledged {len(acked)}, failed {failed[0]}, found {len(found)}")
    assert len(acked) >= 10 * len(SERVICES)
    assert set(acked) <= found, sorted(set(acked) - found)[:20]
