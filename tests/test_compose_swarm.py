"""The same compose file on Docker Swarm (markers ``docker`` and ``slow``): on a one-node swarm
(made for the test, left afterwards) the stack deploys, pymongo works through the routers, and a
crashed shard1-1 is rescheduled with its data. Deployed with compose/swarm-dnsrr.yml added
because kernels without IPVS (this machine's) have no routing mesh; see docs/swarm.md."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest

from chaos.docker_cli import docker
from node.local_cluster import free_ports, wait_until
from tests.docker_helpers import IMAGE, require_engine_and_image

pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.timeout(1200)]
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FILES = [os.path.join(ROOT, "compose", "docker-compose.yml"),
         os.path.join(ROOT, "compose", "swarm-dnsrr.yml")]


def _containers(stack: str, service: str) -> list[str]:
    return docker("ps", "-q", "--filter",
                  f"label=com.docker.swarm.service.name={stack}_{service}").split()


@pytest.fixture(scope="module")
def swarm_stack() -> Iterator[dict[str, Any]]:
    require_engine_and_image()
    state = docker("info", "-f", "{{.Swarm.LocalNodeState}}").strip()
    if state != "inactive":
        pytest.skip(f"this engine is already in a swarm ({state}): not touching it")
    from chaos.containers import _ensure_keys

    _ensure_keys()
    had_gwbridge = subprocess.run(["docker", "network", "inspect", "docker_gwbridge"],
                                  capture_output=True).returncode == 0
    docker("swarm", "init", "--advertise-addr", "127.0.0.1")
    name = f"hgswarm{os.getpid()}"
    ports = free_ports(4)
    env = {**os.environ, "HELOGALE_IMAGE": IMAGE,
           "HELOGALE_ROUTER1_PORT": str(ports[0]), "HELOGALE_ROUTER2_PORT": str(ports[1]),
           "HELOGALE_ROUTER1_WIRE_PORT": str(ports[2]),
           "HELOGALE_ROUTER2_WIRE_PORT": str(ports[3])}
    try:
        argv = ["docker", "stack", "deploy", "--resolve-image", "never"]
        for f in FILES:
            argv += ["-c", f]
        subprocess.run([*argv, name], check=True, env=env, capture_output=True, timeout=300)
        yield {"name": name, "wire": ports[2:], "grpc": ports[:2]}
    finally:
        subprocess.run(["docker", "stack", "rm", name], capture_output=True, timeout=300)
        wait_until(lambda: not docker("ps", "-aq", "--filter",
                                      f"label=com.docker.stack.namespace={name}").strip(),
                   180, "the stack's containers gone")
        volumes = docker("volume", "ls", "-q", "--filter",
                         f"label=com.docker.stack.namespace={name}").split()
        for _ in range(30):  # a volume is released a moment after its container goes
            if not volumes or subprocess.run(["docker", "volume", "rm", *volumes],
                                             capture_output=True).returncode == 0:
                break
            time.sleep(1)
        docker("swarm", "leave", "--force", check=False)
        if not had_gwbridge:  # made by swarm init, left behind by swarm leave
            docker("network", "rm", "docker_gwbridge", check=False)
        assert docker("info", "-f", "{{.Swarm.LocalNodeState}}").strip() == "inactive"


def test_the_stack_deploys_serves_pymongo_and_reschedules_a_crashed_member(
        swarm_stack: dict[str, Any]) -> None:
    from pymongo import MongoClient

    name = swarm_stack["name"]
    uri = "mongodb://" + ",".join(f"127.0.0.1:{p}" for p in swarm_stack["wire"]) + "/"

    def writes() -> bool:
        try:
            with MongoClient(uri, w="majority", serverSelectionTimeoutMS=5_000) as c:
                c.admin.command("listShards")["shards"][1]  # both shards added by init
                c.swarm.docs.insert_one({"n": 1})
                return True
        except Exception:
            return False

    wait_until(writes, 600, "writes through the swarm's routers", interval=2.0)
    with MongoClient(uri, w="majority") as c:
        c.swarm.docs.insert_many([{"n": i} for i in range(2, 101)])
        assert c.topology_description.topology_type_name == "Sharded"

    (old,) = _containers(name, "shard1-1")
    volume = docker("inspect", "-f", "{{range .Mounts}}{{.Name}} {{end}}", old).split()
    pid = docker("inspect", "-f", "{{.State.Pid}}", old).strip()
    subprocess.run(["kill", "-9", pid], check=True)
    new = wait_until(lambda: [c for c in _containers(name, "shard1-1") if c != old], 300,
                     "shard1-1 rescheduled", interval=1.0)[0]
    assert docker("inspect", "-f", "{{range .Mounts}}{{.Name}} {{end}}", new).split() == volume

    def member_back() -> bool:
        out = subprocess.run(["docker", "exec", new, "helogale", "ping", "127.0.0.1:7000"],
                             capture_output=True, text=True)
        return out.returncode == 0 and "of shard1" in out.stdout

    wait_until(member_back, 300, "the new shard1-1 task serving", interval=2.0)
    # its data came with it: the log and store are in the same volume
    assert docker("exec", new, "ls", "/data/db").split()
    with MongoClient(uri, w="majority") as c:
        assert c.swarm.docs.count_documents({}) == 100
