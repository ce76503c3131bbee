"""Network faults between containers, with the interface of :class:`chaos.netproxy.LinkMesh`
(``partition``, ``isolate``, ``bridge``, ``cut``, ``heal``, ``close``), for the container
backend.

- A link ``src -> dst`` is cut by an iptables DROP rule inside ``dst`` for packets from
  ``src``'s address (the members run with NET_ADMIN; rules live in a chain of their own,
  ``HELOGALE-CHAOS``, hooked into INPUT, so healing is one flush per container). TCP needs
  both directions, so a one-way cut also stops the replies to connections ``dst`` opens
  towards ``src``, as a real one-way loss would.
- ``isolate`` disconnects the container from the project's network altogether (clients and
  routers lose it too) and ``heal`` connects it again under its service name.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from chaos.docker_cli import DockerError, docker

CHAIN = "HELOGALE-CHAOS"


class ContainerMesh:
    """Cuts between the members of a :class:`chaos.containers.ContainerCluster`."""

    def __init__(self, cluster: Any) -> None:
        self.cluster = cluster
        self.cut_pairs: set[tuple[int, int]] = set()
        self.disconnected: set[int] = set()
        self._pool = ThreadPoolExecutor(max_workers=9, thread_name_prefix="mesh")

    @property
    def targets(self) -> list[int]:
        return list(range(len(self.cluster.members)))

    def prepare(self) -> None:
        """Create the chain in every member (once the members run)."""
        def setup(i: int) -> None:
            ctr = self.cluster.members[i].container
            docker("exec", ctr, "sh", "-c", f"iptables -N {CHAIN} 2>/dev/null; "
                   f"iptables -C INPUT -j {CHAIN} 2>/dev/null || iptables -I INPUT -j {CHAIN}")
        list(self._pool.map(setup, self.targets))

    def _apply(self, pairs: Iterable[tuple[int, int]]) -> None:
        """Cut each ``(src, dst)`` link: a DROP rule in ``dst`` for ``src``'s address."""
        by_dst: dict[int, list[str]] = {}
        for src, dst in pairs:
            ip = self.cluster.ip(src)
            if ip:
                by_dst.setdefault(dst, []).append(ip)
                self.cut_pairs.add((src, dst))

        def apply(dst: int) -> None:
            ctr = self.cluster.members[dst].container
            rules = "; ".join(f"iptables -A {CHAIN} -s {ip} -j DROP" for ip in by_dst[dst])
            # the chain is (re)made first: a member restarted since has a fresh namespace
            docker("exec", ctr, "sh", "-c", f"iptables -N {CHAIN} 2>/dev/null; iptables -C "
                   f"INPUT -j {CHAIN} 2>/dev/null || iptables -I INPUT -j {CHAIN}; {rules}")
        list(self._pool.map(apply, by_dst))

    def cut(self, src: int, dst: int) -> None:
        self._apply([(src, dst)])

    def partition(self, groups: Iterable[Iterable[int]]) -> None:
        side = {m: g for g, members in enumerate(groups) for m in members}
        self._apply([(i, j) for i in self.targets for j in self.targets
                     if i != j and side.get(i, -1 - i) != side.get(j, -1 - j)])

    def bridge(self, bridge: int) -> None:
        others = [m for m in self.targets if m != bridge]
        half = len(others) // 2
        left, right = others[:half], others[half:]
        self._apply([p for a in left for b in right for p in ((a, b), (b, a))])

    def isolate(self, member: int) -> None:
        self.cluster.disconnect(member)
        self.disconnected.add(member)

    def heal(self) -> None:
        for member in sorted(self.disconnected):
            self.cluster.connect(member)
        self.disconnected.clear()
        dsts = sorted({dst for _src, dst in self.cut_pairs})
        self.cut_pairs.clear()

        def flush(dst: int) -> None:
            # a member stopped since lost its rules with its namespace
            with contextlib.suppress(DockerError):
                docker("exec", self.cluster.members[dst].container, "sh", "-c",
                       f"iptables -F {CHAIN} 2>/dev/null || true")
        list(self._pool.map(flush, dsts))

    def cut_links(self) -> list[tuple[int, int]]:
        return sorted(self.cut_pairs)

    def close(self) -> None:
        self._pool.shutdown(wait=False)
