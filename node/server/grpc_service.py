"""The gRPC command endpoint: ``helogale.Command/Run`` (BSON command in, BSON reply out).

The service only converts between protobuf and the dispatcher; it never interprets commands.

:class:`AsyncCommandServer` (what a member serves) runs the endpoint on gRPC's asyncio server in a
thread of its own. Write commands whose write concern needs no wait beyond the entry being
applied (``crud.can_defer``) run on the event loop with ``defer_writes``: the handler validates
and proposes, and the request waits for its entry as an asyncio future, holding no thread.
Everything else (reads may scan, ``w: N`` waits block) runs on a thread pool. Completions
arrive from the Raft apply thread in bursts and wake the loop once per burst.
:class:`CommandService` / :func:`make_server` are the plain threaded endpoint.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
from collections import deque
from concurrent import futures
from typing import Any

import bson
import grpc
from bson.errors import BSONError

from node.commands.context import GRPC, RequestContext
from node.commands.crud import can_defer
from node.commands.dispatcher import CODEC, Dispatcher
from node.commands.member import PendingWrite
from proto import helogale_pb2, helogale_pb2_grpc

MAX_MESSAGE_BYTES = 64 * 1024 * 1024
SERVER_OPTIONS = [
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.so_reuseport", 0),
]


class CommandService(helogale_pb2_grpc.CommandServicer):
    """Runs every request through the dispatcher; a connection id per distinct peer."""

    def __init__(self, dispatcher: Dispatcher) -> None:
        self._dispatcher = dispatcher
        self._ids: dict[str, int] = {}
        self._next = itertools.count(1)
        self._lock = threading.Lock()

    def _connection_id(self, peer: str) -> int:
        with self._lock:
            cid = self._ids.get(peer)
            if cid is None:
                if len(self._ids) > 10_000:
                    self._ids.clear()
                cid = self._ids[peer] = next(self._next)
            return cid

    def Run(self, request: Any, context: grpc.ServicerContext) -> Any:
        peer = context.peer() or ""
        ctx = RequestContext(transport=GRPC, connection_id=self._connection_id(peer), peer=peer)
        reply = self._dispatcher.run_bson(request.db, request.command, ctx)
        return helogale_pb2.CommandReply(reply=reply)


def make_server(max_workers: int = 128) -> grpc.Server:
    """A gRPC server with message limits large enough for 16 MiB documents in batches."""
    return grpc.server(futures.ThreadPoolExecutor(max_workers=max_workers), options=SERVER_OPTIONS)


def add_command_service(server: grpc.Server, dispatcher: Dispatcher) -> CommandService:
    service = CommandService(dispatcher)
    helogale_pb2_grpc.add_CommandServicer_to_server(service, server)
    return service


class _Completions:
    """Hands futures completed on other threads back to the event loop: one
    ``call_soon_threadsafe`` per burst of completions, not one per future."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._done: deque[asyncio.Future[None]] = deque()
        self._lock = threading.Lock()
        self._wake_pending = False

    def waiter(self, fut: futures.Future[Any]) -> asyncio.Future[None]:
        """An asyncio future completing (with None) when ``fut`` is done."""
        afut: asyncio.Future[None] = self._loop.create_future()
        fut.add_done_callback(lambda _f: self._completed(afut))
        return afut

    def _completed(self, afut: asyncio.Future[None]) -> None:
        with self._lock:
            self._done.append(afut)
            if self._wake_pending:
                return
            self._wake_pending = True
        self._loop.call_soon_threadsafe(self._drain)

    def _drain(self) -> None:
        with self._lock:
            done = list(self._done)
            self._done.clear()
            self._wake_pending = False
        for afut in done:
            if not afut.done():
                afut.set_result(None)


class AsyncCommandService(CommandService):
    """``Command.Run`` on the asyncio server (see the module docstring)."""

    def __init__(self, dispatcher: Dispatcher, pool: futures.ThreadPoolExecutor,
                 completions: _Completions) -> None:
        super().__init__(dispatcher)
        self._pool = pool
        self._completions = completions

    async def Run(self, request: Any, context: Any) -> Any:  # type: ignore[override]
        peer = context.peer() or ""
        cid = self._connection_id(peer)
        raw = request.command
        db = request.db
        doc = _decode_write(raw)
        if doc is None:
            ctx = RequestContext(transport=GRPC, connection_id=cid, peer=peer)
            loop = asyncio.get_running_loop()
            out = await loop.run_in_executor(self._pool, self._dispatcher.run_bson, db, raw, ctx)
            return helogale_pb2.CommandReply(reply=out)
        ctx = RequestContext(transport=GRPC, connection_id=cid, peer=peer, defer_writes=True)
        reply = self._dispatcher.run(db, doc, ctx)
        if isinstance(reply, PendingWrite):
            timed_out = False
            try:
                await asyncio.wait_for(self._completions.waiter(reply.future), reply.timeout)
            except TimeoutError:
                timed_out = not reply.future.done()
            reply = self._dispatcher.finish(reply, timed_out)
        return helogale_pb2.CommandReply(reply=self._dispatcher.encode_reply(reply))


def _decode_write(raw: bytes) -> dict[str, Any] | None:
    """The command document if it is a write that may run deferred on the loop, else None
    (without decoding more than the first field's name for other commands)."""
    try:
        end = raw.index(b"\0", 5)
        name = raw[5:end].decode()
    except (ValueError, UnicodeDecodeError):
        return None
    if name not in ("insert", "update", "delete", "findAndModify", "findandmodify"):
        return None
    try:
        doc = bson.decode(raw, codec_options=CODEC)
    except (BSONError, ValueError, TypeError, IndexError, OverflowError):
        return None  # the threaded path answers InvalidBSON
    return doc if can_defer(name, doc) else None


class AsyncCommandServer:
    """The command endpoint on ``grpc.aio`` with its event loop in a daemon thread; the same
    ``add_insecure_port`` / ``start`` / ``stop`` calls as a threaded ``grpc.Server``."""

    def __init__(self, dispatcher: Dispatcher, max_workers: int = 32) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="grpc-aio",
                                        daemon=True)
        self._thread.start()
        self._pool = futures.ThreadPoolExecutor(max_workers=max_workers,
                                                thread_name_prefix="command")
        self.service = AsyncCommandService(dispatcher, self._pool, _Completions(self._loop))
        self._server: Any = self._call(self._make())

    async def _make(self) -> Any:
        server = grpc.aio.server(options=SERVER_OPTIONS)
        helogale_pb2_grpc.add_CommandServicer_to_server(self.service, server)
        return server

    def _call(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def add_insecure_port(self, address: str) -> int:
        async def add() -> int:
            return int(self._server.add_insecure_port(address))
        try:
            return self._call(add())
        except RuntimeError:
            return 0

    def start(self) -> None:
        self._call(self._server.start())

    def stop(self, grace: float | None) -> None:
        """Stop serving (in-flight calls get ``grace`` seconds), then the loop and the pool."""
        if not self._loop.is_closed() and self._thread.is_alive():
            self._call(self._server.stop(grace))
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(5)
        self._pool.shutdown(wait=False, cancel_futures=True)
