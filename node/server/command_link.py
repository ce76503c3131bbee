"""Internal command links: a router (or a member of another set) running commands on a member
over plain TCP, on the member's Raft port, instead of a gRPC call.

A gRPC round trip from Python costs about 1 ms here, most of it thread hand-offs inside the
gRPC stack on both sides; a raw TCP round trip about 0.3 ms. On a link the caller's thread
writes the request into the socket itself, one reader thread per link hands each reply to its
waiting caller, and on the member the connection's reader thread proposes a write itself
(the reply is written by the thread that applies it), exactly as the gRPC ``Command.Stream``
does, minus the gRPC threads.

Opening a link (``raft.tcp_transport``): the dialler sends ``COMMAND_MAGIC``, the member
answers with its id and a nonce, the dialler proves it holds the cluster key
(``raft.auth``, domain ``DOMAIN_COMMAND``: a Raft proof is worthless here and the reverse),
the member says ok. The link exists only between processes holding the same key file; the
Raft port's limits (connections, handshakes, deadlines, stalled frames) apply to it. On a
member with ``--auth`` a link runs every command as the cluster's internal identity
(``__system``), which the key proves, just as the gRPC path authenticates with SCRAM and the
key as password; without ``--auth`` as an unauthenticated connection, as over gRPC. With TLS the
callers use gRPC (``RemoteSet``); links are plain TCP only.

Frames (4-byte big-endian length, then the body)::

    request  u64 request id | u8 length of db | db | BSON command
    reply    u64 request id | BSON reply

Replies come back in completion order. Limits on the member, per link: at most
``MAX_IN_FLIGHT`` commands read and not yet answered and ``MAX_QUEUED_BYTES`` of replies not
yet written; past either the reader stops reading (TCP flow control pushes back). A frame
larger than ``MAX_FRAME`` closes the link.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import logging
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import bson

from helogale.errors import AutoReconnect, NetworkTimeout
from node.commands.context import GRPC, RequestContext
from node.ops.counters import COUNTERS
from node.server.grpc_service import command_name
from raft.auth import COMMAND_SENDER, DOMAIN_COMMAND, client_metadata
from raft.tcp_transport import (
    COMMAND_MAGIC,
    _close,
    _frame,
    _read_frame,
    _recv_frame,
    _tune,
    split_address,
)

log = logging.getLogger("helogale.command_link")

LINK_FIELD = "internalCommandLink"
"""The ``hello`` field where a member that takes command links says where (its Raft port)."""
MAX_FRAME = 64 << 20
"""Largest request or reply (as a gRPC message)."""
MAX_IN_FLIGHT = 4096
MAX_QUEUED_BYTES = 64 << 20
WORKERS = 64
"""Threads for commands a link's reader does not run itself (reads, admin commands)."""
_HEAD = struct.Struct(">QB")
_ID = struct.Struct(">Q")
_LEN = struct.Struct(">I")
_INTERNAL_ERROR = bson.encode({"ok": 0.0, "errmsg": "internal error", "code": 1})


def encode_request(request_id: int, db: str, command: bytes) -> bytes:
    name = db.encode()
    if len(name) > 255:
        raise ValueError("database name too long")
    body = _HEAD.pack(request_id, len(name)) + name + command
    return _LEN.pack(len(body)) + body


def decode_request(body: bytes) -> tuple[int, str, bytes]:
    request_id, n = _HEAD.unpack_from(body)
    start = _HEAD.size
    return request_id, body[start:start + n].decode(), body[start + n:]


def encode_reply(request_id: int, reply: bytes) -> bytes:
    return _LEN.pack(_ID.size + len(reply)) + _ID.pack(request_id) + reply


