"""The TCP listener for MongoDB's wire protocol.

One thread per connection reads a message, hands the decoded command to the command handler
(the node's dispatcher, shared with the gRPC transport) and writes the reply. A malformed or
truncated message, a lying length field, an oversized message or a peer that disconnects
mid-message closes that connection only; the listener keeps serving everyone else. A
well-framed message whose BSON nests past MongoDB's limit is answered with Overflow (15).

Limits, so that no client can exhaust the node:

* ``max_connections`` open connections (a thread each); one more is closed as it arrives, and
  logged (at most every 10 s, with the count refused);
* a message announcing more than ``maxMessageSizeBytes`` (48,000,000) is refused by its header;
* ``max_buffered_bytes`` in total for the messages being received and run: a connection
  reserves its message's announced length before reading the body and waits (not reading, so
  TCP pushes back on the sender) while other connections hold the budget;
* ``stall_timeout_s``: a peer that sends part of a message, or stops reading a reply, and makes
  no progress for that long is disconnected (slow senders cannot hold a thread and a budget);
* ``idle_timeout_s`` (None by default, as MongoDB keeps idle connections): between messages.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import socket
import socketserver
import ssl
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
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

DEFAULT_MAX_CONNECTIONS = 1000
DEFAULT_STALL_TIMEOUT_S = 30.0
DEFAULT_MAX_BUFFERED_BYTES = 256 * 1024 * 1024
_REFUSAL_LOG_EVERY_S = 10.0


@dataclass(frozen=True)
class ConnectionInfo:
    """What a command handler may know about the connection a command came on."""

    connection_id: int
    peer: str
    state: dict[str, Any] = field(default_factory=dict, compare=False)
    """Per-connection state a command handler keeps (the authentication session)."""

    def session(self) -> Any:
        """This connection's :class:`~node.security.authz.AuthSession` (made on first use)."""
        found = self.state.get("auth")
        if found is None:
            from node.security.authz import AuthSession

            found = self.state["auth"] = AuthSession()
        return found


CommandHandler = Callable[[str, dict[str, Any], ConnectionInfo], Mapping[str, Any]]


class _PeerClosed(Exception):
    pass


class _Stalled(Exception):
    """The peer made no progress within a timeout."""


def _recv_exact(sock: socket.socket, n: int, first_timeout: float | None,
                timeout: float | None) -> bytes:
    """``n`` bytes; the first wait may last ``first_timeout``, every later one ``timeout``."""
    chunks: list[bytes] = []
    remaining = n
    sock.settimeout(first_timeout)
    while remaining:
        try:
            chunk = sock.recv(min(remaining, 1 << 20))
        except TimeoutError:
            raise _Stalled(f"no data for {sock.gettimeout()} s "
                           f"({n - remaining} of {n} bytes received)") from None
        if not chunk:
            raise _PeerClosed
        if not chunks:
            sock.settimeout(timeout)
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def _send_all(sock: socket.socket, data: bytes, timeout: float | None) -> None:
    """``sendall`` where only a peer that reads nothing for ``timeout`` is given up on."""
    sock.settimeout(timeout)
    view = memoryview(data)
    while view:
        try:
            sent = sock.send(view)
        except TimeoutError:
            raise _Stalled(f"peer read nothing for {timeout} s "
                           f"({len(data) - len(view)} of {len(data)} reply bytes sent)") from None
        view = view[sent:]


