"""A member's Raft numbers: the :class:`raft.node.Observer` the replica installs.

It counts elections and snapshots, keeps fsync and proposal latency histograms, and remembers
when recent log indexes reached the leader's durable log, so a follower's lag can be said in
seconds as well as entries: the age of the oldest entry it has not acknowledged. Entries
written before this member became primary have no recorded time (their lag in seconds is
unknown, reported as None).
"""

from __future__ import annotations

import bisect
import threading
import time
from collections import deque

from node.ops.progress import Progress
from node.ops.stats import Histogram
from raft.node import Observer
from raft.types import StateRole

KEEP = 20_000
"""Recorded (index, time) points: enough for minutes of writes at thousands per second."""


class RaftMetrics(Observer):
    """Counters and histograms of one member's Raft driver."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.fsync = Histogram()
        self.proposals = Histogram()
        self.proposals_failed = 0
        self.elections_started = 0
        self.became_leader = 0
        self.last_election: float | None = None
        """Wall time this member last saw a new term begin (None: never since it started)."""
        self.last_election_term = 0
        self.snapshot_chunks_sent = 0
        self.snapshots_sent = 0
        self.snapshots_installed = 0
        self._indexes: deque[int] = deque(maxlen=KEEP)
        self._times: deque[float] = deque(maxlen=KEEP)
        self._last = 0
        self._sending: dict[int, Progress] = {}
        self._receiving: dict[int, Progress] = {}

    def on_fsync(self, seconds: float) -> None:
        with self._lock:
            self.fsync.observe(seconds)

    def on_proposal(self, seconds: float, ok: bool) -> None:
        with self._lock:
            self.proposals.observe(seconds)
            if not ok:
                self.proposals_failed += 1

    def on_append(self, first_index: int, last_index: int, term: int, leader: bool) -> None:
        if not leader:
            return
        with self._lock:
            # a new leader may overwrite a suffix: forget batches no longer in the log
            while self._indexes and self._indexes[-1] >= first_index:
                self._indexes.pop()
                self._times.pop()
            self._indexes.append(first_index)
            self._times.append(time.time())
            self._last = last_index

    def on_role(self, role: StateRole, term: int) -> None:
        with self._lock:
            if role == StateRole.CANDIDATE:
                self.elections_started += 1
            elif role == StateRole.LEADER:
                self.became_leader += 1
            if term > self.last_election_term:
                self.last_election_term = term
                self.last_election = time.time()

    def on_snapshot_sent(self, to: int, done: bool) -> None:
        with self._lock:
            self.snapshot_chunks_sent += 1
            work = self._sending.get(to)
            if work is None:
                work = self._sending[to] = Progress("snapshotSend", unit="chunks", to=to)
            work.advance()
            if done:
                self.snapshots_sent += 1
                self._sending.pop(to).finish()

    def on_snapshot_received(self, frm: int, done: bool) -> None:
        with self._lock:
            work = self._receiving.get(frm)
            if work is None:
                work = self._receiving[frm] = Progress("snapshotReceive", unit="chunks",
                                                       leader=frm)
            work.advance()
            if done:
                self._receiving.pop(frm).finish()

    def on_snapshot_installed(self, index: int) -> None:
        with self._lock:
            self.snapshots_installed += 1

    def written_at(self, index: int) -> float | None:
        """When the batch holding ``index`` reached this leader's log (None: not recorded)."""
        with self._lock:
            i = bisect.bisect_right(self._indexes, index) - 1
            if i < 0 or index > self._last:
                return None
            return self._times[i]

    def lag_seconds(self, match: int, last_index: int, now: float | None = None
                    ) -> float | None:
        """Age of the oldest entry a follower at ``match`` lacks (0.0 when caught up)."""
        if match >= last_index:
            return 0.0
        at = self.written_at(match + 1)
        if at is None:
            return None
        return max(0.0, (now or time.time()) - at)
