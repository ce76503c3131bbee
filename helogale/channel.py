"""One gRPC channel per server address: encodes a command document as BSON, sends it, decodes
the BSON reply. Channels are thread-safe and shared by every thread of a client.

Commands travel on one pipelined ``Command.Stream`` per server (a :class:`StreamMux`): many
threads' requests share the stream, batched by a sender, matched to replies by request id.
``hello`` (the monitor's) stays a unary ``Command.Run``, and so does everything against a server
that has no ``Stream`` method. When a stream breaks, every request pending on it fails with
AutoReconnect (exactly what a failed unary call gives) and the next request opens a new stream.
A server with all its streams in use refuses a new one (RESOURCE_EXHAUSTED, before reading
anything from it): its requests go unary, and so do the next ones for ``STREAM_RETRY_S``.

Transport failures become :class:`~helogale.errors.AutoReconnect` (or ``NetworkTimeout``);
this layer does not look inside replies (``ok: 0`` is the caller's business).
"""

from __future__ import annotations

import itertools
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import bson
import grpc
from bson.codec_options import DEFAULT_CODEC_OPTIONS, CodecOptions

from helogale.auth import Credentials, authenticate
from helogale.errors import (
    AutoReconnect,
    DocumentTooLarge,
    InvalidDocument,
    InvalidOperation,
    NetworkTimeout,
    ProtocolError,
)
from helogale.tls import ClientTLS
from proto import helogale_pb2, helogale_pb2_grpc

Address = tuple[str, int]

MAX_MESSAGE_BYTES = 64 * 1024 * 1024
MAX_BSON_SIZE = 16 * 1024 * 1024

_CHANNEL_OPTIONS = [
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    # reconnect quickly after a member restarts (gRPC's default backoff grows to minutes)
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
    ("grpc.enable_retries", 0),
]


MAX_COMMANDS_PER_BATCH = 1024
STREAM_RETRY_S = 5.0
"""After a server refused a stream (too many open), send unary calls this long."""
STREAMS_REFUSED = "helogale: too many command streams open on this server"
"""The details of the server's refusal (as ``node.server.grpc_service`` sends them)."""
_UNARY_COMMANDS = frozenset({"hello", "isMaster", "ismaster"})
_UNAUTHENTICATED = _UNARY_COMMANDS | {"buildInfo", "buildinfo", "saslStart", "saslContinue",
                                      "logout"}
"""Commands a client with credentials sends without authenticating first."""
UNAUTHORIZED = 13
SESSION_METADATA = "x-helogale-session"
"""The metadata naming the server's authentication session (``node.security.authz``)."""


def format_address(address: Address) -> str:
    host, port = address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def encode(doc: Mapping[str, Any], codec_options: CodecOptions = DEFAULT_CODEC_OPTIONS) -> bytes:
    """BSON of ``doc``; InvalidDocument (never a RecursionError) when it nests too deeply for
    the encoder (the server accepts at most 200 levels anyway)."""
    try:
        return bson.encode(doc, codec_options=codec_options)
    except RecursionError:
        raise InvalidDocument("cannot encode the document as BSON: it is nested too deeply "
                              "(the server accepts at most 200 levels)") from None


def needs_authentication(credentials: Credentials | None, command_name: str | None) -> bool:
    """Whether a command goes out on an authenticated session (a client with credentials;
    not the handshake and authentication commands themselves)."""
    return credentials is not None and command_name not in _UNAUTHENTICATED


def lost_authentication(reply: Mapping[str, Any]) -> bool:
    """A refusal before the command ran: the server no longer knows this connection's
    session (the channel reconnected, the server restarted); authenticate again and resend."""
    return reply.get("code") == UNAUTHORIZED and "requires authentication" in str(
        reply.get("errmsg", ""))


def encode_command(command: Mapping[str, Any], codec_options: CodecOptions) -> bytes:
    """The BSON a command travels as; DocumentTooLarge past the maximum BSON size."""
    payload = encode(command, codec_options)
    if len(payload) > MAX_BSON_SIZE + 16 * 1024:
        raise DocumentTooLarge(
            f"command document too large: {len(payload)} bytes, the limit is {MAX_BSON_SIZE}"
        )
    return payload


def decode_reply(raw: bytes, codec_options: CodecOptions, address: Address) -> dict[str, Any]:
    """A reply's document; ProtocolError when it is not BSON."""
    try:
        return bson.decode(raw, codec_options=codec_options)
    except Exception as exc:
        raise ProtocolError(f"{format_address(address)} sent an undecodable reply: {exc}") from None