# ---------------------------------------------------------------------- member side
class CommandLinkServer:
    """Serves the command links a member's Raft port accepted (``serve`` runs one link in the
    connection's reader thread until it ends)."""

    def __init__(self, dispatcher: Any, workers: int = WORKERS, *, internal: bool = True
                 ) -> None:
        """``internal``: a link's commands run as the internal user (the member runs with
        ``--auth``, where a gRPC caller with the key authenticates as it); otherwise as an
        unauthenticated connection, as a gRPC caller's would (a cursor one opened is then
        usable from the other)."""
        self._dispatcher = dispatcher
        self._internal = internal
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="link-cmd")
        self._ids = itertools.count(1)
        self.open_links = 0
        self._lock = threading.Lock()

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def serve(self, inbound: Any, f: Any) -> None:
        """Run the link on ``inbound`` (``raft.tcp_transport._Inbound``; ``f`` reads it)."""
        from node.security.authz import INTERNAL_USER, AuthSession

        session = AuthSession()
        if self._internal:
            session.authenticated(*INTERNAL_USER)  # the key proved the cluster's identity
        ctx = RequestContext(transport=GRPC, connection_id=-next(self._ids), peer=inbound.peer,
                             deferred_replies=True, auth=session)
        writer = _ReplyWriter(inbound.sock)
        with self._lock:
            self.open_links += 1
        try:
            self._read(inbound, f, ctx, writer)
        finally:
            writer.close()
            with self._lock:
                self.open_links -= 1

    def _read(self, inbound: Any, f: Any, ctx: RequestContext, writer: _ReplyWriter) -> None:
        dispatcher = self._dispatcher
        while writer.wait_for_room():
            body = _read_frame(f, MAX_FRAME, inbound.progress)
            inbound.frame_at = 0.0
            request_id, db, command = decode_request(body)
            done = writer.answer(request_id)
            COUNTERS.inc("command_link_commands")
            if dispatcher.runs_inline(command_name(command)):
                # proposed here, answered by the thread that applies it
                dispatcher.run_bson_async(db, command, ctx, done)
                continue
            try:
                self._pool.submit(self._run_one, db, command, ctx, done)
            except RuntimeError:  # the pool is shut down: the member is stopping
                return

    def _run_one(self, db: str, command: bytes, ctx: RequestContext,
                 done: Callable[[bytes], None]) -> None:
        answered: list[bool] = []

        def once(reply: bytes) -> None:
            answered.append(True)
            done(reply)

        try:
            self._dispatcher.run_bson_async(db, command, ctx, once)
        except BaseException:
            if not answered:
                done(_INTERNAL_ERROR)
            raise


