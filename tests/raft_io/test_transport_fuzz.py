"""Fuzzing the authenticated Raft transport: random protobuf messages (any type number, any
uint64 field, entries of any type, snapshots with any configuration) on streams that hold a
valid proof. Exactly the messages that convert and pass ``raft.validate.check_message`` are
delivered, in order; a batch or message claiming another sender or receiver ends the stream
with UNAUTHENTICATED and delivers nothing of that batch; the transport keeps serving."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest
from hypothesis import given
from hypothesis import strategies as st

from proto import raft_pb2
from raft.tcp_transport import TcpTransport
from raft.transport import GrpcTransport, message_from_proto
from raft.types import NUMBER_LIMIT, Message, MessageType
from raft.validate import check_message
from tests.fuzzing import fuzz_settings
from tests.raft_io import forge
from tests.raft_io.test_transport import Inbox

KEY = b"ZnV6ei10aGUtdHJhbnNwb3J0"
ME, PEER = 2, 1
u64 = st.one_of(st.integers(0, 12), st.sampled_from([NUMBER_LIMIT - 1, NUMBER_LIMIT,
                                                     2**63, 2**64 - 1]))
ids = st.sampled_from([1, 1, 1, 1, 2, 3, 0])


@st.composite
def raft_messages(draw: st.DrawFn, frm: int) -> raft_pb2.RaftMessage:
    pm = raft_pb2.RaftMessage(
        type=draw(st.integers(0, 20)), to=draw(st.sampled_from([ME] * 6 + [1, 3, 0])),
        term=draw(u64), log_term=draw(u64), index=draw(u64), commit=draw(u64),
        reject=draw(st.booleans()), reject_hint=draw(u64), context=draw(st.binary(max_size=4)),
        offset=draw(st.one_of(st.integers(0, 10), st.just(2**41))), done=draw(st.booleans()))
    setattr(pm, "from", frm if draw(st.integers(0, 9)) else draw(ids))
    for _ in range(draw(st.integers(0, 3))):
        pm.entries.add(term=draw(u64), index=draw(u64), type=draw(st.integers(0, 3)),
                       data=draw(st.sampled_from([b"", b"x", b"garbage",
                                                  b'{"c":[[0,4]],"t":0,"x":""}'])))
    if draw(st.booleans()):
        pm.snapshot.CopyFrom(raft_pb2.RaftSnapshot(
            index=draw(u64), term=draw(u64), data=draw(st.binary(max_size=8)),
            conf_state=raft_pb2.RaftConfState(voters=draw(st.lists(u64, max_size=3)),
                                              learners=draw(st.lists(u64, max_size=2)))))
    return pm


@st.composite
def raft_batches(draw: st.DrawFn) -> raft_pb2.RaftBatch:
    frm = PEER if draw(st.integers(0, 7)) else draw(ids)
    b = raft_pb2.RaftBatch(messages=draw(st.lists(raft_messages(frm), max_size=5)))
    setattr(b, "from", frm)
    return b


def _deliverable(pm: raft_pb2.RaftMessage) -> Message | None:
    try:
        m = message_from_proto(pm)
    except ValueError:
        return None
    return m if check_message(m) is None else None


def _claims_ok(b: raft_pb2.RaftBatch) -> bool:
    return getattr(b, "from") == PEER and all(
        getattr(pm, "from") == PEER and pm.to == ME for pm in b.messages)


Transport = GrpcTransport | TcpTransport


@pytest.fixture(scope="module", params=["grpc", "tcp"])
def member(request: pytest.FixtureRequest) -> Iterator[tuple[Transport, Inbox, str]]:
    inbox = Inbox()
    kind = str(request.param)
    t = (GrpcTransport if kind == "grpc" else TcpTransport)(ME, "127.0.0.1:0", {}, inbox,
                                                             key=KEY)
    t.start()
    try:
        yield t, inbox, kind
    finally:
        t.stop()


@fuzz_settings(30)
@given(batches=st.lists(raft_batches(), min_size=1, max_size=3))
def test_exactly_the_valid_messages_are_delivered(member: tuple[Transport, Inbox, str],
                                                  batches: list[raft_pb2.RaftBatch]) -> None:
    t, inbox, kind = member
    with inbox.lock:
        inbox.msgs.clear()
    expected: list[Message] = []
    want = grpc.StatusCode.OK
    for b in batches:
        if not _claims_ok(b):
            want = grpc.StatusCode.UNAUTHENTICATED
            break
        expected += [m for m in map(_deliverable, b.messages) if m is not None]
    addr = f"127.0.0.1:{t.port}"
    code = forge.send(addr, batches, forge.credentials(addr, KEY, PEER, ME, kind), kind)
    assert code == want
    with inbox.lock:
        assert inbox.msgs == expected


def test_transport_serves_after_the_fuzz(member: tuple[Transport, Inbox, str]) -> None:
    t, inbox, kind = member
    with inbox.lock:
        inbox.msgs.clear()
    addr = f"127.0.0.1:{t.port}"
    hb = Message(MessageType.HEARTBEAT, to=ME, frm=PEER, term=3, commit=1)
    assert forge.send(addr, [forge.batch(PEER, [hb])],
                      forge.credentials(addr, KEY, PEER, ME, kind), kind) == grpc.StatusCode.OK
    assert [m.type for m in inbox.msgs] == [MessageType.HEARTBEAT]


@pytest.mark.slow
@fuzz_settings(300)
@given(batches=st.lists(raft_batches(), min_size=1, max_size=3))
def test_transport_long(member: tuple[Transport, Inbox, str],
                        batches: list[raft_pb2.RaftBatch]) -> None:
    test_exactly_the_valid_messages_are_delivered.hypothesis.inner_test(member, batches)
