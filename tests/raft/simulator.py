"""Deterministic simulator for the Raft core: seeded faults, safety and liveness checks.

Owns a virtual-time cluster of ``RawNode``s with a simulated network (loss, delay, duplication,
reordering, symmetric and asymmetric partitions), per-node clock speeds, per-node disks (fsync
latency, stalls; only what was fsynced survives a crash), crashes and restarts, client proposals,
ReadIndex requests, leadership transfers and membership changes (including removing the leader).

After every step it checks: at most one leader per term, log matching (an (index, term) pair
names one entry and one predecessor term everywhere), leader completeness, state machine safety
(every node applies the same entry, and reaches the same state, at each index), commit
monotonicity within a life, and ReadIndex linearizability. After the fault phase it heals
everything and checks liveness: within a bound a leader commits a new proposal and every live
member applies everything that was ever committed.

Everything random comes from ``random.Random(seed)``, so a failing seed replays exactly:
``python -m tests.raft.simulator --seed N --nodes 3``.
"""

from __future__ import annotations

import argparse
import heapq
import random
import zlib
from collections import deque
from dataclasses import dataclass, field

from raft.core import Config, RawNode
from raft.memory_storage import MemoryStorage
from raft.types import (
    ConfChange,
    ConfChangeSingle,
    ConfChangeTransition,
    ConfChangeType,
    ConfState,
    EntryType,
    Message,
    ProposalDropped,
    Ready,
    StateRole,
)
from raft.validate import check_message

INF = 1 << 60
NEMESIS_EVERY = 4
"""The nemesis acts every this many virtual ms (its rates below are per action)."""


class SafetyViolation(AssertionError):
    pass


@dataclass
class SimParams:
    nodes: int = 3
    fault_time: int = 1500
    """Virtual milliseconds of faults before healing."""
    liveness_bound: int = 3000
    """Virtual milliseconds after healing within which the cluster must make progress."""
    tick_ms: int = 10
    election_tick: int = 10
    heartbeat_tick: int = 2
    pre_vote: bool = True
    check_quorum: bool = True
    loss: float = 0.05
    dup: float = 0.03
    delay: tuple[int, int] = (1, 8)
    fsync_ms: tuple[int, int] = (0, 3)
    partitions: bool = True
    crashes: bool = True
    slow_disk: bool = True
    conf_changes: bool = True
    transfers: bool = True
    reads: bool = True
    crash_rate: float = 0.002
    partition_rate: float = 0.004
    heal_rate: float = 0.003
    crash_new_leader: float = 0.15
    """Chance to crash a freshly elected leader within a few ms (before its disk catches up)."""
    randomize: bool = True
    """Draw a fault profile (loss, delays, fsync, crash rate) from the seed."""
    propose_every: int = 15
    compact_every: int = 12
    snapshot_pad: int = 700
    max_size_per_msg: int = 256
    max_inflight: int = 4
    max_uncommitted: int = 60
    max_inflight_bytes: int = 0


@dataclass
class SimNode:
    id: int
    storage: MemoryStorage
    tick_period: int
    rng: random.Random
    raw: RawNode | None = None
    next_tick: int = 0
    disk: deque[tuple[int, Ready]] = field(default_factory=deque)
    fsync_ms: int = 0
    stall_until: int = 0
    applied: int = 0
    sm_hash: int = 0
    last_commit: int = 0
    lives: int = 0


def encode_sm(index: int, h: int, pad: int) -> bytes:
    return f"{index}:{h}:".encode() + b"s" * pad


def decode_sm(data: bytes) -> tuple[int, int]:
    i, h, _ = data.split(b":", 2)
    return int(i), int(h)


