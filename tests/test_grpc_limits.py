"""The gRPC command service's limits, in process over real gRPC: open streams cannot take the
workers unary calls need, and a client that never reads replies cannot grow the server."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import bson
import grpc
import pytest

from helogale.channel import Channel
from node.commands.context import RequestContext
from node.local_cluster import wait_until
from node.server.grpc_service import CommandService, make_server
from proto import helogale_pb2, helogale_pb2_grpc

WORKERS = 8


class PingDispatcher:
    """Answers every command with ``{ok: 1}`` (padded to ``reply_pad`` bytes), counting them."""

    def __init__(self, reply_pad: int = 0) -> None:
        self.ran = 0
        self.lock = threading.Lock()
        self.reply = bson.encode({"ok": 1.0, **({"pad": "r" * reply_pad} if reply_pad else {})})

    def run_bson(self, db: str, command: bytes, ctx: RequestContext) -> bytes:
        with self.lock:
            self.ran += 1
        return self.reply

    def runs_inline(self, name: str | None) -> bool:
        return False


class Server:
    def __init__(self, reply_pad: int = 0, **limits: Any) -> None:
        self.dispatcher = PingDispatcher(reply_pad)
        self.server = make_server(WORKERS)
        self.service = CommandService(self.dispatcher, **limits)
        helogale_pb2_grpc.add_CommandServicer_to_server(self.service, self.server)
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.address = f"127.0.0.1:{self.port}"
        self.server.start()

    def stop(self) -> None:
        self.server.stop(grace=None).wait(5)
        self.service.close()


def _command(request_id: int, pad: int = 0) -> Any:
    cmd = {"ping": 1, "pad": "x" * pad} if pad else {"ping": 1}
    return helogale_pb2.StreamCommand(request_id=request_id, db="admin", command=bson.encode(cmd))


class IdleStream:
    """A stream that sends one ping, reads its reply, then stays open doing nothing."""

    def __init__(self, channel: grpc.Channel) -> None:
        self.release = threading.Event()
        stub = helogale_pb2_grpc.CommandStub(channel)
        self.call = stub.Stream(self._requests(), timeout=60)

    def _requests(self) -> Iterator[Any]:
        yield helogale_pb2.CommandBatch(commands=[_command(1)])
        self.release.wait(30)

    def first_reply(self) -> Any:
        return next(self.call)


@pytest.fixture
def server() -> Iterator[Server]:
    s = Server(max_streams=WORKERS - 2)
    yield s
    s.stop()


def _hello(channel: grpc.Channel, timeout: float) -> dict[str, Any]:
    stub = helogale_pb2_grpc.CommandStub(channel)
    raw = stub.Run(helogale_pb2.CommandRequest(db="admin", command=bson.encode({"hello": 1})),
                   timeout=timeout)
    return bson.decode(raw.reply)


def test_idle_streams_cannot_starve_unary_calls(server: Server) -> None:
    """Each open stream holds a worker of the sync gRPC server: with as many idle streams as
    workers, a unary ``hello`` (the client's topology monitor) used to wait forever."""
    channel = grpc.insecure_channel(server.address)
    streams: list[IdleStream] = []
    refused = 0
    try:
        for _ in range(WORKERS):
            stream = IdleStream(channel)
            streams.append(stream)
            try:
                batch = stream.first_reply()
                assert batch.replies[0].request_id == 1
            except grpc.RpcError as exc:
                assert exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
                refused += 1
        assert refused == 2 and server.service.open_streams == WORKERS - 2
        assert server.dispatcher.ran == WORKERS - 2  # nothing ran on a refused stream
        for _ in range(3):
            assert _hello(channel, timeout=5)["ok"] == 1.0
        # the helogale client goes unary while streams are refused, and its commands run
        client = Channel(("127.0.0.1", server.port), timeout=5)
        try:
            assert client.run("admin", {"ping": 1}) == {"ok": 1.0}
            assert client.run("admin", {"ping": 1}) == {"ok": 1.0}
        finally:
            client.close()
    finally:
        for stream in streams:
            stream.release.set()
            stream.call.cancel()
        channel.close()
    wait_until(lambda: server.service.open_streams == 0, 10, "the streams to be released")


def test_a_client_that_never_reads_replies_is_pushed_back() -> None:
    """It sends commands but reads no reply: the server stops reading that stream at
    ``max_in_flight`` commands (so gRPC flow control stops the client) instead of queueing
    every reply in memory."""
    server = Server(reply_pad=10_000, max_in_flight=200)
    channel = grpc.insecure_channel(server.address)
    total = 5_000  # 50 MB of commands, 50 MB of replies
    sent = {"n": 0}

    def requests() -> Iterator[Any]:
        for start in range(0, total, 100):
            sent["n"] = start + 100
            yield helogale_pb2.CommandBatch(
                commands=[_command(i, pad=10_000) for i in range(start, start + 100)])

    call = helogale_pb2_grpc.CommandStub(channel).Stream(requests(), timeout=60)  # not read
    try:
        wait_until(lambda: server.service.waiting_readers == 1, 20,
                   "the stream's reader to stop for backpressure")
        ran = server.dispatcher.ran
        assert ran <= 200 + 1000  # + replies gRPC took into the flow-control window
        assert server.service.peak_in_flight <= 200 + 100
        assert sent["n"] < total  # the client was stopped by flow control
        # it stays stopped: nothing more is read while the client reads nothing
        assert not _eventually(lambda: server.dispatcher.ran > ran, 0.5)
        # reading the replies lets it go on, to the end
        got = 0
        for batch in call:
            got += len(batch.replies)
            if got == total:
                break
        assert got == total and server.dispatcher.ran == total
        assert server.service.peak_in_flight <= 200 + 100
    finally:
        call.cancel()
        channel.close()
        server.stop()


def _eventually(predicate: Any, seconds: float) -> bool:
    try:
        wait_until(predicate, seconds, "a change")
    except TimeoutError:
        return False
    return True
