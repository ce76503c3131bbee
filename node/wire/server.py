"""The TCP listener for MongoDB's wire protocol.

One thread per connection reads a message, hands the decoded command to the command handler
(the node's dispatcher, shared with the gRPC transport) and writes the reply. A malformed or
truncated message, a lying length field, an oversized message or a peer that disconnects
mid-message closes that connection only; the listener keeps serving everyone else. A
well-framed message whose BSON nests past MongoDB's limit is answered with Overflow (15).
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import socket
import socketserver
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from node.wire.protocol import (
    HEADER_SIZE,
    ProtocolError,
    Request,
    decode_request,
    encode_reply,
    parse_header,
)

log = logging.getLogger("helogale.wire")


@dataclass(frozen=True)
class ConnectionInfo:
    """What a command handler may know about the connection a command came on."""

    connection_id: int
    peer: str


CommandHandler = Callable[[str, dict[str, Any], ConnectionInfo], Mapping[str, Any]]


class _PeerClosed(Exception):
    pass


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    chunks: list[bytes] = []
    remaining = n
    while remaining:
        chunk = sock.recv(min(remaining, 1 << 20))
        if not chunk:
            raise _PeerClosed
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


class _ConnectionHandler(socketserver.BaseRequestHandler):
    server: _TCPServer

    def handle(self) -> None:
        sock: socket.socket = self.request
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        wire = self.server.wire
        info = ConnectionInfo(next(wire.connection_ids), f"{self.client_address[0]}:{self.client_address[1]}")
        wire.track(sock, add=True)
        try:
            while True:
                header = parse_header(_recv_exact(sock, HEADER_SIZE))
                body = _recv_exact(sock, header.message_length - HEADER_SIZE)
                request = decode_request(header, body)
                reply = wire.run(request, info)
                if not request.more_to_come:
                    sock.sendall(encode_reply(request, reply, next(wire.request_ids)))
        except ProtocolError as exc:
            log.info("closing wire connection %s: %s", info.peer, exc)
        except (_PeerClosed, ConnectionError, OSError):
            pass
        finally:
            wire.track(sock, add=False)


class _TCPServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    wire: WireServer


class WireServer:
    """Serves MongoDB's wire protocol on ``host:port`` (port 0 picks a free one)."""

    def __init__(self, handler: CommandHandler, host: str = "127.0.0.1", port: int = 0) -> None:
        self._handler = handler
        self._server = _TCPServer((host, port), _ConnectionHandler, bind_and_activate=True)
        self._server.wire = self
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._open: set[socket.socket] = set()
        self.connection_ids = itertools.count(1)
        self.request_ids = itertools.count(1)

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    def start(self) -> WireServer:
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="wire-listener", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening and close every open connection."""
        self._server.shutdown()
        self._server.server_close()
        with self._lock:
            socks = list(self._open)
        for sock in socks:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        if self._thread is not None:
            self._thread.join(timeout=5)

    def track(self, sock: socket.socket, *, add: bool) -> None:
        with self._lock:
            if add:
                self._open.add(sock)
            else:
                self._open.discard(sock)

    def run(self, request: Request, info: ConnectionInfo) -> dict[str, Any]:
        """Run one command through the handler; a handler crash becomes an error reply."""
        if request.error is not None:  # refused while decoding (BSON nested too deeply)
            return dict(request.error)
        try:
            return dict(self._handler(request.db, request.command, info))
        except Exception as exc:  # the connection and the node survive a handler bug
            log.exception("wire command failed")
            return {"ok": 0.0, "errmsg": f"internal error: {exc}", "code": 1, "codeName": "InternalError"}
