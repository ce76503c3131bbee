"""The gRPC command endpoint: ``helogale.Command/Run`` (BSON command in, BSON reply out).

The service only converts between protobuf and the dispatcher; it never interprets commands.
"""

from __future__ import annotations

import itertools
import threading
from concurrent import futures
from typing import Any

import grpc

from node.commands.context import GRPC, RequestContext
from node.commands.dispatcher import Dispatcher
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
