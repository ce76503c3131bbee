"""The Raft log as the core sees it: durable entries in LogStorage plus an unstable tail.

Owns ``Unstable`` (entries and a snapshot not yet persisted, with how much of it has been
handed to the driver in a Ready) and ``RaftLog`` (committed / applying / applied indexes, the
append-with-conflict rule, term lookups and the "up to date" comparison used by elections).
"""

from __future__ import annotations

from raft.memory_storage import limit_size
from raft.types import Entry, LogStorage, RaftError, Snapshot, StorageCompacted, entry_size


class Unstable:
    __slots__ = ("entries", "offset", "offset_in_progress", "snapshot", "snapshot_in_progress")

    def __init__(self, offset: int) -> None:
        self.snapshot: Snapshot | None = None
        self.entries: list[Entry] = []
        self.offset = offset  # index of entries[0]
        self.offset_in_progress = offset  # entries below this were handed to a Ready
        self.snapshot_in_progress = False

    def maybe_first_index(self) -> int | None:
        return self.snapshot.meta.index + 1 if self.snapshot is not None else None

    def maybe_last_index(self) -> int | None:
        if self.entries:
            return self.offset + len(self.entries) - 1
        if self.snapshot is not None:
            return self.snapshot.meta.index
        return None

    def maybe_term(self, i: int) -> int | None:
        if i < self.offset:
            s = self.snapshot
            if s is not None and s.meta.index == i:
                return s.meta.term
            return None
        k = i - self.offset
        if k < len(self.entries):
            return self.entries[k].term
        return None

    def next_entries(self) -> list[Entry]:
        k = self.offset_in_progress - self.offset
        if k >= len(self.entries):
            return []
        return self.entries[k:]

    def next_snapshot(self) -> Snapshot | None:
        if self.snapshot is None or self.snapshot_in_progress:
            return None
        return self.snapshot

    def accept_in_progress(self) -> None:
        if self.entries:
            self.offset_in_progress = self.offset + len(self.entries)
        if self.snapshot is not None:
            self.snapshot_in_progress = True

    def stable_to(self, i: int, t: int) -> None:
        if i < self.offset:
            return
        gt = self.maybe_term(i)
        if gt is None or gt != t:
            return  # replaced by a conflicting append since that Ready
        del self.entries[:i + 1 - self.offset]
        self.offset = i + 1
        if self.offset_in_progress < self.offset:
            self.offset_in_progress = self.offset

    def stable_snap_to(self, i: int) -> None:
        if self.snapshot is not None and self.snapshot.meta.index == i:
            self.snapshot = None
            self.snapshot_in_progress = False

    def restore(self, s: Snapshot) -> None:
        self.offset = s.meta.index + 1
        self.offset_in_progress = self.offset
        self.entries = []
        self.snapshot = s
        self.snapshot_in_progress = False

    def truncate_and_append(self, ents: list[Entry]) -> None:
        start = ents[0].index
        end = self.offset + len(self.entries)
        if start == end:
            self.entries.extend(ents)
        elif start <= self.offset:
            self.offset = start
            self.entries = list(ents)
        else:
            del self.entries[start - self.offset:]
            self.entries.extend(ents)
        if self.offset_in_progress > start:
            self.offset_in_progress = start

    def slice(self, lo: int, hi: int) -> list[Entry]:
        return self.entries[lo - self.offset:hi - self.offset]


