"""The pipelined command stream: helogale.channel's StreamMux against the node's
``CommandService.Stream`` (real gRPC, in process, with a small stand-in dispatcher)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent import futures
from typing import Any

import bson
import grpc
import pytest

from helogale.channel import Channel
from helogale.errors import AutoReconnect, NetworkTimeout
from node.commands.context import RequestContext
from node.server.grpc_service import CommandService
from proto import helogale_pb2_grpc
from tests.client_scripted_server import ScriptedServer, wait_for


class EchoDispatcher:
    """Echoes ``{echo: x}`` as ``{ok: 1, x: x, db: db}``; ``{slow: 1}`` waits for ``release``."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.slow_started = threading.Event()
        self.peers: set[int] = set()
        self.lock = threading.Lock()

    def runs_inline(self, name: str | None) -> bool:
        return False  # every echo runs on the service's worker pool

    def run_bson(self, db: str, command: bytes, ctx: RequestContext) -> bytes:
        cmd = bson.decode(command)
        with self.lock:
            self.peers.add(ctx.connection_id)
        if "slow" in cmd:
            self.slow_started.set()
            self.release.wait(10)
            return bson.encode({"ok": 1.0, "slow": True})
        return bson.encode({"ok": 1.0, "x": cmd.get("echo"), "db": db})


class CountingService(CommandService):
    def __init__(self, dispatcher: Any) -> None:
        super().__init__(dispatcher)
        self.streams = 0

    def Stream(self, request_iterator: Any, context: grpc.ServicerContext) -> Any:
        self.streams += 1
        return super().Stream(request_iterator, context)


class Node:
    def __init__(self, port: int = 0) -> None:
        self.dispatcher = EchoDispatcher()
        self.service = CountingService(self.dispatcher)
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
        helogale_pb2_grpc.add_CommandServicer_to_server(self.service, self.server)
        self.port = self.server.add_insecure_port(f"127.0.0.1:{port}")
        self.server.start()

    def stop(self) -> None:
        self.dispatcher.release.set()
        self.server.stop(grace=None).wait(5)
        self.service.close()


@pytest.fixture
def node() -> Iterator[Node]:
    n = Node()
    yield n
    n.stop()


def test_many_threads_share_one_stream(node: Node) -> None:
    channel = Channel(("127.0.0.1", node.port), timeout=10)
    results: dict[int, Any] = {}

    def worker(k: int) -> None:
        for j in range(20):
            reply = channel.run("db", {"echo": k * 100 + j})
            results[k * 100 + j] = (reply["x"], reply["db"])

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    channel.close()
    assert results == {k * 100 + j: (k * 100 + j, "db") for k in range(32) for j in range(20)}
    assert node.service.streams == 1


def test_a_slow_command_does_not_hold_up_the_stream(node: Node) -> None:
    channel = Channel(("127.0.0.1", node.port), timeout=10)
    slow: list[Any] = []
    t = threading.Thread(target=lambda: slow.append(channel.run("db", {"slow": 1})))
    t.start()
    assert node.dispatcher.slow_started.wait(10)
    assert channel.run("db", {"echo": "fast"})["x"] == "fast"
    assert not slow
    node.dispatcher.release.set()
    t.join(10)
    assert slow == [{"ok": 1.0, "slow": True}]
    channel.close()


def test_per_request_timeout(node: Node) -> None:
    channel = Channel(("127.0.0.1", node.port), timeout=0.3)
    with pytest.raises(NetworkTimeout):
        channel.run("db", {"slow": 1})
    assert channel.run("db", {"echo": 1}, timeout=10)["x"] == 1  # the stream is still fine
    channel.close()


def test_broken_stream_fails_pending_then_reconnects() -> None:
    first = Node()
    channel = Channel(("127.0.0.1", first.port), timeout=10)
    errors: list[BaseException] = []

    def slow() -> None:
        try:
            channel.run("db", {"slow": 1})
        except BaseException as exc:
            errors.append(exc)

    t = threading.Thread(target=slow)
    t.start()
    assert first.dispatcher.slow_started.wait(10)
    first.server.stop(grace=None).wait(5)
    t.join(10)
    assert len(errors) == 1 and isinstance(errors[0], AutoReconnect)
    second = Node(first.port)
    try:
        wait_for(lambda: _echo_ok(channel), timeout=10)
        assert second.service.streams >= 1
    finally:
        first.stop()
        second.stop()
        channel.close()


def _echo_ok(channel: Channel) -> bool:
    try:
        return channel.run("db", {"echo": 7})["x"] == 7
    except AutoReconnect:
        return False


def test_abandon_fails_pending_with_autoreconnect(node: Node) -> None:
    channel = Channel(("127.0.0.1", node.port), timeout=10)
    errors: list[BaseException] = []
    t = threading.Thread(target=lambda: _capture(channel, errors))
    t.start()
    assert node.dispatcher.slow_started.wait(10)
    channel.abandon()
    t.join(10)
    assert len(errors) == 1 and isinstance(errors[0], AutoReconnect)
    assert "abandoned" in str(errors[0])


def _capture(channel: Channel, errors: list[BaseException]) -> None:
    try:
        channel.run("db", {"slow": 1})
    except BaseException as exc:
        errors.append(exc)


def test_server_without_stream_gets_unary_calls() -> None:
    server = ScriptedServer()
    try:
        channel = Channel(server.address, timeout=10)
        for k in range(3):
            assert channel.run("db", {"ping": k}) == {"ok": 1.0}
        assert [c["ping"] for c in server.commands("ping")] == [0, 1, 2]
        channel.close()
    finally:
        server.stop()
