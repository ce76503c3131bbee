"""The replicated member: owns the :class:`raft.node.RaftNode`, proposes writes, waits for
write concern, serves topology (``hello``), status, step-down, reconfiguration and priorities.

Writes: only the primary (the Raft leader, with priority > 0, not stepping down) accepts them;
the entry is proposed, and the reply is what applying the committed entry returned. Because the
reply exists only once the entry is committed, every acknowledged write with ``w >= 1`` is
already majority-committed; ``w = N`` then waits until N voters hold the entry durably, and
``wtimeout`` ends the wait with a writeConcernError (code 64) without undoing anything.

Reads: on the primary by default; ``readConcern: linearizable`` first confirms leadership with
a ReadIndex round and waits until that index is applied; secondaries serve reads whose read
preference allows it (they may lag: ``hello.lastWrite`` and ``replSetGetStatus`` say by how much;
``afterClusterTime`` waits until they have applied what a causal session wrote: the member's
cluster-time side is here, the waiting in ``node.commands.read_concern``).

Priorities: a background monitor on the leader hands leadership (Raft leadership transfer) to
a caught-up member of higher priority; a leader with priority 0, or one that was asked to step
down, transfers away at once and never reports itself primary meanwhile.

Faults: when the Raft node fails (its WAL, its store or a bug: see ``raft.node``), this member
at once stops reporting itself primary (or secondary) and its pending writes fail with
InterruptedDueToReplStateChange; ``on_fatal(where, exc)`` (the process) is told, and
:meth:`relinquish` hands leadership to a caught-up member if it can, then silences Raft so the
others elect at once. A write pending when this member loses leadership fails the same way
(it may still commit under the new primary: a retry with its session is recognised there).
"""

from __future__ import annotations

import datetime as _dt
import logging
import math
import os
import struct
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any

from bson import Int64, ObjectId, Timestamp

from node import failpoints
from node.commands.context import WIRE, RequestContext
from node.commands.member import WriteConcern
from node.commands.write_modes import member_tags
from node.engine.errors import (
    NOT_PRIMARY_NO_SECONDARY_OK,
    NOT_WRITABLE_PRIMARY,
    MongoError,
)
from node.engine.snapshot import dump_snapshot, load_snapshot, looks_intact
from node.ops.progress import Progress
from node.ops.raft_metrics import RaftMetrics
from node.server.command_link import LINK_FIELD
from node.server.config import MemberSpec, NodeConfig
from node.server.replset_config import check_quorum, parse_reconfig, tcp_probe
from node.server.statemachine import StateMachine, decode_entry, encode_entry
from node.server.write_wait import WriteConcernWaits
from raft.auth import load_keyfile
from raft.fsio import FileSystem
from raft.node import (
    LeadershipLost,
    NodeStopped,
    NotLeader,
    RaftNode,
    RaftNodeConfig,
    Snapshotter,
)
from raft.types import Entry, ProposalDropped, StateRole

log = logging.getLogger("helogale.replica")

NOOP_INTERVAL_S = 10.0
INTERRUPTED_REPL_STATE_CHANGE = 11602
EXCEEDED_TIME_LIMIT = 262
PROBE_TIMEOUT_S = 1.0
FOLLOWER_GRACE_MIN_S = 2.0
TICK_S = 0.025
_U64 = struct.Struct(">Q")
_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.UTC)


def _interrupted(why: str) -> MongoError:
    return MongoError(INTERRUPTED_REPL_STATE_CHANGE, why,
                      code_name="InterruptedDueToReplStateChange")


