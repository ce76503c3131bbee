"""The gRPC command endpoint: ``helogale.Command/Run`` (BSON command in, BSON reply out) and
``helogale.Command/Stream``, the pipelined form of the same thing.

On a stream the client sends batches of ``(request_id, db, command)``. The stream's reader runs
writes itself, only as far as proposing them: their replies are deferred
(:class:`~node.commands.pending.PendingReply`) and produced by the thread that applies the
entry, so a write waiting for its Raft commit holds no thread. Every other command runs on the
service's worker pool (a long read never holds up the reader). Every reply ready by the time
the stream's writer looks goes back in one batch, in completion order.

The service only converts between protobuf and the dispatcher; it never interprets commands.
"""

from __future__ import annotations

import itertools
import queue
import threading
from collections.abc import Callable, Iterator
from concurrent import futures
from typing import Any

import bson
import grpc

from node.commands.context import GRPC, RequestContext
from node.commands.dispatcher import Dispatcher
from proto import helogale_pb2, helogale_pb2_grpc

MAX_MESSAGE_BYTES = 64 * 1024 * 1024
GRPC_WORKERS = 128
STREAM_WORKERS = 256
MAX_REPLIES_PER_BATCH = 1024
INLINE_COMMANDS = frozenset({"insert", "update", "delete", "findAndModify", "findandmodify"})
"""Commands a stream's reader runs itself: writes, which only validate and propose before their
reply is deferred (see :class:`~node.commands.pending.PendingReply`); everything else (a read
may scan for long) runs on the worker pool."""
_END = object()
_INTERNAL_ERROR = bson.encode({"ok": 0.0, "errmsg": "internal error", "code": 1})
SERVER_OPTIONS = [
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ("grpc.so_reuseport", 0),
]


class CommandService(helogale_pb2_grpc.CommandServicer):
    """Runs every request through the dispatcher; a connection id per distinct peer."""

    def __init__(self, dispatcher: Dispatcher, workers: int = STREAM_WORKERS) -> None:
        self._dispatcher = dispatcher
        self._pool = futures.ThreadPoolExecutor(max_workers=workers,
                                                thread_name_prefix="stream-cmd")
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

    def Stream(self, request_iterator: Iterator[Any], context: grpc.ServicerContext
               ) -> Iterator[Any]:
        peer = context.peer() or ""
        ctx = RequestContext(transport=GRPC, connection_id=self._connection_id(peer), peer=peer,
                             deferred_replies=True)
        ready: queue.SimpleQueue[Any] = queue.SimpleQueue()
        state = {"in_flight": 0, "reading": True}
        lock = threading.Lock()

        def finished() -> None:  # one command done (or the reader ended): maybe end the stream
            with lock:
                done = not state["reading"] and state["in_flight"] == 0
            if done:
                ready.put(_END)

        def answer(request_id: int) -> Callable[[bytes], None]:
            def done(reply: bytes) -> None:
                ready.put(helogale_pb2.StreamReply(request_id=request_id, reply=reply))
                with lock:
                    state["in_flight"] -= 1
                finished()
            return done

        def run_one(request_id: int, db: str, command: bytes) -> None:
            done = answer(request_id)
            try:
                reply = self._dispatcher.run_bson(db, command, ctx)
            except BaseException:
                done(_INTERNAL_ERROR)
                raise
            done(reply)

        def reader() -> None:
            try:
                for batch in request_iterator:
                    with lock:
                        state["in_flight"] += len(batch.commands)
                    for cmd in batch.commands:
                        if command_name(cmd.command) in INLINE_COMMANDS:
                            # proposed here, answered by the thread that applies it
                            self._dispatcher.run_bson_async(cmd.db, cmd.command, ctx,
                                                            answer(cmd.request_id))
                            continue
                        try:
                            self._pool.submit(run_one, cmd.request_id, cmd.db, cmd.command)
                        except RuntimeError:  # the pool is shut down: the server is stopping
                            with lock:
                                state["in_flight"] -= 1
            except Exception:  # the client went away or cancelled: nothing to answer
                pass
            finally:
                with lock:
                    state["reading"] = False
                finished()

        threading.Thread(target=reader, name="stream-reader", daemon=True).start()
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
            if end or not context.is_active():
                return

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


def add_command_service(server: grpc.Server, dispatcher: Dispatcher) -> CommandService:
    service = CommandService(dispatcher)
    helogale_pb2_grpc.add_CommandServicer_to_server(service, server)
    return service
