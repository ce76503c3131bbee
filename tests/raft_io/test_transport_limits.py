"""TcpTransport under hostile or unlucky peers: slow and silent handshakes, connection floods,
length fields that lie, frames that stop half-way, proofs carried to another connection,
listeners that answer nonsense, and peers that stop reading what we send. None of them may
hang the member, hold a thread or memory without bound, or keep its real peers out."""

from __future__ import annotations

import contextlib
import json
import select
import socket
import threading
import time
import tracemalloc
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from raft.auth import client_metadata
from raft.tcp_transport import (
    _LEN,
    MAGIC,
    MAX_FRAME,
    MAX_HANDSHAKE,
    TcpTransport,
    _frame,
    _read_frame,
)
from raft.types import Entry, EntryType, Message, MessageType
from tests.raft_io import forge
from tests.raft_io.kv_cluster import wait_until
from tests.raft_io.test_transport import Inbox

KEY = b"bGltaXRzLW9mLXRoZS10Y3AtcG9ydA=="
MT = MessageType


def _heartbeat(frm: int = 1, to: int = 2, term: int = 3) -> Message:
    return Message(MT.HEARTBEAT, to=to, frm=frm, term=term, commit=1)


def _recv_threads(node_id: int) -> int:
    return sum(1 for t in threading.enumerate() if t.name == f"raft-recv-{node_id}")


def _closed_by_peer(sock: socket.socket, wait: float) -> bool:
    """True once the other end closed ``sock`` (EOF or reset); reads and discards data."""
    if not select.select([sock], [], [], wait)[0]:
        return False
    try:
        return sock.recv(1 << 16) == b""
    except OSError:
        return True


def _trickle_until_closed(sock: socket.socket, data: bytes) -> bool:
    """Send ``data`` a byte every 0.1 s; True once the other end closed the connection."""
    for i in range(len(data)):
        try:
            sock.send(data[i:i + 1])
        except OSError:
            return True
        if _closed_by_peer(sock, 0.1):
            return True
    return False


def _open(t: TcpTransport) -> socket.socket:
    return socket.create_connection(("127.0.0.1", t.port), timeout=10)


def _greet(sock: socket.socket) -> tuple[Any, dict[str, Any]]:
    """MAGIC, then the member's hello: (a reader, the hello)."""
    sock.sendall(MAGIC)
    f = sock.makefile("rb")
    return f, json.loads(_read_frame(f, MAX_HANDSHAKE))


@pytest.fixture
def member() -> Iterator[tuple[TcpTransport, Inbox]]:
    inbox = Inbox()
    t = TcpTransport(2, "127.0.0.1:0", {}, inbox, key=KEY, challenge_timeout=0.5,
                     max_handshakes=16, frame_stall=0.5)
    t.start()
    yield t, inbox
    t.stop()


# ---------------------------------------------------------------------- receiving side

def _wait_delivered(a: TcpTransport, inbox: Inbox, term: int, what: str) -> None:
    """Send heartbeats of ``term`` from ``a`` until one reaches ``inbox``."""
    def delivered() -> bool:
        a.send([_heartbeat(term=term)])
        return any(m.term == term for m in inbox.msgs)
    wait_until(delivered, 20, what)

def test_a_slow_loris_handshake_is_ended_at_its_deadline(
        member: tuple[TcpTransport, Inbox]) -> None:
    """One byte at a time, each well inside the socket timeout: the handshake as a whole
    still has to finish within ``challenge_timeout`` (it used to hold a thread for as long
    as the bytes kept trickling)."""
    t, _ = member
    sock = _open(t)
    trickle = MAGIC + _LEN.pack(MAX_HANDSHAKE - 1) + b"{" * 200
    try:  # 0.1 s a byte: about 21 s in all, 0.5 s allowed
        closed = _trickle_until_closed(sock, trickle)
    finally:
        sock.close()
    assert closed  # by the deadline, or by the per-read timeout if this machine stalled


