"""The gRPC command endpoint: ``helogale.Command/Run`` (BSON command in, BSON reply out) and
``helogale.Command/Stream``, the pipelined form of the same thing.

On a stream the client sends batches of ``(request_id, db, command)``. The stream's reader runs
writes itself (the table's ``write`` rows, :meth:`Dispatcher.runs_inline`), only as far as
proposing them: their replies are deferred
(:class:`~node.commands.pending.PendingReply`) and produced by the thread that applies the
entry, so a write waiting for its Raft commit holds no thread. Every other command runs on the
service's worker pool (a long read never holds up the reader). Every reply ready by the time
the stream's writer looks goes back in one batch, in completion order.

Limits. The sync gRPC server gives every open stream one of its ``GRPC_WORKERS`` threads for
the stream's whole life (the writer loop), so at most ``max_streams`` (default
``GRPC_WORKERS - UNARY_RESERVE``) streams are open at once; one more is refused with
RESOURCE_EXHAUSTED before it reads anything (the client then sends unary calls), so idle
streams can never take the workers unary calls (``hello``, the client's topology monitor)
need. Raft traffic has its own server and pool (``raft.transport``). Backpressure: a stream
has at most ``max_in_flight`` commands read and not yet sent back, and at most
``max_queued_bytes`` of replies waiting; past either the reader stops reading, so gRPC's flow
control pushes back on a client that sends commands but does not read replies, and the
server's memory for that stream stays bounded.

The service only converts between protobuf and the dispatcher; it never interprets commands.
"""

from __future__ import annotations

import itertools
import logging
import queue
import threading
from collections.abc import Callable, Iterator
from concurrent import futures
from typing import Any

import bson
import grpc

from node.commands.context import GRPC, RequestContext
from node.commands.dispatcher import Dispatcher
from node.security.authz import SESSION_METADATA, AuthSession, SessionTable
from proto import helogale_pb2, helogale_pb2_grpc

log = logging.getLogger("helogale.grpc")

MAX_MESSAGE_BYTES = 64 * 1024 * 1024
GRPC_WORKERS = 128
UNARY_RESERVE = 32
"""gRPC server workers no stream can take: unary calls always find one."""
DEFAULT_MAX_STREAMS = GRPC_WORKERS - UNARY_RESERVE
STREAM_WORKERS = 256
MAX_REPLIES_PER_BATCH = 1024
MAX_IN_FLIGHT_PER_STREAM = 4096
"""Commands a stream has read and not yet sent the reply of; past it the reader waits."""
MAX_QUEUED_BYTES_PER_STREAM = 64 * 1024 * 1024
"""Reply bytes a stream may hold waiting for the client; past it the reader waits."""
STREAMS_REFUSED = "helogale: too many command streams open on this server"
"""Details of the RESOURCE_EXHAUSTED refusing a stream (nothing on it was read or run)."""
_END = object()
_INTERNAL_ERROR = bson.encode({"ok": 0.0, "errmsg": "internal error", "code": 1})
SERVER_OPTIONS = [
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.so_reuseport", 0),
]


