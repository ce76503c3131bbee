"""Fault-injecting TCP proxies: one per directed link between replica-set members.

Members of a local replica set all listen on 127.0.0.1, so a partition cannot be made by
address. Instead every member dials each peer through its own proxy (member *i* reaches member
*j* at ``proxy(i, j)``), and the nemesis cuts links by telling proxies to drop traffic. Cutting
a link closes the connections it carries and refuses new ones until it heals — to the members
it looks like a peer whose TCP connections reset, as after a network partition. One-way cuts
(asymmetric partitions) cut only the ``i -> j`` proxy.

This needs no privileges, so it runs as root in CI and as a plain user alike.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import threading
from collections.abc import Iterable


class LinkProxy:
    """Forwards TCP connections from a local port to ``target`` unless the link is cut."""

    def __init__(self, target: tuple[str, int], host: str = "127.0.0.1", port: int = 0) -> None:
        self.target = target
        self._listener = socket.create_server((host, port), reuse_port=False)
        self._listener.settimeout(0.2)
        self._cut = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._pipes: set[tuple[socket.socket, socket.socket]] = set()
        self._thread = threading.Thread(target=self._accept_loop, daemon=True, name=f"proxy->{target[1]}")
        self._thread.start()

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._listener.getsockname()[:2]
        return host, port

    @property
    def is_cut(self) -> bool:
        return self._cut.is_set()

    def cut(self) -> None:
        """Drop the link: close what it carries and refuse new connections."""
        self._cut.set()
        with self._lock:
            pipes = list(self._pipes)
            self._pipes.clear()
        for a, b in pipes:
            _close(a)
            _close(b)

    def heal(self) -> None:
        self._cut.clear()

    def close(self) -> None:
        self._stop.set()
        self.cut()
        _close(self._listener)
        self._thread.join(timeout=5)

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if self._cut.is_set():
                _close(client)
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=2)
            except OSError:
                _close(client)
                continue
            for s in (client, upstream):
                s.settimeout(None)
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self._pipes.add((client, upstream))
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()

    def _pump(self, a: socket.socket, b: socket.socket) -> None:
        sel = selectors.DefaultSelector()
        try:
            sel.register(a, selectors.EVENT_READ, b)
            sel.register(b, selectors.EVENT_READ, a)
            while not self._cut.is_set():
                for key, _ in sel.select(timeout=0.5):
                    src: socket.socket = key.fileobj  # type: ignore[assignment]
                    data = src.recv(65536)
                    if not data:
                        return
                    key.data.sendall(data)
        except (OSError, ValueError):
            return
        finally:
            sel.close()
            with self._lock:
                self._pipes.discard((a, b))
            _close(a)
            _close(b)


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()


class LinkMesh:
    """Proxies for every directed pair of members, and partition operations over them."""

    def __init__(self, targets: dict[int, tuple[str, int]]) -> None:
        self.targets = dict(targets)
        self.links: dict[tuple[int, int], LinkProxy] = {
            (i, j): LinkProxy(targets[j]) for i in targets for j in targets if i != j
        }

    def address(self, src: int, dst: int) -> tuple[str, int]:
        """Where member ``src`` must dial to reach member ``dst``."""
        return self.links[(src, dst)].address

    def cut(self, src: int, dst: int) -> None:
        self.links[(src, dst)].cut()

    def partition(self, groups: Iterable[Iterable[int]]) -> None:
        """Cut every link between members of different groups (both directions)."""
        side = {m: g for g, members in enumerate(groups) for m in members}
        for (i, j), proxy in self.links.items():
            if side.get(i, -1 - i) != side.get(j, -1 - j):
                proxy.cut()

    def isolate(self, member: int) -> None:
        self.partition([[member], [m for m in self.targets if m != member]])

    def bridge(self, bridge: int) -> None:
        """Two halves that cannot see each other, with one member that sees both."""
        others = [m for m in sorted(self.targets) if m != bridge]
        half = len(others) // 2
        left, right = others[:half], others[half:]
        for a in left:
            for b in right:
                self.cut(a, b)
                self.cut(b, a)

    def heal(self) -> None:
        for proxy in self.links.values():
            proxy.heal()

    def cut_links(self) -> list[tuple[int, int]]:
        return sorted(link for link, proxy in self.links.items() if proxy.is_cut)

    def close(self) -> None:
        for proxy in self.links.values():
            proxy.close()