class _ReplyWriter:
    """A link's replies into its socket, in completion order, never blocking the thread that
    answers (often the one applying Raft entries): a reply goes straight into the socket when
    nothing is queued and the kernel takes all of it, else to the writer thread."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.cond = threading.Condition()
        self.queue: deque[bytes] = deque()
        self.writing = False
        self.closed = False
        self.in_flight = 0
        self.queued_bytes = 0
        self.thread = threading.Thread(target=self._drain, name="link-reply", daemon=True)
        self.thread.start()

    def answer(self, request_id: int) -> Callable[[bytes], None]:
        with self.cond:
            self.in_flight += 1

        def done(reply: bytes) -> None:
            self._send(encode_reply(request_id, reply))
        return done

    def _send(self, frame: bytes) -> None:
        with self.cond:
            self.in_flight -= 1
            if self.closed:
                return
            if not self.queue and not self.writing:
                try:
                    n = self.sock.send(frame, socket.MSG_DONTWAIT)
                except BlockingIOError:
                    n = 0
                except OSError:
                    self.closed = True
                    self.cond.notify_all()
                    return
                if n == len(frame):
                    self.cond.notify_all()
                    return
                frame = frame[n:]
            self.queue.append(frame)
            self.queued_bytes += len(frame)
            self.cond.notify_all()

    def wait_for_room(self) -> bool:
        """Block while the link holds too much; False once it is closed."""
        with self.cond:
            while not self.closed and (self.in_flight >= MAX_IN_FLIGHT
                                       or self.queued_bytes >= MAX_QUEUED_BYTES):
                self.cond.wait()
            return not self.closed

    def _drain(self) -> None:
        while True:
            with self.cond:
                while not self.queue and not self.closed:
                    self.cond.wait()
                if self.closed:
                    return
                frames = list(self.queue)
                self.queue.clear()
                self.writing = True
            data = b"".join(frames)
            try:
                self.sock.sendall(data)
            except OSError:
                with self.cond:
                    self.closed = True
                    self.cond.notify_all()
                return
            with self.cond:
                self.writing = False
                self.queued_bytes -= len(data)
                self.cond.notify_all()

    def close(self) -> None:
        with self.cond:
            self.closed = True
            self.queue.clear()
            self.cond.notify_all()


# ---------------------------------------------------------------------- caller side
class _Waiting:
    __slots__ = ("done", "error", "reply")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.reply: bytes | None = None
        self.error: BaseException | None = None


class CommandLink:
    """One open link to a member: callers write requests into the socket themselves; one
    reader thread hands replies to them. Once broken it stays broken (make a new one)."""

    def __init__(self, address: str, key: bytes, *, connect_timeout: float = 2.0) -> None:
        self.address = address
        self._ids = itertools.count(1)
        self._waiting: dict[int, _Waiting] = {}
        self._lock = threading.Lock()
        self._send_lock = threading.Lock()
        self.dead: BaseException | None = None
        self.sock = self._connect(address, key, connect_timeout)
        self._reader = threading.Thread(target=self._receive, name="link-recv", daemon=True)
        self._reader.start()

    @staticmethod
    def _connect(address: str, key: bytes, timeout: float) -> socket.socket:
        host, port = split_address(address)
        deadline = time.monotonic() + timeout
        sock = socket.create_connection((host, port), timeout=timeout)
        try:
            _tune(sock)
            sock.sendall(COMMAND_MAGIC)
            hello = json.loads(_recv_frame(sock, deadline))
            if not isinstance(hello, dict) or "nonce" not in hello:
                why = hello.get("error") if isinstance(hello, dict) else None
                raise ConnectionError(f"refused: {why or 'not a Helogale member'}")
            member = hello.get("node_id")
            nonce = bytes.fromhex(str(hello["nonce"]))
            if not isinstance(member, int) or not nonce:
                raise ConnectionError("the member asked for no proof (it has no key)")
            md = client_metadata(key, nonce, COMMAND_SENDER, member, domain=DOMAIN_COMMAND)
            sock.sendall(_frame({"metadata": md}))
            verdict = json.loads(_recv_frame(sock, deadline))
            if not isinstance(verdict, dict) or verdict.get("ok") is not True:
                why = verdict.get("error") if isinstance(verdict, dict) else "malformed verdict"
                raise ConnectionError(f"refused: {why}")
            sock.settimeout(None)
            return sock
        except BaseException:
            _close(sock)
            raise

    def run(self, db: str, command: bytes, timeout: float | None) -> bytes:
        """Send one BSON command, wait for its BSON reply (``timeout`` seconds at most)."""
        request_id = next(self._ids)
        waiting = _Waiting()
        frame = encode_request(request_id, db, command)
        with self._lock:
            if self.dead is not None:
                raise self._broken(str(self.dead))
            self._waiting[request_id] = waiting
        try:
            with self._send_lock:
                self.sock.sendall(frame)
        except OSError as exc:
            self._fail(exc)
        if not waiting.done.wait(timeout):
            with self._lock:
                self._waiting.pop(request_id, None)
            raise NetworkTimeout(f"{self.address}: command link timed out after {timeout} s",
                                 address=None)
        if waiting.error is not None:
            raise waiting.error
        assert waiting.reply is not None
        return waiting.reply

    def _receive(self) -> None:
        try:
            with self.sock.makefile("rb", buffering=1 << 16) as f:
                while True:
                    body = _read_frame(f, MAX_FRAME)
                    (request_id,) = _ID.unpack_from(body)
                    with self._lock:
                        waiting = self._waiting.pop(request_id, None)
                    if waiting is not None:
                        waiting.reply = body[_ID.size:]
                        waiting.done.set()
        except (OSError, ValueError, ConnectionError, struct.error) as exc:
            self._fail(exc)

    def _broken(self, why: str) -> AutoReconnect:
        return AutoReconnect(f"{self.address}: command link broken: {why}")

    def _fail(self, exc: BaseException) -> None:
        """Break the link: every waiting caller gets AutoReconnect (the outcome of what it
        sent is unknown, as after a broken gRPC stream)."""
        with self._lock:
            if self.dead is None:
                self.dead = exc
            waiting, self._waiting = list(self._waiting.values()), {}
        error = self._broken(str(exc) or type(exc).__name__)
        for w in waiting:
            w.error = error
            w.done.set()
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self._fail(ConnectionError("closed"))
        _close(self.sock)


class CommandLinks:
    """Links by member address, opened on first use; after a failed dial that address is
    not tried again for ``RETRY_S`` (its callers use gRPC meanwhile). Thread-safe."""

    RETRY_S = 5.0

    def __init__(self, key: bytes) -> None:
        self.key = key
        self._links: dict[str, CommandLink] = {}
        self._failed: dict[str, float] = {}
        self._lock = threading.Lock()
        self._dialling: dict[str, threading.Lock] = {}

    def get(self, address: str) -> CommandLink | None:
        """The open link to ``address``; None when none can be had now."""
        with self._lock:
            link = self._links.get(address)
            if link is not None and link.dead is None:
                return link
            if time.monotonic() < self._failed.get(address, 0.0):
                return None
            dial = self._dialling.setdefault(address, threading.Lock())
        with dial:  # one dial per address at a time
            with self._lock:
                link = self._links.get(address)
                if link is not None and link.dead is None:
                    return link
            try:
                link = CommandLink(address, self.key)
            except (OSError, ValueError, ConnectionError) as exc:
                log.info("no command link to %s (gRPC meanwhile): %s", address, exc)
                with self._lock:
                    self._failed[address] = time.monotonic() + self.RETRY_S
                return None
            with self._lock:
                old, self._links[address] = self._links.get(address), link
            if old is not None:
                old.close()
            return link

    def abandon(self, address: str) -> None:
        """Close the link to ``address``: its waiting callers get AutoReconnect (the member
        was found unreachable or deposed); the next call opens a new one."""
        with self._lock:
            link = self._links.pop(address, None)
        if link is not None:
            link.close()

    def close(self) -> None:
        with self._lock:
            links, self._links = list(self._links.values()), {}
        for link in links:
            link.close()