class RaftLog:
    __slots__ = ("applied", "applying", "committed", "max_apply_bytes", "storage", "unstable")

    def __init__(self, storage: LogStorage, max_apply_bytes: int = 1 << 62) -> None:
        self.storage = storage
        first = storage.first_index()
        last = storage.last_index()
        self.unstable = Unstable(last + 1)
        self.committed = first - 1
        self.applying = first - 1
        self.applied = first - 1
        self.max_apply_bytes = max_apply_bytes

    # -- indexes and terms
    def first_index(self) -> int:
        i = self.unstable.maybe_first_index()
        return i if i is not None else self.storage.first_index()

    def last_index(self) -> int:
        i = self.unstable.maybe_last_index()
        return i if i is not None else self.storage.last_index()

    def stable_last_index(self) -> int:
        """Highest index known durable (entries below the unstable tail)."""
        if self.unstable.snapshot is not None:
            return 0
        return min(self.unstable.offset - 1, self.storage.last_index())

    def term(self, i: int) -> int | None:
        """Term of entry i, or None if compacted or beyond the last index."""
        t = self.unstable.maybe_term(i)
        if t is not None:
            return t
        if self.unstable.snapshot is not None or i >= self.unstable.offset:
            return None
        try:
            if i < self.storage.first_index() - 1:
                return None
            return self.storage.term(i)
        except (StorageCompacted, RaftError):
            return None

    def last_term(self) -> int:
        t = self.term(self.last_index())
        if t is None:
            raise RaftError("term of the last index is unavailable")
        return t

    def match_term(self, i: int, t: int) -> bool:
        return self.term(i) == t

    def is_up_to_date(self, last_index: int, term: int) -> bool:
        lt = self.last_term()
        return term > lt or (term == lt and last_index >= self.last_index())

    # -- appends
    def append(self, ents: list[Entry]) -> int:
        if not ents:
            return self.last_index()
        if ents[0].index - 1 < self.committed:
            raise RaftError(f"append at {ents[0].index} below commit {self.committed}")
        self.unstable.truncate_and_append(ents)
        return self.last_index()

    def find_conflict(self, ents: list[Entry] | tuple[Entry, ...]) -> int:
        """Index of the first entry whose term differs from ours (or is new); 0 if none."""
        for e in ents:
            if self.term(e.index) != e.term:
                return e.index
        return 0

    def find_conflict_by_term(self, index: int, term: int) -> tuple[int, int]:
        """Largest (i, term(i)) with i <= index and term(i) <= term (fast log backtracking)."""
        while index > 0:
            t = self.term(index)
            if t is None:
                return index, 0
            if t <= term:
                return index, t
            index -= 1
        return 0, 0

    def maybe_append(self, index: int, log_term: int, committed: int,
                     ents: list[Entry] | tuple[Entry, ...]) -> int | None:
        """The follower's AppendEntries rule; the last new index, or None on mismatch."""
        if not self.match_term(index, log_term):
            return None
        last_new = index + len(ents)
        if ents:
            ci = self.find_conflict(ents)
            if ci:
                if ci <= self.committed:
                    raise RaftError(f"conflict at {ci} below commit {self.committed}")
                self.append(list(ents[ci - index - 1:]))
        self.commit_to(min(committed, last_new))
        return last_new

    # -- commit / apply
    def commit_to(self, c: int) -> None:
        if c > self.committed:
            if c > self.last_index():
                raise RaftError(f"commit {c} beyond last index {self.last_index()}")
            self.committed = c

    def maybe_commit(self, max_index: int, term: int) -> bool:
        if max_index > self.committed and self.term(max_index) == term:
            self.committed = max_index
            return True
        return False

    def has_next_committed(self) -> bool:
        return self.committed > self.applying and self.unstable.snapshot is None

    def next_committed_entries(self) -> list[Entry]:
        if not self.has_next_committed():
            return []
        lo = self.applying + 1
        hi = self.committed + 1
        return self.slice(lo, hi, self.max_apply_bytes)

    def applied_to(self, i: int) -> None:
        if i > self.applied:
            self.applied = i
        if i > self.applying:
            self.applying = i

    # -- reads
    def slice(self, lo: int, hi: int, max_bytes: int | None = None) -> list[Entry]:
        """Entries [lo, hi) from storage and the unstable tail. Raises StorageCompacted."""
        if lo >= hi:
            return []
        if lo < self.first_index():
            raise StorageCompacted(f"index {lo} compacted")
        off = self.unstable.offset
        if hi <= off:
            return self.storage.entries(lo, hi, max_bytes)
        if lo >= off:
            return limit_size(self.unstable.slice(lo, hi), max_bytes)
        ents = self.storage.entries(lo, off, max_bytes)
        if len(ents) < off - lo:
            return ents
        if max_bytes is not None:
            size = sum(entry_size(e) for e in ents)
            rest = self.unstable.slice(off, hi)
            out = list(ents)
            for e in rest:
                size += entry_size(e)
                if size > max_bytes:
                    break
                out.append(e)
            return out
        return ents + self.unstable.slice(off, hi)

    def entries_from(self, lo: int, max_bytes: int | None) -> list[Entry]:
        last = self.last_index()
        if lo > last:
            return []
        return self.slice(lo, last + 1, max_bytes)

    def restore(self, s: Snapshot) -> None:
        self.committed = s.meta.index
        self.unstable.restore(s)
        self.applying = max(self.applying, s.meta.index)
