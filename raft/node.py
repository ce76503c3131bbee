"""The concurrent Raft driver: ``RaftNode`` runs a ``RawNode`` with a WAL, a gRPC transport,
a clock and the application's state machine.

Threads
-------
* **raft loop** (owns the ``RawNode``): ticks on a monotonic clock every ``tick_interval``,
  steps received messages, turns all queued proposals into ONE ``propose_batch``, takes a
  ``Ready``, sends its ``messages`` at once and hands the Ready to the persist thread. It never
  touches the disk, so heartbeats and votes keep flowing while an fsync stalls (Readies are
  pipelined, up to ``max_inflight_readies``).
* **persist/apply**: takes every queued Ready, writes them all and fsyncs ONCE (group commit
  across Readies), sends the ``persisted_messages`` (append/vote acknowledgements), installs a
  received snapshot, applies committed entries through ``apply(entries)``, resolves proposal
  and read futures, takes application snapshots, compacts the log, and finally asks the loop to
  ``advance`` each Ready in order.

Faults
------
Any unexpected exception on either thread (a WAL write or fsync error, the application's
``apply`` or snapshot install failing, a bug in the loop) is FATAL: the node can no longer make
progress, and must not pretend otherwise. The one fatal path (:meth:`RaftNode._fatal`) runs
once: from then on :meth:`is_leader` is False, every pending proposal and read fails with
:class:`NodeFailed` (retryable: the member went away), new ones fail at once, and
``on_fatal(where, exc)`` runs on its own thread (the application steps down if it can, calls
:meth:`halt` and exits). Without ``on_fatal`` the node halts at once and logs the error.

The application supplies ``apply(entries) -> list | None`` (NORMAL entries in log order,
including the empty entry each new leader appends; a returned list gives per-entry results,
found on the proposal future's ``result_value``), and optionally ``snapshot() -> bytes`` (state
image as of the last applied entry) and ``restore(data)`` (replace state with an image).

With ``cluster_key`` (see ``raft.auth``) the transport only talks to members holding the same
key. ``Snapshotter.check`` lets the application refuse a snapshot's data (a forged or damaged
image) before it is written or installed, whether it arrives from a leader or from disk.
"""

from __future__ import annotations

import itertools
import json
import logging
import struct
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from raft import confchange, trace
from raft.core import Config, RawNode, Status
from raft.fsio import FileSystem, write_atomic
from raft.tcp_transport import TcpTransport
from raft.transport import GrpcTransport
from raft.types import (
    NONE,
    ConfChange,
    ConfChangeSingle,
    ConfChangeType,
    ConfState,
    Entry,
    EntryType,
    Message,
    MessageType,
    ProposalDropped,
    RaftError,
    Ready,
    StateRole,
)
from raft.wal import WalStorage

__all__ = ["LeadershipLost", "NodeFailed", "NodeStopped", "NotLeader", "RaftNode", "RaftNodeConfig", "Snapshotter"]

log = logging.getLogger(__name__)

ApplyFn = Callable[[list[Entry]], "Sequence[Any] | None"]
_REQUESTS = frozenset({"propose", "propose_many", "conf", "read"})
"""Inbox kinds that are callers' requests (refused once the node failed)."""


class NotLeader(ProposalDropped):
    """This member cannot take the request; ``leader`` is the known leader id (0: none)."""

    def __init__(self, leader: int, why: str = "not leader") -> None:
        super().__init__(f"{why} (leader: {leader or 'unknown'})")
        self.leader = leader


class LeadershipLost(NotLeader):
    """This member stopped being leader before the proposal was seen committed: the entry
    may still commit under the next leader, or be overwritten (outcome unknown)."""


class NodeStopped(RaftError):
    """The node was stopped before the request completed."""


class NodeFailed(NodeStopped):
    """The node hit a fatal error (see *Faults* in the module docstring) and stopped making
    progress; the request's outcome is unknown."""


FatalFn = Callable[[str, BaseException], None]


class Snapshotter:
    """Application snapshot hooks: ``take()`` returns bytes, ``install(data)`` restores.

    ``capture`` (optional) splits ``take`` in two for large state: called on the apply thread
    right after an entry applied, it fixes the image as of that entry (say, by opening an MVCC
    read transaction) and returns a function that produces the bytes later, from another
    thread, while applying goes on.

    ``check`` (optional) says whether bytes are an image ``install`` would accept (say, its
    checksum holds). It must be pure and quick: the Raft loop calls it on a snapshot received
    from a leader before installing it, and the WAL on snapshot files when the node opens."""

    def __init__(
        self,
        take: Callable[[], bytes],
        install: Callable[[bytes], None],
        capture: Callable[[], Callable[[], bytes]] | None = None,
        check: Callable[[bytes], bool] | None = None,
    ) -> None:
        self.take = take
        self.install = install
        self.capture = capture
        self.check = check


