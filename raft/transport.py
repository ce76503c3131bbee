"""Raft peer transport over gRPC (``proto/raft.proto``).

Owns ``GrpcTransport``: a gRPC server that receives batches of raft ``Message``s from peers, and
one sender per peer holding a long-lived client stream. ``send`` never blocks: it appends to the
peer's queue and returns; the peer's sender thread drains everything queued into ONE
``RaftBatch`` per stream write, so a busy leader ships hundreds of messages and entries in one
gRPC message instead of one call per entry.

A peer that is down costs the caller nothing: while its stream is not connected, messages for it
are dropped on the spot (Raft retransmits), and the sender reconnects with exponential backoff.
A queue that grows past ``max_queue`` (a slow peer) also drops, oldest first.
Also owns the conversion between ``raft.types.Message`` and its protobuf form.

Authentication: with a cluster key (``key=``, from ``raft.auth.load_keyfile``) a sender first
asks the peer for a nonce (``Challenge``) and opens its stream with a proof over it
(``raft.auth``); the receiver refuses a stream without a valid proof, and one whose batches or
messages claim another sender or another receiver, with ``UNAUTHENTICATED`` before any of it is
delivered, and logs one warning line (rate-limited). Every message that passes is still
checked by ``raft.validate.check_message``; a malformed one is dropped and logged. Without a
key the port is open to anyone who can reach it (a warning says so at start).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent import futures

import grpc

from proto import raft_pb2, raft_pb2_grpc
from raft import trace
from raft.auth import AuthError, Verifier, client_metadata
from raft.peer_links import PeerLinks
from raft.tls import TLSSettings, add_port
from raft.tls import channel as tls_channel
from raft.types import (
    ConfState,
    Entry,
    EntryType,
    Message,
    MessageType,
    Snapshot,
    SnapshotMeta,
)
from raft.validate import check_message

__all__ = ["GrpcTransport", "message_from_proto", "message_to_proto"]

log = logging.getLogger(__name__)

_MAX_MSG = 256 << 20
_CHANNEL_OPTIONS = [
    ("grpc.max_send_message_length", _MAX_MSG),
    ("grpc.max_receive_message_length", _MAX_MSG),
    ("grpc.keepalive_time_ms", 2000),
    ("grpc.keepalive_timeout_ms", 2000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
    ("grpc.initial_reconnect_backoff_ms", 50),
    ("grpc.min_reconnect_backoff_ms", 50),
    ("grpc.max_reconnect_backoff_ms", 1000),
]
_SERVER_OPTIONS = [
    ("grpc.max_send_message_length", _MAX_MSG),
    ("grpc.max_receive_message_length", _MAX_MSG),
    ("grpc.http2.min_recv_ping_interval_without_data_ms", 1000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.so_reuseport", 0),
]
_ETYPES = tuple(EntryType)
_MTYPES = tuple(MessageType)


# ---------------------------------------------------------------------- conversion
def _conf_to_proto(cs: ConfState) -> raft_pb2.RaftConfState:
    return raft_pb2.RaftConfState(
        voters=sorted(cs.voters), learners=sorted(cs.learners),
        voters_outgoing=sorted(cs.voters_outgoing), learners_next=sorted(cs.learners_next),
        auto_leave=cs.auto_leave,
    )


def _conf_from_proto(p: raft_pb2.RaftConfState) -> ConfState:
    return ConfState(
        frozenset(p.voters), frozenset(p.learners), frozenset(p.voters_outgoing),
        frozenset(p.learners_next), p.auto_leave,
    )


def message_to_proto(m: Message) -> raft_pb2.RaftMessage:
    pm = raft_pb2.RaftMessage(
        type=int(m.type), to=m.to, term=m.term, log_term=m.log_term, index=m.index,
        commit=m.commit, reject=m.reject, reject_hint=m.reject_hint, context=m.context,
        offset=m.offset, done=m.done,
    )
    setattr(pm, "from", m.frm)
    if m.entries:
        add = pm.entries.add
        for e in m.entries:
            add(term=e.term, index=e.index, type=int(e.type), data=e.data)
    if m.snapshot is not None:
        s = m.snapshot
        pm.snapshot.CopyFrom(raft_pb2.RaftSnapshot(
            index=s.meta.index, term=s.meta.term, conf_state=_conf_to_proto(s.meta.conf_state),
            data=s.data,
        ))
    return pm


def message_from_proto(pm: raft_pb2.RaftMessage) -> Message:
    """The message ``pm`` encodes; ValueError for an unknown message or entry type."""
    snap = None
    if pm.HasField("snapshot"):
        ps = pm.snapshot
        snap = Snapshot(SnapshotMeta(ps.index, ps.term, _conf_from_proto(ps.conf_state)), ps.data)
    try:
        mtype = _MTYPES[pm.type]
        entries = [Entry(e.term, e.index, _ETYPES[e.type], e.data) for e in pm.entries]
    except IndexError:
        raise ValueError("unknown message or entry type") from None
    return Message(
        type=mtype, to=pm.to, frm=getattr(pm, "from"), term=pm.term,
        log_term=pm.log_term, index=pm.index, entries=entries,
        commit=pm.commit, reject=pm.reject, reject_hint=pm.reject_hint, context=pm.context,
        snapshot=snap, offset=pm.offset, done=pm.done,
    )


class ForgedBatch(Exception):
    """A received batch whose messages claim another sender or receiver than its stream."""


def decode_batch(batch: raft_pb2.RaftBatch, frm: int, me: int) -> tuple[list[Message], list[str]]:
    """What both transports do with a batch received from member ``frm``: its messages that
    decode and pass :func:`raft.validate.check_message`, and why each other one was dropped.
    Raises :class:`ForgedBatch` when a message names another sender or receiver (the stream
    is then refused as a whole)."""
    msgs: list[Message] = []
    dropped: list[str] = []
    for pm in batch.messages:
        if getattr(pm, "from") != frm or pm.to != me:
            raise ForgedBatch(f"message from {getattr(pm, 'from')} to {pm.to} on a stream "
                              f"from {frm} to {me}")
        try:
            m = message_from_proto(pm)
        except ValueError as exc:
            dropped.append(str(exc))
            continue
        why = check_message(m)
        if why is not None:
            dropped.append(why)
            continue
        msgs.append(m)
    return msgs, dropped


class _Throttled:
    """Logs a warning at most once per ``every`` seconds, counting the ones it held back."""

    def __init__(self, every: float = 5.0) -> None:
        self.every = every
        self._lock = threading.Lock()
        self._last = -1e18
        self._held = 0

    def warn(self, msg: str, *args: object) -> None:
        now = time.monotonic()
        with self._lock:
            if now - self._last < self.every:
                self._held += 1
                return
            held, self._held, self._last = self._held, 0, now
        if held:
            log.warning(msg + " (%d similar not logged)", *args, held)
        else:
            log.warning(msg, *args)


# ---------------------------------------------------------------------- receiving side
class BatchIntake:
    """The receiving half both transports share: what is done with one received batch, and
    the counts and throttled warnings of what was refused or dropped."""

    def __init__(self, node_id: int, deliver: Callable[[list[Message]], None],
                 verifier: Verifier | None) -> None:
        self._node_id = node_id
        self._deliver = deliver
        self._verifier = verifier
        self._refusals = _Throttled()
        self._invalid = _Throttled()
        self.refused = 0
        """Streams refused (authentication or sender/receiver mismatch)."""
        self.invalid = 0
        """Messages dropped by validation."""

    def _take_batch(self, batch: raft_pb2.RaftBatch, sender: int) -> str | None:
        """Deliver the valid messages of ``batch``, received on a stream authenticated as
        member ``sender`` (0: no cluster key); the reason to refuse the whole stream instead."""
        frm = getattr(batch, "from")
        if sender and frm != sender:
            return f"batch claims sender {frm} on a stream authenticated as {sender}"
        try:
            msgs, dropped = decode_batch(batch, frm, self._node_id)
        except ForgedBatch as exc:
            return str(exc)
        for why in dropped:
            self.invalid += 1
            self._invalid.warn("raft transport: dropped a message from %s: %s", frm, why)
        if msgs:
            if trace.ENABLED:
                trace.mark_messages(self._node_id, "recv", msgs)
            try:
                self._deliver(msgs)
            except Exception:  # a bad batch must not end the stream
                log.exception("raft transport: delivering a batch failed")
        return None


class _Servicer(BatchIntake, raft_pb2_grpc.RaftTransportServicer):

    def Challenge(self, request: raft_pb2.ChallengeRequest, context: grpc.ServicerContext
                  ) -> raft_pb2.ChallengeReply:
        nonce = self._verifier.challenge() if self._verifier is not None else b""
        return raft_pb2.ChallengeReply(nonce=nonce, node_id=self._node_id)

    def _refuse(self, context: grpc.ServicerContext, why: str) -> None:
        self.refused += 1
        self._refusals.warn("raft transport: refused a stream from %s: %s", context.peer(), why)
        context.abort(grpc.StatusCode.UNAUTHENTICATED, why)  # raises: the stream ends here

    def Stream(self, request_iterator: Iterator[raft_pb2.RaftBatch], context: grpc.ServicerContext) -> raft_pb2.RaftAck:
        sender = 0
        if self._verifier is not None:
            try:
                sender = self._verifier.verify(context.invocation_metadata())
            except AuthError as exc:
                self._refuse(context, str(exc))  # raises: the stream ends here
        for batch in request_iterator:
            why = self._take_batch(batch, sender)
            if why is not None:
                self._refuse(context, why)  # raises: the stream ends here
        return raft_pb2.RaftAck()


# ---------------------------------------------------------------------- sending side
class _PeerSender:
    """One peer: a queue, a thread, a client stream reconnected with backoff."""

    def __init__(self, transport: GrpcTransport, peer_id: int, address: str) -> None:
        self.t = transport
        self.peer_id = peer_id
        self.address = address
        self.cond = threading.Condition()
        self.queue: deque[Message] = deque()
        self.connected = False
        self.closed = False
        self.dropped = 0
        self.refused = 0
        self.sent_batches = 0
        self.sent_messages = 0
        self._channel: grpc.Channel | None = None
        self.thread = threading.Thread(
            target=self._run, name=f"raft-send-{transport.node_id}->{peer_id}", daemon=True)

    def enqueue(self, msgs: list[Message]) -> None:
        with self.cond:
            if not self.connected or self.closed:
                self.dropped += len(msgs)
                return
            self.queue.extend(msgs)
            over = len(self.queue) - self.t.max_queue
            for _ in range(over):
                self.queue.popleft()
            self.dropped += max(0, over)
            self.cond.notify()

    def _batches(self) -> Iterator[raft_pb2.RaftBatch]:
        frm = self.t.node_id
        while True:
            with self.cond:
                while not self.queue and not self.closed and self.connected:
                    self.cond.wait()
                if self.closed or not self.connected:
                    return
                msgs = list(self.queue)
                self.queue.clear()
            batch = raft_pb2.RaftBatch(messages=[message_to_proto(m) for m in msgs])
            setattr(batch, "from", frm)
            if trace.ENABLED:
                trace.mark_messages(frm, "wire", msgs)
            self.sent_batches += 1
            self.sent_messages += len(msgs)
            yield batch

    def _run(self) -> None:
        # One channel for the sender's life: gRPC reconnects its subchannel by itself (with the
        # backoff options above); this loop only reopens the stream, with its own backoff.
        channel = self._channel = tls_channel(self.address, self.t.tls, _CHANNEL_OPTIONS)
        stub = raft_pb2_grpc.RaftTransportStub(channel)
        backoff = self.t.min_backoff
        while not self.closed:
            started = time.monotonic()
            try:
                metadata = self._credentials(stub)
                with self.cond:
                    if self.closed:
                        break
                    self.connected = True  # optimistic: a refused stream fails within ms
                stub.Stream(self._batches(), metadata=metadata, wait_for_ready=False)
            except grpc.RpcError as exc:
                if exc.code() == grpc.StatusCode.UNAUTHENTICATED:
                    self.refused += 1
                    self.t._refusals.warn("raft transport: member %s at %s refused our stream: %s",
                                          self.peer_id, self.address, exc.details())
                elif not self.closed:
                    log.debug("raft stream to %s ended: %s", self.peer_id, exc)
            except ValueError:  # channel closed under us during stop
                pass
            finally:
                with self.cond:
                    self.connected = False
                    self.dropped += len(self.queue)
                    self.queue.clear()
                    self.cond.notify_all()  # release the request iterator gRPC may be in
            if time.monotonic() - started > 1.0:
                backoff = self.t.min_backoff
            if self._sleep(backoff):
                break
            backoff = min(backoff * 2, self.t.max_backoff)
        channel.close()

    def _credentials(self, stub: raft_pb2_grpc.RaftTransportStub
                     ) -> list[tuple[str, str]] | None:
        """The proof for a new stream (a Challenge round trip), or None without a key."""
        key = self.t.key
        if key is None:
            return None
        reply = stub.Challenge(raft_pb2.ChallengeRequest(), timeout=self.t.challenge_timeout,
                               wait_for_ready=False)
        if not reply.nonce:
            return None  # the peer runs without a key: it asks for no proof
        return client_metadata(key, reply.nonce, self.t.node_id, self.peer_id)

    def _sleep(self, seconds: float) -> bool:
        """Back off; returns True when closed meanwhile."""
        with self.cond:
            self.cond.wait_for(lambda: self.closed, timeout=seconds)
            return self.closed

    def close(self) -> None:
        with self.cond:
            self.closed = True
            self.queue.clear()
            self.cond.notify_all()
        ch = self._channel
        if ch is not None:
            ch.close()  # ends a live stream at once


class GrpcTransport(PeerLinks[_PeerSender]):
    """Sends raft messages to peers and hands received ones to ``on_messages``.

    ``on_messages(msgs)`` is called from gRPC server threads; it should only enqueue. With
    ``key`` (the cluster key), streams are authenticated both ways (see the module docstring).
    """

    def __init__(
        self,
        node_id: int,
        listen: str,
        peers: dict[int, str],
        on_messages: Callable[[list[Message]], None],
        *,
        max_queue: int = 4096,
        min_backoff: float = 0.05,
        max_backoff: float = 1.0,
        server_threads: int = 16,
        key: bytes | None = None,
        challenge_timeout: float = 2.0,
        tls: TLSSettings | None = None,
    ) -> None:
        self.node_id = node_id
        self.key = key
        self.tls = tls
        """TLS on the Raft port and to peers: mutual (a peer needs a certificate the CA
        signed), before the key-file proof."""
        self.challenge_timeout = challenge_timeout
        self._refusals = _Throttled()
        self.listen = listen
        self.max_queue = max_queue
        self.min_backoff = min_backoff
        self.max_backoff = max_backoff
        self._init_links(peers, on_messages)
        self._server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=server_threads,
                                       thread_name_prefix=f"raft-recv-{node_id}"),
            options=_SERVER_OPTIONS,
        )
        self._servicer = _Servicer(node_id, on_messages,
                                   Verifier(key, node_id) if key is not None else None)
        raft_pb2_grpc.add_RaftTransportServicer_to_server(self._servicer, self._server)
        self.port = add_port(self._server, listen, tls, mutual=True)
        if self.port == 0:
            raise OSError(f"raft transport cannot listen on {listen}")
        self._started = False

    def start(self) -> None:
        self._server.start()
        self._started = True
        self._start_links()

    def _new_link(self, peer_id: int, address: str) -> _PeerSender:
        return _PeerSender(self, peer_id, address)

    def send(self, msgs: Iterable[Message]) -> None:
        """Queue messages for their peers; never blocks. Unknown or down peers: dropped."""
        for sender, ms in self._links_for(msgs):
            sender.enqueue(ms)

    def stats(self) -> dict[int, dict[str, int | bool]]:
        """Per peer: stream up, messages dropped, batches and messages handed to gRPC, and
        streams the peer refused (authentication)."""
        peers = self._link_table()
        return {pid: {"connected": s.connected, "dropped": s.dropped, "batches": s.sent_batches,
                      "sent": s.sent_messages, "refused": s.refused}
                for pid, s in peers.items()}

    def receive_stats(self) -> dict[str, int]:
        """Streams this member refused and received messages it dropped as malformed."""
        return {"refused": self._servicer.refused, "invalid": self._servicer.invalid}

    def stop(self, grace: float = 0.2) -> None:
        senders = self._close_links()
        self._server.stop(grace).wait()
        for s in senders:
            s.thread.join(timeout=2.0)
