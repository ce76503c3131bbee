"""Chaos against a sharded cluster: config servers, shards and routers as local processes
(:class:`~node.sharded_cluster.ShardedCluster`), each replica set's Raft links through its
own :class:`~chaos.netproxy.LinkMesh`, the workloads' clients on the routers.

:class:`ShardedTarget` stands where the runner otherwise puts a
:class:`~node.local_cluster.LocalCluster` (``start``, ``stop``, ``uri``,
``wait_for_primary``), and :class:`ShardedNemesis` where it puts a
:class:`~chaos.nemesis.Nemesis`: every scheduled fault picks, from its seed, the config set or
one shard and is injected there by that set's own nemesis (so partitions stay inside one
set); ``kill-router`` kills a router and restarts it when healed.

Before the clock starts the collection is sharded by ``_id``, split at the workload's split
points, and its chunks dealt round-robin to the shards, so every workload's keys live on
more than one shard from the first operation.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from typing import Any

from chaos.nemesis import ActiveFault, Nemesis
from chaos.netproxy import LinkMesh
from chaos.report import FaultWindow
from chaos.schedule import PlannedFault
from node.local_cluster import LocalCluster, wait_until
from node.sharded_cluster import ShardedCluster


@dataclass
class ShardedOptions:
    shards: int = 2
    routers: int = 2
    log_level: str = "WARNING"


class MeshGroup:
    """The link meshes of every set, healed and closed together."""

    def __init__(self, meshes: dict[str, LinkMesh]) -> None:
        self.meshes = meshes

    def heal(self) -> None:
        for mesh in self.meshes.values():
            mesh.heal()

    def close(self) -> None:
        for mesh in self.meshes.values():
            mesh.close()


class ShardedTarget:
    """A sharded cluster for one chaos run (see module docstring)."""

    def __init__(self, ns: str, split_points: list[Any], *, members: int,
                 options: ShardedOptions, data_dir: str | None,
                 election_timeout_ms: int | None, node_args: list[str]) -> None:
        self.ns = ns
        self.split_points = split_points
        self.cluster = ShardedCluster(
            options.shards, members=members, routers=options.routers, data_dir=data_dir,
            wire=False, log_level=options.log_level, election_timeout_ms=election_timeout_ms,
            extra_args=node_args)
        self.meshes: dict[str, LinkMesh] = {}
        for s in self.cluster.sets:
            mesh = LinkMesh({i: ("127.0.0.1", m.raft_port) for i, m in enumerate(s.members)})
            s.link_address = lambda i, j, mesh=mesh: "{}:{}".format(*mesh.address(i, j))
            self.meshes[s.replset] = mesh
        self.mesh = MeshGroup(self.meshes)

    @property
    def uri(self) -> str:
        return self.cluster.uri

    @property
    def sets(self) -> list[LocalCluster]:
        return self.cluster.sets

    def start(self, timeout: float = 300.0) -> ShardedTarget:
        """Generous: on a loaded machine ten Python processes take a minute just to start."""
        self.cluster.start(timeout)
        self._router({"balancerStop": 1})  # the migrate nemesis decides what moves
        self._router({"shardCollection": self.ns, "key": {"_id": 1}})
        for point in self.split_points:
            self._router({"split": self.ns, "middle": {"_id": point}})
        names = [s.replset for s in self.cluster.shards]
        chunks = self._router({"find": "chunks", "filter": {"ns": self.ns},
                               "sort": {"min": 1}}, db="config")["cursor"]["firstBatch"]
        for k, chunk in enumerate(chunks):
            to = names[k % len(names)]
            if chunk["shard"] != to:
                self._router({"moveChunk": self.ns, "to": to,
                              "bounds": [chunk["min"], chunk["max"]]})
        return self

    def _router(self, cmd: dict[str, Any], db: str = "admin") -> dict[str, Any]:
        reply = self.cluster.router_command(0, cmd, db=db)
        if reply.get("ok") != 1.0:
            raise RuntimeError(f"preparing the sharded collection: {cmd}: {reply}")
        return reply

    def wait_for_primary(self, timeout: float = 60.0) -> None:
        """Every set has a primary and every router answers (each within ``timeout``: they
        recover side by side, but a loaded machine elects slowly)."""
        for s in self.sets:
            s.wait_for_primary(timeout)
        for i in range(len(self.cluster.routers)):
            wait_until(lambda i=i: self.cluster.try_router(i, {"ping": 1}), timeout,
                       f"router {i + 1}")

    def stop(self) -> None:
        self.cluster.stop()


class ShardedNemesis:
    """Faults on one set of a sharded cluster at a time, or on a router (module docstring)."""

    def __init__(self, target: ShardedTarget, mesh: MeshGroup, clock_origin: float) -> None:
        self.target = target
        self.t0 = clock_origin
        self.windows: list[FaultWindow] = []
        self.nemeses = {s.replset: Nemesis(s, mesh.meshes[s.replset], clock_origin)
                        for s in target.sets}
        for nemesis in self.nemeses.values():
            nemesis.windows = self.windows  # one timeline

    def inject(self, fault: PlannedFault) -> ActiveFault:
        rng = random.Random(fault.pick ^ 0x5A5A5A)
        if fault.kind == "kill-router":
            routers = self.target.cluster.routers
            i = rng.randrange(len(routers))
            self.target.cluster.kill_router(i)
            return ActiveFault(fault, [i], time.monotonic() - self.t0, f"router {i + 1}",
                               "router")
        name = rng.choice(sorted(self.nemeses))
        active = self.nemeses[name].inject(fault)
        active.target = name
        return active

    def heal(self, active: ActiveFault) -> None:
        target = active.target
        if active.planned.kind == "kill-router":
            for i in active.members:
                self.target.cluster.start_router(i)
            self.windows.append(FaultWindow("kill-router", active.started,
                                            time.monotonic() - self.t0, active.detail, "router"))
            return
        self.nemeses[target].heal(active)
        self.windows[-1].target = target

    def heal_everything(self) -> None:
        for nemesis in self.nemeses.values():
            nemesis.heal_everything()
        for i, r in enumerate(self.target.cluster.routers):
            if not r.alive:
                self.target.cluster.start_router(i)
