"""Fuzzing the gRPC command service (in process, over real gRPC) with hostile commands and
malformed BSON: bytes flipped, truncated, with lengths that lie, every element type byte,
invalid UTF-8, nesting 3,000 deep. Through ``Run`` and through ``Stream``: every request gets
exactly one well-formed reply (no InternalError), and the service keeps answering."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import bson
import grpc
import pytest
from hypothesis import given
from hypothesis import strategies as st

from node.server.grpc_service import CommandService, make_server
from proto import helogale_pb2, helogale_pb2_grpc
from tests.fuzz_commands import FUZZ_DB, commands
from tests.fuzzing import deep_bson, fuzz_settings, malformed_bson
from tests.test_commands_fuzz import INTERNAL_ERROR, seeded

dbs = st.one_of(st.just(FUZZ_DB), st.just("admin"),
                st.sampled_from(["", "a.b", "x" * 100, "$", "é", "a b"]))


@st.composite
def payloads(draw: st.DrawFn) -> bytes:
    """A command's BSON bytes: a hostile but well-formed command, or malformed BSON."""
    if draw(st.booleans()):
        try:
            return bson.encode(draw(commands()))
        except Exception:
            return b"\x05\x00\x00\x00\x00"
    return draw(malformed_bson())


class _Node:
    def __init__(self) -> None:
        self.dispatcher = seeded()
        self.server = make_server(8)
        self.service = CommandService(self.dispatcher)
        helogale_pb2_grpc.add_CommandServicer_to_server(self.service, self.server)
        port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()
        self.channel = grpc.insecure_channel(f"127.0.0.1:{port}", options=[
            ("grpc.max_receive_message_length", 64 << 20),
            ("grpc.max_send_message_length", 64 << 20)])
        self.stub = helogale_pb2_grpc.CommandStub(self.channel)

    def stop(self) -> None:
        self.channel.close()
        self.server.stop(grace=None).wait(5)
        self.service.close()


@pytest.fixture(scope="module")
def node() -> Iterator[_Node]:
    n = _Node()
    try:
        yield n
    finally:
        n.stop()


def _check(raw: bytes) -> dict[str, Any]:
    reply = bson.decode(raw)
    assert reply.get("ok") in (0.0, 1.0), reply
    if reply["ok"] == 0.0:
        assert isinstance(reply["code"], int) and isinstance(reply["errmsg"], str), reply
        assert reply["code"] != INTERNAL_ERROR, reply["errmsg"]
    for err in reply.get("writeErrors", []):
        assert err["code"] != INTERNAL_ERROR, err
    return reply


def _ping(node: _Node) -> None:
    raw = node.stub.Run(helogale_pb2.CommandRequest(db="admin", command=bson.encode({"ping": 1})),
                        timeout=60).reply
    assert bson.decode(raw) == {"ok": 1.0}


@fuzz_settings(40)
@given(db=dbs, payload=payloads())
def test_run_answers_every_request_once(node: _Node, db: str, payload: bytes) -> None:
    reply = node.stub.Run(helogale_pb2.CommandRequest(db=db, command=payload), timeout=60)
    _check(reply.reply)


@fuzz_settings(15)
@given(batches=st.lists(st.lists(st.tuples(dbs, payloads()), min_size=1, max_size=5),
                        min_size=1, max_size=3))
def test_stream_answers_every_request_exactly_once(node: _Node,
                                                   batches: list[list[tuple[str, bytes]]]
                                                   ) -> None:
    sent: list[int] = []
    out: list[helogale_pb2.CommandBatch] = []
    rid = 0
    for batch in batches:
        cmds = []
        for db, payload in batch:
            rid += 1
            sent.append(rid)
            cmds.append(helogale_pb2.StreamCommand(request_id=rid, db=db, command=payload))
        out.append(helogale_pb2.CommandBatch(commands=cmds))
    got: list[int] = []
    call = node.stub.Stream(iter(out), timeout=60)
    for reply_batch in call:
        for r in reply_batch.replies:
            got.append(r.request_id)
            _check(r.reply)
    assert sorted(got) == sent  # the stream ended after answering every request once


@pytest.mark.parametrize("depth", [199, 200, 201, 2000, 3000])
def test_deep_bson_gets_an_error_reply_on_run_and_stream(node: _Node, depth: int) -> None:
    raw = deep_bson(depth)
    doc = {"find": "c", "filter": {}}
    cmd = bson.encode(doc)[:-1] + b"\x03f\x00" + raw + b"\x00"  # {find, filter, f: deep}
    cmd = len(cmd).to_bytes(4, "little") + cmd[4:]
    for payload in (raw, cmd):
        reply = _check(node.stub.Run(helogale_pb2.CommandRequest(db=FUZZ_DB, command=payload),
                                     timeout=60).reply)
        if depth > 200:
            assert reply["ok"] == 0.0 and reply["code"] == 15, reply
        (batch,) = list(node.stub.Stream(iter([helogale_pb2.CommandBatch(commands=[
            helogale_pb2.StreamCommand(request_id=7, db=FUZZ_DB, command=payload)])]),
            timeout=60))
        assert [r.request_id for r in batch.replies] == [7]
        assert bson.decode(batch.replies[0].reply)["ok"] == reply["ok"]
    _ping(node)


def test_service_still_answers_after_the_fuzz(node: _Node) -> None:
    _ping(node)


@pytest.mark.slow
@fuzz_settings(300)
@given(db=dbs, payload=payloads())
def test_run_long(node: _Node, db: str, payload: bytes) -> None:
    test_run_answers_every_request_once.hypothesis.inner_test(node, db, payload)
