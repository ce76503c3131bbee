"""The nemesis: injects and heals faults on a local replica set.

Faults: SIGKILL a member (the primary or a random one) and restart it when healed; SIGSTOP a
member and SIGCONT it when healed (a paused primary is the nastiest case: it wakes up still
believing it leads); network partitions through the per-link proxies of :mod:`chaos.netproxy`
(a minority cut from the majority, the primary isolated, a bridge, one directed link); and
killing the whole set and restarting it.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass

from chaos.netproxy import LinkMesh
from chaos.report import FaultWindow
from chaos.schedule import PlannedFault
from node.local_cluster import LocalCluster


@dataclass
class ActiveFault:
    planned: PlannedFault
    members: list[int]
    started: float
    detail: str
    target: str = ""  # which set (or "router") of a sharded cluster; "" for a replica set


class Nemesis:
    def __init__(self, cluster: LocalCluster, mesh: LinkMesh, clock_origin: float) -> None:
        self.cluster = cluster
        self.mesh = mesh
        self.t0 = clock_origin
        self.windows: list[FaultWindow] = []

    def _now(self) -> float:
        return time.monotonic() - self.t0

    def _primary_or_random(self, rng: random.Random) -> int:
        primary = self.cluster.primary_index()
        if primary is not None:
            return primary
        return rng.randrange(len(self.cluster.members))

    def inject(self, fault: PlannedFault) -> ActiveFault:
        rng = random.Random(fault.pick)
        n = len(self.cluster.members)
        kind = fault.kind
        members: list[int] = []
        if kind in ("kill-primary", "kill-random", "pause-primary", "pause-random"):
            target = self._primary_or_random(rng) if kind.endswith("primary") else rng.randrange(n)
            members = [target]
            if kind.startswith("kill"):
                self.cluster.kill(target)
            else:
                self.cluster.pause(target)
            detail = f"member {target + 1}"
        elif kind == "partition-majority":
            size = rng.randint(1, (n - 1) // 2)
            minority = rng.sample(range(n), size)
            self.mesh.partition([minority, [m for m in range(n) if m not in minority]])
            detail = f"minority {[m + 1 for m in minority]}"
        elif kind == "partition-primary":
            target = self._primary_or_random(rng)
            self.mesh.isolate(target)
            detail = f"isolated member {target + 1}"
        elif kind == "partition-bridge":
            target = rng.randrange(n)
            self.mesh.bridge(target)
            detail = f"bridge member {target + 1}"
        elif kind == "partition-oneway":
            src, dst = rng.sample(range(n), 2)
            self.mesh.cut(src, dst)
            detail = f"link {src + 1}->{dst + 1} cut"
        elif kind == "restart-all":
            members = list(range(n))
            for i in members:
                self.cluster.kill(i)
            detail = "all members killed"
        else:
            raise ValueError(f"unknown fault {kind!r}")
        return ActiveFault(fault, members, self._now(), detail)

    def heal(self, active: ActiveFault) -> None:
        kind = active.planned.kind
        if kind.startswith("kill") or kind == "restart-all":
            for i in active.members:
                self.cluster.restart(i)
        elif kind.startswith("pause"):
            for i in active.members:
                self.cluster.resume(i)
        else:
            self.mesh.heal()
        group = kind.split("-")[0] if kind != "restart-all" else "restart-all"
        self.windows.append(FaultWindow(group, active.started, self._now(), active.detail))

    def heal_everything(self) -> None:
        """Resume paused members, restart dead ones, reconnect every link."""
        self.mesh.heal()
        for i, m in enumerate(self.cluster.members):
            if m.paused:
                self.cluster.resume(i)
            if not m.alive:
                self.cluster.restart(i)
