"""One grpc.aio channel per server address for the asyncio client: commands travel on one
pipelined ``Command.Stream`` per server, as in :mod:`helogale.channel` (same framing, same
fall-back to unary ``Command.Run`` for ``hello``, for servers without streams and for servers
refusing one, same errors); here the sender and receiver are tasks on the event loop and a
waiting request is a future.

What is not I/O is :mod:`helogale.channel`'s: encoding and size check (``encode_command``),
decoding (``decode_reply``), mapping gRPC failures (``translate_rpc_error``) and the stream
state (``MuxState``), the SCRAM conversation (:func:`helogale.auth.conversation`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Mapping
from typing import Any

import grpc
import grpc.aio
from bson.codec_options import DEFAULT_CODEC_OPTIONS, CodecOptions

from helogale.auth import Credentials, conversation
from helogale.channel import (
    _CHANNEL_OPTIONS,
    _UNARY_COMMANDS,
    MAX_COMMANDS_PER_BATCH,
    SESSION_METADATA,
    STREAM_RETRY_S,
    Address,
    MuxState,
    ProcessBound,
    StreamUnsupported,
    decode_reply,
    encode_command,
    format_address,
    lost_authentication,
    needs_authentication,
    translate_rpc_error,
)
from helogale.errors import AutoReconnect, ProtocolError
from helogale.tls import ClientTLS
from proto import helogale_pb2, helogale_pb2_grpc


class _AsyncStream:
    """One open ``Command.Stream`` call: a writer task sends queued requests in batches, a
    reader task resolves each request's future by request id.

    grpc.aio reports a write that lost the race with the server ending the call (a server
    without streams, or refusing one, ends it at once) as INTERNAL instead of the server's
    status. When the first write failed, nothing reached the server: the pending requests go
    unary (StreamUnsupported) and streams are not tried for ``STREAM_RETRY_S``."""

    def __init__(self, mux: AsyncStreamMux) -> None:
        self._mux = mux
        self._pending: dict[int, asyncio.Future[bytes]] = {}
        self._outbox: list[Any] = []
        self.dead = False
        self._sent = False  # a write succeeded
        self._unsent = False  # the first write failed: nothing reached the server
        self._call = mux.stub_stream(metadata=mux.metadata)
        self._writer: asyncio.Task[None] | None = None
        self._reader = asyncio.get_running_loop().create_task(self._receive())

    def submit(self, request_id: int, db: str, payload: bytes) -> asyncio.Future[bytes] | None:
        """Queue a request; its future, or None when this stream has already failed."""
        if self.dead:
            return None
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        self._outbox.append(helogale_pb2.StreamCommand(request_id=request_id, db=db,
                                                        command=payload))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.get_running_loop().create_task(self._send())
        return future

    def forget(self, request_id: int) -> None:
        self._pending.pop(request_id, None)

    async def _send(self) -> None:
        try:
            while self._outbox and not self.dead:
                batch = self._outbox[:MAX_COMMANDS_PER_BATCH]
                del self._outbox[:MAX_COMMANDS_PER_BATCH]
                await self._call.write(helogale_pb2.CommandBatch(commands=batch))
                self._sent = True
        except Exception:
            self._unsent = not self._sent  # the reader reports why the call failed

    async def _receive(self) -> None:
        error: BaseException
        try:
            while True:
                batch = await self._call.read()
                if batch is grpc.aio.EOF:
                    break
                for reply in batch.replies:
                    future = self._pending.pop(reply.request_id, None)
                    if future is not None and not future.done():
                        future.set_result(reply.reply)
            error = self._mux.broken("the server closed the command stream")
        except grpc.RpcError as exc:
            writer = self._writer
            if writer is not None:
                with contextlib.suppress(BaseException):
                    await writer
            error = self._mux.stream_failed(exc)
            if self._unsent and not isinstance(error, StreamUnsupported):
                self._mux.refused_until = time.monotonic() + STREAM_RETRY_S
                error = StreamUnsupported()
        except asyncio.CancelledError:
            error = self._mux.broken("the channel was closed")
        except Exception as exc:  # the channel was closed under us
            error = self._mux.broken(str(exc))
        self.fail(error)

    def fail(self, error: BaseException) -> None:
        """End this stream: every pending request gets ``error``."""
        self.dead = True
        pending, self._pending = list(self._pending.values()), {}
        for future in pending:
            if not future.done():
                future.set_exception(error)

    def cancel(self) -> None:
        self._call.cancel()


class AsyncStreamMux(MuxState):
    """Many tasks' requests to one server over one ``Command.Stream`` at a time."""

    def __init__(self, channel: grpc.aio.Channel, address: Address) -> None:
        super().__init__(address)
        self.stub_stream = helogale_pb2_grpc.CommandStub(channel).Stream

    def _new_stream(self) -> _AsyncStream:
        return _AsyncStream(self)

    async def run(self, db: str, payload: bytes, timeout: float | None) -> bytes:
        """Send one BSON command, wait for its BSON reply (``timeout`` seconds at most)."""
        request_id = next(self._ids)
        for _ in range(3):
            if self.abandoned:
                raise self.broken("")
            if self.go_unary():
                raise StreamUnsupported()
            stream = self._current()
            future = stream.submit(request_id, db, payload)
            if future is not None:
                break
        else:
            raise self.broken("cannot open a command stream")
        try:
            return await asyncio.wait_for(future, timeout)
        except TimeoutError:
            stream.forget(request_id)
            raise self.timed_out(timeout) from None