@dataclass
class RaftNodeConfig:
    tick_interval: float = 0.02
    """Seconds per Raft tick (monotonic clock)."""
    election_tick: int = 10
    heartbeat_tick: int = 1
    pre_vote: bool = True
    check_quorum: bool = True
    max_inflight_readies: int = 4096
    """Readies handed to the persist thread but not yet advanced. Must stay large: while the
    disk stalls the loop keeps taking Readies to send heartbeats and votes."""
    snapshot_every: int = 10000
    """Take an application snapshot after this many applied entries (0: never)."""
    keep_entries: int = 2000
    """Entries kept behind a snapshot for slow followers before compaction."""
    snapshot_bytes: int = 64 << 20
    """Also take a snapshot once this many bytes of entries were applied since the last one,
    or as many as the last snapshot holds if that is more (0: by count only): a log of large
    entries (GridFS chunks) is not held for ``snapshot_every`` entries, and a large store is
    not dumped more often than its size in new entries arrives."""
    keep_bytes: int = 16 << 20
    """Bytes of entries kept behind a snapshot at most (0: by count only); compaction keeps
    the fewer of ``keep_entries`` and this many bytes of entries."""
    segment_bytes: int = 64 << 20
    fsync: bool = True
    max_size_per_msg: int = 1 << 20
    max_inflight_msgs: int = 256
    transport: str = "tcp"
    """``tcp`` (``raft.tcp_transport``: the raft loop writes into the socket itself) or
    ``grpc`` (``raft.transport``: one gRPC stream per peer, more thread hand-offs). Members
    of one cluster must all use the same one."""


@dataclass(frozen=True)
class NodeView:
    """What other threads may read without asking the loop (refreshed every loop turn)."""

    id: int
    role: StateRole
    term: int
    leader: int
    commit: int
    last_index: int
    match: dict[int, int]
    voters: frozenset[int]


class Observer:
    """What the driver reports for metrics (every method a no-op here; override some).
    Called from the driver's threads: keep them cheap and never raise."""

    def on_fsync(self, seconds: float) -> None:
        """One group-commit flush of the WAL took ``seconds``."""

    def on_append(self, first_index: int, last_index: int, term: int, leader: bool) -> None:
        """Entries ``first_index..last_index`` reached this node's durable log."""

    def on_proposal(self, seconds: float, ok: bool) -> None:
        """A proposal was applied (``ok``) or refused after ``seconds``."""

    def on_role(self, role: StateRole, term: int) -> None:
        """This node became ``role`` (a CANDIDATE: it started an election)."""

    def on_snapshot_sent(self, to: int, done: bool) -> None:
        """A chunk of InstallSnapshot left for ``to`` (``done``: the last one)."""

    def on_snapshot_received(self, frm: int, done: bool) -> None:
        """A chunk of InstallSnapshot arrived from ``frm`` (``done``: the last one)."""

    def on_snapshot_installed(self, index: int) -> None:
        """A snapshot from the leader was installed (this node was behind)."""