def translate_rpc_error(exc: Any, address: Address) -> AutoReconnect:
    """A failed gRPC call as the client reports it: NetworkTimeout past the deadline,
    AutoReconnect otherwise."""
    code = exc.code() if hasattr(exc, "code") else None
    details = exc.details() if hasattr(exc, "details") else str(exc)
    message = f"{format_address(address)}: {details} ({code.name if code else 'error'})"
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return NetworkTimeout(message, address=address)
    return AutoReconnect(message, address=address)


class StreamUnsupported(Exception):
    """The server has no ``Command.Stream``: nothing was run, send the request unary."""


class _Pending:
    """One request waiting for its reply."""

    __slots__ = ("db", "done", "error", "payload", "reply", "request_id")

    def __init__(self, request_id: int, db: str, payload: bytes) -> None:
        self.request_id = request_id
        self.db = db
        self.payload = payload
        self.done = threading.Event()
        self.reply: bytes | None = None
        self.error: BaseException | None = None


class _Stream:
    """One open ``Command.Stream`` call and the requests pending on it."""

    def __init__(self, mux: StreamMux) -> None:
        self._mux = mux
        self._queue: queue.SimpleQueue[_Pending | None] = queue.SimpleQueue()
        self._pending: dict[int, _Pending] = {}
        self._lock = threading.Lock()
        self.dead = False
        self._call = mux.stub_stream(self._requests(), metadata=mux.metadata)
        self._receiver = threading.Thread(target=self._receive, name="helogale-stream-recv",
                                          daemon=True)
        self._receiver.start()

    def submit(self, pending: _Pending) -> bool:
        """Queue ``pending``; False when this stream has already failed."""
        with self._lock:
            if self.dead:
                return False
            self._pending[pending.request_id] = pending
        self._queue.put(pending)
        return True

    def forget(self, pending: _Pending) -> None:
        with self._lock:
            self._pending.pop(pending.request_id, None)

    def _requests(self) -> Iterator[Any]:
        """The sender: drains the queue into batches (gRPC runs this in its own thread)."""
        make = helogale_pb2.StreamCommand
        while True:
            item = self._queue.get()
            if item is None:
                return
            batch = [make(request_id=item.request_id, db=item.db, command=item.payload)]
            stop = False
            while len(batch) < MAX_COMMANDS_PER_BATCH:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stop = True
                    break
                batch.append(make(request_id=item.request_id, db=item.db,
                                  command=item.payload))
            yield helogale_pb2.CommandBatch(commands=batch)
            if stop:
                return

    def _receive(self) -> None:
        error: BaseException
        try:
            for batch in self._call:
                with self._lock:
                    resolved = [(self._pending.pop(r.request_id, None), r.reply)
                                for r in batch.replies]
                for pending, reply in resolved:
                    if pending is not None:
                        pending.reply = reply
                        pending.done.set()
            error = self._mux.broken("the server closed the command stream")
        except grpc.RpcError as exc:
            error = self._mux.stream_failed(exc)
        except Exception as exc:  # the channel was closed under us
            error = self._mux.broken(str(exc))
        self.fail(error)

    def fail(self, error: BaseException) -> None:
        """End this stream: every pending request gets ``error``."""
        with self._lock:
            self.dead = True
            pending, self._pending = list(self._pending.values()), {}
        self._queue.put(None)
        for p in pending:
            p.error = error
            p.done.set()

    def cancel(self) -> None:
        self._call.cancel()


class MuxState:
    """What a server's stream multiplexer knows, without I/O: whether the server takes streams
    (or refused one lately), whether its requests were abandoned, the metadata a stream opens
    with, and what error a failed stream's requests get. Shared by :class:`StreamMux` and the
    asyncio client's."""

    def __init__(self, address: Address) -> None:
        self.address = address
        self.unsupported = False
        self.refused_until = 0.0
        """Until then (monotonic), the server is refusing streams: go unary."""
        self.abandoned = False
        self.metadata: tuple[tuple[str, str], ...] = ()
        """Sent when a stream opens (the authentication session it runs under)."""
        self._ids = itertools.count(1)
        self._stream: Any = None
        self._lock = threading.Lock()

    def _new_stream(self) -> Any:
        raise NotImplementedError

    def _current(self) -> Any:
        """The open stream (a new one when there is none or it failed)."""
        with self._lock:
            stream = self._stream
            if stream is None or stream.dead:
                stream = self._stream = self._new_stream()
            return stream

    def close(self, error: BaseException | None = None) -> None:
        """Fail every pending request and end the stream."""
        with self._lock:
            stream, self._stream = self._stream, None
        if stream is not None:
            stream.fail(error or self.broken("the channel was closed"))
            stream.cancel()

    def stream_failed(self, exc: Any) -> BaseException:
        """The error a stream's pending requests get when its call failed with ``exc``:
        StreamUnsupported when nothing ran (they go unary), else AutoReconnect."""
        code = exc.code() if hasattr(exc, "code") else None
        details = exc.details() if hasattr(exc, "details") else str(exc)
        if code == grpc.StatusCode.UNIMPLEMENTED:
            self.unsupported = True
            return StreamUnsupported()
        if code == grpc.StatusCode.RESOURCE_EXHAUSTED and STREAMS_REFUSED in (details or ""):
            # refused before the server read anything: nothing ran, send them unary
            self.refused_until = time.monotonic() + STREAM_RETRY_S
            return StreamUnsupported()
        return self.broken(f"{details} ({code.name if code else 'error'})")

    def go_unary(self) -> bool:
        """Whether requests go unary now (no streams on this server, or refused lately)."""
        return self.unsupported or time.monotonic() < self.refused_until

    def broken(self, why: str) -> AutoReconnect:
        if self.abandoned:
            why = "request abandoned, the server was marked unknown"
        return AutoReconnect(f"{format_address(self.address)}: {why}", address=self.address)

    def timed_out(self, timeout: float | None) -> NetworkTimeout:
        return NetworkTimeout(f"{format_address(self.address)}: timed out after {timeout} s "
                              "(DEADLINE_EXCEEDED)", address=self.address)