def test_a_silent_connection_flood_is_capped_and_members_still_get_in(
        member: tuple[TcpTransport, Inbox]) -> None:
    """Hundreds of connections that never send a byte: at most ``max_handshakes`` of them
    hold a thread (a newcomer crowds out the oldest), and a real member, arriving while the
    flood goes on, is served."""
    t, inbox = member
    t.challenge_timeout = 30.0  # the deadline must not be what cleans the flood up
    flood = [_open(t) for _ in range(300)]
    try:
        wait_until(lambda: _recv_threads(2) > 40 or t.receive_stats().get("shed", 0) >= 284,
                   20, "the member to take the flood")
        assert _recv_threads(2) <= 16 + 2
        stop = threading.Event()
        recent: deque[socket.socket] = deque()

        def keep_flooding() -> None:
            while not stop.is_set():
                with contextlib.suppress(OSError):
                    recent.append(_open(t))
                while len(recent) > 64:
                    recent.popleft().close()
                time.sleep(0.002)

        flooder = threading.Thread(target=keep_flooding, daemon=True)
        flooder.start()
        a = TcpTransport(1, "127.0.0.1:0", {2: f"127.0.0.1:{t.port}"}, Inbox(), key=KEY,
                         min_backoff=0.02, max_backoff=0.1)
        a.start()
        try:
            _wait_delivered(a, inbox, 7, "a real member's heartbeat through the flood")
        finally:
            stop.set()
            flooder.join()
            a.stop()
            for s in recent:
                s.close()
        assert _recv_threads(2) <= 16 + 2
    finally:
        for s in flood:
            s.close()


def test_the_connection_cap_closes_newcomers_on_arrival() -> None:
    """Without a key anyone completes the handshake; the total of inbound connections (and so
    of reader threads) is still capped."""
    t = TcpTransport(2, "127.0.0.1:0", {}, Inbox(), max_connections=8)
    t.start()
    socks = []
    try:
        for _ in range(8):
            s = _open(t)
            _greet(s)
            socks.append(s)
        late = _open(t)
        socks.append(late)
        with contextlib.suppress(OSError):
            late.sendall(MAGIC)
        assert _closed_by_peer(late, 10)  # and never greeted
        assert t.receive_stats()["shed"] == 1
        assert _recv_threads(2) <= 8
    finally:
        for s in socks:
            s.close()
        t.stop()


class _FlakyListener:
    """The listening socket, failing ``accept`` like a process out of descriptors."""

    def __init__(self, sock: socket.socket, failures: int) -> None:
        self.sock = sock
        self.failures = failures

    def accept(self) -> tuple[socket.socket, Any]:
        if self.failures:
            self.failures -= 1
            raise OSError(24, "Too many open files")
        return self.sock.accept()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.sock, name)


def test_accepting_survives_running_out_of_descriptors() -> None:
    """EMFILE from ``accept`` used to end the accept thread: the member never took another
    connection."""
    inbox = Inbox()
    t = TcpTransport(2, "127.0.0.1:0", {}, inbox)
    t._receiver.sock = _FlakyListener(t._receiver.sock, 3)  # type: ignore[assignment]
    t.start()
    a = TcpTransport(1, "127.0.0.1:0", {2: f"127.0.0.1:{t.port}"}, Inbox(), min_backoff=0.02,
                     max_backoff=0.1)
    a.start()
    try:
        def delivered() -> bool:
            a.send([_heartbeat()])
            return inbox.count() > 0
        wait_until(delivered, 20, "a connection after the accept failures")
    finally:
        a.stop()
        t.stop()