class Simulator:
    def __init__(self, seed: int, params: SimParams | None = None) -> None:
        self.seed = seed
        self.p = p = params or SimParams()
        self.rng = random.Random(seed)
        if p.randomize:
            p = self.p = self._profile(p)
        self.now = 0
        self.scheduled: dict[int, list[tuple[str, int]]] = {}
        self.ids = list(range(1, p.nodes + 1))
        conf = ConfState(voters=frozenset(self.ids))
        self.nodes: dict[int, SimNode] = {}
        for nid in self.ids:
            storage = MemoryStorage(conf)
            p = self.p
            skew = self.rng.choice((4, 4, 2))  # clock speed within ±25%, or ±50%
            period = p.tick_ms + self.rng.randint(-p.tick_ms // skew, p.tick_ms // skew)
            node = SimNode(nid, storage, period, random.Random(seed * 1000 + nid))
            node.fsync_ms = self.rng.randint(*p.fsync_ms)
            self.nodes[nid] = node
            self._start(node)
        # network
        self.queue: dict[int, list[Message]] = {}
        self.times: list[int] = []  # heap of the keys of self.queue
        self.blocked: set[tuple[int, int]] = set()
        self.loss = p.loss
        self.dup = p.dup
        self.delay = p.delay
        self.faults = True
        # global knowledge for the checkers
        self.leaders: dict[int, int] = {}
        self.committed_terms: dict[int, int] = {}
        self.max_committed = 0
        self.entry_ids: dict[tuple[int, int], tuple[bytes, int | None]] = {}
        self.applied_entries: dict[int, tuple[int, bytes]] = {}
        self.hash_at: dict[int, int] = {}
        self.pending_reads: dict[bytes, tuple[int, int]] = {}
        self.reads_done = 0
        self.proposals = 0
        self.counter = 0
        self.stats = {"elections": 0, "snapshots_installed": 0, "conf_changes": 0,
                      "crashes": 0, "messages": 0}
        self.trace: deque[tuple] = deque(maxlen=60)

    def _profile(self, p: SimParams) -> SimParams:
        r = self.rng
        q = SimParams(**{k: getattr(p, k) for k in p.__dataclass_fields__})
        q.loss = r.choice((0.0, 0.02, 0.05, 0.15, 0.3))
        q.dup = r.choice((0.0, 0.03, 0.1))
        q.delay = r.choice(((1, 3), (1, 8), (1, 25), (5, 40)))
        q.fsync_ms = r.choice(((0, 0), (0, 3), (2, 15), (5, 40)))
        q.crash_rate = r.choice((0.0005, 0.002, 0.006))
        q.partition_rate = r.choice((0.001, 0.004, 0.01))
        q.crash_new_leader = r.choice((0.0, 0.15, 0.5))
        q.max_inflight = r.choice((1, 4, 64))
        q.max_size_per_msg = r.choice((128, 512, 4096))
        q.max_inflight_bytes = r.choice((0, 0, 600))
        if r.random() < 0.1:
            q.pre_vote = False
        if r.random() < 0.1:
            q.check_quorum = False
        return q

    # ------------------------------------------------------------------ node lifecycle
    def _start(self, node: SimNode) -> None:
        p = self.p
        snap = node.storage.snapshot()
        cfg = Config(node.id, election_tick=p.election_tick, heartbeat_tick=p.heartbeat_tick,
                     pre_vote=p.pre_vote, check_quorum=p.check_quorum,
                     max_size_per_msg=p.max_size_per_msg, max_inflight_msgs=p.max_inflight,
                     applied=snap.meta.index, rng=node.rng,
                     max_uncommitted_entries=p.max_uncommitted,
                     max_inflight_bytes=p.max_inflight_bytes)
        node.raw = RawNode(cfg, node.storage)
        node.lives += 1
        if snap.meta.index:
            node.applied, node.sm_hash = decode_sm(snap.data)
        else:
            node.applied, node.sm_hash = 0, 0
        node.last_commit = node.raw.committed
        node.next_tick = self.now + node.rng.randint(1, node.tick_period)
        node.disk.clear()

    def crash(self, nid: int) -> None:
        node = self.nodes[nid]
        if node.raw is None:
            return
        self.trace.append((self.now, "crash", nid))
        self.stats["crashes"] += 1
        node.raw = None
        node.disk.clear()  # unfsynced writes are lost

    def restart(self, nid: int) -> None:
        node = self.nodes[nid]
        if node.raw is not None:
            return
        self.trace.append((self.now, "restart", nid))
        self._start(node)

    # ------------------------------------------------------------------ failure reporting
    def fail(self, why: str) -> None:
        lines = [f"raft simulator: seed={self.seed} nodes={self.p.nodes} t={self.now}: {why}",
                 f"replay: python -m tests.raft.simulator --seed {self.seed} "
                 f"--nodes {self.p.nodes}", "recent events:"]
        lines += [f"  {e}" for e in self.trace]
        raise SafetyViolation("\n".join(lines))

    # ------------------------------------------------------------------ network
    def send(self, m: Message) -> None:
        self.stats["messages"] += 1
        if m.to != m.frm:
            why = check_message(m)  # what the transport would drop must never be honest traffic
            if why is not None:
                self.fail(f"validation refuses an honest message: {why}: {m}")
        if (m.frm, m.to) in self.blocked:
            return
        r = self.rng
        if self.loss and r.random() < self.loss:
            return
        lo, hi = self.delay
        t = self.now + r.randint(lo, hi)
        q = self.queue.get(t)
        if q is None:
            self.queue[t] = [m]
            heapq.heappush(self.times, t)
        else:
            q.append(m)
        if self.dup and r.random() < self.dup:
            t = self.now + r.randint(lo, hi)
            q = self.queue.get(t)
            if q is None:
                self.queue[t] = [m]
                heapq.heappush(self.times, t)
            else:
                q.append(m)

    # ------------------------------------------------------------------ readies and disks
    def process(self, node: SimNode) -> None:
        raw = node.raw
        while raw is not None and raw.has_ready():
            rd = raw.ready()
            for m in rd.messages:
                self.send(m)
            if rd.read_states:
                self._check_reads(node, rd)
            if rd.entries:
                self._check_new_entries(raw, rd)
            needs_disk = rd.entries or rd.snapshot is not None or rd.hard_state is not None
            if not node.disk and (not needs_disk or node.fsync_ms == 0) \
                    and self.now >= node.stall_until:
                self._complete(node, rd)
            else:
                last = node.disk[-1][0] if node.disk else 0
                node.disk.append((max(self.now + node.fsync_ms, last), rd))
            raw = node.raw
        self._check_node(node)

    def _complete(self, node: SimNode, rd: Ready) -> None:
        raw = node.raw
        assert raw is not None
        st = node.storage
        if rd.snapshot is not None:
            st.apply_snapshot(rd.snapshot)
            idx, h = decode_sm(rd.snapshot.data)
            self._check_hash(idx, h, node)
            node.applied, node.sm_hash = idx, h
            self.stats["snapshots_installed"] += 1
        if rd.entries:
            st.append(rd.entries)
        if rd.hard_state is not None:
            st.set_hard_state(rd.hard_state)
        for m in rd.persisted_messages:
            self.send(m)
        for e in rd.committed_entries:
            if e.index <= node.applied:
                continue
            if e.index != node.applied + 1:
                self.fail(f"node {node.id} applies {e.index} after {node.applied}")
            prev = self.applied_entries.get(e.index)
            if prev is None:
                self.applied_entries[e.index] = (e.term, e.data)
            elif prev != (e.term, e.data):
                self.fail(f"state machine safety: node {node.id} applies {e} at {e.index}, "
                          f"another node applied {prev}")
            node.sm_hash = zlib.crc32(e.data, node.sm_hash ^ e.term)
            node.applied = e.index
            self._check_hash(e.index, node.sm_hash, node)
            if e.type == EntryType.CONF_CHANGE:
                self.stats["conf_changes"] += 1
        raw.advance(rd)
        self._maybe_compact(node)

    def _maybe_compact(self, node: SimNode) -> None:
        raw = node.raw
        st = node.storage
        if raw is None or node.disk or raw.log.unstable.snapshot is not None:
            return
        if node.applied - st.first_index() < self.p.compact_every:
            return
        if node.applied != raw.applied or node.applied > st.last_index():
            return
        st.create_snapshot(node.applied, raw.conf,
                           encode_sm(node.applied, node.sm_hash, self.p.snapshot_pad))
        keep = self.rng.choice((0, 0, 3, 20)) if self.faults else 100
        st.compact(max(st.first_index() - 1, node.applied - keep))

    def _disk_step(self, node: SimNode) -> None:
        while node.disk and node.disk[0][0] <= self.now and self.now >= node.stall_until:
            _, rd = node.disk.popleft()
            self._complete(node, rd)
            if node.raw is None:
                return

    # ------------------------------------------------------------------ checkers
    def _check_hash(self, idx: int, h: int, node: SimNode) -> None:
        prev = self.hash_at.get(idx)
        if prev is None:
            self.hash_at[idx] = h
        elif prev != h:
            self.fail(f"state divergence at {idx} on node {node.id}")

    def _check_new_entries(self, raw: RawNode, rd: Ready) -> None:
        ents = rd.entries
        prev_term = raw.log.term(ents[0].index - 1)
        ids = self.entry_ids
        for e in ents:
            key = (e.index, e.term)
            got = ids.get(key)
            if got is None:
                ids[key] = (e.data, prev_term)
            else:
                data, pt = got
                if data != e.data or (pt is not None and prev_term is not None
                                      and pt != prev_term):
                    self.fail(f"log matching: node {raw.id} entry {key} differs")
            prev_term = e.term

    def _check_node(self, node: SimNode) -> None:
        raw = node.raw
        if raw is None:
            return
        if raw.role == StateRole.LEADER:
            other = self.leaders.get(raw.term)
            if other is None:
                self.leaders[raw.term] = raw.id
                self.stats["elections"] += 1
                self.trace.append((self.now, "leader", raw.id, raw.term))
                if node.storage.hard_state.term != raw.term:
                    self.fail(f"leader {raw.id} of term {raw.term} has not made its term "
                              f"durable (disk has {node.storage.hard_state.term})")
                if self.faults and self.rng.random() < self.p.crash_new_leader:
                    at = self.now + self.rng.randint(0, 12)
                    self.scheduled.setdefault(at, []).append(("crash", raw.id))
                self._check_leader_completeness(raw)
            elif other != raw.id:
                self.fail(f"two leaders in term {raw.term}: {other} and {raw.id}")
        c = raw.committed
        if c < node.last_commit:
            self.fail(f"node {node.id} commit went back {node.last_commit} -> {c}")
        if c > node.last_commit:
            log = raw.log
            for i in range(node.last_commit + 1, c + 1):
                t = log.term(i)
                if t is None:
                    continue
                known = self.committed_terms.get(i)
                if known is None:
                    self.committed_terms[i] = t
                elif known != t:
                    self.fail(f"node {node.id} committed term {t} at {i}, known {known}")
            node.last_commit = c
            if c > self.max_committed:
                self.max_committed = c

    def _check_leader_completeness(self, raw: RawNode) -> None:
        log = raw.log
        first = log.first_index()
        for i in range(first, self.max_committed + 1):
            t = self.committed_terms.get(i)
            if t is not None and t < raw.term and log.term(i) != t:
                self.fail(f"leader completeness: leader {raw.id} term {raw.term} lacks "
                          f"committed entry {i} (term {t}), has {log.term(i)}")

    def _check_reads(self, node: SimNode, rd: Ready) -> None:
        for rs in rd.read_states:
            req = self.pending_reads.pop(rs.context, None)
            if req is None:
                continue
            owner, floor = req
            if owner != node.id:
                self.fail(f"read {rs.context!r} answered on {node.id}, asked on {owner}")
            if rs.index < floor:
                self.fail(f"stale ReadIndex {rs.index} < commit {floor} at request time")
            self.reads_done += 1

    # ------------------------------------------------------------------ clients and nemesis
    def leader_node(self) -> SimNode | None:
        best = None
        for n in self.nodes.values():
            if n.raw is not None and n.raw.role == StateRole.LEADER and (
                    best is None or n.raw.term > best.raw.term):  # type: ignore[union-attr]
                best = n
        return best

    def propose(self) -> int | None:
        ld = self.leader_node()
        if ld is None or ld.raw is None:
            return None
        self.counter += 1
        try:
            if self.rng.random() < 0.2:
                k = self.rng.randint(2, 6)
                idx = ld.raw.propose_batch(
                    [f"v{self.counter}.{j}".encode() for j in range(k)])
            else:
                idx = ld.raw.propose(f"v{self.counter}".encode())
        except ProposalDropped:
            return None
        self.proposals += 1
        self.process(ld)
        return idx

    def _nemesis(self) -> None:
        r = self.rng
        p = self.p
        ids = self.ids
        for t in [t for t in self.scheduled if t <= self.now]:
            for what, nid in self.scheduled.pop(t):
                if what == "crash":
                    self.crash(nid)
        if p.partitions and r.random() < p.partition_rate * NEMESIS_EVERY:
            self.blocked.clear()
            kind = r.random()
            if kind < 0.5:
                side = set(r.sample(ids, r.randint(1, len(ids) // 2)))
                for a in ids:
                    for b in ids:
                        if (a in side) != (b in side):
                            self.blocked.add((a, b))
            else:
                for _ in range(r.randint(1, len(ids))):
                    a, b = r.sample(ids, 2)
                    self.blocked.add((a, b))  # asymmetric: a cannot reach b
            self.trace.append((self.now, "partition", sorted(self.blocked)))
        if self.blocked and r.random() < p.heal_rate * NEMESIS_EVERY:
            self.blocked.clear()
            self.trace.append((self.now, "heal"))
        if p.crashes and r.random() < p.crash_rate * NEMESIS_EVERY:
            down = [n for n in ids if self.nodes[n].raw is None]
            if len(down) < (len(ids) - 1) // 2:
                self.crash(r.choice(ids))
        if r.random() < 0.016:
            for n in ids:
                if self.nodes[n].raw is None:
                    self.restart(n)
        if p.slow_disk and r.random() < 0.008:
            node = self.nodes[r.choice(ids)]
            if r.random() < 0.5:
                node.fsync_ms = r.randint(20, 120)
                self.trace.append((self.now, "slow disk", node.id, node.fsync_ms))
            else:
                node.stall_until = self.now + r.randint(50, 600)
                self.trace.append((self.now, "stall disk", node.id, node.stall_until))
        if r.random() < 0.008:
            for n in self.nodes.values():
                n.fsync_ms = r.randint(*p.fsync_ms)
        if p.conf_changes and r.random() < 0.012:
            self._conf_change()
        if p.transfers and r.random() < 0.008:
            ld = self.leader_node()
            if ld is not None and ld.raw is not None:
                target = r.choice(sorted(ld.raw.conf.voters))
                self.trace.append((self.now, "transfer", ld.id, target))
                ld.raw.transfer_leader(target)
                self.process(ld)

    def _conf_change(self) -> None:
        ld = self.leader_node()
        if ld is None or ld.raw is None:
            return
        r = self.rng
        conf = ld.raw.conf
        if conf.joint:
            return
        voters = sorted(conf.voters)
        learners = sorted(conf.learners)
        outside = [n for n in self.ids if n not in conf.members()]
        min_voters = 2 if self.p.nodes <= 3 else 3
        A, R, L = ConfChangeType.ADD_NODE, ConfChangeType.REMOVE_NODE, ConfChangeType.ADD_LEARNER
        choice = r.random()
        if choice < 0.3 and len(voters) > min_voters:
            victim = ld.id if r.random() < 0.4 else r.choice(voters)
            cc = ConfChange((ConfChangeSingle(R, victim),))
        elif choice < 0.55 and outside:
            cc = ConfChange((ConfChangeSingle(L, r.choice(outside)),))
        elif choice < 0.8 and learners:
            cc = ConfChange((ConfChangeSingle(A, r.choice(learners)),))
        elif learners and len(voters) > min_voters - 1:
            # joint: swap a voter out for a learner
            out = r.choice(voters)
            tr = r.choice((ConfChangeTransition.AUTO, ConfChangeTransition.JOINT_IMPLICIT))
            cc = ConfChange((ConfChangeSingle(A, r.choice(learners)),
                             ConfChangeSingle(L, out)), tr)
        else:
            return
        try:
            ld.raw.propose_conf_change(cc)
        except ProposalDropped:
            return
        self.trace.append((self.now, "conf change", ld.id, cc.changes))
        self.process(ld)

    def _read(self) -> None:
        node = self.nodes[self.rng.choice(self.ids)]
        if node.raw is None:
            return
        self.counter += 1
        ctx = f"r{self.counter}".encode()
        try:
            node.raw.read_index(ctx)
        except ProposalDropped:
            return
        self.pending_reads[ctx] = (node.id, self.max_committed)
        self.process(node)

    # ------------------------------------------------------------------ main loop
    def _next_time(self) -> int:
        """The next virtual millisecond at which anything happens (idle time is skipped)."""
        now = self.now
        times = self.times
        while times and times[0] <= now:
            heapq.heappop(times)
        t = times[0] if times else now + 1000
        for node in self.nodes.values():
            if node.raw is None:
                continue
            if node.next_tick < t:
                t = node.next_tick
            if node.disk:
                d = max(node.disk[0][0], node.stall_until)
                if d < t:
                    t = d
        if self.faults:
            t = min(t, (now // NEMESIS_EVERY + 1) * NEMESIS_EVERY,
                    (now // self.p.propose_every + 1) * self.p.propose_every)
        return max(t, now + 1)

    def step(self) -> None:
        """Advance virtual time to the next event and process everything due then."""
        self.now = now = self._next_time()
        if self.faults:
            if now % NEMESIS_EVERY == 0:
                self._nemesis()
                if self.p.reads and self.rng.random() < 0.04:
                    self._read()
            if now % self.p.propose_every == 0:
                self.propose()
        msgs = self.queue.pop(now, None)
        dirty: set[int] = set()
        if msgs:
            nodes = self.nodes
            for m in msgs:
                node = nodes.get(m.to)
                if node is None or node.raw is None:
                    continue
                node.raw.step(m)
                dirty.add(node.id)
        for node in self.nodes.values():
            if node.raw is None:
                continue
            if node.disk and node.disk[0][0] <= now and now >= node.stall_until:
                self._disk_step(node)
                dirty.add(node.id)
            if node.raw is not None and node.next_tick <= now:
                node.next_tick += node.tick_period
                node.raw.tick()
                dirty.add(node.id)
        for nid in sorted(dirty):
            self.process(self.nodes[nid])

    def heal(self) -> None:
        self.faults = False
        self.blocked.clear()
        self.loss = 0.0
        self.dup = 0.0
        for n in self.ids:
            node = self.nodes[n]
            node.stall_until = 0
            node.fsync_ms = min(node.fsync_ms, 2)
            if node.raw is None:
                self.restart(n)
        self.trace.append((self.now, "heal all"))

    def run(self) -> Simulator:
        while self.now < self.p.fault_time:
            self.step()
        self.heal()
        self.check_liveness()
        return self

    def check_liveness(self) -> None:
        deadline = self.now + self.p.liveness_bound
        probe: tuple[int, int, bytes] | None = None  # (node id, index, data)
        while self.now < deadline:
            self.step()
            ld = self.leader_node()
            if ld is None or ld.raw is None:
                continue
            if probe is None or probe[0] != ld.id or ld.raw.term != probe[1]:
                self.counter += 1
                data = f"probe{self.counter}".encode()
                try:
                    idx = ld.raw.propose(data)
                except ProposalDropped:
                    continue
                probe = (ld.id, ld.raw.term, data)
                probe_index = idx
                self.process(ld)
                continue
            members = ld.raw.conf.members()
            target = max(probe_index, self.max_committed)
            if all(self.nodes[m].applied >= target for m in members if m in self.nodes):
                if self.applied_entries.get(probe_index, (0, b""))[1] != probe[2]:
                    continue  # probe was overwritten (leader changed); propose again
                return
        states = {n: (node.raw.role.name, node.raw.term, node.raw.committed, node.applied)
                  for n, node in self.nodes.items() if node.raw is not None}
        self.fail(f"liveness: no progress within {self.p.liveness_bound}ms after healing; "
                  f"max committed {self.max_committed}; nodes {states}")


def run_seed(seed: int, params: SimParams | None = None) -> Simulator:
    return Simulator(seed, params).run()


def main() -> None:
    ap = argparse.ArgumentParser(description="Replay one raft simulator seed.")
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--nodes", type=int, default=3)
    ap.add_argument("--count", type=int, default=1, help="run seeds seed..seed+count-1")
    args = ap.parse_args()
    for s in range(args.seed, args.seed + args.count):
        sim = run_seed(s, SimParams(nodes=args.nodes))
        print(f"seed {s}: ok t={sim.now} committed={sim.max_committed} "
              f"proposals={sim.proposals} reads={sim.reads_done} {sim.stats}")


if __name__ == "__main__":
    main()