class Replica:
    """One replica-set member around a RaftNode (see module docstring)."""

    def __init__(self, config: NodeConfig, sm: StateMachine, store: Any, *,
                 fs: FileSystem | None = None) -> None:
        self.on_fatal: Callable[[str, BaseException], None] | None = None
        """Told once when this member can no longer make progress (the process exits)."""
        self.config = config
        self.sm = sm
        self.store = store
        self.id = config.member_id
        self.started_at = time.time()
        self._last_write = _EPOCH
        self._stepdown_until = 0.0
        self._stop = threading.Event()
        self._mlock = threading.Lock()
        self._members = self._load_members()
        raft_dir = os.path.join(config.data_dir or ".", "raft") if config.data_dir else None
        if raft_dir is None:
            import tempfile

            raft_dir = tempfile.mkdtemp(prefix=f"helogale-raft-{self.id}-")
        election_tick = max(2, round(config.election_timeout_ms / 1000 / TICK_S))
        heartbeat_tick = max(1, min(election_tick - 1, round(config.heartbeat_ms / 1000 / TICK_S)))
        peers = {m.id: m.raft_address for m in self._members}
        peers[self.id] = config.raft_listen_address
        key = load_keyfile(config.keyfile) if config.keyfile else None  # KeyFileError: say why
        self.raft_metrics = RaftMetrics()
        self.raft = RaftNode(
            self.id, raft_dir, peers, self._apply,
            snapshotter=Snapshotter(self._take_snapshot, self._install_snapshot,
                                    self._capture_snapshot, check=_snapshot_intact),
            config=RaftNodeConfig(tick_interval=TICK_S, election_tick=election_tick,
                                  heartbeat_tick=heartbeat_tick,
                                  snapshot_every=config.snapshot_every,
                                  keep_entries=config.keep_entries),
            listen=config.raft_listen_address, join=config.join,
            on_leader_change=self._on_leader_change, fs=fs, on_fatal=self._on_raft_fatal,
            cluster_key=key, observer=self.raft_metrics,
            tls=config.tls if config.tls.enabled else None,
        )
        self._monitor = threading.Thread(target=self._monitor_loop, name="replica-monitor",
                                         daemon=True)
        self._wc_waits = WriteConcernWaits(
            self.raft.holders, lambda pred, t: self.raft.wait_for(lambda _v: pred(), t),
            self.raft.wake_waiters, leading=self.raft.is_leader)

    # --- lifecycle -----------------------------------------------------------------------------
    def start(self) -> None:
        self.raft.start()
        self._monitor.start()

    def stop(self) -> None:
        self._stop.set()
        self.raft.stop()
        self._wc_waits.stop()
        if self._monitor.is_alive():
            self._monitor.join(timeout=2)

    # --- configuration -------------------------------------------------------------------------
    def _load_members(self) -> list[MemberSpec]:
        stored = self.sm.replset_config()
        if stored:
            return self._members_from_config(stored)
        return self.config.members()

    def _members_from_config(self, cfg: Mapping[str, Any]) -> list[MemberSpec]:
        out = []
        for doc in cfg.get("members", []):
            spec = MemberSpec.from_doc(dict(doc))
            if spec.id == self.id:
                spec = MemberSpec(spec.id, spec.host, spec.wire_host, spec.priority,
                                  self.config.raft_listen_address)
            else:
                mine = {p.id: p for p in self.config.peers}.get(spec.id)
                if mine is not None and mine.raft_host:
                    spec = MemberSpec(spec.id, spec.host, spec.wire_host, spec.priority,
                                      mine.raft_host)
            out.append(spec)
        return sorted(out, key=lambda m: m.id)

    def members(self) -> list[MemberSpec]:
        with self._mlock:
            return list(self._members)

    def _member(self, member_id: int) -> MemberSpec | None:
        for m in self._members:  # replaced whole, never changed in place: no copy needed
            if m.id == member_id:
                return m
        return None

    def _priority(self, member_id: int) -> float:
        m = self._member(member_id)
        return m.priority if m is not None else 0.0

    def config_doc(self) -> dict[str, Any]:
        stored = self.sm.replset_config()
        if stored:
            return stored
        return {"_id": self.config.replset, "version": 1, "term": Int64(self.raft.view.term),
                "members": [m.to_doc() for m in self.members()]}

    # --- raft callbacks (persist thread) -------------------------------------------------------
    def _apply(self, entries: list[Entry]) -> Sequence[Any]:
        items: list[tuple[int, dict[str, Any] | None]] = []
        for e in entries:
            items.append((e.index, decode_entry(e.data) if e.data else None))
        for _, entry in items:  # tests: hold a member's applying back (MongoDB's name)
            if entry is not None and "coll" in entry:
                failpoints.hit("rsSyncApplyStop", f"{entry.get('db')}.{entry['coll']}")
        replies = self.sm.apply_batch(items)
        for _, entry in items:
            if entry is None:
                continue
            now = entry.get("now")
            if isinstance(now, _dt.datetime):
                self._last_write = now
            if entry.get("op") == "replSetConfig":
                with self._mlock:
                    self._members = self._members_from_config(entry["config"])
                self._sync_transport()
        return replies

    def _sync_transport(self) -> None:
        for m in self.members():
            if m.id != self.id:
                self.raft.transport.add_peer(m.id, m.raft_address)

    def _take_snapshot(self) -> bytes:
        return self._capture_snapshot()()

    def _capture_snapshot(self) -> Callable[[], bytes]:
        """Fix the store's image now (apply thread, just after an entry applied): the dump's
        read transaction opens with its first chunk; the rest is read later, by the raft
        snapshot thread, from that same MVCC snapshot while applying goes on."""
        head = _U64.pack(self.sm.applied_index)
        chunks = dump_snapshot(self.store)
        first = next(chunks)

        def rest() -> bytes:
            parts = [head, first]
            with Progress("snapshotCapture", unit="bytes",
                          index=self.sm.applied_index) as work:
                for chunk in chunks:
                    parts.append(chunk)
                    work.advance(len(chunk))
            return b"".join(parts)

        return rest

    def _install_snapshot(self, data: bytes) -> None:
        (index,) = _U64.unpack(data[:8])
        if index <= self.sm.applied_index:
            return  # this store already holds that state (and possibly more)
        with Progress("snapshotInstall", total=len(data) - 8, unit="bytes",
                      index=index) as work:
            load_snapshot(self.store, [data[8:]], replace=True)
            work.set(len(data) - 8)
        self.sm.reload()
        with self._mlock:
            self._members = self._load_members()
        log.info("installed snapshot", extra={"fields": {"index": index}})

    def _on_leader_change(self, leader: int, term: int) -> None:
        log.info("leader changed", extra={"fields": {"leader": leader, "term": term}})

    # --- faults --------------------------------------------------------------------------------
    @property
    def failure(self) -> BaseException | None:
        """Why this member stopped making progress (None while healthy)."""
        return self.raft.failure

    def _on_raft_fatal(self, where: str, exc: BaseException) -> None:
        """The Raft node failed (its own thread; it already refuses writes and stopped saying
        it leads): no more no-ops or transfers from the monitor; tell the process."""
        self._stop.set()
        if self.on_fatal is not None:
            self.on_fatal(where, exc)
            return
        log.error("member cannot make progress: %s failed: %s", where, exc, exc_info=exc)
        self.relinquish(self._step_down_bound())

    def _step_down_bound(self) -> float:
        return min(5.0, max(1.0, 3 * self.config.election_timeout_ms / 1000))

    def relinquish(self, timeout: float | None = None) -> None:
        """After a fatal error: if this member still leads and its Raft loop runs, hand
        leadership to a caught-up electable member (waiting ``timeout`` at most), then halt
        Raft so that, either way, the others elect a primary without waiting for it."""
        wait = self._step_down_bound() if timeout is None else timeout
        try:
            if self.raft.view.role == StateRole.LEADER and self.raft.loop_alive:
                target = self._best_target()
                if target is not None:
                    self.raft.transfer_leadership(target)
                    self.raft.wait_for(lambda v: v.role != StateRole.LEADER, wait)
        finally:
            self.raft.halt()

    # --- roles ---------------------------------------------------------------------------------
    def is_primary(self) -> bool:
        return (self.raft.is_leader() and self._priority(self.id) > 0
                and time.monotonic() >= self._stepdown_until)

    def primary_address(self, wire: bool = False) -> str | None:
        view = self.raft.view
        leader = view.leader
        if not leader:
            return None
        if leader == self.id and not self.is_primary():
            return None
        m = self._member(leader)
        if m is None or m.priority <= 0:
            return None
        return (m.wire_host or m.host) if wire else m.host

    def set_size(self) -> int:
        return max(1, len(self.raft.view.voters))

    def require_writable(self) -> None:
        if self.is_primary():
            return
        primary = self.primary_address()
        msg = "not primary" + (f"; primary is {primary}" if primary else "; no primary known")
        details = {"primary": primary} if primary else None
        raise MongoError(NOT_WRITABLE_PRIMARY, msg, details=details)

    # --- writes --------------------------------------------------------------------------------
    def submit(self, entry: dict[str, Any], wc: WriteConcern
               ) -> tuple[dict[str, Any], dict[str, Any] | None]:
        return self.submit_async(entry, wc).result()

    def submit_async(self, entry: dict[str, Any], wc: WriteConcern
                     ) -> Future[tuple[dict[str, Any], dict[str, Any] | None]]:
        """Propose ``entry`` at once; the future completes with (result, writeConcernError)
        when the write concern is settled, or fails with the client's MongoError. No thread
        waits per write: a write concern that settles on apply is completed by the thread
        that applies the entry; ``w > 1`` and ``wtimeout`` also involve the one watcher of
        :class:`~node.server.write_wait.WriteConcernWaits`."""
        started = time.monotonic()
        fut = self._propose(entry, wc)
        if wc.settles_on_apply:
            out: Future[tuple[dict[str, Any], dict[str, Any] | None]] = Future()
            if isinstance(fut, dict):
                out.set_result((fut, None))
                return out

            def settle(done: Future[int]) -> None:
                try:
                    out.set_result((self._applied_result(done), None))
                except Exception as exc:  # MongoError, or a bug the dispatcher reports
                    out.set_exception(exc)

            fut.add_done_callback(settle)
            return out
        wait = self._wc_waits.add(wc, started)
        if isinstance(fut, dict):  # a recorded reply: it applied at or before applied_index
            self._wc_waits.applied(wait, fut, self.sm.applied_index)
            return wait.out

        def applied(done: Future[int]) -> None:
            try:
                result = self._applied_result(done)
            except Exception as exc:
                self._wc_waits.failed(wait, exc)
                return
            self._wc_waits.applied(wait, result, done.result(0))

        fut.add_done_callback(applied)
        return wait.out

    def _propose(self, entry: dict[str, Any], wc: WriteConcern) -> Future[int] | dict[str, Any]:
        """Propose ``entry``: the Raft future, or a result known without waiting (the reply a
        session recorded for this retried write, ``w: 0``'s, or the unsafe test mode's)."""
        self.require_writable()
        if entry.get("lsid") is not None and entry.get("txnNumber") is not None:
            recorded = self.sm.recorded_reply(entry)
            if recorded is not None:
                return recorded
        fut = self.raft.propose(encode_entry(entry))
        if not wc.acknowledged:
            return {}
        if self.config.unsafe_ack_before_commit:
            return _unsafe_early_reply(entry)
        return fut

    def _applied_result(self, fut: Future[int]) -> dict[str, Any]:
        """What applying a proposed entry returned (``fut`` is done), or the MongoError a
        client sees when the proposal failed."""
        try:
            fut.result(0)
        except LeadershipLost as exc:  # proposed, then deposed: it may still commit
            raise _interrupted(f"operation interrupted by a replica set state change: {exc}"
                               ) from None
        except NotLeader as exc:
            # the leader the refusal names: this member's view may not show the change yet
            known = self._member(exc.leader) if exc.leader and exc.leader != self.id else None
            primary = known.host if known is not None and known.priority > 0 else None
            raise MongoError(NOT_WRITABLE_PRIMARY, f"not primary: {exc}",
                             details={"primary": primary} if primary else None) from None
        except (ProposalDropped, NodeStopped) as exc:
            raise _interrupted(f"operation interrupted by a replica set state change: {exc}"
                               ) from None
        result = getattr(fut, "result_value", None)
        if not isinstance(result, dict):
            raise _interrupted("write outcome unknown after a replica set state change")
        return result

    # --- reads ---------------------------------------------------------------------------------
    def check_readable(self, cmd: Mapping[str, Any], ctx: RequestContext) -> None:
        rc = cmd.get("readConcern")
        level = rc.get("level") if isinstance(rc, Mapping) else None
        if level == "linearizable":
            self.require_writable()
            try:
                self.raft.read_index().result(10.0)
            except (ProposalDropped, NodeStopped, FutureTimeout) as exc:
                raise _interrupted(f"linearizable read could not confirm leadership: {exc}"
                                   ) from None
            return
        if self.is_primary():
            return
        pref = cmd.get("$readPreference")
        mode = pref.get("mode", "primary") if isinstance(pref, Mapping) else "primary"
        if mode == "primary" and not cmd.get("$secondaryOk"):
            raise MongoError(NOT_PRIMARY_NO_SECONDARY_OK, "not primary and secondaryOk=false",
                             code_name="NotPrimaryNoSecondaryOk")

    # --- cluster time (read concerns: node.commands.read_concern) -----------------------------
    def cluster_time(self) -> Timestamp:
        return self.sm.cluster_time

    def log_index(self) -> int:
        view = self.raft.view
        return max(view.last_index, view.commit, self.applied_index())

    def follower_grace_s(self) -> float:
        """A primary holds every committed entry; a secondary may not have received one yet
        (it learns of new entries within a heartbeat or two)."""
        if self.is_primary():
            return 0.0
        return max(FOLLOWER_GRACE_MIN_S, 4 * self.config.heartbeat_ms / 1000,
                   self.config.election_timeout_ms / 1000)

    def wait_for(self, pred: Callable[[], bool], timeout: float) -> bool:
        """Raises InterruptedDueToReplStateChange once this member stopped or failed (nothing
        will apply any more)."""
        if self.raft.wait_for(lambda _view: pred(), timeout):
            return True
        if self._stop.is_set() or self.failure is not None:
            raise _interrupted("operation interrupted: this member stopped applying entries")
        return False

    # --- topology ------------------------------------------------------------------------------
    def _op_time(self) -> dict[str, Any]:
        return {"ts": self.sm.cluster_time, "t": Int64(self.raft.view.term)}

    def hello(self, ctx: RequestContext) -> dict[str, Any]:
        wire = ctx.transport == WIRE
        members = self.members()

        def addr(m: MemberSpec) -> str:
            return (m.wire_host or m.host) if wire else m.host

        me = self._member(self.id)
        primary = self.is_primary()
        reply: dict[str, Any] = {"isWritablePrimary": primary}
        in_config = me is not None and self.id in self.raft.view.voters
        reply["secondary"] = in_config and not primary and self.raft.failure is None
        reply["setName"] = self.config.replset
        reply["setVersion"] = int(self.config_doc().get("version", 1))
        reply["hosts"] = [addr(m) for m in members if m.priority > 0]
        passives = [addr(m) for m in members if m.priority <= 0]
        if passives:
            reply["passives"] = passives
        paddr = self.primary_address(wire)
        if paddr:
            reply["primary"] = paddr
        reply["me"] = addr(me) if me else (self.config.advertised_wire if wire and
                                           self.config.advertised_wire else
                                           self.config.advertised)
        if me is not None and me.priority <= 0:
            reply["passive"] = True
        tags = member_tags(self.config_doc()).get(self.id)
        if tags:  # drivers select by these for tag-set read preferences
            reply["tags"] = tags
        if primary:
            reply["electionId"] = ObjectId(b"\x7f\xff\xff\xff"
                                           + self.raft.view.term.to_bytes(8, "big"))
        if not in_config:
            reply["info"] = "Does not have a valid replica set config"
            reply["isreplicaset"] = True
        if not wire and getattr(self.raft.transport, "command_server", None) is not None:
            reply[LINK_FIELD] = self.config.raft_listen_address
        op = self._op_time()
        reply["lastWrite"] = {"opTime": op, "lastWriteDate": self._last_write,
                              "majorityOpTime": op, "majorityWriteDate": self._last_write}
        return reply

    def applied_index(self) -> int:
        """Last log index applied here (conf changes included)."""
        return max(self.sm.applied_index, self.raft.applied_index)

    def repl_set_get_status(self) -> dict[str, Any]:
        st = self.raft.status()
        applied = self.applied_index()
        view = self.raft.view
        now = _dt.datetime.now(_dt.UTC)
        members = []
        for m in self.members():
            doc: dict[str, Any] = {"_id": m.id, "name": m.host}
            if m.wire_host:
                doc["wireHost"] = m.wire_host
            if m.id == self.id:
                state = 1 if self.is_primary() else (2 if m.id in view.voters else 5)
                doc.update({"health": 1.0, "self": True, "uptime": int(time.time()
                                                                         - self.started_at),
                            "appliedIndex": Int64(applied),
                            "commitIndex": Int64(st.commit),
                            "lastIndex": Int64(st.last_index),
                            "lagEntries": Int64(max(0, st.commit - applied))})
            else:
                pr = st.progress.get(m.id)
                if m.id == view.leader and m.priority > 0:
                    state = 1
                elif pr is not None and not pr.recent_active:
                    state = 8
                else:
                    state = 2 if m.id in view.voters else 5
                doc["health"] = 0.0 if state == 8 else 1.0
                if pr is not None:
                    doc["matchIndex"] = Int64(pr.match)
                    doc["lagEntries"] = Int64(max(0, st.last_index - pr.match))
                    if self.is_primary():
                        doc["lagSecs"] = self.raft_metrics.lag_seconds(pr.match,
                                                                       st.last_index)
            doc["state"] = state
            doc["stateStr"] = {1: "PRIMARY", 2: "SECONDARY", 5: "STARTUP2",
                               8: "(not reachable/healthy)"}[state]
            doc["priority"] = m.priority
            doc["optimeDate"] = self._last_write if m.id == self.id else None
            members.append(doc)
        return {
            "set": self.config.replset,
            "date": now,
            "myState": 1 if self.is_primary() else 2,
            "term": Int64(st.term),
            "leaderId": st.leader,
            "commitIndex": Int64(st.commit),
            "appliedIndex": Int64(applied),
            "lastWriteDate": self._last_write,
            "members": members,
            **self._election_fields(),
        }

    def _election_fields(self) -> dict[str, Any]:
        m = self.raft_metrics
        out: dict[str, Any] = {"electionsStarted": Int64(self.raft.elections),
                               "electedPrimary": Int64(self.raft.leader_terms)}
        if m.last_election is not None:
            out["lastElectionDate"] = _dt.datetime.fromtimestamp(m.last_election, _dt.UTC)
            out["lastElectionTerm"] = Int64(m.last_election_term)
        return out

    def repl_summary(self) -> dict[str, Any]:
        """serverStatus ``repl``: the Raft numbers of this member."""
        view = self.raft.view
        return {"term": Int64(view.term), "leaderId": view.leader,
                "commitIndex": Int64(view.commit), "lastIndex": Int64(view.last_index),
                "appliedIndex": Int64(self.applied_index()),
                "snapshotsInstalled": Int64(self.raft.snapshots_installed),
                **self._election_fields()}

    def repl_set_get_config(self) -> dict[str, Any]:
        return self.config_doc()

    # --- step-down and priorities -------------------------------------------------------------
    def _best_target(self) -> int | None:
        """The caught-up electable member with the highest priority (then most log), if any."""
        view = self.raft.view
        best: tuple[float, int, int] | None = None
        for m in self.members():
            if m.id == self.id or m.priority <= 0 or m.id not in view.voters:
                continue
            match = view.match.get(m.id, 0)
            if match < view.last_index:
                continue
            key = (m.priority, match, m.id)
            if best is None or key > best:
                best = key
        return best[2] if best else None

    def step_down(self, step_down_secs: float, catch_up_secs: float) -> None:
        if not self.is_primary():
            raise MongoError(NOT_WRITABLE_PRIMARY, "not primary so can't step down")
        if not (math.isfinite(step_down_secs) and math.isfinite(catch_up_secs)):
            # the handler refuses these; a deadline of NaN or inf would never come
            raise MongoError(2, "step-down periods must be finite")
        deadline = time.monotonic() + max(catch_up_secs, 0.0)
        while True:
            target = self._best_target()
            if target is not None:
                break
            if time.monotonic() >= deadline:
                raise MongoError(EXCEEDED_TIME_LIMIT, "No electable secondaries caught up as "
                                 "of the step-down deadline", code_name="ExceededTimeLimit")
            self.raft.wait_for(lambda v: False, 0.05)
        self._stepdown_until = time.monotonic() + step_down_secs
        self.raft.transfer_leadership(target)
        self.raft.wait_for(lambda v: v.leader not in (0, self.id), max(catch_up_secs, 2.0))

    def _monitor_loop(self) -> None:
        while not self._stop.wait(0.1):
            try:
                self._balance()
            except Exception:
                log.exception("priority monitor failed")

    def _write_noop_if_idle(self) -> None:
        """Like MongoDB's primary, write a no-op after 10 s without writes, so secondaries'
        ``lastWriteDate`` keeps moving and drivers can measure staleness."""
        now = _dt.datetime.now(_dt.UTC)
        if self.is_primary() and (now - self._last_write).total_seconds() >= NOOP_INTERVAL_S:
            self._last_write = now  # one proposal per interval, even before it applies
            self.raft.propose(encode_entry({"op": "noop", "now": now}))

    def _balance(self) -> None:
        self._write_noop_if_idle()
        view = self.raft.view
        if view.role != StateRole.LEADER:
            return
        mine = self._priority(self.id)
        target = self._best_target()
        if target is None:
            return
        stepping_down = time.monotonic() < self._stepdown_until
        if mine <= 0 or stepping_down or self._priority(target) > mine:
            log.info("transferring leadership", extra={"fields": {"to": target}})
            self.raft.transfer_leadership(target)
            self.raft.wait_for(lambda v: v.role != StateRole.LEADER, 1.0)

    # --- reconfiguration -----------------------------------------------------------------------
    def reconfig(self, config: Mapping[str, Any], force: bool) -> None:
        """Check the new configuration fully (``replset_config``: every field, then a quorum
        of its members reachable now), then propose it and the Raft membership changes. A
        refused configuration changes nothing."""
        self.require_writable()
        current = self.config_doc()
        new = parse_reconfig(config, replset=self.config.replset,
                             current_version=int(current.get("version", 1)))
        # the addresses THIS member dials (a --peer raft= override wins, as when applied)
        dialed = {s.id: s for s in self._members_from_config({"members": new.docs})}
        check_quorum([dialed[s.id] for s in new.specs], self.id, self._probe_member)
        old_voters = set(self.raft.view.voters)
        new_ids = {s.id for s in new.specs}
        new_cfg: dict[str, Any] = {"_id": self.config.replset, "version": new.version,
                                   "members": new.docs}
        if new.settings:
            new_cfg["settings"] = new.settings
        self._propose_and_wait({"op": "replSetConfig", "config": new_cfg,
                                "now": _dt.datetime.now(_dt.UTC)})
        by_id = {s.id: s for s in new.specs}
        for mid in sorted(new_ids - old_voters):  # every member learns the address in the doc
            self._change_voters(mid, add=True, address=by_id[mid].raft_address)
        for mid in sorted(old_voters - new_ids):
            self._change_voters(mid, add=False)

    def _probe_member(self, spec: MemberSpec) -> str | None:
        """None if ``spec`` answers now: recent Raft contact (leader's progress), or a TCP
        connection to its Raft address within ``PROBE_TIMEOUT_S``; else why not."""
        try:
            pr = self.raft.status(timeout=2.0).progress.get(spec.id)
        except Exception:
            pr = None
        if (pr is not None and pr.recent_active
                and self.raft.transport.connected(spec.id)
                and self.raft.transport.peers().get(spec.id) == spec.raft_address):
            return None
        return tcp_probe(spec.raft_address, PROBE_TIMEOUT_S)

    def _change_voters(self, member_id: int, *, add: bool, address: str = "") -> None:
        """One membership change, retried while Raft refuses it (a change still pending)."""
        deadline = time.monotonic() + 30.0
        while True:
            self.require_writable()
            fut = (self.raft.add_member(member_id, address) if add
                   else self.raft.remove_member(member_id))
            try:
                self._conf_wait(fut, max(1.0, deadline - time.monotonic()))
            except MongoError:
                if time.monotonic() >= deadline:
                    raise
            if self.raft.wait_for(lambda v: (member_id in v.voters) == add, 2.0):
                return
            if time.monotonic() >= deadline:
                raise MongoError(EXCEEDED_TIME_LIMIT, "membership change did not take effect",
                                 code_name="ExceededTimeLimit")

    def _propose_and_wait(self, entry: dict[str, Any], timeout: float = 30.0) -> None:
        fut = self.raft.propose(encode_entry(entry))
        self._conf_wait(fut, timeout)

    def _conf_wait(self, fut: Any, timeout: float = 30.0) -> None:
        try:
            fut.result(timeout)
        except FutureTimeout:
            raise MongoError(EXCEEDED_TIME_LIMIT, "reconfiguration did not commit in time",
                             code_name="ExceededTimeLimit") from None
        except (ProposalDropped, NodeStopped) as exc:
            raise _interrupted(f"reconfiguration interrupted: {exc}") from None


def _snapshot_intact(data: bytes) -> bool:
    """A member snapshot is the applied index (8 bytes) then the store's snapshot stream."""
    return len(data) > _U64.size and looks_intact(memoryview(data)[_U64.size:])


def _unsafe_early_reply(entry: Mapping[str, Any]) -> dict[str, Any]:
    """The reply a broken server would give before its write commits (chaos tests only)."""
    statements = entry.get("docs") or entry.get("updates") or entry.get("deletes") or [None]
    n = len(statements)
    return {"n": n, "nModified": n if entry.get("op") == "update" else 0}