def test_a_huge_length_field_allocates_nothing_up_front() -> None:
    """A frame header claiming (almost) MAX_FRAME bytes followed by a few: the member's memory
    grows with what arrives, not with what the header claims. Beyond MAX_FRAME (2^32 - 1 too)
    the connection is closed; an empty frame delivers nothing."""
    inbox = Inbox()
    t = TcpTransport(2, "127.0.0.1:0", {}, inbox)
    t.start()
    tracemalloc.start()
    try:
        s = _open(t)
        f, _ = _greet(s)
        s.sendall(_frame({"metadata": []}))
        assert json.loads(_read_frame(f, MAX_HANDSHAKE)) == {"ok": True}
        tracemalloc.reset_peak()
        s.sendall(_LEN.pack(MAX_FRAME - 1) + b"\x08" * 100)
        s.shutdown(socket.SHUT_WR)
        assert _closed_by_peer(s, 10)
        s.close()
        wait_until(lambda: not t._receiver._conns, 10, "the member to drop the connection")
        assert tracemalloc.get_traced_memory()[1] < 16 << 20
        for length in (MAX_FRAME + 1, 2**32 - 1):
            s = _open(t)
            f, _ = _greet(s)
            s.sendall(_frame({"metadata": []}))
            _read_frame(f, MAX_HANDSHAKE)
            s.sendall(_LEN.pack(length))
            assert _closed_by_peer(s, 10)
            s.close()
    finally:
        tracemalloc.stop()
        t.stop()
    assert inbox.count() == 0


def test_a_frame_that_stops_half_way_is_closed(member: tuple[TcpTransport, Inbox]) -> None:
    t, inbox = member
    s = _open(t)
    try:
        f, hello = _greet(s)
        md = client_metadata(KEY, bytes.fromhex(hello["nonce"]), 1, 2)
        s.sendall(_frame({"metadata": md}))
        assert json.loads(_read_frame(f, MAX_HANDSHAKE)) == {"ok": True}
        s.sendall(_LEN.pack(1000) + b"\x0a" * 10)  # and then nothing, connection kept open
        assert _closed_by_peer(s, 20)
    finally:
        s.close()
    assert t.receive_stats()["shed"] >= 1 and inbox.count() == 0


def test_a_proof_is_good_only_on_the_connection_that_was_challenged(
        member: tuple[TcpTransport, Inbox]) -> None:
    """A proof seen on its way to one connection and presented on another is refused, and
    does not spend the first connection's nonce."""
    t, inbox = member
    t.challenge_timeout = 10.0
    first, second = _open(t), _open(t)
    try:
        f1, hello1 = _greet(first)
        f2, _ = _greet(second)
        md = client_metadata(KEY, bytes.fromhex(hello1["nonce"]), 1, 2)
        second.sendall(_frame({"metadata": md}))
        verdict = json.loads(_read_frame(f2, MAX_HANDSHAKE))
        assert verdict["ok"] is False and "another connection" in verdict["error"]
        first.sendall(_frame({"metadata": md}))
        assert json.loads(_read_frame(f1, MAX_HANDSHAKE)) == {"ok": True}
    finally:
        first.close()
        second.close()
    assert inbox.count() == 0


def test_garbage_after_the_handshake_and_a_close_storm_leave_nothing_behind(
        member: tuple[TcpTransport, Inbox]) -> None:
    """Bytes that are no batch after a valid handshake end that connection (nothing
    delivered); a member that connects, authenticates and hangs up, hundreds of times, leaves
    no thread or connection behind; the member then serves its real peer."""
    t, inbox = member
    t.challenge_timeout = 10.0

    def authenticated() -> socket.socket:
        s = _open(t)
        f, hello = _greet(s)
        s.sendall(_frame({"metadata": client_metadata(KEY, bytes.fromhex(hello["nonce"]), 1,
                                                     2)}))
        assert json.loads(_read_frame(f, MAX_HANDSHAKE)) == {"ok": True}
        f.close()
        return s

    s = authenticated()
    s.sendall(_LEN.pack(6) + b"\xff" * 6)  # not a protobuf
    verdict = json.loads(_read_frame(s.makefile("rb"), MAX_HANDSHAKE))
    assert verdict == {"ok": False, "error": "undecodable batch"}
    assert _closed_by_peer(s, 10)
    s.close()
    refused = t.receive_stats()["refused"]
    assert refused == 1
    for _ in range(200):
        authenticated().close()
    wait_until(lambda: not t._receiver._conns and _recv_threads(2) == 0, 20,
               "every connection of the storm to be gone")
    a = TcpTransport(1, "127.0.0.1:0", {2: f"127.0.0.1:{t.port}"}, Inbox(), key=KEY)
    a.start()
    try:
        _wait_delivered(a, inbox, 8, "the real member's heartbeat")
    finally:
        a.stop()
    assert all(m.term == 8 for m in inbox.msgs)
    assert t.receive_stats()["refused"] == refused


