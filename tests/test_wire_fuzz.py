"""Fuzzing the wire-protocol listener in process: OP_MSG built section by section (flag bits,
checksums right, wrong or missing, unknown section kinds, document sequences, a missing or
second kind-0 section, malformed and deeply nested BSON), legacy OP_QUERY, garbage and lying
headers, several messages per connection, against a real node's dispatcher.

Per connection: every message the server must answer is answered (until a message it must
close on), every reply is well formed with no InternalError; afterwards no connection thread
is left, the byte budget is back to 0 and a new connection is served."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import bson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from node.commands.context import WIRE, RequestContext
from node.local_cluster import wait_until
from node.wire.labels import add_error_labels
from node.wire.protocol import HEADER, HEADER_SIZE, OP_MSG, OP_REPLY, encode_op_msg_request
from node.wire.server import WireServer
from tests.fuzz_commands import FUZZ_DB, commands
from tests.fuzz_wire_frames import ANSWER, CLOSE, EITHER, SILENT, Frame, frames, op_msgs
from tests.fuzzing import fuzz_settings
from tests.test_commands_fuzz import INTERNAL_ERROR, seeded

wire_commands = st.builds(lambda c, db: {**c, "$db": db}, commands(),
                          st.sampled_from([FUZZ_DB, FUZZ_DB, "admin", "", "a.b"]))
messages = st.one_of(op_msgs(wire_commands), op_msgs(wire_commands), frames(wire_commands))


@pytest.fixture(scope="module")
def wire() -> Iterator[WireServer]:
    d = seeded()

    def handle(db: str, command: dict[str, Any], info: Any) -> dict[str, Any]:
        ctx = RequestContext(transport=WIRE, connection_id=info.connection_id, peer=info.peer)
        return add_error_labels(d.is_retryable_write(command), d.run(db, command, ctx))

    server = WireServer(handle, stall_timeout_s=10).start()
    try:
        yield server
    finally:
        server.stop()


def _exchange(wire: WireServer, data: bytes) -> bytes:
    with socket.create_connection(wire.address, timeout=30) as sock:
        try:
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
        except OSError:  # the server closed already
            pass
        chunks = []
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except (ConnectionResetError, TimeoutError):
            pass
    return b"".join(chunks)


def _replies(data: bytes) -> list[dict[str, Any]]:
    out = []
    while data:
        length, _, _, op = HEADER.unpack_from(data)
        body = data[HEADER_SIZE:length]
        if op == OP_MSG:
            assert body[4] == 0
            out.append(bson.decode(body[5:]))
        else:
            assert op == OP_REPLY
            out.append(bson.decode(body[20:]))
        data = data[length:]
    return out


def _expected(msgs: list[Frame]) -> tuple[int, float]:
    """(fewest, most) replies the server may send for these messages on one connection."""
    low, high = 0, 0.0
    for _, status in msgs:
        if status == ANSWER:
            low += 1
            high += 1
        elif status == SILENT:
            continue
        elif status == CLOSE:
            return low, high
        else:
            assert status == EITHER
            return low, float("inf")
    return low, high


def _settled(wire: WireServer) -> None:
    wait_until(lambda: wire.connections == 0, 30, "every connection thread to end")
    assert wire.budget.held == 0


def _serves(wire: WireServer) -> None:
    reply = _replies(_exchange(wire, encode_op_msg_request({"ping": 1, "$db": "admin"}, 9)))
    assert reply == [{"ok": 1.0}]


@fuzz_settings(40)
@given(msgs=st.lists(messages, min_size=1, max_size=4))
def test_connections_answer_or_close_and_the_listener_keeps_serving(
    wire: WireServer, msgs: list[Frame]
) -> None:
    replies = _replies(_exchange(wire, b"".join(m for m, _ in msgs)))
    low, high = _expected(msgs)
    assert low <= len(replies) <= high, ([s for _, s in msgs], replies)
    for reply in replies:
        assert reply.get("ok") in (0.0, 1.0, 0, 1), reply
        if not reply["ok"]:
            assert isinstance(reply.get("errmsg"), str), reply
            assert reply.get("code") != INTERNAL_ERROR, reply
    _settled(wire)


def test_listener_serves_after_the_fuzz(wire: WireServer) -> None:
    _settled(wire)
    _serves(wire)
    assert wire.budget.peak > 0


@pytest.mark.slow
@fuzz_settings(300)
@given(msgs=st.lists(messages, min_size=1, max_size=6))
def test_wire_long(wire: WireServer, msgs: list[Frame]) -> None:
    test_connections_answer_or_close_and_the_listener_keeps_serving.hypothesis.inner_test(
        wire, msgs)
