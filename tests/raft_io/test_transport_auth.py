"""GrpcTransport with a cluster key: who may open a stream, what a stream may claim, and the
validation that still applies to authenticated messages."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import grpc
import pytest

from proto import raft_pb2
from raft.tcp_transport import TcpTransport
from raft.transport import GrpcTransport
from raft.types import Entry, Message, MessageType
from tests.raft_io import forge
from tests.raft_io.kv_cluster import wait_until
from tests.raft_io.test_transport import Inbox

KEY = b"c2VjcmV0LWtleS1vbmU="
OTHER_KEY = b"YW5vdGhlci1rZXktdHdv"
MT = MessageType


TRANSPORTS = {"grpc": GrpcTransport, "tcp": TcpTransport}
Transport = GrpcTransport | TcpTransport


@pytest.fixture(params=sorted(TRANSPORTS))
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def member(kind: str) -> Iterator[tuple[Transport, Inbox]]:
    inbox = Inbox()
    t = TRANSPORTS[kind](2, "127.0.0.1:0", {}, inbox, key=KEY)
    t.start()
    yield t, inbox
    t.stop()


def _addr(t: Transport) -> str:
    return f"127.0.0.1:{t.port}"


def _append_resp(frm: int = 1, to: int = 2, index: int = 7) -> Message:
    return Message(MT.APPEND_RESP, to=to, frm=frm, term=3, index=index)


def _heartbeat(frm: int = 1, to: int = 2, term: int = 3) -> Message:
    return Message(MT.HEARTBEAT, to=to, frm=frm, term=term, commit=5)


def test_unauthenticated_stream_is_refused_and_delivers_nothing(
        kind: str, member: tuple[Transport, Inbox], caplog: pytest.LogCaptureFixture) -> None:
    t, inbox = member
    with caplog.at_level(logging.WARNING, logger="raft.transport"):
        code = forge.send(_addr(t), [forge.batch(1, [_append_resp()])], kind=kind)
    assert code == grpc.StatusCode.UNAUTHENTICATED
    assert inbox.count() == 0
    assert t.receive_stats()["refused"] == 1
    lines = [r.getMessage() for r in caplog.records if "refused a stream" in r.getMessage()]
    assert len(lines) == 1 and "no credentials" in lines[0]
    assert KEY.decode() not in caplog.text


def test_wrong_key_is_refused(kind: str, member: tuple[Transport, Inbox]) -> None:
    t, inbox = member
    code = forge.send(_addr(t), [forge.batch(1, [_heartbeat()])],
                      forge.credentials(_addr(t), OTHER_KEY, 1, 2, kind=kind), kind=kind)
    assert code == grpc.StatusCode.UNAUTHENTICATED
    # a whole transport with the wrong key: its streams are refused, it counts and says so
    a = TRANSPORTS[kind](1, "127.0.0.1:0", {2: _addr(t)}, Inbox(), key=OTHER_KEY,
                      min_backoff=0.02, max_backoff=0.1)
    a.start()
    try:
        wait_until(lambda: a.stats()[2]["refused"] >= 2, 10, "the peer to refuse our streams")
        for _ in range(20):
            a.send([_heartbeat()])
    finally:
        a.stop()
    assert inbox.count() == 0


def test_right_key_delivers(kind: str, member: tuple[Transport, Inbox]) -> None:
    t, inbox = member
    code = forge.send(_addr(t), [forge.batch(1, [_heartbeat(), _append_resp()])],
                      forge.credentials(_addr(t), KEY, 1, 2, kind=kind), kind=kind)
    assert code == grpc.StatusCode.OK
    assert [m.type for m in inbox.msgs] == [MT.HEARTBEAT, MT.APPEND_RESP]
    # and the transport itself, both ways
    back = Inbox()
    a = TRANSPORTS[kind](1, "127.0.0.1:0", {2: _addr(t)}, back, key=KEY)
    a.start()
    t.add_peer(1, f"127.0.0.1:{a.port}")
    try:
        def delivered() -> bool:
            a.send([_heartbeat(term=9)])
            t.send([Message(MT.HEARTBEAT_RESP, to=1, frm=2, term=9)])
            return any(m.term == 9 for m in inbox.msgs) and back.count() > 0
        wait_until(delivered, 10, "messages both ways")
        assert a.stats()[2]["refused"] == 0 and t.receive_stats()["refused"] == 0
    finally:
        a.stop()


def test_spoofed_sender_is_refused(kind: str, member: tuple[Transport, Inbox]) -> None:
    """Member 1 holds the key, but may only speak as member 1, to member 2."""
    t, inbox = member
    addr = _addr(t)
    cases = [
        forge.batch(1, [_heartbeat(frm=3)]),            # message claims another sender
        forge.batch(3, [_heartbeat(frm=3)]),            # the batch claims another sender
        forge.batch(1, [_heartbeat(to=4)]),             # meant for another member
        forge.batch(1, [_heartbeat(), _append_resp(frm=3)]),  # one bad message: none delivered
    ]
    for b in cases:
        assert forge.send(addr, [b], forge.credentials(addr, KEY, 1, 2, kind=kind), kind=kind) \
            == grpc.StatusCode.UNAUTHENTICATED
    assert inbox.count() == 0
    # credentials made for member 3 (or claiming to be member 2 itself) do not open member 2
    assert forge.send(addr, [forge.batch(1, [_heartbeat()])],
                      forge.credentials(addr, KEY, 1, 3, kind=kind), kind=kind) == grpc.StatusCode.UNAUTHENTICATED
    assert forge.send(addr, [forge.batch(2, [_heartbeat(frm=2)])],
                      forge.credentials(addr, KEY, 2, 2, kind=kind), kind=kind) == grpc.StatusCode.UNAUTHENTICATED
    assert inbox.count() == 0


def test_replayed_proof_is_refused(kind: str, member: tuple[Transport, Inbox]) -> None:
    t, inbox = member
    addr = _addr(t)
    md = forge.credentials(addr, KEY, 1, 2, kind=kind)
    assert forge.send(addr, [forge.batch(1, [_heartbeat()])], md, kind=kind) == grpc.StatusCode.OK
    assert inbox.count() == 1
    assert forge.send(addr, [forge.batch(1, [_append_resp()])], md, kind=kind) \
        == grpc.StatusCode.UNAUTHENTICATED
    assert inbox.count() == 1


def test_authenticated_but_malformed_messages_are_dropped(
        kind: str, member: tuple[Transport, Inbox]) -> None:
    t, inbox = member
    addr = _addr(t)
    gapped = Message(MT.APPEND, to=2, frm=1, term=3, index=4, log_term=3,
                     entries=[Entry(3, 5), Entry(3, 7)])
    local_only = Message(MT.HUP, to=2, frm=1, term=3)
    term_zero = Message(MT.READ_INDEX, to=2, frm=1, term=0)
    unknown = raft_pb2.RaftMessage(type=99, to=2, term=3)
    setattr(unknown, "from", 1)
    good = _heartbeat()
    code = forge.send(addr, [forge.batch(1, [gapped, local_only, term_zero, unknown, good])],
                      forge.credentials(addr, KEY, 1, 2, kind=kind), kind=kind)
    assert code == grpc.StatusCode.OK
    assert [m.type for m in inbox.msgs] == [MT.HEARTBEAT]
    assert t.receive_stats()["invalid"] == 4


def test_without_a_key_the_port_is_open_and_says_so(kind: str, caplog: pytest.LogCaptureFixture) -> None:
    inbox = Inbox()
    t = TRANSPORTS[kind](2, "127.0.0.1:0", {}, inbox)
    with caplog.at_level(logging.WARNING, logger="raft.transport"):
        t.start()
    try:
        assert "without a cluster key" in caplog.text
        assert forge.send(_addr(t), [forge.batch(1, [_heartbeat()])], kind=kind) == grpc.StatusCode.OK
        assert inbox.count() == 1
        # still: a stream may not claim another sender than its batches say, nor a local type
        assert forge.send(_addr(t), [forge.batch(1, [_heartbeat(frm=3)])], kind=kind) \
            == grpc.StatusCode.UNAUTHENTICATED
        assert forge.send(_addr(t), [forge.batch(1, [Message(MT.HUP, to=2, frm=1, term=1)])], kind=kind) \
            == grpc.StatusCode.OK
        assert inbox.count() == 1
    finally:
        t.stop()
