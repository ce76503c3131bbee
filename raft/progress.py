"""Per-follower replication progress on the leader, and its in-flight window.

Owns the flow-control state machine etcd calls the tracker: PROBE (one append at a time until
the follower's match is found), REPLICATE (optimistic pipelining, bounded by an in-flight
window of messages/bytes so a slow follower cannot swamp the leader or stall others) and
SNAPSHOT (the follower is behind the compacted log; chunks of a snapshot are streamed to it).
"""

from __future__ import annotations

import enum
from collections import deque

from raft.types import Snapshot


class ProgressState(enum.IntEnum):
    PROBE = 0
    REPLICATE = 1
    SNAPSHOT = 2


class Inflights:
    """Bounded window of appends sent but not acknowledged: (last index, bytes) per message."""

    __slots__ = ("_q", "bytes", "max_bytes", "size")

    def __init__(self, size: int, max_bytes: int = 0) -> None:
        self._q: deque[tuple[int, int]] = deque()
        self.size = size
        self.max_bytes = max_bytes
        self.bytes = 0

    def add(self, index: int, nbytes: int) -> None:
        self._q.append((index, nbytes))
        self.bytes += nbytes

    def free_le(self, index: int) -> None:
        q = self._q
        while q and q[0][0] <= index:
            self.bytes -= q.popleft()[1]

    def free_first_one(self) -> None:
        if self._q:
            self.bytes -= self._q.popleft()[1]

    def full(self) -> bool:
        return len(self._q) >= self.size or (0 < self.max_bytes <= self.bytes)

    def count(self) -> int:
        return len(self._q)

    def reset(self) -> None:
        self._q.clear()
        self.bytes = 0


class Progress:
    """What the leader knows about one member's log."""

    __slots__ = (
        "inflights",
        "is_learner",
        "match",
        "next",
        "pending_snapshot",
        "probe_sent",
        "recent_active",
        "snap_offset",
        "snap_progress",
        "snap_sent",
        "snapshot",
        "state",
        "was_active",
    )

    def __init__(self, next_index: int, max_inflight: int, max_inflight_bytes: int = 0,
                 is_learner: bool = False) -> None:
        self.match = 0
        self.next = next_index
        self.state = ProgressState.PROBE
        self.probe_sent = False
        self.pending_snapshot = 0
        self.snapshot: Snapshot | None = None
        self.snap_offset = 0  # snapshot bytes the follower acknowledged
        self.snap_sent = 0  # next snapshot byte to send
        self.snap_progress = False  # acks arrived since the last heartbeat response
        self.recent_active = False
        self.was_active = False
        """``recent_active`` at the end of the last check-quorum window (for status)."""
        self.is_learner = is_learner
        self.inflights = Inflights(max_inflight, max_inflight_bytes)

    def _reset_state(self, state: ProgressState) -> None:
        self.probe_sent = False
        self.pending_snapshot = 0
        self.snapshot = None
        self.snap_offset = 0
        self.snap_sent = 0
        self.snap_progress = False
        self.state = state
        self.inflights.reset()

    def become_probe(self) -> None:
        if self.state == ProgressState.SNAPSHOT:
            pending = self.pending_snapshot
            self._reset_state(ProgressState.PROBE)
            self.next = max(self.match + 1, pending + 1)
        else:
            self._reset_state(ProgressState.PROBE)
            self.next = self.match + 1

    def become_replicate(self) -> None:
        self._reset_state(ProgressState.REPLICATE)
        self.next = self.match + 1

    def become_snapshot(self, snapshot: Snapshot) -> None:
        self._reset_state(ProgressState.SNAPSHOT)
        self.pending_snapshot = snapshot.meta.index
        self.snapshot = snapshot

    def maybe_update(self, n: int) -> bool:
        """Record an acknowledgement of index n; False if it was stale."""
        updated = False
        if self.match < n:
            self.match = n
            updated = True
            self.probe_sent = False
        if self.next < n + 1:
            self.next = n + 1
        return updated

    def maybe_decr_to(self, rejected: int, match_hint: int) -> bool:
        """Handle a rejection of the append whose previous index was ``rejected``."""
        if self.state == ProgressState.REPLICATE:
            if rejected <= self.match:
                return False
            self.next = self.match + 1
            return True
        if self.next - 1 != rejected:
            return False
        self.next = max(min(rejected, match_hint + 1), self.match + 1)
        self.probe_sent = False
        return True

    def sent_entries(self, last_index: int, nbytes: int) -> None:
        """Account for an append carrying entries up to ``last_index`` (0 if empty)."""
        if self.state == ProgressState.REPLICATE:
            if last_index:
                self.next = last_index + 1
                self.inflights.add(last_index, nbytes)
        elif self.state == ProgressState.PROBE:
            self.probe_sent = True

    def is_paused(self) -> bool:
        if self.state == ProgressState.PROBE:
            return self.probe_sent
        if self.state == ProgressState.REPLICATE:
            return self.inflights.full()
        return self.probe_sent  # SNAPSHOT: every chunk sent, waiting for acknowledgements

    def __repr__(self) -> str:
        return (f"Progress(match={self.match}, next={self.next}, state={self.state.name}, "
                f"learner={self.is_learner})")
