"""A real in-process gRPC ``Command`` server whose replies follow a script, for the client's
transport / retry / command-building unit tests (helper module, not a test file).

Each server records every ``(db, command)`` it receives. ``hello`` is answered from
``hello_reply`` (changeable at any time; :meth:`primary` and :meth:`router` set it). Other commands pop the next scripted step for their
command name: a reply document, :data:`UNAVAILABLE` (the RPC fails as if the server went away),
or a callable ``(db, command) -> reply``; with no step left, ``default`` answers.
"""

from __future__ import annotations

import threading
from collections import defaultdict, deque
from collections.abc import Callable
from concurrent import futures
from typing import Any

import bson
import grpc

from node.local_cluster import wait_until
from proto import helogale_pb2, helogale_pb2_grpc

UNAVAILABLE = "UNAVAILABLE"
Step = Any


class ScriptedServer(helogale_pb2_grpc.CommandServicer):
    def __init__(self, set_name: str | None = "rs0") -> None:
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        helogale_pb2_grpc.add_CommandServicer_to_server(self, self._server)
        self.port = self._server.add_insecure_port("127.0.0.1:0")
        self.address = ("127.0.0.1", self.port)
        self.host = f"127.0.0.1:{self.port}"
        self.set_name = set_name
        self.lock = threading.Lock()
        self.received: list[tuple[str, dict[str, Any]]] = []
        self.scripts: dict[str, deque[Step]] = defaultdict(deque)
        self.default: Callable[[str, dict[str, Any]], dict[str, Any]] = lambda db, cmd: {"ok": 1.0}
        self.hello_reply: dict[str, Any] = {}
        self.primary(True)
        self._server.start()

    def primary(self, writable: bool, hosts: list[str] | None = None, primary: str | None = None) -> None:
        """Make ``hello`` say this server is the primary (or a secondary) of ``set_name``."""
        reply: dict[str, Any] = {"ok": 1.0, "isWritablePrimary": writable, "secondary": not writable,
                                 "me": self.host, "hosts": hosts or [self.host]}
        if self.set_name is not None:
            reply["setName"] = self.set_name
        if writable:
            reply["primary"] = self.host
        elif primary:
            reply["primary"] = primary
        self.hello_reply = reply

    def router(self) -> None:
        """Make ``hello`` say this server is a router (``msg: "isdbgrid"``, no set name)."""
        self.hello_reply = {"ok": 1.0, "isWritablePrimary": True, "msg": "isdbgrid",
                            "me": self.host}

    def script(self, name: str, *steps: Step) -> None:
        with self.lock:
            self.scripts[name].extend(steps)

    def commands(self, name: str) -> list[dict[str, Any]]:
        with self.lock:
            return [cmd for _, cmd in self.received if next(iter(cmd)) == name]

    def Run(self, request: Any, context: grpc.ServicerContext) -> Any:
        command = bson.decode(request.command)
        name = next(iter(command))
        if name == "hello":
            reply = self.hello_reply
            if reply == UNAVAILABLE:
                context.abort(grpc.StatusCode.UNAVAILABLE, "scripted: server down")
            return helogale_pb2.CommandReply(reply=bson.encode(reply))
        with self.lock:
            self.received.append((request.db, command))
            step = self.scripts[name].popleft() if self.scripts[name] else None
        if step == UNAVAILABLE:
            context.abort(grpc.StatusCode.UNAVAILABLE, "scripted: connection reset")
        if step is None:
            reply = self.default(request.db, command)
        elif callable(step):
            reply = step(request.db, command)
        else:
            reply = step
        return helogale_pb2.CommandReply(reply=bson.encode(reply))

    def stop(self) -> None:
        self._server.stop(grace=None).wait(5)


def wait_for(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait until ``predicate()`` is true (polling), failing the test after ``timeout``."""
    wait_until(predicate, timeout, "the condition", interval=0.01)
