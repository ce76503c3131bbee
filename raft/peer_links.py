"""What both Raft transports (``raft.tcp_transport`` and the gRPC ``raft.transport``) share:
the table of outbound links by peer id, and the rules for changing it and routing a batch of
messages to it. A link owns one peer's connection and its sending thread; the transport
subclass says how to make one (:meth:`PeerLinks._new_link`)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Generic, Protocol, TypeVar

from raft.types import Message

log = logging.getLogger(__name__)


class Link(Protocol):
    """One peer's outbound connection and the thread that keeps it."""

    address: str
    thread: threading.Thread

    @property
    def connected(self) -> bool: ...

    def close(self) -> None: ...


L = TypeVar("L", bound=Link)


class PeerLinks(Generic[L]):
    """Links by peer id, guarded by one lock. Subclasses set ``node_id``, ``listen``, ``key``
    and call :meth:`_init_links` in their constructor."""

    node_id: int
    listen: str
    key: bytes | None

    def _init_links(self, peers: dict[int, str],
                    on_messages: Callable[[list[Message]], None]) -> None:
        self._on_messages = on_messages
        self._lock = threading.Lock()
        self._links: dict[int, L] = {}
        self._initial_peers = dict(peers)

    def _new_link(self, peer_id: int, address: str) -> L:
        raise NotImplementedError

    def _start_links(self) -> None:
        """Warn when no cluster key guards the port, then dial the initial peers."""
        if self.key is None:
            log.warning("raft transport on %s runs without a cluster key: anyone who can reach "
                        "this port can speak Raft to member %s (set --keyfile)", self.listen,
                        self.node_id)
        for pid, addr in self._initial_peers.items():
            self.add_peer(pid, addr)

    def add_peer(self, peer_id: int, address: str) -> None:
        """Dial ``peer_id`` at ``address`` (a changed address replaces its link)."""
        if peer_id == self.node_id:
            return
        with self._lock:
            old = self._links.get(peer_id)
            if old is not None and old.address == address:
                return
            link = self._new_link(peer_id, address)
            self._links[peer_id] = link
        if old is not None:
            old.close()
        link.thread.start()

    def remove_peer(self, peer_id: int) -> None:
        with self._lock:
            link = self._links.pop(peer_id, None)
        if link is not None:
            link.close()

    def peers(self) -> dict[int, str]:
        with self._lock:
            return {pid: s.address for pid, s in self._links.items()}

    def connected(self, peer_id: int) -> bool:
        with self._lock:
            s = self._links.get(peer_id)
        return s is not None and s.connected

    def _links_for(self, msgs: Iterable[Message]) -> Iterator[tuple[L, list[Message]]]:
        """Group ``msgs`` by destination: messages to this member are delivered here at once,
        those to unknown peers dropped, and each known peer's link is yielded with its own."""
        by_peer: dict[int, list[Message]] = {}
        for m in msgs:
            by_peer.setdefault(m.to, []).append(m)
        for pid, ms in by_peer.items():
            if pid == self.node_id:
                self._on_messages(ms)
                continue
            with self._lock:
                link = self._links.get(pid)
            if link is not None:
                yield link, ms

    def _link_table(self) -> dict[int, L]:
        with self._lock:
            return dict(self._links)

    def _close_links(self) -> list[L]:
        """Forget and close every link; the closed links (to join their threads)."""
        with self._lock:
            links = list(self._links.values())
            self._links.clear()
        for s in links:
            s.close()
        return links