class CommandService(helogale_pb2_grpc.CommandServicer):
    """Runs every request through the dispatcher; a connection id per distinct peer."""

    def __init__(
        self,
        dispatcher: Dispatcher,
        workers: int = STREAM_WORKERS,
        *,
        max_streams: int = DEFAULT_MAX_STREAMS,
        max_in_flight: int = MAX_IN_FLIGHT_PER_STREAM,
        max_queued_bytes: int = MAX_QUEUED_BYTES_PER_STREAM,
    ) -> None:
        self._dispatcher = dispatcher
        self._pool = futures.ThreadPoolExecutor(max_workers=workers,
                                                thread_name_prefix="stream-cmd")
        self._ids: dict[str, int] = {}
        self._next = itertools.count(1)
        self._peers_seen = 0
        self._lock = threading.Lock()
        self.max_streams = max_streams
        self.max_in_flight = max_in_flight
        self.max_queued_bytes = max_queued_bytes
        self.open_streams = 0
        self.refused_streams = 0
        self.waiting_readers = 0
        """Stream readers currently stopped by backpressure."""
        self.peak_in_flight = 0
        """The most commands one stream had read and not yet answered (since start)."""
        self.sessions = SessionTable()
        """Authentication sessions by token, each bound to its connection (peer)."""

    @property
    def peers_seen(self) -> int:
        """Distinct client peers served since start (gRPC does not say when one leaves)."""
        return self._peers_seen

    def _connection_id(self, peer: str) -> int:
        with self._lock:
            cid = self._ids.get(peer)
            if cid is None:
                if len(self._ids) > 10_000:
                    self._ids.clear()
                cid = self._ids[peer] = next(self._next)
                self._peers_seen = cid
            return cid

    def _session(self, context: grpc.ServicerContext, peer: str) -> AuthSession:
        token = None
        for key, value in context.invocation_metadata() or ():
            if key == SESSION_METADATA:
                token = value if isinstance(value, str) else None
        return self.sessions.get(token, peer)

    def Run(self, request: Any, context: grpc.ServicerContext) -> Any:
        peer = context.peer() or ""
        session = self._session(context, peer)
        ctx = RequestContext(transport=GRPC, connection_id=self._connection_id(peer), peer=peer,
                             auth=session)
        reply = self._dispatcher.run_bson(request.db, request.command, ctx)
        token = self.sessions.register(session, peer)
        if token is not None:  # the client names this session on its later calls
            context.set_trailing_metadata(((SESSION_METADATA, token),))
        return helogale_pb2.CommandReply(reply=reply)

    def Stream(self, request_iterator: Iterator[Any], context: grpc.ServicerContext
               ) -> Iterator[Any]:
        with self._lock:
            admitted = self.open_streams < self.max_streams
            if admitted:
                self.open_streams += 1
            else:
                self.refused_streams += 1
        if not admitted:
            log.info("command stream refused", extra={"fields": {
                "peer": context.peer(), "open": self.max_streams}})
            context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, STREAMS_REFUSED)
        left = threading.Event()

        def leave() -> None:  # once, whichever comes first: the RPC ends or the writer returns
            if not left.is_set():
                left.set()
                with self._lock:
                    self.open_streams -= 1

        if not context.add_callback(leave):  # the RPC is already over
            leave()
            return iter(())
        return self._serve_stream(request_iterator, context, leave)

    def _serve_stream(self, request_iterator: Iterator[Any], context: grpc.ServicerContext,
                      leave: Callable[[], None]) -> Iterator[Any]:
        peer = context.peer() or ""
        ctx = RequestContext(transport=GRPC, connection_id=self._connection_id(peer), peer=peer,
                             deferred_replies=True, auth=self._session(context, peer))
        ready: queue.SimpleQueue[Any] = queue.SimpleQueue()
        # in_flight: commands read and not yet answered (the stream ends at 0 once the client
        # is done); held/bytes: commands read and replies not yet handed to gRPC (backpressure)
        state = {"in_flight": 0, "reading": True, "held": 0, "bytes": 0, "waiting": False}
        lock = threading.Lock()
        room = threading.Condition(lock)

        def finished() -> None:  # the reader ended: maybe end the stream
            with lock:
                done = not state["reading"] and state["in_flight"] == 0
            if done:
                ready.put(_END)

        def answer(request_id: int) -> Callable[[bytes], None]:
            def done(reply: bytes) -> None:
                ready.put(helogale_pb2.StreamReply(request_id=request_id, reply=reply))
                with lock:
                    state["in_flight"] -= 1
                    state["bytes"] += len(reply)
                    last = not state["reading"] and state["in_flight"] == 0
                if last:
                    ready.put(_END)
            return done

        def run_one(request_id: int, db: str, command: bytes) -> None:
            done = answer(request_id)
            run_async = getattr(self._dispatcher, "run_bson_async", None)
            if run_async is not None:  # a reply that waits (awaitData getMore) holds no thread
                answered = []

                def once(reply: bytes) -> None:
                    answered.append(True)
                    done(reply)

                try:
                    run_async(db, command, ctx, once)
                except BaseException:
                    if not answered:
                        done(_INTERNAL_ERROR)
                    raise
                return
            try:
                reply = self._dispatcher.run_bson(db, command, ctx)
            except BaseException:
                done(_INTERNAL_ERROR)
                raise
            done(reply)

        def full() -> bool:
            return (state["held"] >= self.max_in_flight
                    or state["bytes"] >= self.max_queued_bytes)

        def wait_for_room() -> bool:
            """Block while the stream holds too much; False once the RPC is over."""
            with room:
                if not full():
                    return True
                state["waiting"] = True
                with self._lock:
                    self.waiting_readers += 1
                try:
                    while full():
                        room.wait(1.0)
                        if not context.is_active():
                            return False
                finally:
                    state["waiting"] = False
                    with self._lock:
                        self.waiting_readers -= 1
            return True

        def reader() -> None:
            try:
                while wait_for_room():
                    batch = next(request_iterator, None)
                    if batch is None:
                        break
                    n = len(batch.commands)
                    with lock:
                        state["in_flight"] += n
                        state["held"] += n
                        if state["held"] > self.peak_in_flight:
                            self.peak_in_flight = state["held"]
                    for cmd in batch.commands:
                        if self._dispatcher.runs_inline(command_name(cmd.command)):
                            # proposed here, answered by the thread that applies it
                            self._dispatcher.run_bson_async(cmd.db, cmd.command, ctx,
                                                            answer(cmd.request_id))
                            continue
                        try:
                            self._pool.submit(run_one, cmd.request_id, cmd.db, cmd.command)
                        except RuntimeError:  # the pool is shut down: the server is stopping
                            with lock:
                                state["in_flight"] -= 1
                                state["held"] -= 1
            except Exception:  # the client went away or cancelled: nothing to answer
                pass
            finally:
                with lock:
                    state["reading"] = False
                finished()

        threading.Thread(target=reader, name="stream-reader", daemon=True).start()
        try:
            while True:
                try:
                    item = ready.get(timeout=1.0)
                except queue.Empty:
                    if not context.is_active():
                        return
                    continue
                if item is _END:
                    return
                replies = [item]
                end = False
                while len(replies) < MAX_REPLIES_PER_BATCH:
                    try:
                        item = ready.get_nowait()
                    except queue.Empty:
                        break
                    if item is _END:
                        end = True
                        break
                    replies.append(item)
                yield helogale_pb2.ReplyBatch(replies=replies)
                # gRPC took the batch (sent, or buffered within the flow-control window)
                sent = sum(len(r.reply) for r in replies)
                with room:
                    state["held"] -= len(replies)
                    state["bytes"] -= sent
                    if state["waiting"]:
                        room.notify()
                if end or not context.is_active():
                    return
        finally:
            leave()

    def close(self) -> None:
        """Stop the stream worker pool (commands already running finish)."""
        self._pool.shutdown(wait=False, cancel_futures=True)


def command_name(command: bytes) -> str | None:
    """The first field name of a BSON command document (its command), read without decoding
    the document; None when the bytes do not start like a BSON document with a field."""
    end = command.find(b"\x00", 5)
    if len(command) < 6 or end < 0:
        return None
    try:
        return command[5:end].decode()
    except UnicodeDecodeError:
        return None


def make_server(max_workers: int = GRPC_WORKERS) -> grpc.Server:
    """A gRPC server with message limits large enough for 16 MiB documents in batches."""
    return grpc.server(futures.ThreadPoolExecutor(max_workers=max_workers), options=SERVER_OPTIONS)


def add_command_service(server: grpc.Server, dispatcher: Dispatcher, *,
                        max_streams: int = DEFAULT_MAX_STREAMS) -> CommandService:
    """The command service on ``server``, at most ``max_streams`` streams open at once (keep
    it below the server's workers: each open stream holds one)."""
    service = CommandService(dispatcher, max_streams=max_streams)
    helogale_pb2_grpc.add_CommandServicer_to_server(service, server)
    return service