class RaftNode:
    """A Raft member: durable log in ``data_dir``, peers over gRPC, state machine via callbacks.

    ``peers`` maps every initial member id (this one included) to its ``host:port``. A brand
    new data directory is bootstrapped with those members as voters unless ``join`` is True
    (then the node waits to be added by the leader and receive the log or a snapshot).
    """

    def __init__(
        self,
        node_id: int,
        data_dir: str | Path,
        peers: dict[int, str],
        apply: ApplyFn,
        *,
        snapshotter: Snapshotter | None = None,
        config: RaftNodeConfig | None = None,
        listen: str | None = None,
        join: bool = False,
        on_leader_change: Callable[[int, int], None] | None = None,
        fs: FileSystem | None = None,
        on_fatal: FatalFn | None = None,
        cluster_key: bytes | None = None,
        observer: Observer | None = None,
        tls: Any = None,
    ) -> None:
        self.id = node_id
        self.observer = observer or Observer()
        self.elections = 0
        """Elections this node started (became a candidate)."""
        self.leader_terms = 0
        """Terms in which this node became leader."""
        self._on_fatal = on_fatal
        self._failure: NodeFailed | None = None
        self._loop_failed = False
        self.cfg = config or RaftNodeConfig()
        self._apply_fn = apply
        self._snapshotter = snapshotter
        self._on_leader_change = on_leader_change
        check = snapshotter.check if snapshotter is not None else None
        self.storage = WalStorage(data_dir, segment_bytes=self.cfg.segment_bytes,
                                  sync=self.cfg.fsync, fs=fs, snapshot_ok=check)
        self.fs = self.storage.fs
        hs, cs = self.storage.initial_state()
        fresh = (hs.term == 0 and self.storage.last_index() == 0 and not cs.voters
                 and self.storage.snapshot().empty)
        if fresh and not join:
            cs = ConfState(voters=frozenset(peers))
            self.storage.set_conf_state(cs)
        snap = self.storage.snapshot()
        if not snap.empty and snapshotter is not None:
            snapshotter.install(snap.data)
        self._applied = self.storage.first_index() - 1 if snap.empty else snap.meta.index
        self._applied_conf = cs
        self._snap_index = snap.meta.index
        self._snap_thread: threading.Thread | None = None
        """The background thread saving a snapshot (``Snapshotter.capture``), while it runs."""
        self._snap_saved: int | None = None
        self._bytes_since_snap = 0
        """Bytes of entries applied since the last snapshot started."""
        self._applied_sizes: deque[tuple[int, int]] = deque()
        """``(index, bytes)`` of entries applied and not compacted yet (for ``keep_bytes``)."""
        """Index of a snapshot the background thread saved, not yet compacted behind."""
        self.raw = RawNode(Config(
            id=node_id, election_tick=self.cfg.election_tick,
            heartbeat_tick=self.cfg.heartbeat_tick, pre_vote=self.cfg.pre_vote,
            check_quorum=self.cfg.check_quorum, max_size_per_msg=self.cfg.max_size_per_msg,
            max_inflight_msgs=self.cfg.max_inflight_msgs, applied=self._applied,
            snapshot_ok=check,
        ), self.storage)
        self._cv = threading.Condition()
        self._inbox: deque[tuple[str, Any]] = deque()
        self._persist_cv = threading.Condition()
        self._persist_q: deque[Ready | None] = deque()
        self._inflight = 0
        self._running = False
        self._stopped = False
        self._fut_lock = threading.Lock()
        self._pending: dict[int, tuple[int, Future[int]]] = {}
        self._reads: dict[bytes, Future[int]] = {}
        self._ready_reads: list[tuple[int, Future[int]]] = []
        self._read_ids = itertools.count(1)
        self._state_cv = threading.Condition()
        self._view = NodeView(node_id, StateRole.FOLLOWER, hs.term, NONE, hs.commit,
                              self.storage.last_index(), {}, cs.voters)
        self._applied_index = self._applied
        self.snapshots_installed = 0
        """Snapshots received from a leader and installed (a lagging member's catch-up)."""
        saved = self.storage.path / "peers.json"
        self._addresses = ({int(k): v for k, v in json.loads(self.fs.read_bytes(saved)).items()}
                           if self.fs.exists(saved) else {})
        self._addresses.update(peers)  # addresses given now win over remembered ones
        try:
            address = listen or self._addresses[node_id]
            self.transport: TcpTransport | GrpcTransport
            if self.cfg.transport == "grpc":
                self.transport = GrpcTransport(node_id, address, self._addresses, self._receive,
                                               key=cluster_key, tls=tls)
            else:
                self.transport = TcpTransport(node_id, address, self._addresses, self._receive,
                                              key=cluster_key, tls=tls,
                                              on_peer_lost=self._peer_lost)
        except BaseException:
            self.storage.close()  # release the data directory for a retry
            raise
        self._loop_thread = threading.Thread(target=self._loop, name=f"raft-loop-{node_id}",
                                             daemon=True)
        self._persist_thread = threading.Thread(target=self._persist_loop,
                                                name=f"raft-persist-{node_id}", daemon=True)

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> RaftNode:
        self._running = True
        self.transport.start()
        self._persist_thread.start()
        self._loop_thread.start()
        return self

    def stop(self) -> None:
        """Stop threads, close the transport and the WAL; pending futures fail."""
        with self._cv:
            if self._stopped:
                return
            self._stopped = True
            self._running = False
            self._cv.notify_all()
        if self._loop_thread.is_alive():
            self._loop_thread.join(timeout=5)
        with self._cv:
            leftover = list(self._inbox)
            self._inbox.clear()
        for kind, payload in leftover:
            self._fail_stopped(kind, payload)
        with self._persist_cv:
            self._persist_q.append(None)
            self._persist_cv.notify_all()
        if self._persist_thread.is_alive():
            self._persist_thread.join(timeout=10)
        self.transport.stop()
        if self._snap_thread is not None:
            self._snap_thread.join(timeout=30)
        self.storage.close()
        with self._fut_lock:
            futs = [f for _, f in self._pending.values()] + list(self._reads.values())
            futs += [f for _, f in self._ready_reads]
            self._pending.clear()
            self._reads.clear()
            self._ready_reads.clear()
        for f in futs:
            if not f.done():
                f.set_exception(NodeStopped("node stopped"))
        with self._state_cv:
            self._state_cv.notify_all()

    def halt(self) -> None:
        """Stop the raft loop (nothing more is sent, received or ticked) and leave the rest to
        :meth:`stop`: a failed member goes quiet, so the others elect without it."""
        with self._cv:
            self._running = False
            self._cv.notify_all()

    @property
    def failure(self) -> NodeFailed | None:
        """Why this node stopped making progress (None while it is healthy)."""
        return self._failure

    @property
    def loop_alive(self) -> bool:
        """Whether the raft loop still runs (it can still send and step messages)."""
        return self._running and not self._loop_failed and self._loop_thread.is_alive()

    def _fatal(self, where: str, exc: BaseException) -> None:
        """The one fatal path (see *Faults* in the module docstring); runs once."""
        with self._cv:
            if self._failure is not None or self._stopped:
                return
            err = NodeFailed(f"{where} failed: {type(exc).__name__}: {exc}")
            err.__cause__ = exc
            self._failure = err
            if self._on_fatal is None:
                self._running = False
            self._cv.notify_all()
        with self._fut_lock:
            futs = [f for _, f in self._pending.values()] + list(self._reads.values())
            futs += [f for _, f in self._ready_reads]
            self._pending.clear()
            self._reads.clear()
            self._ready_reads.clear()
        for f in futs:
            if not f.done():
                f.set_exception(err)
        self.wake_waiters()
        if self._on_fatal is None:
            log.error("raft %s failed; this member stopped making progress", where,
                      exc_info=exc)
            return
        threading.Thread(target=self._on_fatal, args=(where, exc), daemon=True,
                         name=f"raft-fatal-{self.id}").start()

    def __enter__(self) -> RaftNode:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ public API
    def propose(self, data: bytes) -> Future[int]:
        """Replicate ``data``; the future resolves with its log index once it is committed and
        applied here (``future.result_value`` holds what ``apply`` returned for it), or fails
        with NotLeader / ProposalDropped."""
        fut: Future[int] = Future()
        started = time.monotonic()
        obs = self.observer
        fut.add_done_callback(lambda f: obs.on_proposal(time.monotonic() - started,
                                                        f.exception() is None))
        if trace.ENABLED:
            fut.trace_at = time.monotonic_ns()  # type: ignore[attr-defined]
        self._post("propose", (data, fut))
        return fut

    def propose_many(self, datas: Sequence[bytes]) -> list[Future[int]]:
        """``propose`` for many payloads at once (one hand-off to the loop, consecutive
        indexes when accepted); one future per payload, in order."""
        futs: list[Future[int]] = [Future() for _ in datas]
        if futs:
            started = time.monotonic()
            obs = self.observer
            futs[-1].add_done_callback(lambda f: obs.on_proposal(time.monotonic() - started,
                                                                 f.exception() is None))
            if trace.ENABLED:
                futs[-1].trace_at = time.monotonic_ns()  # type: ignore[attr-defined]
            self._post("propose_many", (list(zip(datas, futs)), futs))
        return futs

    def propose_conf_change(self, cc: ConfChange) -> Future[int]:
        """Membership change; resolves with the entry index once applied. For an added member,
        put its ``host:port`` in ``cc.context`` so every member learns how to reach it."""
        fut: Future[int] = Future()
        self._post("conf", (cc, fut))
        return fut

    def add_member(self, node_id: int, address: str, *, learner: bool = False) -> Future[int]:
        kind = ConfChangeType.ADD_LEARNER if learner else ConfChangeType.ADD_NODE
        return self.propose_conf_change(
            ConfChange((ConfChangeSingle(kind, node_id),), context=address.encode()))

    def remove_member(self, node_id: int) -> Future[int]:
        return self.propose_conf_change(
            ConfChange((ConfChangeSingle(ConfChangeType.REMOVE_NODE, node_id),)))

    def read_index(self) -> Future[int]:
        """Linearizable read point: resolves with the commit index confirmed by a quorum,
        once this member has applied at least that far."""
        fut: Future[int] = Future()
        ctx = struct.pack(">IQ", self.id, next(self._read_ids))
        with self._fut_lock:
            self._reads[ctx] = fut
        self._post("read", (ctx, fut))
        return fut

    def transfer_leadership(self, to: int) -> None:
        self._post("transfer", to)

    def campaign(self) -> None:
        self._post("campaign", None)

    def status(self, timeout: float = 5.0) -> Status:
        """The core's full status (per-member progress on the leader), taken on the loop."""
        fut: Future[Status] = Future()
        self._post("call", (self.raw.status, fut))
        return fut.result(timeout)

    @property
    def view(self) -> NodeView:
        return self._view

    @property
    def applied_index(self) -> int:
        return self._applied_index

    def is_leader(self) -> bool:
        """Leader of the current term and able to make progress (False once failed)."""
        return self._view.role == StateRole.LEADER and self._failure is None

    def leader_id(self) -> int:
        return self._view.leader

    def wait_for(self, pred: Callable[[NodeView], bool], timeout: float) -> bool:
        """Block until ``pred(view)`` holds (re-checked every loop turn) or the timeout."""
        deadline = time.monotonic() + timeout
        with self._state_cv:
            while not pred(self._view):
                left = deadline - time.monotonic()
                if left <= 0 or self._stopped:
                    return False
                self._state_cv.wait(left)
            return True

    def wake_waiters(self) -> None:
        """Make every :meth:`wait_for` re-check its predicate now (its inputs changed
        outside this node)."""
        with self._state_cv:
            self._state_cv.notify_all()

    def copies(self, index: int) -> int:
        """Leader only: voters (this one included) holding ``index`` durably; 0 otherwise."""
        return len(self.holders(index))

    def holders(self, index: int) -> frozenset[int]:
        """Leader only: the ids of the voters (this one included) holding ``index`` durably;
        none otherwise."""
        v = self._view
        if v.role != StateRole.LEADER:
            return frozenset()
        return frozenset(nid for nid, m in v.match.items() if m >= index)

    def wait_for_match(self, index: int, n: int, timeout: float) -> bool:
        """Leader only: wait until ``n`` voters (this one included) hold ``index`` durably —
        write concern ``w=n``. False on timeout or when not leader."""
        return self.wait_for(lambda v: self.copies(index) >= n, timeout)

    def wait_committed(self, index: int, timeout: float) -> bool:
        return self.wait_for(lambda v: v.commit >= index, timeout)

    def wait_applied(self, index: int, timeout: float) -> bool:
        return self.wait_for(lambda v: self._applied_index >= index, timeout)

    # ------------------------------------------------------------------ raft loop
    def _post(self, kind: str, payload: Any) -> None:
        with self._cv:
            failed = self._failure is not None and kind in _REQUESTS
            if not self._stopped and not failed:
                self._inbox.append((kind, payload))
                self._cv.notify()
                return
        self._fail_stopped(kind, payload)

    def _fail_stopped(self, kind: str, payload: Any) -> None:
        err = self._failure or NodeStopped("node stopped")
        if kind in ("propose", "conf", "read", "call"):
            payload[-1].set_exception(err)
        elif kind == "propose_many":
            for f in payload[-1]:
                f.set_exception(err)

    def _receive(self, msgs: list[Message]) -> None:
        for m in msgs:
            if m.type == MessageType.SNAPSHOT:
                self.observer.on_snapshot_received(m.frm, bool(m.done))
        with self._cv:
            self._inbox.append(("msgs", msgs))
            self._cv.notify()

    def _peer_lost(self, peer: int) -> None:
        """The transport's connection from ``peer`` ended (see RawNode.leader_unreachable)."""
        with self._cv:
            if not self._stopped:
                self._inbox.append(("peer_lost", peer))
                self._cv.notify()

    def _loop(self) -> None:
        try:
            self._run_loop()
        except Exception as exc:
            self._loop_failed = True
            self._fatal("raft loop", exc)

    def _run_loop(self) -> None:
        interval = self.cfg.tick_interval
        next_tick = time.monotonic() + interval
        raw = self.raw
        while True:
            with self._cv:
                while self._running and not self._inbox:
                    left = next_tick - time.monotonic()
                    if left <= 0:
                        break
                    self._cv.wait(left)
                if not self._running:
                    return
                events = list(self._inbox)
                self._inbox.clear()
            now = time.monotonic()
            if now >= next_tick:
                # After a long stall tick a bounded number of times, never a burst that
                # would expire every election timer at once.
                n = min(int((now - next_tick) / interval) + 1, 2)
                for _ in range(n):
                    raw.tick()
                next_tick = now + interval
            if self._failure is not None:
                events = self._refuse_requests(events)
            self._handle_events(events)
            self._publish()
            while raw.has_ready() and self._inflight < self.cfg.max_inflight_readies:
                rd = raw.ready()
                if trace.ENABLED:
                    self._trace_ready(rd)
                if rd.messages:
                    self._count_snapshots(rd.messages)
                    self.transport.send(rd.messages)
                self._inflight += 1
                with self._persist_cv:
                    self._persist_q.append(rd)
                    self._persist_cv.notify()

    def _trace_ready(self, rd: Ready) -> None:
        if rd.entries:
            trace.mark(self.id, "ready.entries", rd.entries[-1].index)
        if rd.committed_entries:
            trace.mark(self.id, "ready.commit", rd.committed_entries[-1].index)
        trace.mark_messages(self.id, "send", rd.messages)

    def _refuse_requests(self, events: list[tuple[str, Any]]) -> list[tuple[str, Any]]:
        """After a fatal error: fail the requests among ``events``, keep the rest (peers'
        messages, so a leadership transfer can still complete)."""
        keep = []
        for kind, payload in events:
            if kind in _REQUESTS:
                self._fail_stopped(kind, payload)
            else:
                keep.append((kind, payload))
        return keep

    def _handle_events(self, events: list[tuple[str, Any]]) -> None:
        raw = self.raw
        batch: list[tuple[bytes, Future[int]]] = []
        for kind, payload in events:
            if kind == "propose_many":
                batch.extend(payload[0])
                continue
            if kind != "propose" and batch:
                self._propose_batch(batch)
                batch = []
            if kind == "msgs":
                if trace.ENABLED:
                    trace.mark_messages(self.id, "step", payload)
                for m in payload:
                    try:
                        raw.step(m)
                    except RaftError as exc:
                        log.debug("raft step %s: %s", m.type.name, exc)
            elif kind == "propose":
                batch.append(payload)
            elif kind == "advance":
                raw.advance(payload)
                self._inflight -= 1
            elif kind == "conf":
                cc, fut = payload
                try:
                    idx = raw.propose_conf_change(cc)
                except ProposalDropped as exc:
                    fut.set_exception(self._not_leader(str(exc)))
                except Exception as exc:  # an invalid change: the caller's error
                    fut.set_exception(exc)
                else:
                    self._track([(idx, fut)], raw.term)
            elif kind == "read":
                ctx, fut = payload
                try:
                    raw.read_index(ctx)
                except ProposalDropped as exc:
                    with self._fut_lock:
                        self._reads.pop(ctx, None)
                    fut.set_exception(self._not_leader(str(exc)))
            elif kind == "peer_lost":
                if payload == raw.leader and raw.role == StateRole.FOLLOWER:
                    log.info("raft: the connection from leader %s closed; campaigning within "
                             "one election timeout unless it comes back", payload)
                raw.leader_unreachable(payload)
            elif kind in ("transfer", "campaign"):
                try:
                    raw.transfer_leader(payload) if kind == "transfer" else raw.campaign()
                except RaftError as exc:  # refused in this state: the caller's problem
                    log.debug("raft %s refused: %s", kind, exc)
            elif kind == "call":
                fn, fut = payload
                try:
                    fut.set_result(fn())
                except Exception as exc:
                    fut.set_exception(exc)
        if batch:
            self._propose_batch(batch)

    def _not_leader(self, why: str) -> NotLeader:
        return NotLeader(self.raw.leader, why)

    def _count_snapshots(self, msgs: Sequence[Message]) -> None:
        for m in msgs:
            if m.type == MessageType.SNAPSHOT:
                self.observer.on_snapshot_sent(m.to, bool(getattr(m, "done", True)))

    def _propose_batch(self, batch: list[tuple[bytes, Future[int]]]) -> None:
        raw = self.raw
        try:
            last = raw.propose_batch([d for d, _ in batch])
        except ProposalDropped as exc:
            err = self._not_leader(str(exc))
            for _, fut in batch:
                fut.set_exception(err)
            return
        first = last - len(batch) + 1
        if trace.ENABLED:
            at = getattr(batch[-1][1], "trace_at", None)
            if at is not None:
                trace.mark(self.id, "propose", last, at)
            trace.mark(self.id, "loop", last)
        self._track([(first + i, fut) for i, (_, fut) in enumerate(batch)], raw.term)

    def _track(self, futs: list[tuple[int, Future[int]]], term: int) -> None:
        """Wait for these proposals' entries to apply; refused if the node failed meanwhile
        (the fatal path already failed every pending future, and no entry will apply)."""
        with self._fut_lock:
            failure = self._failure
            if failure is None:
                for index, fut in futs:
                    self._pending[index] = (term, fut)
                return
        for _, fut in futs:
            fut.set_exception(failure)

    def _publish(self) -> None:
        raw = self.raw
        old = self._view
        match: dict[int, int] = {}
        if raw.role == StateRole.LEADER:
            match = {nid: pr.match for nid, pr in raw.prs.items() if not pr.is_learner}
        view = NodeView(self.id, raw.role, raw.term, raw.leader, raw.log.committed,
                        raw.log.last_index(), match, raw.conf.voters)
        if view == old:
            return
        if view.role != old.role or view.term != old.term:
            if view.role == StateRole.CANDIDATE:
                self.elections += 1
            elif view.role == StateRole.LEADER:
                self.leader_terms += 1
            self.observer.on_role(view.role, view.term)
        with self._state_cv:
            self._view = view
            self._state_cv.notify_all()
        if view.term != old.term or view.leader != old.leader:
            self._fail_reads()  # the core forgets ReadIndex requests when leadership changes
        if old.role == StateRole.LEADER and (view.role != StateRole.LEADER
                                             or view.term != old.term):
            self._fail_uncommitted(view.commit, view.leader)
        if view.leader != old.leader and self._on_leader_change is not None:
            try:
                self._on_leader_change(view.leader, view.term)
            except Exception:
                log.exception("on_leader_change callback failed")

    # ------------------------------------------------------------------ persist / apply
    def _persist_loop(self) -> None:
        while True:
            with self._persist_cv:
                while not self._persist_q:
                    self._persist_cv.wait()
                rds = list(self._persist_q)
                self._persist_q.clear()
            stop = rds[-1] is None
            rds = [rd for rd in rds if rd is not None]
            try:
                self._persist(rds)
            except Exception as exc:
                self._fatal("persist", exc)
                return
            if stop:
                return

    def _persist(self, rds: list[Ready]) -> None:
        wal = self.storage
        for rd in rds:
            if rd.hard_state is not None or rd.entries or rd.snapshot is not None:
                wal.save(rd.hard_state, rd.entries, rd.snapshot, sync=False)
        if any(rd.must_sync for rd in rds):
            started = time.monotonic()
            wal.flush()
            self.observer.on_fsync(time.monotonic() - started)
        appended = [rd.entries for rd in rds if rd.entries]
        if trace.ENABLED and appended:
            trace.mark(self.id, "fsynced", appended[-1][-1].index)
        if appended:
            self.observer.on_append(appended[0][0].index, appended[-1][-1].index,
                                    appended[-1][-1].term, self._view.role == StateRole.LEADER)
        for rd in rds:
            if rd.persisted_messages:
                if trace.ENABLED:
                    trace.mark_messages(self.id, "send", rd.persisted_messages)
                self.transport.send(rd.persisted_messages)
            if rd.snapshot is not None and not rd.snapshot.empty:
                self._install_snapshot(rd)
            if rd.committed_entries:
                self._apply(rd.committed_entries)
                self._count_bytes(rd.committed_entries)
            if rd.read_states:
                with self._fut_lock:
                    for rs in rd.read_states:
                        fut = self._reads.pop(rs.context, None)
                        if fut is not None:
                            self._ready_reads.append((rs.index, fut))
            self._resolve_reads()
            self._maybe_snapshot()
            self._post("advance", rd)

    def _install_snapshot(self, rd: Ready) -> None:
        snap = rd.snapshot
        assert snap is not None
        if self._snapshotter is not None:
            self._snapshotter.install(snap.data)
        self.snapshots_installed += 1
        self.observer.on_snapshot_installed(snap.meta.index)
        self._applied_sizes.clear()
        self._bytes_since_snap = 0
        self._applied = snap.meta.index
        self._applied_conf = snap.meta.conf_state
        self._snap_index = snap.meta.index
        with self._fut_lock:
            covered = [i for i in self._pending if i <= snap.meta.index]
            futs = [self._pending.pop(i)[1] for i in covered]
        for f in futs:  # outcome unknown: the entries arrived inside a snapshot
            f.set_exception(ProposalDropped("entry was superseded by a snapshot"))
        self._set_applied(snap.meta.index)

    def _apply(self, entries: list[Entry]) -> None:
        run: list[Entry] = []
        results: dict[int, Any] = {}

        def flush() -> None:
            if run:
                out = self._apply_fn(list(run))
                if out is not None:
                    for e, r in zip(run, out):
                        results[e.index] = r
                run.clear()

        for e in entries:
            if e.type == EntryType.CONF_CHANGE:
                flush()
                self._apply_conf_change(e)
            else:
                run.append(e)
        flush()
        last = entries[-1].index
        self._applied = last
        won: list[tuple[int, Future[int]]] = []
        lost: list[Future[int]] = []
        with self._fut_lock:
            if self._pending:
                for e in entries:
                    p = self._pending.pop(e.index, None)
                    if p is not None:
                        (won.append((e.index, p[1])) if p[0] == e.term else lost.append(p[1]))
        for index, fut in won:
            if not fut.done():
                fut.result_value = results.get(index)  # type: ignore[attr-defined]
                fut.set_result(index)
        for fut in lost:
            if not fut.done():
                fut.set_exception(ProposalDropped("entry was overwritten by a new leader"))
        self._set_applied(last)
        if trace.ENABLED:
            trace.mark(self.id, "applied", last)

    def _apply_conf_change(self, e: Entry) -> None:
        try:  # the core skips the same entries (RawNode._apply_conf_entry)
            cc = confchange.decode(e.data)
            self._applied_conf = confchange.apply(self._applied_conf, cc)
        except RaftError as exc:
            log.debug("conf change at %d rejected: %s", e.index, exc)
            return
        changed = False
        for ch in cc.changes:
            if ch.type == ConfChangeType.REMOVE_NODE:
                if ch.node_id != self.id and ch.node_id not in self._applied_conf.members():
                    self.transport.remove_peer(ch.node_id)
                    changed = self._addresses.pop(ch.node_id, None) is not None or changed
            elif cc.context and len(cc.changes) == 1:
                try:
                    address = cc.context.decode()
                except UnicodeDecodeError:
                    log.error("conf change at %d: member address is not UTF-8", e.index)
                    continue
                self.transport.add_peer(ch.node_id, address)
                changed = self._addresses.get(ch.node_id) != address or changed
                self._addresses[ch.node_id] = address
        if changed:
            self._save_addresses()

    def _save_addresses(self) -> None:
        """Keep members' addresses beside the log: a restart after the conf-change entries
        were compacted into a snapshot still knows how to reach members added later."""
        data = json.dumps({str(k): v for k, v in sorted(self._addresses.items())}).encode()
        write_atomic(self.fs, self.storage.path / "peers.json", data, sync=self.cfg.fsync)

    def _set_applied(self, index: int) -> None:
        with self._state_cv:
            self._applied_index = index
            self._state_cv.notify_all()

    def _fail_reads(self) -> None:
        with self._fut_lock:
            if not self._reads:
                return
            lost = list(self._reads.values())
            self._reads.clear()
        err = NotLeader(self.raw.leader, "leadership changed before the read was confirmed")
        for f in lost:
            if not f.done():
                f.set_exception(err)

    def _fail_uncommitted(self, commit: int, leader: int) -> None:
        """Leadership was lost: every proposal not known committed fails now with
        LeadershipLost (retryable; the entry may still commit under the next leader, where a
        retried write is recognised by its session). Committed ones will apply here and
        resolve as usual."""
        with self._fut_lock:
            lost = [i for i in self._pending if i > commit]
            futs = [self._pending.pop(i)[1] for i in lost]
        if not futs:
            return
        err = LeadershipLost(leader, "leadership lost before the entry was committed")
        for f in futs:
            if not f.done():
                f.set_exception(err)

    def _resolve_reads(self) -> None:
        if not self._ready_reads:
            return
        with self._fut_lock:
            ready = [(i, f) for i, f in self._ready_reads if i <= self._applied]
            self._ready_reads = [(i, f) for i, f in self._ready_reads if i > self._applied]
        for i, f in ready:
            if not f.done():
                f.set_result(i)

    def _maybe_snapshot(self) -> None:
        """Persist thread, after applying: start a snapshot every ``snapshot_every`` entries
        and compact the log behind the last one saved. With ``Snapshotter.capture`` the image
        is produced and saved by a background thread (applying never waits for it); the
        compaction that follows always happens here, where every other WAL write does."""
        if self._snap_thread is not None and not self._snap_thread.is_alive():
            self._snap_thread = None
            saved, self._snap_saved = self._snap_saved, None
            if saved is not None:  # None: saving failed (logged), the log stays whole
                self._compact_behind(saved)
        every = self.cfg.snapshot_every
        by_bytes = self.cfg.snapshot_bytes
        if by_bytes:  # amortised: never more snapshot bytes dumped than log bytes applied
            by_bytes = max(by_bytes, len(self.storage.snapshot().data))
        due = ((every and self._applied - self._snap_index >= every)
               or (by_bytes and self._bytes_since_snap >= by_bytes))
        if not due or self._snapshotter is None or self._snap_thread is not None \
                or self._applied <= self._snap_index:
            return
        index, conf = self._applied, self._applied_conf
        self._snap_index = index  # no second snapshot until this one's interval has passed
        self._bytes_since_snap = 0
        capture = self._snapshotter.capture
        if capture is None:
            snap = self.storage.create_snapshot(index, conf, self._snapshotter.take())
            self._compact_behind(snap.meta.index)
            return
        produce = capture()

        def save() -> None:
            try:
                snap = self.storage.create_snapshot(index, conf, produce())
            except Exception:
                log.exception("raft snapshot at %d failed; the log is kept", index)
                return
            self._snap_saved = snap.meta.index

        self._snap_thread = threading.Thread(target=save, name=f"raft-snapshot-{self.id}",
                                             daemon=True)
        self._snap_thread.start()

    def _count_bytes(self, entries: Sequence[Entry]) -> None:
        if self._snapshotter is None:
            return  # no snapshots: nothing is compacted by size
        sizes = self._applied_sizes
        for e in entries:
            size = len(e.data)
            self._bytes_since_snap += size
            sizes.append((e.index, size))

    def _compact_behind(self, snap_index: int) -> None:
        """Compact the log behind ``snap_index``, keeping at most ``keep_entries`` entries and
        ``keep_bytes`` bytes of entries behind it for slow followers."""
        cut = snap_index - self.cfg.keep_entries
        sizes = self._applied_sizes
        if self.cfg.keep_bytes:
            kept = 0
            for index, size in reversed(sizes):
                if index > snap_index:
                    continue
                kept += size
                if kept > self.cfg.keep_bytes:
                    cut = max(cut, index)
                    break
        if cut >= self.storage.first_index():
            self.storage.compact(cut)
        while sizes and sizes[0][0] <= cut:
            sizes.popleft()
