"""The link proxies forward traffic, and cutting a link really stops it."""

from __future__ import annotations

import contextlib
import socket
import socketserver
import threading
from collections.abc import Iterator

import pytest

from chaos.netproxy import LinkMesh, LinkProxy


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        while data := self.request.recv(4096):
            self.request.sendall(data)


@pytest.fixture()
def echo() -> Iterator[tuple[str, int]]:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Echo)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[:2]  # type: ignore[misc]
    server.shutdown()
    server.server_close()


def _echo_through(address: tuple[str, int]) -> bytes:
    with socket.create_connection(address, timeout=5) as sock:
        sock.sendall(b"ping")
        try:
            return sock.recv(4)
        except ConnectionResetError:
            return b""


def test_proxy_forwards_then_cut_blocks_then_heal_restores(echo: tuple[str, int]) -> None:
    proxy = LinkProxy(echo)
    try:
        assert _echo_through(proxy.address) == b"ping"
        with socket.create_connection(proxy.address, timeout=5) as held:
            held.sendall(b"x")
            assert held.recv(1) == b"x"
            proxy.cut()
            held.settimeout(5)
            with contextlib.suppress(ConnectionResetError):
                assert held.recv(1) == b""  # the connection the link carried is gone
        assert _echo_through(proxy.address) == b""  # new connections are refused
        proxy.heal()
        assert _echo_through(proxy.address) == b"ping"
    finally:
        proxy.close()


def test_mesh_partitions_cut_exactly_the_links_between_groups(echo: tuple[str, int]) -> None:
    mesh = LinkMesh({1: echo, 2: echo, 3: echo})
    try:
        mesh.partition([[1], [2, 3]])
        assert mesh.cut_links() == [(1, 2), (1, 3), (2, 1), (3, 1)]
        assert _echo_through(mesh.address(2, 3)) == b"ping"
        assert _echo_through(mesh.address(2, 1)) == b""
        mesh.heal()
        assert mesh.cut_links() == []
        mesh.bridge(2)
        assert mesh.cut_links() == [(1, 3), (3, 1)]
        mesh.heal()
        mesh.cut(1, 2)  # asymmetric: 1 cannot reach 2, 2 still reaches 1
        assert _echo_through(mesh.address(1, 2)) == b""
        assert _echo_through(mesh.address(2, 1)) == b"ping"
    finally:
        mesh.close()