class ByteBudget:
    """Bytes that messages being received and run may hold, across connections."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.held = 0
        self.peak = 0
        self._cond = threading.Condition()

    def acquire(self, n: int, timeout: float | None) -> int:
        """Reserve ``n`` bytes (at most the whole budget), waiting up to ``timeout`` seconds;
        returns what was reserved, for :meth:`release`."""
        n = min(n, self.limit)
        with self._cond:
            if not self._cond.wait_for(lambda: self.held + n <= self.limit, timeout):
                raise _Stalled(f"{self.held} of {self.limit} buffered bytes in use for "
                               f"{timeout} s")
            self.held += n
            self.peak = max(self.peak, self.held)
        return n

    def release(self, n: int) -> None:
        with self._cond:
            self.held -= n
            self._cond.notify_all()


class _ConnectionHandler(socketserver.BaseRequestHandler):
    server: _TCPServer

    def handle(self) -> None:
        sock: socket.socket = self.request
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        wire = self.server.wire
        info = ConnectionInfo(next(wire.connection_ids), f"{self.client_address[0]}:{self.client_address[1]}")
        wire.track(sock, add=True)
        stall, budget = wire.stall_timeout_s, wire.budget
        try:
            if wire.ssl_context is not None:
                tls_sock = wire.secure(sock, info.peer)
                if tls_sock is None:
                    return
                wire.track(sock, add=False)
                sock = tls_sock
                wire.track(sock, add=True)
            while True:
                header = parse_header(_recv_exact(sock, HEADER_SIZE, wire.idle_timeout_s,
                                                  stall))
                held = budget.acquire(header.message_length, stall)
                try:
                    body = _recv_exact(sock, header.message_length - HEADER_SIZE, stall, stall)
                    request = decode_request(header, body)
                    del body
                    reply = wire.run(request, info)
                    if not request.more_to_come:
                        _send_all(sock, encode_reply(request, reply, next(wire.request_ids)),
                                  stall)
                finally:
                    budget.release(held)
        except (ProtocolError, _Stalled) as exc:
            log.info("closing wire connection %s: %s", info.peer, exc)
        except (_PeerClosed, ConnectionError, OSError):
            pass
        finally:
            wire.track(sock, add=False)


class _TCPServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128
    wire: WireServer

    def verify_request(self, request: Any, client_address: Any) -> bool:
        return self.wire.admit(client_address)

    def process_request(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request(request, client_address)
        except BaseException:  # no thread started: its slot is free again
            self.wire.leave()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.wire.leave()


class WireServer:
    """Serves MongoDB's wire protocol on ``host:port`` (port 0 picks a free one)."""

    def __init__(
        self,
        handler: CommandHandler,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        stall_timeout_s: float | None = DEFAULT_STALL_TIMEOUT_S,
        idle_timeout_s: float | None = None,
        max_buffered_bytes: int = DEFAULT_MAX_BUFFERED_BYTES,
        ssl_context: ssl.SSLContext | None = None,
        tls_only: bool = True,
    ) -> None:
        self._handler = handler
        self.ssl_context = ssl_context
        """TLS (``raft.tls``): every connection's handshake first; with ``tls_only`` False
        (preferTLS) a client whose first byte is not a TLS handshake is served in plain text."""
        self.tls_only = tls_only
        self.tls_refused = 0
        self.max_connections = max_connections
        self.stall_timeout_s = stall_timeout_s
        self.idle_timeout_s = idle_timeout_s
        self.budget = ByteBudget(max_buffered_bytes)
        self.connections = 0
        """Connections admitted and not yet finished."""
        self.created = 0
        """Connections admitted since start."""
        self.refused = 0
        """Connections closed on arrival because ``max_connections`` were open."""
        self._last_refusal_log = -_REFUSAL_LOG_EVERY_S
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

    def secure(self, sock: socket.socket, peer: str) -> socket.socket | None:
        """The connection after the TLS handshake (``sock`` itself for a plain-text client
        under preferTLS); None: refused (a plain-text client on a TLS-only port, a failed
        handshake), logged, and the connection is closed."""
        assert self.ssl_context is not None
        timeout = self.stall_timeout_s or DEFAULT_STALL_TIMEOUT_S
        try:
            sock.settimeout(timeout)
            first = sock.recv(1, socket.MSG_PEEK)
            if not first:
                return None
            if first != b"\x16":  # not a TLS ClientHello
                if not self.tls_only:
                    sock.settimeout(None)
                    return sock
                self._refuse_tls(peer, "plain-text client on a TLS port")
                return None
            tls = self.ssl_context.wrap_socket(sock, server_side=True)
            tls.settimeout(None)
            return tls
        except (ssl.SSLError, OSError) as exc:
            self._refuse_tls(peer, f"TLS handshake failed: {exc}")
            return None

    def _refuse_tls(self, peer: str, why: str) -> None:
        with self._lock:
            self.tls_refused += 1
        log.warning("wire connection refused: %s", why, extra={"fields": {"peer": peer}})

    def admit(self, client_address: Any) -> bool:
        """Whether a new connection may be served (the listener closes it otherwise)."""
        with self._lock:
            if self.connections < self.max_connections:
                self.connections += 1
                self.created += 1
                return True
            self.refused += 1
            now = time.monotonic()
            report = now - self._last_refusal_log >= _REFUSAL_LOG_EVERY_S
            if report:
                self._last_refusal_log = now
        if report:
            log.warning("connection refused because too many open connections",
                        extra={"fields": {"peer": f"{client_address[0]}:{client_address[1]}",
                                          "open": self.max_connections,
                                          "refused": self.refused}})
        return False

    def leave(self) -> None:
        with self._lock:
            self.connections -= 1

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