# ---------------------------------------------------------------------- sending side
class _FakePeer:
    """A listener at a peer's address that answers each connection with ``reply(conn)``."""

    def __init__(self, reply: Any) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.address = f"127.0.0.1:{self.sock.getsockname()[1]}"
        self.accepted = 0
        self.conns: list[socket.socket] = []
        self.reply = reply
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            self.conns.append(conn)
            with contextlib.suppress(OSError):
                self.reply(conn)

    def close(self) -> None:
        with_suppress = [self.sock, *self.conns]
        for s in with_suppress:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()
        self.thread.join(5)


def _answer(hello: object) -> Any:
    def reply(conn: socket.socket) -> None:
        f = conn.makefile("rb")
        f.read(len(MAGIC))
        conn.sendall(_frame(hello))
        _read_frame(f, MAX_HANDSHAKE)
        conn.sendall(_frame({"ok": True}))
        conn.close()
    return reply


@pytest.mark.parametrize("hello", [[], {"nonce": 5}, "hi", {"node_id": 2, "nonce": "zz"}])
def test_a_garbled_greeting_never_ends_the_sender(hello: object) -> None:
    """Whatever a listener at a peer's address says, the link keeps (re)connecting: its
    thread used to die on a greeting that was JSON but not the expected object."""
    peer = _FakePeer(_answer(hello))
    a = TcpTransport(1, "127.0.0.1:0", {2: peer.address}, Inbox(), min_backoff=0.01,
                     max_backoff=0.02)
    a.start()
    try:
        wait_until(lambda: peer.accepted >= 3, 20, "the link to keep reconnecting")
        assert not a.connected(2)
    finally:
        a.stop()
        peer.close()


def test_a_listener_that_is_another_member_is_not_taken_for_the_peer() -> None:
    """An operator's swapped addresses: the member answering says it is 3, not 2; the link
    refuses it (and says so) rather than stream member 2's messages into it."""
    peer = _FakePeer(_answer({"node_id": 3, "nonce": ""}))
    a = TcpTransport(1, "127.0.0.1:0", {2: peer.address}, Inbox(), min_backoff=0.01,
                     max_backoff=0.02)
    a.start()
    try:
        wait_until(lambda: a.stats()[2]["refused"] >= 2, 20, "the link to refuse member 3")
        assert not a.connected(2)
    finally:
        a.stop()
        peer.close()


def test_a_peer_that_stops_reading_holds_at_most_the_queue_limit() -> None:
    """The raft loop writes into the socket itself and never waits; what the kernel does not
    take is queued up to ``max_queue_bytes``, then dropped. When the peer reads again, the
    writer sends the queue without copying it whole (it used to join the full queue into one
    more buffer of the same size while the queue refilled: three times the limit)."""
    limit = 8 << 20
    reading = threading.Event()
    received = [0]

    def handshake_then_stall(conn: socket.socket) -> None:
        _answer({"node_id": 2, "nonce": ""})(_Keep(conn))

        def drain() -> None:
            reading.wait()
            while True:
                try:
                    data = conn.recv(1 << 20)
                except OSError:
                    return
                if not data:
                    return
                received[0] += len(data)
        threading.Thread(target=drain, daemon=True).start()

    peer = _FakePeer(handshake_then_stall)
    a = TcpTransport(1, "127.0.0.1:0", {2: peer.address}, Inbox(), max_queue_bytes=limit)
    a.start()
    tracemalloc.start()
    try:
        wait_until(lambda: a.connected(2), 20, "the link up")
        blob = b"x" * (256 << 10)
        i = 0
        while a.stats()[2]["dropped"] == 0:  # never blocks: fills the kernel, then the queue
            a.send([Message(MT.APPEND, to=2, frm=1, term=1, index=i,
                            entries=[Entry(1, i + 1, EntryType.NORMAL, blob)])])
            i += 1
            assert i < 10_000
        link = a._links[2]
        assert link.pending_bytes <= limit
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        reading.set()
        wait_until(lambda: not link.pending and not link.writing, 20, "the queue to drain")
        extra = tracemalloc.get_traced_memory()[1] - base
        assert extra < limit // 2, f"draining held {extra >> 20} MiB more than the queue"
        assert a.connected(2)
    finally:
        tracemalloc.stop()
        a.stop()
        peer.close()


