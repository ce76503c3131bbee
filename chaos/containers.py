"""The container backend of the chaos harness: the sharded cluster of
``compose/docker-compose.yml`` (config-1..3, shard1-1..3, shard2-1..3, router-1/2) in Docker
containers, with ``compose/chaos.yml`` on top, under a project name of its own.

:class:`ContainerCluster` offers what :class:`chaos.nemesis.Nemesis` and the runner use of a
:class:`~node.local_cluster.LocalCluster` (``members``, ``primary_index``, ``kill``,
``restart``, ``pause``, ``resume``, ``wait_for_primary``, ``uri``): its members are the nine
replica-set members, each fault lands on containers (``docker kill``/``start``,
``pause``/``unpause``); :class:`chaos.container_net.ContainerMesh` cuts links with iptables
and isolates containers from the network. Clients go through both routers (published on free
loopback ports). The workload's collection is sharded by ``_id`` with tiny chunks and the
balancer runs every second, so chunks move during the run; the report counts the moves (each
bumps the collection's major version).

The harness reaches members at their container addresses (a Linux Docker engine routes the
bridge network from the host). ``keep`` leaves everything up for a post-mortem; otherwise
``stop`` removes the containers, the network and the volumes it made.
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from chaos.container_net import ContainerMesh
from chaos.docker_cli import DockerError, compose, docker
from chaos.workloads import COLLECTION
from node.cluster_admin import command, ping
from node.local_cluster import free_ports, wait_until

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COMPOSE_DIR = os.path.join(ROOT, "compose")
FILES = [os.path.join(COMPOSE_DIR, "docker-compose.yml"), os.path.join(COMPOSE_DIR, "chaos.yml")]
SETS = {"cfg": "config", "shard1": "shard1", "shard2": "shard2"}
"""Replica set name -> service prefix (services ``PREFIX-1..3``)."""
MEMBER_PORT = 7000
CHUNK_SETTINGS = {"value": 0.015, "maxDocs": 0}
"""Chunk size for the run (about 16 KB): the balancer's hot top chunk rule (an eighth of it,
about 140 small documents) moves the growing top chunk to the other shard again and again."""
PROCESS_SPAN = 1_000_000
"""The set workload's ``_id``s: ``process * PROCESS_SPAN + n``; the collection is presplit at
these bounds and every other range moved to shard2 before the run (so both shards take writes
and each shard's view of its chunks is fresh)."""


@dataclass
class ContainerMember:
    service: str
    replset: str
    member_id: int
    container: str = ""
    paused: bool = False
    pause_mode: str = "freeze"
    running: bool = True
    _ip: str | None = field(default=None, repr=False)

    @property
    def alive(self) -> bool:
        return self.running

    @property
    def address(self) -> str:
        return self.service


class ContainerCluster:
    """The compose cluster as the nemesis sees it (see module docstring)."""

    def __init__(self, *, image: str = "helogale:latest", keep: bool = False,
                 project: str | None = None, database: str = "jepsen") -> None:
        self.image = image
        self.keep = keep
        self.project = project or f"helogale-chaos-{os.getpid()}"
        self.database = database
        self.members = [ContainerMember(f"{prefix}-{i}", rs, i)
                        for rs, prefix in SETS.items() for i in (1, 2, 3)]
        ports = free_ports(4)
        self.router_ports = ports[:2]
        self.router_wire_ports = ports[2:]
        self.env = {"HELOGALE_IMAGE": image,
                    "HELOGALE_ROUTER1_PORT": str(ports[0]), "HELOGALE_ROUTER2_PORT": str(ports[1]),
                    "HELOGALE_ROUTER1_WIRE_PORT": str(ports[2]),
                    "HELOGALE_ROUTER2_WIRE_PORT": str(ports[3])}
        self.network = ""
        self._rotor = 0
        self.initial_version = 0
        self.started = False
        self._pool = ThreadPoolExecutor(max_workers=9, thread_name_prefix="containers")

    # --- addresses ---------------------------------------------------------------------------
    @property
    def uri(self) -> str:
        return "helogale://" + ",".join(f"127.0.0.1:{p}" for p in self.router_ports) + "/"

    @property
    def wire_uri(self) -> str:
        return "mongodb://" + ",".join(f"127.0.0.1:{p}" for p in self.router_wire_ports) + "/"

    def ip(self, i: int) -> str | None:
        """Member ``i``'s address on the project's network (None: not on it now)."""
        m = self.members[i]
        if m._ip is None:
            out = docker("inspect", "-f", "{{json .NetworkSettings.Networks}}", m.container,
                         check=False)
            try:
                nets = json.loads(out or "{}") or {}
            except ValueError:
                nets = {}
            m._ip = (nets.get(self.network) or {}).get("IPAddress") or None
        return m._ip

    # --- lifecycle ---------------------------------------------------------------------------
    def compose(self, *args: str, timeout: float = 300.0, check: bool = True) -> str:
        return compose(self.project, FILES, *args, env=self.env, timeout=timeout, check=check)

    def start(self, timeout: float = 300.0) -> ContainerCluster:
        _ensure_keys()
        self.started = True
        self.compose("up", "-d", timeout=timeout)
        for m in self.members:
            m.container = self.compose("ps", "-q", m.service).strip()
        self.network = f"{self.project.replace('.', '')}_default"
        init = self.compose("ps", "-q", "init").strip()
        code = docker("wait", init, timeout=timeout).strip()
        if code != "0":
            raise RuntimeError(f"init exited {code}: {docker('logs', init, check=False)}")
        self.wait_for_primary(timeout)
        for port in self.router_ports:
            wait_until(lambda p=port: ping(f"127.0.0.1:{p}")[0], timeout, "the routers")
        self._shard_collection()
        return self

    def _router(self, cmd: dict[str, Any], db: str = "admin") -> dict[str, Any]:
        reply = command(f"127.0.0.1:{self.router_ports[0]}", cmd, db=db, timeout=30)
        if reply.get("ok") != 1.0:
            raise RuntimeError(f"{cmd}: {reply}")
        return reply

    def _shard_collection(self) -> None:
        ns = f"{self.database}.{COLLECTION}"
        self._router({"enableSharding": self.database})
        self._router({"shardCollection": ns, "key": {"_id": 1}})
        for k in range(1, 5):
            self._router({"split": ns, "middle": {"_id": k * PROCESS_SPAN}})
        for k in (1, 3):
            self._router({"moveChunk": ns, "find": {"_id": k * PROCESS_SPAN}, "to": "shard2",
                          "_waitForDelete": True})
        self._router({"update": "settings", "updates": [
            {"q": {"_id": "chunksize"}, "u": {"$set": CHUNK_SETTINGS}, "upsert": True}]},
            db="config")
        self.initial_version = self.collection_major_version()

    def collection_major_version(self) -> int:
        """The highest major version of the collection's chunks (each move adds one)."""
        reply = self._router({"find": "chunks", "filter": {"ns": f"{self.database}."
                                                           f"{COLLECTION}"}}, db="config")
        versions = [c["lastmod"] for c in reply["cursor"]["firstBatch"] if "lastmod" in c]
        return max((getattr(v, "time", 0) for v in versions), default=0)

    def report_extra(self) -> dict[str, Any]:
        try:
            moves = self.collection_major_version() - self.initial_version
        except Exception as exc:  # the cluster is gone: say so instead of a count
            return {"backend": "containers", "chunk_moves": None, "error": str(exc)}
        return {"backend": "containers", "containers": len(self.members) + 2,
                "chunk_moves": moves}

    def stop(self) -> None:
        if self.started and not self.keep:
            # unpause first: a paused container cannot be stopped
            for i, m in enumerate(self.members):
                if m.paused and m.container:
                    self.resume(i)
            self.compose("down", "-v", "--remove-orphans", "-t", "5", check=False)
        self._pool.shutdown(wait=False)

    # --- what the nemesis does ---------------------------------------------------------------
    def kill(self, i: int) -> None:
        m = self.members[i]
        docker("kill", m.container, check=False)
        m.running, m.paused, m._ip = False, False, None

    def restart(self, i: int, **_kw: Any) -> None:
        m = self.members[i]
        # a start that fails (the engine busy) leaves it dead: heal_everything starts it again
        m.running = bool(docker("start", m.container, check=False).strip())
        m.paused, m._ip = False, None

    def pause(self, i: int) -> None:
        """``docker pause`` (the cgroup freezer); where the engine cannot freeze (some nested
        or rootless setups), SIGSTOP to the member process, as the local nemesis does."""
        m = self.members[i]
        try:
            docker("pause", m.container)
            m.pause_mode = "freeze"
        except DockerError:
            docker("kill", "-s", "STOP", m.container)
            m.pause_mode = "sigstop"
        m.paused = True

    def resume(self, i: int) -> None:
        m = self.members[i]
        if m.pause_mode == "sigstop":
            docker("kill", "-s", "CONT", m.container, check=False)
        else:
            docker("unpause", m.container, check=False)
        m.paused = False

    def disconnect(self, i: int) -> None:
        m = self.members[i]
        docker("network", "disconnect", "-f", self.network, m.container, check=False)
        m._ip = None

    def connect(self, i: int) -> None:
        m = self.members[i]
        try:
            docker("network", "connect", "--alias", m.service, self.network, m.container)
        except DockerError as exc:
            if "already" not in str(exc):
                raise
        m._ip = None

    # --- who leads ---------------------------------------------------------------------------
    def _hello(self, i: int) -> dict[str, Any] | None:
        m = self.members[i]
        if not m.running or m.paused:
            return None
        ip = self.ip(i)
        if not ip:
            return None
        try:
            return command(f"{ip}:{MEMBER_PORT}", {"hello": 1}, timeout=1.0)
        except Exception:
            return None

    def set_primary(self, replset: str) -> int | None:
        idx = [i for i, m in enumerate(self.members) if m.replset == replset]
        for i, reply in zip(idx, self._pool.map(self._hello, idx)):
            if reply and reply.get("isWritablePrimary"):
                return i
        return None

    def primary_index(self) -> int | None:
        """The primary of one of the sets, taking the sets in turn from call to call."""
        names = list(SETS)
        self._rotor += 1
        for k in range(len(names)):
            found = self.set_primary(names[(self._rotor + k) % len(names)])
            if found is not None:
                return found
        return None

    def wait_for_primary(self, timeout: float = 60.0, exclude: int | None = None) -> int:
        """Every set has a primary; returns one of them."""
        def every() -> int | None:
            found = [self.set_primary(rs) for rs in SETS]
            return found[0] + 1 if all(f is not None for f in found) else None  # type: ignore[operator]
        return int(wait_until(every, timeout, "a primary in every set", interval=0.2)) - 1


def _ensure_keys() -> None:
    from raft.auth import write_keyfile

    keys = os.path.join(COMPOSE_DIR, "keys")
    os.makedirs(keys, exist_ok=True)
    for rs in SETS:
        path = os.path.join(keys, f"{rs}.key")
        if not os.path.exists(path):
            write_keyfile(path)


def container_backend(options: dict[str, Any]) -> tuple[ContainerCluster, ContainerMesh]:
    """The runner's hook: a cluster and a mesh for ``--backend containers``."""
    cluster = ContainerCluster(image=options.get("image", "helogale:latest"),
                               keep=bool(options.get("keep", False)),
                               project=options.get("project"))
    mesh = ContainerMesh(cluster)
    original_start = cluster.start

    def start(timeout: float = 300.0) -> ContainerCluster:
        original_start(timeout)
        mesh.prepare()
        return cluster

    cluster.start = start  # type: ignore[method-assign]
    return cluster, mesh

