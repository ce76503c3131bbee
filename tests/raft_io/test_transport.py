"""GrpcTransport and TcpTransport: message conversion, batching over one stream, down peers,
reconnection."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import pytest

from node.local_cluster import wait_until
from raft.tcp_transport import TcpTransport
from raft.transport import GrpcTransport, message_from_proto, message_to_proto
from raft.types import (
    ConfState,
    Entry,
    EntryType,
    Message,
    MessageType,
    Snapshot,
    SnapshotMeta,
)

TRANSPORTS = {"grpc": GrpcTransport, "tcp": TcpTransport}
each_transport = pytest.mark.parametrize("kind", sorted(TRANSPORTS))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Inbox:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.msgs: list[Message] = []
        self.batches = 0

    def __call__(self, msgs: list[Message]) -> None:
        with self.lock:
            self.msgs.extend(msgs)
            self.batches += 1

    def count(self) -> int:
        with self.lock:
            return len(self.msgs)


def test_message_roundtrip_all_fields() -> None:
    snap = Snapshot(SnapshotMeta(40, 3, ConfState(frozenset({1, 2}), frozenset({5}),
                                                   frozenset({1, 3}), frozenset({4}), True)), b"chunk")
    m = Message(MessageType.SNAPSHOT, to=2, frm=1, term=3, log_term=2, index=40,
                entries=[Entry(3, 41, EntryType.CONF_CHANGE, b"cc"), Entry(3, 42, EntryType.NORMAL, b"")],
                commit=39, reject=True, reject_hint=17, context=b"ctx", snapshot=snap, offset=9, done=True)
    back = message_from_proto(message_to_proto(m))
    assert back.type is MessageType.SNAPSHOT and back.entries[0].type is EntryType.CONF_CHANGE
    back.entries = tuple(back.entries)
    m.entries = tuple(m.entries)
    assert back == m
    plain = Message(MessageType.HEARTBEAT, to=3, frm=1, term=7, commit=5)
    assert message_from_proto(message_to_proto(plain)) == Message(
        MessageType.HEARTBEAT, to=3, frm=1, term=7, commit=5, entries=[])


@each_transport
def test_messages_flow_in_batches(kind: str) -> None:
    inbox = Inbox()
    b = TRANSPORTS[kind](2, "127.0.0.1:0", {}, inbox)
    b.start()
    n = 5000
    # A queue that holds the whole burst: on a loaded machine the sender thread may not run
    # until every message is queued, and overflow (dropping, tested below) is not the point.
    bound = {"max_queue": 2 * n} if kind == "grpc" else {}
    a = TRANSPORTS[kind](1, "127.0.0.1:0", {2: f"127.0.0.1:{b.port}"}, Inbox(), **bound)
    a.start()
    try:
        wait_until(lambda: a.connected(2), 10.0)
        for i in range(0, n, 50):
            a.send([Message(MessageType.APPEND, to=2, frm=1, term=1, index=j,
                            entries=[Entry(1, j + 1, EntryType.NORMAL, b"x" * 200)])
                    for j in range(i, i + 50)])
        wait_until(lambda: inbox.count() == n, 10.0)
        assert [m.index for m in inbox.msgs] == list(range(n))  # one stream: order kept
        assert inbox.batches < n / 5  # many messages per gRPC message
        assert all(m.frm == 1 and m.entries[0].data == b"x" * 200 for m in inbox.msgs)
    finally:
        a.stop()
        b.stop()


@each_transport
def test_down_peer_costs_nothing_and_reconnects(kind: str) -> None:
    inbox = Inbox()
    port = free_port()
    a = TRANSPORTS[kind](1, "127.0.0.1:0", {2: f"127.0.0.1:{port}"}, Inbox(), min_backoff=0.02,
                      max_backoff=0.1)
    a.start()
    try:
        t0 = time.monotonic()
        for _ in range(2000):
            a.send([Message(MessageType.HEARTBEAT, to=2, frm=1, term=1)])
        assert time.monotonic() - t0 < 1.0  # nothing waits on the dead peer
        # Dropped on the spot, or lost with a stream that failed: never held for later.
        wait_until(lambda: a.stats()[2]["dropped"] + a.stats()[2]["sent"] == 2000, 10.0)

        def delivered(term: int) -> bool:  # resend until it arrives, as Raft does
            a.send([Message(MessageType.HEARTBEAT, to=2, frm=1, term=term)])
            return any(m.term == term for m in inbox.msgs)

        b = TRANSPORTS[kind](2, f"127.0.0.1:{port}", {}, inbox)
        b.start()
        try:
            wait_until(lambda: delivered(2), 10.0)
            assert all(m.term == 2 for m in inbox.msgs)  # none of the dropped term-1 ones
        finally:
            b.stop()
        b2 = TRANSPORTS[kind](2, f"127.0.0.1:{port}", {}, inbox)  # the peer restarts
        b2.start()
        try:
            wait_until(lambda: delivered(3), 10.0)
        finally:
            b2.stop()
    finally:
        a.stop()


@each_transport
def test_local_messages_are_delivered_directly(kind: str) -> None:
    inbox = Inbox()
    a = TRANSPORTS[kind](1, "127.0.0.1:0", {}, inbox)
    a.send([Message(MessageType.HEARTBEAT, to=1, frm=1, term=1),
            Message(MessageType.HEARTBEAT, to=5, frm=1, term=1)])  # unknown peer: dropped
    assert inbox.count() == 1
    a.stop()


@each_transport
def test_tls_is_mutual(kind: str, tmp_path: Path) -> None:
    """With TLS both ways messages flow; a member whose certificate another CA signed cannot
    deliver anything."""
    from node.security.certs import make_pki
    from raft.tls import REQUIRE, TLSSettings

    pki = make_pki(str(tmp_path / "pki"))
    rogue = make_pki(str(tmp_path / "rogue"), ca_name="another CA")
    tls = TLSSettings(REQUIRE, pki.server_file, pki.ca_file)
    # the rogue trusts our CA (so it could verify us) but holds a certificate we never signed
    rogue_tls = TLSSettings(REQUIRE, rogue.server_file, pki.ca_file)
    inbox = Inbox()
    b = TRANSPORTS[kind](2, "127.0.0.1:0", {}, inbox, tls=tls)
    b.start()
    a = TRANSPORTS[kind](1, "127.0.0.1:0", {2: f"127.0.0.1:{b.port}"}, Inbox(), tls=tls)
    r = TRANSPORTS[kind](3, "127.0.0.1:0", {2: f"127.0.0.1:{b.port}"}, Inbox(), tls=rogue_tls,
                         min_backoff=0.02, max_backoff=0.1)
    a.start()
    r.start()
    try:
        def delivered() -> bool:
            a.send([Message(MessageType.HEARTBEAT, to=2, frm=1, term=4)])
            return inbox.count() > 0
        wait_until(delivered, 10.0)
        for _ in range(50):
            r.send([Message(MessageType.HEARTBEAT, to=2, frm=3, term=4)])
            time.sleep(0.01)
        assert all(m.frm == 1 for m in inbox.msgs)
    finally:
        a.stop()
        r.stop()
        b.stop()


def test_tcp_tells_when_a_members_connection_ends() -> None:
    """The receiving side names the member whose connection ended (the raft loop then ends
    its lease on that leader: RawNode.leader_unreachable); its own stop tells nothing."""
    lost: list[int] = []
    inbox = Inbox()
    b = TcpTransport(2, "127.0.0.1:0", {}, inbox, on_peer_lost=lost.append)
    b.start()
    a = TcpTransport(1, "127.0.0.1:0", {2: f"127.0.0.1:{b.port}"}, Inbox())
    a.start()
    try:
        def delivered() -> bool:
            a.send([Message(MessageType.HEARTBEAT, to=2, frm=1, term=4)])
            return inbox.count() > 0
        wait_until(delivered, 10.0)
        assert lost == []
        a.stop()  # as the leader's process dying closes its connections
        wait_until(lambda: lost == [1], 10.0)
    finally:
        a.stop()
        b.stop()
    assert lost == [1]