class _Keep:
    """``conn`` for ``_answer`` without closing it at the end."""

    def __init__(self, conn: socket.socket) -> None:
        self.conn = conn

    def makefile(self, mode: str) -> Any:
        return self.conn.makefile(mode)

    def sendall(self, data: bytes) -> None:
        self.conn.sendall(data)

    def close(self) -> None:
        pass


def test_a_listener_that_trickles_its_greeting_is_given_up_on() -> None:
    """The dialling side's handshake has a deadline as a whole too: a listener sending one
    byte at a time used to hold the link (and its messages) for as long as it liked."""
    def trickle(conn: socket.socket) -> None:
        conn.recv(len(MAGIC))
        for b in _LEN.pack(MAX_HANDSHAKE - 1) + b" " * 4000:  # 200 s at this pace
            conn.sendall(bytes([b]))
            if _closed_by_peer(conn, 0.05):
                break
        conn.close()

    peer = _FakePeer(trickle)
    a = TcpTransport(1, "127.0.0.1:0", {2: peer.address}, Inbox(), challenge_timeout=0.5,
                     min_backoff=0.01, max_backoff=0.02)
    a.start()
    try:
        wait_until(lambda: peer.accepted >= 2, 30, "the link to give up and redial")
    finally:
        a.stop()
        peer.close()


def test_a_slow_loris_inside_the_tls_handshake_is_ended_too(tmp_path: Path) -> None:
    """The deadline covers the TLS handshake: a client trickling a TLS record one byte at a
    time is closed, not served for as long as it keeps trickling."""
    from node.security.certs import make_pki
    from raft.tls import REQUIRE, TLSSettings

    pki = make_pki(str(tmp_path / "pki"))
    t = TcpTransport(2, "127.0.0.1:0", {}, Inbox(), key=KEY, challenge_timeout=0.5,
                     tls=TLSSettings(REQUIRE, pki.server_file, pki.ca_file))
    t.start()
    sock = _open(t)
    try:
        record = b"\x16\x03\x01\x40\x00" + b"\x01" * 400  # a 16 KiB handshake record, slowly
        closed = _trickle_until_closed(sock, record)
    finally:
        sock.close()
        t.stop()
    assert closed  # by the deadline, or by the per-read timeout if this machine stalled


def test_only_a_members_last_stream_ending_says_it_is_gone() -> None:
    """A member that redialled while its old connection was not yet found dead has two
    streams; the old one ending must not tell the raft loop the member is gone (that ends a
    healthy leader's lease at this follower: ``RawNode.leader_unreachable``)."""
    lost: list[int] = []
    inbox = Inbox()
    t = TcpTransport(2, "127.0.0.1:0", {}, inbox, key=KEY, on_peer_lost=lost.append)
    t.start()

    def stream(term: int) -> socket.socket:
        s = _open(t)
        f, hello = _greet(s)
        s.sendall(_frame({"metadata": client_metadata(KEY, bytes.fromhex(hello["nonce"]), 1,
                                                     2)}))
        assert json.loads(_read_frame(f, MAX_HANDSHAKE)) == {"ok": True}
        f.close()
        body = forge.batch(1, [_heartbeat(term=term)]).SerializeToString()
        s.sendall(_LEN.pack(len(body)) + body)
        wait_until(lambda: any(m.term == term for m in inbox.msgs), 10, "the heartbeat")
        return s

    try:
        old, new = stream(3), stream(4)
        old.close()
        wait_until(lambda: len(t._receiver._conns) == 1, 10, "the old stream to end")
        assert lost == []
        new.close()
        wait_until(lambda: lost == [1], 10, "the member's last stream to end")
    finally:
        t.stop()
