"""In-memory implementation of the LogStorage protocol (used by tests and the simulator).

Owns a snapshot, the entries after it and the HardState. The driver writes into it after it
"persists" a Ready (``apply_snapshot``, ``append``, ``set_hard_state``); the application
compacts it (``create_snapshot`` then ``compact``). Not thread-safe: one driver owns it.
"""

from __future__ import annotations

from raft.types import (
    ENTRY_OVERHEAD,
    ConfState,
    Entry,
    HardState,
    RaftError,
    Snapshot,
    SnapshotMeta,
    StorageCompacted,
    entry_size,
)


def limit_size(ents: list[Entry], max_bytes: int | None) -> list[Entry]:
    """Longest prefix of ``ents`` within ``max_bytes`` (always at least one entry)."""
    if max_bytes is None or len(ents) <= 1:
        return ents
    if ENTRY_OVERHEAD * len(ents) + sum([len(e[3]) for e in ents]) <= max_bytes:
        return ents  # the common case: everything fits
    total = 0
    for i, e in enumerate(ents):
        total += entry_size(e)
        if total > max_bytes and i > 0:
            return ents[:i]
    return ents


class MemoryStorage:
    def __init__(self, conf_state: ConfState | None = None) -> None:
        self.hard_state = HardState()
        self._snapshot = Snapshot(SnapshotMeta(0, 0, conf_state or ConfState()))
        # _ents[0] is a dummy standing for the snapshot's (index, term)
        self._ents: list[Entry] = [Entry(0, 0)]

    # -- LogStorage protocol
    def initial_state(self) -> tuple[HardState, ConfState]:
        return self.hard_state.copy(), self._snapshot.meta.conf_state

    def first_index(self) -> int:
        return self._ents[0].index + 1

    def last_index(self) -> int:
        return self._ents[0].index + len(self._ents) - 1

    def term(self, i: int) -> int:
        off = self._ents[0].index
        if i < off:
            raise StorageCompacted(f"index {i} compacted (first {off + 1})")
        if i - off >= len(self._ents):
            raise RaftError(f"index {i} beyond last {self.last_index()}")
        return self._ents[i - off].term

    def entries(self, lo: int, hi: int, max_bytes: int | None = None) -> list[Entry]:
        off = self._ents[0].index
        if lo <= off:
            raise StorageCompacted(f"index {lo} compacted (first {off + 1})")
        if hi > self.last_index() + 1:
            raise RaftError(f"entries [{lo}, {hi}) beyond last {self.last_index()}")
        return limit_size(self._ents[lo - off:hi - off], max_bytes)

    def snapshot(self) -> Snapshot:
        return self._snapshot

    # -- writes by the driver
    def set_hard_state(self, hs: HardState) -> None:
        self.hard_state = hs.copy()

    def append(self, ents: list[Entry]) -> None:
        """Append, truncating any existing entries at and after ``ents[0].index``."""
        if not ents:
            return
        first = self.first_index()
        if ents[-1].index < first:
            return
        if ents[0].index < first:
            ents = ents[first - ents[0].index:]
        off = ents[0].index - self._ents[0].index
        if off > len(self._ents):
            raise RaftError(f"missing log entries: last {self.last_index()}, "
                            f"appending at {ents[0].index}")
        del self._ents[off:]
        self._ents.extend(ents)

    def apply_snapshot(self, snap: Snapshot) -> None:
        """Replace everything with ``snap`` (a follower installing a leader's snapshot)."""
        if snap.meta.index < self._snapshot.meta.index:
            return
        self._snapshot = snap
        self._ents = [Entry(snap.meta.term, snap.meta.index)]

    # -- compaction by the application
    def create_snapshot(self, index: int, conf_state: ConfState, data: bytes) -> Snapshot:
        if index <= self._snapshot.meta.index:
            return self._snapshot
        if index > self.last_index():
            raise RaftError(f"snapshot {index} beyond last index {self.last_index()}")
        meta = SnapshotMeta(index, self.term(index), conf_state)
        self._snapshot = Snapshot(meta, data)
        return self._snapshot

    def compact(self, index: int) -> None:
        """Drop entries up to and including ``index`` (keep it as the dummy)."""
        off = self._ents[0].index
        if index <= off:
            return
        if index > self.last_index():
            raise RaftError(f"compact {index} beyond last index {self.last_index()}")
        self._ents = self._ents[index - off:]