class StreamMux(MuxState):
    """Many threads' requests to one server over one ``Command.Stream`` at a time."""

    def __init__(self, channel: grpc.Channel, address: Address) -> None:
        super().__init__(address)
        self.stub_stream = helogale_pb2_grpc.CommandStub(channel).Stream

    def _new_stream(self) -> _Stream:
        return _Stream(self)

    def run(self, db: str, payload: bytes, timeout: float | None) -> bytes:
        """Send one BSON command, wait for its BSON reply (``timeout`` seconds at most)."""
        pending = _Pending(next(self._ids), db, payload)
        for _ in range(3):
            if self.abandoned:
                raise self.broken("")
            if self.go_unary():
                raise StreamUnsupported()
            stream = self._current()
            if stream.submit(pending):
                break
        else:
            raise self.broken("cannot open a command stream")
        if not pending.done.wait(timeout):
            stream.forget(pending)
            raise self.timed_out(timeout)
        if pending.error is not None:
            raise pending.error
        assert pending.reply is not None
        return pending.reply

class Channel:
    """The client's channel to one server."""

    def __init__(self, address: Address, timeout: float | None = None,
                 credentials: Credentials | None = None, tls: ClientTLS | None = None) -> None:
        self.address = address
        self.timeout = timeout
        if tls is not None:
            self._channel = grpc.secure_channel(format_address(address), tls.credentials(),
                                                options=_CHANNEL_OPTIONS)
        else:
            self._channel = grpc.insecure_channel(format_address(address),
                                                  options=_CHANNEL_OPTIONS)
        self._run = helogale_pb2_grpc.CommandStub(self._channel).Run
        self._mux = StreamMux(self._channel, address)
        self._closed = False
        self._abandoned = False
        self._credentials = credentials
        self._session: str | None = None
        """The server's handle on this connection's authenticated session."""
        self._auth_lock = threading.Lock()

    def _authenticate(self, stale: str | None, deadline: float | None) -> None:
        """SCRAM on this channel (unary calls), unless another thread already replaced the
        session ``stale``; the stream reopens under the new session."""
        creds = self._credentials
        assert creds is not None
        with self._auth_lock:
            if self._session != stale:
                return
            token: list[str | None] = [None]

            def run(db: str, command: Mapping[str, Any]) -> Mapping[str, Any]:
                metadata = ((SESSION_METADATA, token[0]),) if token[0] else ()
                raw, trailing = self._unary(db, encode(command), deadline, metadata)
                for key, value in trailing:
                    if key == SESSION_METADATA:
                        token[0] = str(value)
                return self._decode(raw, DEFAULT_CODEC_OPTIONS)

            authenticate(run, creds)
            if token[0] is None:
                raise ProtocolError(f"{format_address(self.address)} did not name the "
                                    "authenticated session")
            self._session = token[0]
            self._mux.metadata = ((SESSION_METADATA, token[0]),)
            self._mux.close(self._mux.broken("re-authenticated: the stream reopens"))

    def run(
        self,
        db: str,
        command: Mapping[str, Any],
        codec_options: CodecOptions = DEFAULT_CODEC_OPTIONS,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """Run ``command`` against database ``db`` and return the decoded reply document."""
        payload = encode_command(command, codec_options)
        deadline = timeout if timeout is not None else self.timeout
        name = next(iter(command), None)
        if not needs_authentication(self._credentials, name):
            return self._run_once(db, name, payload, codec_options, deadline)
        session = self._session
        if session is None:
            self._authenticate(None, deadline)
            session = self._session
        reply = self._run_once(db, name, payload, codec_options, deadline)
        if lost_authentication(reply):
            # refused before it ran: the server no longer knows this connection's session
            # (the channel reconnected, the server restarted): authenticate again and resend
            self._authenticate(session, deadline)
            reply = self._run_once(db, name, payload, codec_options, deadline)
        return reply

    def _run_once(self, db: str, name: str | None, payload: bytes,
                  codec_options: CodecOptions, deadline: float | None) -> dict[str, Any]:
        if not self._mux.unsupported and name not in _UNARY_COMMANDS:
            try:
                raw = self._mux.run(db, payload, deadline)
            except StreamUnsupported:
                pass  # an older server: nothing ran, fall through to a unary call
            else:
                return self._decode(raw, codec_options)
        raw, _ = self._unary(db, payload, deadline, self._mux.metadata)
        return self._decode(raw, codec_options)

    def _unary(self, db: str, payload: bytes, deadline: float | None,
               metadata: tuple[tuple[str, str], ...]) -> tuple[bytes, Any]:
        """One ``Command/Run`` call: the reply bytes and the call's trailing metadata."""
        request = helogale_pb2.CommandRequest(db=db, command=payload)
        try:
            response, call = self._run.with_call(request, timeout=deadline, metadata=metadata)
        except grpc.RpcError as exc:
            if self._abandoned:
                raise AutoReconnect(
                    f"{format_address(self.address)}: request abandoned, the server was "
                    "marked unknown",
                    address=self.address,
                ) from None
            raise self._translate(exc) from None
        except ValueError as exc:  # "Cannot invoke RPC on closed channel!"
            raise AutoReconnect(f"{format_address(self.address)}: {exc}", address=self.address) from None
        return response.reply, call.trailing_metadata() or ()

    def _decode(self, raw: bytes, codec_options: CodecOptions) -> dict[str, Any]:
        return decode_reply(raw, codec_options, self.address)

    def _translate(self, exc: grpc.RpcError) -> AutoReconnect:
        return translate_rpc_error(exc, self.address)

    def abandon(self) -> None:
        """Close the channel, failing every request still waiting on this server (it was found
        unreachable or deposed): their callers get AutoReconnect and the retry policy takes
        over. The pool makes a fresh channel for later requests."""
        self._abandoned = True
        self._mux.abandoned = True
        self.close()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._mux.close()
            self._channel.close()


class ProcessBound:
    """Belongs to the process that made it: in a child forked later, every use raises
    InvalidOperation (both clients' channel pools)."""

    pid: int
    """The process the channels belong to."""

    @property
    def forked(self) -> bool:
        """Whether this is a child forked after the pool was made (its channels are not ours)."""
        return os.getpid() != self.pid

    def check_process(self) -> None:
        """Raise InvalidOperation in a process forked after the client was made."""
        if os.getpid() != self.pid:
            raise InvalidOperation(
                f"this MongoClient was created in process {self.pid} and cannot be used in "
                f"process {os.getpid()}, forked from it: its gRPC channels and monitor threads "
                "belong to the parent. Create the client after the fork (lazily on first use, "
                "or in gunicorn's post_fork hook; uwsgi: lazy-apps = true); see "
                "docs/web-apps.md")


class ChannelPool(ProcessBound):
    """Channels by address, created on first use; one per server for the whole client, and
    for the process that made it: in a forked child every use raises InvalidOperation (the
    channels, their streams and the monitors' threads are the parent's, and a lock another
    thread held at the fork stays held in the child)."""

    def __init__(self, timeout: float | None = None,
                 credentials: Credentials | None = None, tls: ClientTLS | None = None) -> None:
        self._timeout = timeout
        self._credentials = credentials
        self._tls = tls
        self._channels: dict[Address, Channel] = {}
        self._lock = threading.Lock()
        self._closed = False
        self.pid = os.getpid()
        self.on_cancel: list[Callable[[Address], None]] = []
        """Told the address whose requests :meth:`cancel_in_flight` abandons (requests a
        caller sends some other way, ``node.sharding.remote``'s command links)."""

    def get(self, address: Address) -> Channel:
        self.check_process()
        with self._lock:
            if self._closed:
                raise AutoReconnect("the client is closed", address=address)
            channel = self._channels.get(address)
            if channel is None:
                channel = self._channels[address] = Channel(address, self._timeout,
                                                            self._credentials, self._tls)
            return channel

    def cancel_in_flight(self, address: Address) -> bool:
        """Abandon the requests in flight to ``address`` (see :meth:`Channel.abandon`)."""
        for listener in self.on_cancel:
            listener(address)
        with self._lock:
            channel = self._channels.pop(address, None)
        if channel is None:
            return False
        channel.abandon()
        return True

    def discard(self, address: Address) -> None:
        with self._lock:
            channel = self._channels.pop(address, None)
        if channel is not None:
            channel.close()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            channels, self._channels = list(self._channels.values()), {}
        for channel in channels:
            channel.close()
