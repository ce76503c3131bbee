"""The Raft state machine (``RawNode``): pure, deterministic, no I/O.

Owns the protocol: elections (randomized timeouts from an injected random source, pre-vote,
check-quorum with leader leases), log replication (batching, pipelining, in-flight windows,
probe/replicate/snapshot flow control, fast log backtracking), commitment by a quorum of the
current term, chunked InstallSnapshot, membership changes (simple, joint, learners, removing the
leader), leadership transfer and ReadIndex. Inputs are ``step``/``tick``/``propose``/...;
outputs are collected in a ``Ready`` (see ``raft.types`` for the driver contract).
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from raft import confchange, quorum
from raft.log import RaftLog
from raft.progress import Progress, ProgressState
from raft.read_only import ReadOnly
from raft.types import (
    NONE,
    ConfChange,
    ConfState,
    Entry,
    EntryType,
    HardState,
    LogStorage,
    Message,
    MessageType,
    ProposalDropped,
    RaftError,
    ReadState,
    Ready,
    Snapshot,
    SnapshotMeta,
    SnapshotTemporarilyUnavailable,
    SoftState,
    StateRole,
    StorageCompacted,
    entry_size,
)

MT = MessageType
CAMPAIGN_TRANSFER = b"transfer"

_PERSISTED_TYPES = frozenset({MT.APPEND_RESP, MT.VOTE_RESP})
"""Responses that promise durable state: sent only after the Ready is persisted."""


@dataclass(slots=True)
class Config:
    id: int
    election_tick: int = 10
    heartbeat_tick: int = 1
    pre_vote: bool = True
    check_quorum: bool = True
    max_size_per_msg: int = 1 << 20
    """Max bytes of entries per append, and of data per snapshot chunk."""
    max_inflight_msgs: int = 256
    max_inflight_bytes: int = 0
    """0 = unbounded; else also bound the in-flight window by bytes."""
    max_uncommitted_entries: int = 0
    """0 = unbounded; else the leader drops proposals while this many entries await commit
    (back-pressure so a leader without a quorum does not grow its log without bound)."""
    max_committed_size_per_ready: int = 1 << 62
    applied: int = 0
    """Index the application's state already reflects (on restart); at least the index of
    the storage's snapshot, which is what 0 means. Conf-change entries between the snapshot
    and this index are replayed into the configuration."""
    rng: random.Random | None = None
    """Random source for election timeouts; a seeded Random makes runs reproducible."""
    snapshot_ok: Callable[[bytes], bool] | None = None
    """The application's check of a received snapshot's data (a pure function, e.g. its
    checksum): a snapshot it refuses is never installed nor handed to the driver."""

    def validate(self) -> None:
        if self.id == NONE:
            raise RaftError("cannot use 0 as a node id")
        if self.heartbeat_tick <= 0:
            raise RaftError("heartbeat_tick must be > 0")
        if self.election_tick <= self.heartbeat_tick:
            raise RaftError("election_tick must be greater than heartbeat_tick")
        if self.max_inflight_msgs <= 0:
            raise RaftError("max_inflight_msgs must be > 0")


@dataclass(slots=True)
class MemberStatus:
    match: int
    next: int
    state: str
    recent_active: bool
    is_learner: bool


@dataclass(slots=True)
class Status:
    id: int
    role: StateRole
    term: int
    vote: int
    leader: int
    commit: int
    applied: int
    last_index: int
    conf_state: ConfState
    lead_transferee: int = NONE
    progress: dict[int, MemberStatus] = field(default_factory=dict)
    """Per-member replication progress; filled on the leader only."""


def _snapshot_index(storage: LogStorage) -> int:
    try:
        return storage.snapshot().meta.index
    except SnapshotTemporarilyUnavailable:
        return 0


class RawNode:
    """One Raft peer. Not thread-safe: the driver serializes every call."""

    def __init__(self, config: Config, storage: LogStorage) -> None:
        config.validate()
        self.id = config.id
        self.cfg = config
        self.rng = config.rng or random.Random()
        self.election_timeout = config.election_tick
        self.heartbeat_timeout = config.heartbeat_tick
        self.log = RaftLog(storage, config.max_committed_size_per_ready)
        hs, cs = storage.initial_state()
        self.term = hs.term
        self.vote = hs.vote
        self.conf: ConfState = cs
        self.prs: dict[int, Progress] = {}
        self.role = StateRole.FOLLOWER
        self.leader = NONE
        self.lead_transferee = NONE
        self.pending_conf_index = 0
        self.votes: dict[int, bool] = {}
        self.read_only = ReadOnly()
        self.pending_reads: list[Message] = []
        self.read_states: list[ReadState] = []
        self.msgs: list[Message] = []
        self.msgs_after_persist: list[Message] = []
        self.election_elapsed = 0
        self.heartbeat_elapsed = 0
        self.randomized_election_timeout = self.election_timeout
        self._need_bcast = False
        self._snap_recv: tuple[Snapshot, bytearray] | None = None
        self._lead_match = 0
        """Follower: highest index known to match the current leader's log (this term)."""
        self._seq = 0
        snap_index = max(self.log.first_index() - 1, _snapshot_index(storage))
        if hs.commit:
            self.log.commit_to(min(hs.commit, self.log.last_index()))
        applied = max(config.applied, snap_index)
        if applied > self.log.committed:
            self.log.committed = applied
        self._conf_index = applied  # the configuration reflects entries up to here
        self._replay_conf_changes(snap_index, applied)
        self.log.applied_to(applied)
        self._reset_progress()
        self.become_follower(self.term, NONE)
        self._prev_hs = HardState(self.term, self.vote, self.log.committed)
        self._prev_ss = SoftState(NONE, StateRole.FOLLOWER)

    def _replay_conf_changes(self, lo: int, hi: int) -> None:
        """Rebuild the configuration from conf-change entries already applied (restart)."""
        if hi <= lo:
            return
        for e in self.log.slice(lo + 1, hi + 1):
            if e.type == EntryType.CONF_CHANGE:
                self._apply_conf_entry(e)

    # ------------------------------------------------------------------ public API
    def tick(self) -> None:
        if self.role == StateRole.LEADER:
            self._tick_heartbeat()
        else:
            self._tick_election()

    def campaign(self) -> None:
        """Start an election now (as if the election timeout fired)."""
        self.step(Message(MT.HUP))

    def leader_unreachable(self, peer: int) -> None:
        """The driver saw its connection from ``peer`` end (the process died, or the link was
        cut). If ``peer`` is this follower's leader, count the election timer as if the
        leader had been silent for a whole election timeout: this follower's lease ends now
        and it campaigns after half its random spread (0 to ``election_timeout / 2`` ticks)
        instead of up to twice the timeout after the last heartbeat. Half: two followers
        that noticed together and campaign close together still elect one (equal logs: the
        lower id goes first, see ``_pre_vote_tie_lost``; unequal: the less up-to-date one is
        refused and the other campaigns on its own timer; a pre-vote dropped meanwhile is asked
        again, ``_resend_pre_votes``). Nothing else changes: a heartbeat restarts the timer as
        usual, and a member still hearing from the leader keeps refusing its (pre-)votes, so a
        cut link alone cannot depose a healthy leader."""
        if self.role == StateRole.FOLLOWER and peer != NONE and peer == self.leader:
            spread = self.randomized_election_timeout - self.election_timeout
            self.election_elapsed = max(self.election_elapsed,
                                        self.election_timeout + (spread + 1) // 2)

    def step(self, m: Message) -> None:
        """Feed one message received from a peer (or a local message type)."""
        if m.term == 0:
            pass  # local message
        elif m.term > self.term:
            if m.type in (MT.VOTE, MT.PRE_VOTE):
                force = m.context == CAMPAIGN_TRANSFER
                in_lease = (self.cfg.check_quorum and self.leader != NONE
                            and self.election_elapsed < self.election_timeout)
                if not force and in_lease:
                    return  # a healthy leader is in charge: do not let this node disrupt it
            if m.type == MT.PRE_VOTE or (m.type == MT.PRE_VOTE_RESP and not m.reject):
                pass  # pre-votes never change our term
            elif m.type in (MT.APPEND, MT.HEARTBEAT, MT.SNAPSHOT):
                self.become_follower(m.term, m.frm)
            elif m.type == MT.VOTE:
                # Adopt the term but keep our election timer running: only a granted vote
                # restarts it, so a candidate with a stale log that keeps campaigning cannot
                # hold back the nodes that could win.
                elapsed = self.election_elapsed
                self.become_follower(m.term, NONE)
                self.election_elapsed = elapsed
            else:
                self.become_follower(m.term, NONE)
        elif m.term < self.term:
            if (self.cfg.check_quorum or self.cfg.pre_vote) and m.type in (MT.HEARTBEAT,
                                                                           MT.APPEND):
                # A leader at a lower term: tell it our term so it steps down and a new
                # election can include us (we may be stuck at a term nobody else reached).
                self._send(Message(MT.APPEND_RESP, to=m.frm))
            elif m.type == MT.PRE_VOTE:
                # Reject with our term so a pre-candidate at a lower term catches up.
                self._send(Message(MT.PRE_VOTE_RESP, to=m.frm, term=self.term, reject=True))
            return
        t = m.type
        if t == MT.HUP:
            self._hup(transfer=False)
        elif t in (MT.VOTE, MT.PRE_VOTE):
            self._handle_vote_request(m)
        elif self.role == StateRole.LEADER:
            self._step_leader(m)
        elif self.role == StateRole.FOLLOWER:
            self._step_follower(m)
        else:
            self._step_candidate(m)

    def propose(self, data: bytes) -> int:
        """Append ``data`` as a new entry on the leader; returns its index.

        Raises ProposalDropped if this node is not the leader or a transfer is in progress.
        """
        return self.propose_batch((data,))

    def propose_batch(self, datas: list[bytes] | tuple[bytes, ...]) -> int:
        """Append many entries at once (one Entry per datum, nothing else); returns the last
        index. The entries go out in one append per follower at the next ``ready()``."""
        self._check_can_propose(len(datas))
        log = self.log
        li = log.last_index()
        term = self.term
        normal = EntryType.NORMAL
        log.append([Entry(term, li + i, normal, d) for i, d in enumerate(datas, 1)])
        self._need_bcast = True
        return li + len(datas)

    def propose_conf_change(self, cc: ConfChange) -> int:
        """Propose a membership change; returns the entry index.

        Raises ProposalDropped if another change is still unapplied or ``cc`` is invalid
        against the current configuration.
        """
        return self._propose_entries([(EntryType.CONF_CHANGE, confchange.encode(cc))])

    def transfer_leader(self, to: int) -> None:
        self.step(Message(MT.TRANSFER_LEADER, index=to))

    def read_index(self, context: bytes) -> None:
        """Request a linearizable read point; answered later in ``Ready.read_states``.

        Raises ProposalDropped if no leader is known (retry after one is elected).
        """
        if self.role != StateRole.LEADER and self.leader == NONE:
            raise ProposalDropped("no leader")
        self.step(Message(MT.READ_INDEX, frm=self.id, context=context))

    @property
    def applied(self) -> int:
        return self.log.applied

    @property
    def committed(self) -> int:
        return self.log.committed

    def status(self) -> Status:
        st = Status(self.id, self.role, self.term, self.vote, self.leader, self.log.committed,
                    self.log.applied, self.log.last_index(), self.conf, self.lead_transferee)
        if self.role == StateRole.LEADER:
            for nid, pr in self.prs.items():
                st.progress[nid] = MemberStatus(pr.match, pr.next, pr.state.name,
                                                pr.recent_active or pr.was_active,
                                                pr.is_learner)
        return st

    def match_index(self, node_id: int) -> int:
        """Leader only: highest index known durable on ``node_id`` (for write concern w=N)."""
        pr = self.prs.get(node_id)
        return pr.match if pr is not None else 0

    # ------------------------------------------------------------------ Ready
    def has_ready(self) -> bool:
        if self._need_bcast:
            return True
        u = self.log.unstable
        if self.msgs or self.msgs_after_persist or self.read_states:
            return True
        if u.next_snapshot() is not None or u.offset_in_progress < u.offset + len(u.entries):
            return True
        if self.log.has_next_committed():
            return True
        hs = self._prev_hs
        if self.term != hs.term or self.vote != hs.vote or self.log.committed != hs.commit:
            return True
        ss = self._prev_ss
        return self.leader != ss.leader or self.role != ss.role

    def _soft_state(self) -> SoftState:
        return SoftState(self.leader, self.role)

    def ready(self) -> Ready:
        """Collect everything to do; the driver must persist/advance Readies in order."""
        if self._need_bcast:
            self._bcast_append()
        u = self.log.unstable
        rd = Ready()
        self._seq += 1
        rd.seq = self._seq
        rd.entries = u.next_entries()
        rd.snapshot = u.next_snapshot()
        u.accept_in_progress()
        hs = HardState(self.term, self.vote, self.log.committed)
        prev = self._prev_hs
        if hs.term != prev.term or hs.vote != prev.vote or hs.commit != prev.commit:
            rd.hard_state = hs
            rd.must_sync = hs.term != prev.term or hs.vote != prev.vote
            self._prev_hs = hs
        if rd.entries or rd.snapshot is not None:
            rd.must_sync = True
        ss = self._soft_state()
        if ss != self._prev_ss:
            rd.soft_state = ss
            self._prev_ss = ss
        ce = self.log.next_committed_entries()
        if ce:
            rd.committed_entries = ce
            self.log.applying = ce[-1].index
        rd.messages = self.msgs
        self.msgs = []
        self_msgs: list[Message] = []
        after: list[Message] = []
        for m in self.msgs_after_persist:
            (self_msgs if m.to == self.id else after).append(m)
        self.msgs_after_persist = []
        if rd.entries and self.role == StateRole.LEADER:
            last = rd.entries[-1]
            self_msgs.append(Message(MT.APPEND_RESP, to=self.id, frm=self.id, term=self.term,
                                     index=last.index))
        rd.persisted_messages = after
        rd.self_messages = self_msgs
        if self.read_states:
            rd.read_states = self.read_states
            self.read_states = []
        return rd

    def advance(self, rd: Ready) -> None:
        """The driver persisted ``rd``, sent its messages and applied its committed entries."""
        u = self.log.unstable
        if rd.snapshot is not None:
            u.stable_snap_to(rd.snapshot.meta.index)
            self.log.applied_to(rd.snapshot.meta.index)
        if rd.entries:
            last = rd.entries[-1]
            u.stable_to(last.index, last.term)
        if rd.committed_entries:
            for e in rd.committed_entries:
                if e.type == EntryType.CONF_CHANGE and e.index > self._conf_index:
                    self._conf_index = e.index
                    self._apply_conf_entry(e)
            self.log.applied_to(rd.committed_entries[-1].index)
            self._maybe_auto_leave_joint()
        for m in rd.self_messages:
            self.step(m)

    # ------------------------------------------------------------------ roles
    def _reset(self, term: int) -> None:
        if term != self.term:
            self.term = term
            self.vote = NONE
        self.leader = NONE
        self._lead_match = self.log.committed
        self.election_elapsed = 0
        self.heartbeat_elapsed = 0
        self.randomized_election_timeout = self.election_timeout + self.rng.randrange(
            self.election_timeout)
        self.lead_transferee = NONE
        self.votes = {}
        self.pending_conf_index = 0
        self.read_only = ReadOnly()
        self.pending_reads = []
        self._reset_progress()

    def _reset_progress(self) -> None:
        last = self.log.last_index()
        cfg = self.cfg
        learners = self.conf.learners | self.conf.learners_next
        prs = {}
        for nid in self.conf.members():
            pr = Progress(last + 1, cfg.max_inflight_msgs, cfg.max_inflight_bytes,
                          is_learner=nid in learners)
            if nid == self.id:
                pr.match = self.log.stable_last_index()
            prs[nid] = pr
        self.prs = prs

    def become_follower(self, term: int, leader: int) -> None:
        self._reset(term)
        self.role = StateRole.FOLLOWER
        self.leader = leader

    def _become_pre_candidate(self) -> None:
        if self.role == StateRole.LEADER:
            raise RaftError("invalid transition leader -> pre-candidate")
        self.votes = {}
        self.leader = NONE
        self.role = StateRole.PRE_CANDIDATE

    def _become_candidate(self) -> None:
        if self.role == StateRole.LEADER:
            raise RaftError("invalid transition leader -> candidate")
        self._reset(self.term + 1)
        self.vote = self.id
        self.role = StateRole.CANDIDATE

    def _become_leader(self) -> None:
        if self.role == StateRole.FOLLOWER:
            raise RaftError("invalid transition follower -> leader")
        self._reset(self.term)
        self.leader = self.id
        self.role = StateRole.LEADER
        for nid, pr in self.prs.items():
            pr.recent_active = True
            if nid == self.id:
                pr.become_replicate()
                pr.match = self.log.stable_last_index()
                pr.next = self.log.last_index() + 1
        # Conf changes in the uncommitted tail may exist: forbid new ones until applied.
        self.pending_conf_index = self.log.last_index()
        self._append([(EntryType.NORMAL, b"")])

    def _promotable(self) -> bool:
        return self.id in self.conf.voters or self.id in self.conf.voters_outgoing

    # ------------------------------------------------------------------ ticks
    def _tick_election(self) -> None:
        self.election_elapsed += 1
        if self._promotable() and self.election_elapsed >= self.randomized_election_timeout:
            self.election_elapsed = 0
            self.step(Message(MT.HUP))
        elif (self.role == StateRole.PRE_CANDIDATE
              and self.election_elapsed % self.heartbeat_timeout == 0):
            self._resend_pre_votes()

    def _resend_pre_votes(self) -> None:
        """A pre-candidate asks again, every heartbeat interval, the voters that have not
        answered: one may have dropped the request unanswered while it still counted the old
        leader alive (its lease, e.g. it had not yet noticed the leader's connection end), and
        waiting a whole random election timeout to ask again would leave the set without a
        leader that long. A pre-vote changes no term or vote, so asking twice is harmless."""
        li, lt = self.log.last_index(), self.log.last_term()
        for nid in sorted(self.conf.voters | self.conf.voters_outgoing):
            if nid != self.id and nid not in self.votes:
                self.msgs.append(Message(MT.PRE_VOTE, to=nid, frm=self.id, term=self.term + 1,
                                         index=li, log_term=lt))

    def _tick_heartbeat(self) -> None:
        self.heartbeat_elapsed += 1
        self.election_elapsed += 1
        if self.election_elapsed >= self.election_timeout:
            self.election_elapsed = 0
            if self.cfg.check_quorum:
                self.step(Message(MT.CHECK_QUORUM))
            if self.role == StateRole.LEADER and self.lead_transferee != NONE:
                self.lead_transferee = NONE  # transfer did not finish within a timeout
            if self.role == StateRole.LEADER and not self._promotable():
                self._transfer_to_best()  # a removed leader keeps trying to hand over
        if self.role != StateRole.LEADER:
            return
        if self.heartbeat_elapsed >= self.heartbeat_timeout:
            self.heartbeat_elapsed = 0
            self._bcast_heartbeat(self.read_only.last_pending_context())

    # ------------------------------------------------------------------ elections
    def _hup(self, transfer: bool) -> None:
        if self.role == StateRole.LEADER:
            return
        if not self._promotable():
            return
        if self._has_unapplied_conf_change() or self.log.unstable.snapshot is not None:
            return  # configuration or snapshot not settled yet: campaign later
        if self.cfg.pre_vote and not transfer:
            self._campaign(pre=True, transfer=False)
        else:
            self._campaign(pre=False, transfer=transfer)

    def _has_unapplied_conf_change(self) -> bool:
        lo, hi = self.log.applied + 1, self.log.committed + 1
        if lo >= hi:
            return False
        try:
            ents = self.log.slice(lo, hi)
        except StorageCompacted:
            return False
        return any(e.type == EntryType.CONF_CHANGE for e in ents)

    def _campaign(self, pre: bool, transfer: bool) -> None:
        if pre:
            self._become_pre_candidate()
            term = self.term + 1
            mtype = MT.PRE_VOTE
            self.votes[self.id] = True  # a pre-vote changes nothing durable: count it now
        else:
            self._become_candidate()
            term = self.term
            mtype = MT.VOTE
            # our own vote counts only once the vote is durable
            self.msgs_after_persist.append(Message(MT.VOTE_RESP, to=self.id, frm=self.id,
                                                   term=self.term))
        if pre and self._poll() == quorum.VoteResult.WON:
            self._campaign(pre=False, transfer=False)
            return
        li, lt = self.log.last_index(), self.log.last_term()
        ctx = CAMPAIGN_TRANSFER if transfer else b""
        # Vote requests wait for our new term and self-vote to be durable: a candidate may win
        # on its peers' votes alone, and a leader whose term is not durable could restart
        # below it and lead the same term twice with different entries.
        out = self.msgs if pre else self.msgs_after_persist
        for nid in sorted(self.conf.voters | self.conf.voters_outgoing):
            if nid == self.id:
                continue
            out.append(Message(mtype, to=nid, frm=self.id, term=term, index=li,
                               log_term=lt, context=ctx))

    def _poll(self) -> quorum.VoteResult:
        return quorum.joint_vote(self.conf, self.votes)

    def _handle_vote_request(self, m: Message) -> None:
        can_vote = (self.vote == m.frm
                    or (self.vote == NONE and self.leader == NONE)
                    or (m.type == MT.PRE_VOTE and m.term > self.term))
        resp = MT.VOTE_RESP if m.type == MT.VOTE else MT.PRE_VOTE_RESP
        if can_vote and self._pre_vote_tie_lost(m):
            can_vote = False
        if can_vote and self.log.is_up_to_date(m.index, m.log_term):
            self._send(Message(resp, to=m.frm, term=m.term))
            if m.type == MT.VOTE:
                self.election_elapsed = 0
                self.vote = m.frm
        else:
            self._send(Message(resp, to=m.frm, term=self.term, reject=True))

    def _pre_vote_tie_lost(self, m: Message) -> bool:
        """Two pre-candidates of the same election with equally up-to-date logs (both
        followers noticed the dead leader at about the same moment): the lower id goes first.
        Granting each other's pre-votes would send both into the real election, where each
        keeps its own vote and neither wins until a second, random timeout. A pre-vote decides
        nothing (no term or vote changes), so this refusal only affects who campaigns."""
        return (m.type == MT.PRE_VOTE and self.role == StateRole.PRE_CANDIDATE
                and self.term > 0  # a refusal carries our term; term 0 never goes on the wire
                and m.term == self.term + 1 and m.frm > self.id
                and m.index == self.log.last_index() and m.log_term == self.log.last_term())

    def _step_candidate(self, m: Message) -> None:
        my_resp = MT.PRE_VOTE_RESP if self.role == StateRole.PRE_CANDIDATE else MT.VOTE_RESP
        t = m.type
        if t == MT.PROPOSE:
            raise ProposalDropped("not leader")
        if t in (MT.APPEND, MT.HEARTBEAT, MT.SNAPSHOT):
            self.become_follower(m.term, m.frm)
            self._step_follower(m)
        elif t == my_resp:
            self.votes.setdefault(m.frm, not m.reject)
            res = self._poll()
            if res == quorum.VoteResult.WON:
                if self.role == StateRole.PRE_CANDIDATE:
                    self._campaign(pre=False, transfer=False)
                else:
                    self._become_leader()
                    self._bcast_append()
            elif res == quorum.VoteResult.LOST:
                self.become_follower(self.term, NONE)
        elif t == MT.READ_INDEX and m.frm == self.id:
            raise ProposalDropped("no leader")

    # ------------------------------------------------------------------ follower
    def _step_follower(self, m: Message) -> None:
        t = m.type
        if t == MT.APPEND:
            self.election_elapsed = 0
            self.leader = m.frm
            self._handle_append(m)
        elif t == MT.HEARTBEAT:
            self.election_elapsed = 0
            self.leader = m.frm
            # Commit only what this leader's appends (or snapshot) showed we share with it:
            # our tail past that may come from an older term and conflict with its log.
            # (If that holds the commit back, say so: the leader then sends an append, which
            # proves the match; a restarted follower of an idle leader needs this.)
            self.log.commit_to(min(m.commit, self._lead_match, self.log.last_index()))
            self._send(Message(MT.HEARTBEAT_RESP, to=m.frm, context=m.context,
                               reject=m.commit > self.log.committed))
        elif t == MT.SNAPSHOT:
            self.election_elapsed = 0
            self.leader = m.frm
            self._handle_snapshot_chunk(m)
        elif t == MT.PROPOSE:
            raise ProposalDropped("not leader")
        elif t == MT.TRANSFER_LEADER:
            if self.leader != NONE:
                self._send(Message(MT.TRANSFER_LEADER, to=self.leader, index=m.index))
        elif t == MT.TIMEOUT_NOW:
            # Leader transfer: campaign at once, skipping pre-vote and leases.
            self._hup(transfer=True)
        elif t == MT.READ_INDEX:
            if self.leader == NONE:
                if m.frm == self.id:
                    raise ProposalDropped("no leader")
                return
            self._send(Message(MT.READ_INDEX, to=self.leader, context=m.context))
        elif t == MT.READ_INDEX_RESP:
            self.read_states.append(ReadState(m.index, m.context))

    def _handle_append(self, m: Message) -> None:
        log = self.log
        ents = m.entries
        if ents and (ents[0].index != m.index + 1 or ents[-1].index != m.index + len(ents)):
            return  # not contiguous after m.index (the transport checks every entry)
        if m.index < log.committed:
            self._send(Message(MT.APPEND_RESP, to=m.frm, index=log.committed))
            return
        last_new = log.maybe_append(m.index, m.log_term, m.commit, ents)
        if last_new is not None:
            if last_new > self._lead_match:
                self._lead_match = last_new
            self._send(Message(MT.APPEND_RESP, to=m.frm, index=last_new))
            return
        hint = min(m.index, log.last_index())
        hint, hint_term = log.find_conflict_by_term(hint, m.log_term)
        self._send(Message(MT.APPEND_RESP, to=m.frm, index=m.index, reject=True,
                           reject_hint=hint, log_term=hint_term))

    def _handle_snapshot_chunk(self, m: Message) -> None:
        snap = m.snapshot
        if snap is None:
            return
        meta = snap.meta
        if meta.index <= self.log.committed:
            # already have it (or newer): report where we are
            self._snap_recv = None
            self._send(Message(MT.APPEND_RESP, to=m.frm, index=self.log.committed))
            return
        cur = self._snap_recv
        if cur is None or cur[0].meta != meta:
            if m.offset != 0:  # we lost (or never had) the start of this snapshot
                self._send(Message(MT.SNAPSHOT_RESP, to=m.frm, index=meta.index, reject=True))
                return
            cur = (snap, bytearray())
        buf = cur[1]
        if m.offset != len(buf):
            # a duplicate (offset below) is acknowledged; a gap (offset above) is rejected with
            # what we hold, and the leader resumes from there
            self._snap_recv = cur
            self._send(Message(MT.SNAPSHOT_RESP, to=m.frm, index=meta.index,
                               reject=m.offset > len(buf), reject_hint=len(buf)))
            return
        buf += snap.data
        if not m.done:
            self._snap_recv = cur
            self._send(Message(MT.SNAPSHOT_RESP, to=m.frm, index=meta.index,
                               reject_hint=len(buf)))
            return
        self._snap_recv = None
        full = Snapshot(meta, bytes(buf))
        check = self.cfg.snapshot_ok
        if check is not None and self._would_restore(meta) and not check(full.data):
            # refused by the application: start over (a real leader resends from offset 0)
            self._send(Message(MT.SNAPSHOT_RESP, to=m.frm, index=meta.index, reject=True,
                               reject_hint=0))
            return
        if self._restore(full):
            self._send(Message(MT.APPEND_RESP, to=m.frm, index=self.log.last_index()))
        else:
            self._send(Message(MT.APPEND_RESP, to=m.frm, index=self.log.committed))

    def _would_restore(self, meta: SnapshotMeta) -> bool:
        return (meta.index > self.log.committed and self.role == StateRole.FOLLOWER
                and not self.log.match_term(meta.index, meta.term))

    def _restore(self, s: Snapshot) -> bool:
        meta = s.meta
        if meta.index <= self.log.committed:
            return False
        if self.role != StateRole.FOLLOWER:
            self.become_follower(self.term + 1, NONE)  # defensive; should not happen
            return False
        if self.log.match_term(meta.index, meta.term):
            # our log already has it: just fast-forward the commit
            self.log.commit_to(meta.index)
            self._lead_match = max(self._lead_match, meta.index)
            return False
        self.log.restore(s)
        self._lead_match = meta.index
        self.conf = meta.conf_state
        self._conf_index = meta.index
        self._reset_progress()
        return True

    # ------------------------------------------------------------------ leader
    def _step_leader(self, m: Message) -> None:
        t = m.type
        if t == MT.CHECK_QUORUM:
            ok = quorum.has_quorum(self.conf, lambda v: v == self.id or (
                v in self.prs and self.prs[v].recent_active))
            for nid, pr in self.prs.items():
                if nid != self.id:
                    pr.was_active = pr.recent_active
                    pr.recent_active = False
            if not ok:
                self.become_follower(self.term, NONE)
            return
        if t == MT.READ_INDEX:
            self._leader_read_index(m)
            return
        if t == MT.TRANSFER_LEADER:
            self._leader_transfer(m.index)
            return
        if t == MT.PROPOSE:
            raise ProposalDropped("use propose()")
        pr = self.prs.get(m.frm)
        if pr is None:
            return
        if t == MT.APPEND_RESP:
            self._leader_append_resp(m, pr)
        elif t == MT.HEARTBEAT_RESP:
            pr.recent_active = True
            if pr.state == ProgressState.SNAPSHOT:
                if not pr.snap_progress:  # no ack since the last heartbeat: go back N
                    pr.snap_sent = pr.snap_offset
                    pr.probe_sent = False
                pr.snap_progress = False
            elif pr.state == ProgressState.PROBE:
                pr.probe_sent = False
            elif pr.inflights.full():
                pr.inflights.free_first_one()
            if (pr.match < self.log.last_index() or pr.state == ProgressState.SNAPSHOT
                    or m.reject):
                self._send_append(m.frm)
            if m.context:
                self._read_ack(m.frm, m.context)
        elif t == MT.SNAPSHOT_RESP:
            pr.recent_active = True
            if pr.state == ProgressState.SNAPSHOT and m.index == pr.pending_snapshot:
                if m.reject:  # the follower holds exactly reject_hint bytes: resume there
                    pr.snap_offset = pr.snap_sent = m.reject_hint
                    pr.probe_sent = False
                elif m.reject_hint > pr.snap_offset:
                    pr.snap_offset = m.reject_hint
                    pr.snap_progress = True
                    if pr.snap_sent < pr.snap_offset:
                        pr.snap_sent = pr.snap_offset
                else:
                    return  # stale or duplicate acknowledgement
                while self._send_append(m.frm):
                    pass

    def _leader_append_resp(self, m: Message, pr: Progress) -> None:
        if not m.reject and m.index > self.log.last_index():
            return  # acknowledges entries we never had: not from a correct follower
        pr.recent_active = True
        frm = m.frm
        if m.reject:
            next_probe = m.reject_hint
            if m.log_term > 0:
                next_probe, _ = self.log.find_conflict_by_term(m.reject_hint, m.log_term)
            if pr.maybe_decr_to(m.index, next_probe):
                if pr.state == ProgressState.REPLICATE:
                    pr.become_probe()
                self._send_append(frm)
            return
        old_paused = pr.is_paused()
        if not pr.maybe_update(m.index) and not (
                pr.match == m.index and pr.state == ProgressState.PROBE):
            return
        if pr.state == ProgressState.PROBE:
            pr.become_replicate()
        elif pr.state == ProgressState.SNAPSHOT and (
                pr.match + 1 >= self.log.first_index() or pr.match >= pr.pending_snapshot):
            pr.become_probe()
            pr.become_replicate()
        elif pr.state == ProgressState.REPLICATE:
            pr.inflights.free_le(m.index)
        if self._maybe_commit():
            self._release_pending_reads()
            self._need_bcast = True  # carry the new commit index (once per Ready)
        if frm != self.id and old_paused:
            self._send_append(frm)
        if frm != self.id:
            while self._send_append(frm, send_if_empty=False):
                pass
        if frm == self.lead_transferee and pr.match == self.log.last_index():
            self._send(Message(MT.TIMEOUT_NOW, to=frm))

    def _maybe_commit(self) -> bool:
        prs = self.prs
        mci = quorum.joint_committed(self.conf, lambda v: prs[v].match if v in prs else 0)
        return self.log.maybe_commit(mci, self.term)

    def _append(self, items: list[tuple[EntryType, bytes]]) -> int:
        log = self.log
        li = log.last_index()
        term = self.term
        ents = [Entry(term, li + i, typ, data) for i, (typ, data) in enumerate(items, 1)]
        log.append(ents)
        self._need_bcast = True
        return li + len(ents)

    def _propose_entries(self, items: list[tuple[EntryType, bytes]]) -> int:
        self._check_can_propose(len(items))
        for i, (typ, data) in enumerate(items):
            if typ == EntryType.CONF_CHANGE:
                if self.pending_conf_index > self.log.applied:
                    raise ProposalDropped("a configuration change is still pending")
                try:
                    confchange.apply(self.conf, confchange.decode(data))
                except RaftError as e:
                    raise ProposalDropped(f"invalid configuration change: {e}") from e
                self.pending_conf_index = self.log.last_index() + i + 1
        return self._append(items)

    def _check_can_propose(self, n: int) -> None:
        if self.role != StateRole.LEADER:
            raise ProposalDropped("not leader")
        if self.lead_transferee != NONE:
            raise ProposalDropped("leadership transfer in progress")
        if not self._promotable():
            raise ProposalDropped("leader was removed from the configuration")
        limit = self.cfg.max_uncommitted_entries
        if limit and self.log.last_index() - self.log.committed + n > limit:
            raise ProposalDropped("too many uncommitted entries")

    def _bcast_append(self) -> None:
        self._need_bcast = False
        for nid in self.prs:
            if nid != self.id:
                self._send_append(nid)
                while self._send_append(nid, send_if_empty=False):
                    pass

    def _bcast_heartbeat(self, ctx: bytes) -> None:
        committed = self.log.committed
        for nid, pr in self.prs.items():
            if nid == self.id:
                continue
            self.msgs.append(Message(MT.HEARTBEAT, to=nid, frm=self.id, term=self.term,
                                     commit=min(pr.match, committed), context=ctx))

    def _send_append(self, to: int, send_if_empty: bool = True) -> bool:
        pr = self.prs[to]
        if pr.is_paused():
            return False
        if pr.state == ProgressState.SNAPSHOT:
            return self._send_snapshot_chunk(to, pr)
        log = self.log
        prev = pr.next - 1
        prev_term = log.term(prev)
        ents: list[Entry] = []
        if prev_term is not None:
            try:
                ents = log.entries_from(pr.next, self.cfg.max_size_per_msg)
            except StorageCompacted:
                prev_term = None
        if prev_term is None:
            return self._start_snapshot(to, pr)
        if not ents and not send_if_empty:
            return False
        nbytes = 0
        if ents and pr.state == ProgressState.REPLICATE and pr.inflights.max_bytes:
            nbytes = sum(entry_size(e) for e in ents)
        self.msgs.append(Message(MT.APPEND, to=to, frm=self.id, term=self.term, index=prev,
                                 log_term=prev_term, entries=ents, commit=log.committed))
        pr.sent_entries(ents[-1].index if ents else 0, nbytes)
        return True

    def _start_snapshot(self, to: int, pr: Progress) -> bool:
        if not pr.recent_active:
            return False
        try:
            snap = self.log.storage.snapshot()
        except SnapshotTemporarilyUnavailable:
            return False
        if snap.empty:
            raise RaftError("need a snapshot but the storage has none")
        pr.become_snapshot(snap)
        return self._send_snapshot_chunk(to, pr)

    def _send_snapshot_chunk(self, to: int, pr: Progress) -> bool:
        snap = pr.snapshot
        if snap is None:
            return False
        off = pr.snap_sent
        size = self.cfg.max_size_per_msg
        if off - pr.snap_offset >= size * self.cfg.max_inflight_msgs:
            return False  # window of unacknowledged chunks is full
        chunk = snap.data[off:off + size]
        done = off + len(chunk) >= len(snap.data)
        self.msgs.append(Message(MT.SNAPSHOT, to=to, frm=self.id, term=self.term,
                                 index=snap.meta.index, log_term=snap.meta.term,
                                 snapshot=Snapshot(snap.meta, chunk), offset=off, done=done))
        pr.snap_sent = off + len(chunk)
        if done:
            pr.probe_sent = True
        return True

    def _send(self, m: Message) -> None:
        """Stamp and queue a reply or request (not for local messages)."""
        m.frm = self.id
        if m.term == 0:
            m.term = self.term
        if m.type in _PERSISTED_TYPES:
            self.msgs_after_persist.append(m)
        else:
            self.msgs.append(m)

    # ------------------------------------------------------------------ leadership transfer
    def _leader_transfer(self, to: int) -> None:
        pr = self.prs.get(to)
        if pr is None or pr.is_learner or to == self.id:
            return
        if self.lead_transferee == to:
            return
        self.lead_transferee = to
        self.election_elapsed = 0
        if pr.match == self.log.last_index():
            self._send(Message(MT.TIMEOUT_NOW, to=to))
        else:
            self._send_append(to)

    # ------------------------------------------------------------------ ReadIndex
    def _committed_in_term(self) -> bool:
        return self.log.term(self.log.committed) == self.term

    def _leader_read_index(self, m: Message) -> None:
        if not self._committed_in_term():
            self.pending_reads.append(m)  # answer once an entry of our term commits
            return
        self._serve_read(m)

    def _serve_read(self, m: Message) -> None:
        voters = self.conf.voters | self.conf.voters_outgoing
        if voters == {self.id}:
            self._answer_read(m.frm, self.log.committed, m.context)
            return
        if self.read_only.add_request(self.log.committed, m.context, m.frm, self.id):
            self._bcast_heartbeat(m.context)

    def _answer_read(self, frm: int, index: int, ctx: bytes) -> None:
        if frm in (NONE, self.id):
            self.read_states.append(ReadState(index, ctx))
        else:
            self._send(Message(MT.READ_INDEX_RESP, to=frm, index=index, context=ctx))

    def _read_ack(self, frm: int, ctx: bytes) -> None:
        acks = self.read_only.recv_ack(frm, ctx)
        if acks is None:
            return
        if quorum.joint_vote(self.conf, dict.fromkeys(acks, True)) != quorum.VoteResult.WON:
            return
        for req in self.read_only.advance(ctx):
            self._answer_read(req.frm, req.index, req.context)

    def _release_pending_reads(self) -> None:
        if self.pending_reads and self._committed_in_term():
            reads, self.pending_reads = self.pending_reads, []
            for m in reads:
                self._serve_read(m)

    # ------------------------------------------------------------------ membership
    def _apply_conf_entry(self, e: Entry) -> None:
        """Apply a committed conf-change entry. One that does not decode, or that is not valid
        against the configuration (which every member derives from the same log), changes
        nothing, identically on every member and at every replay: a leader never proposes
        such an entry and validation refuses it on the wire, so only an old log can hold one,
        and raising here would stop every member at the same index, for ever."""
        try:
            cc = confchange.decode(e.data)
        except confchange.ConfChangeError:
            return
        self._apply_conf_change(cc)

    def _apply_conf_change(self, cc: ConfChange) -> None:
        try:
            self.conf = confchange.apply(self.conf, cc)
        except confchange.UnknownConfiguration:
            # A node that joined with empty storage cannot rebuild the membership from a
            # partial history; it stays non-voting (safe) until a snapshot brings the config.
            return
        except confchange.ConfChangeError:
            return  # see _apply_conf_entry
        cfg = self.cfg
        members = self.conf.members()
        learners = self.conf.learners | self.conf.learners_next
        last = self.log.last_index()
        for nid in list(self.prs):
            if nid not in members:
                del self.prs[nid]
        for nid in members:
            pr = self.prs.get(nid)
            if pr is None:
                pr = Progress(last + 1, cfg.max_inflight_msgs, cfg.max_inflight_bytes)
                pr.recent_active = True
                self.prs[nid] = pr
            pr.is_learner = nid in learners
        if self.role != StateRole.LEADER:
            return
        if not self._promotable():
            # The leader was removed or demoted. It keeps leading (commitment counts only the
            # voters) but accepts no proposals, and hands leadership to the most caught-up
            # voter. Stepping down at once could deadlock the cluster when the old leader
            # holds the longest log but may no longer campaign.
            self.lead_transferee = NONE
            self._transfer_to_best()
        if self._maybe_commit():
            self._release_pending_reads()
        self._need_bcast = True

    def _transfer_to_best(self) -> None:
        best, best_match = NONE, -1
        for nid in sorted(self.conf.voters):
            pr = self.prs.get(nid)
            if nid != self.id and pr is not None and pr.match > best_match:
                best, best_match = nid, pr.match
        if best != NONE:
            self._leader_transfer(best)

    def _maybe_auto_leave_joint(self) -> None:
        if (self.role == StateRole.LEADER and self.conf.joint and self.conf.auto_leave
                and self.pending_conf_index <= self.log.applied
                and self.lead_transferee == NONE):
            with contextlib.suppress(ProposalDropped):  # else retried after the next apply
                self._propose_entries([(EntryType.CONF_CHANGE,
                                        confchange.encode(ConfChange()))])