class AsyncChannel:
    """The asyncio client's channel to one server (made on the event loop that uses it). With
    credentials, SCRAM-SHA-256 (:func:`helogale.auth.conversation`, as the threaded channel)
    before the first command, and again when the server no longer knows the session."""

    def __init__(self, address: Address, timeout: float | None = None,
                 tls: ClientTLS | None = None, credentials: Credentials | None = None) -> None:
        self.address = address
        self.timeout = timeout
        target = format_address(address)
        if tls is not None:
            self._channel = grpc.aio.secure_channel(target, tls.credentials(),
                                                    options=_CHANNEL_OPTIONS)
        else:
            self._channel = grpc.aio.insecure_channel(target, options=_CHANNEL_OPTIONS)
        self._run = helogale_pb2_grpc.CommandStub(self._channel).Run
        self._mux = AsyncStreamMux(self._channel, address)
        self._abandoned = False
        self._closing: asyncio.Task[None] | None = None
        self._credentials = credentials
        self._session: str | None = None
        """The server's handle on this connection's authenticated session."""
        self._auth_lock: asyncio.Lock | None = None

    async def run(
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
            return await self._run_once(db, name, payload, codec_options, deadline)
        session = self._session
        if session is None:
            await self._authenticate(None, deadline)
            session = self._session
        reply = await self._run_once(db, name, payload, codec_options, deadline)
        if lost_authentication(reply):
            await self._authenticate(session, deadline)
            reply = await self._run_once(db, name, payload, codec_options, deadline)
        return reply

    async def _run_once(self, db: str, name: str | None, payload: bytes,
                        codec_options: CodecOptions, deadline: float | None) -> dict[str, Any]:
        if not self._mux.go_unary() and name not in _UNARY_COMMANDS:
            with contextlib.suppress(StreamUnsupported):  # an older server: go unary
                return decode_reply(await self._mux.run(db, payload, deadline), codec_options,
                                    self.address)
        raw, _ = await self._unary(db, payload, deadline, self._mux.metadata)
        return decode_reply(raw, codec_options, self.address)

    async def _unary(self, db: str, payload: bytes, deadline: float | None,
                     metadata: tuple[tuple[str, str], ...]) -> tuple[bytes, Any]:
        """One ``Command/Run`` call: the reply bytes and the call's trailing metadata."""
        try:
            call = self._run(helogale_pb2.CommandRequest(db=db, command=payload),
                             timeout=deadline, metadata=metadata)
            response = await call
            trailing = await call.trailing_metadata()
        except grpc.RpcError as exc:
            if self._abandoned:
                raise AutoReconnect(f"{format_address(self.address)}: request abandoned, the "
                                    "server was marked unknown", address=self.address) from None
            raise translate_rpc_error(exc, self.address) from None
        except (ValueError, RuntimeError, asyncio.InvalidStateError) as exc:  # a closed channel
            raise AutoReconnect(f"{format_address(self.address)}: {exc}",
                                address=self.address) from None
        return response.reply, trailing or ()

    async def _authenticate(self, stale: str | None, deadline: float | None) -> None:
        """SCRAM on this channel (unary calls), unless another task already replaced the
        session ``stale``; the stream reopens under the new session."""
        assert self._credentials is not None
        if self._auth_lock is None:
            self._auth_lock = asyncio.Lock()
        async with self._auth_lock:
            if self._session != stale:
                return
            token: str | None = None
            steps = conversation(self._credentials)
            try:
                db, command = next(steps)
                while True:
                    metadata = ((SESSION_METADATA, token),) if token else ()
                    raw, trailing = await self._unary(db, encode_command(
                        command, DEFAULT_CODEC_OPTIONS), deadline, metadata)
                    for key, value in trailing:
                        if key == SESSION_METADATA:
                            token = str(value)
                    db, command = steps.send(decode_reply(raw, DEFAULT_CODEC_OPTIONS,
                                                          self.address))
            except StopIteration:
                pass
            if token is None:
                raise ProtocolError(f"{format_address(self.address)} did not name the "
                                    "authenticated session")
            self._session = token
            self._mux.metadata = ((SESSION_METADATA, token),)
            self._mux.close(self._mux.broken("re-authenticated: the stream reopens"))

    def abandon(self) -> None:
        """Fail every request still waiting on this server (it was found unreachable or
        deposed) and close the channel; the pool makes a fresh one for later requests."""
        self._abandoned = True
        self._mux.abandoned = True
        self.start_close()

    def start_close(self) -> None:
        if self._closing is None:
            self._mux.close()
            self._closing = asyncio.get_running_loop().create_task(self._channel.close())

    async def close(self) -> None:
        self.start_close()
        assert self._closing is not None
        await self._closing


class AsyncChannelPool(ProcessBound):
    """Channels by address, created on first use; one per server for the whole client, and
    for the process that made it (a forked child's use raises InvalidOperation)."""

    def __init__(self, timeout: float | None = None, credentials: Credentials | None = None,
                 tls: ClientTLS | None = None) -> None:
        self._timeout = timeout
        self._tls = tls
        self._credentials = credentials
        self._channels: dict[Address, AsyncChannel] = {}
        self._retired: list[AsyncChannel] = []
        self._closed = False
        self.pid = os.getpid()

    def get(self, address: Address) -> AsyncChannel:
        self.check_process()
        if self._closed:
            raise AutoReconnect("the client is closed", address=address)
        channel = self._channels.get(address)
        if channel is None:
            channel = self._channels[address] = AsyncChannel(address, self._timeout, self._tls,
                                                             self._credentials)
        return channel

    def cancel_in_flight(self, address: Address) -> bool:
        """Abandon the requests in flight to ``address`` (see :meth:`AsyncChannel.abandon`)."""
        channel = self._channels.pop(address, None)
        if channel is None:
            return False
        channel.abandon()
        self._retired.append(channel)
        return True

    async def close(self) -> None:
        self._closed = True
        channels = list(self._channels.values()) + self._retired
        self._channels, self._retired = {}, []
        for channel in channels:
            with contextlib.suppress(Exception):
                await channel.close()
