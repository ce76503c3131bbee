"""Durable Raft log storage: a write-ahead log of checksummed records in segment files.

Owns ``WalStorage``, the on-disk implementation of ``raft.types.LogStorage``, and the snapshot
files beside it.

Layout of a data directory::

    <dir>/wal/<seq:016x>.wal      segments, replayed in sequence order
    <dir>/snap/<index:016x>.snap  state-machine snapshots (latest two kept)

Every record is framed as ``length:u32 | crc32:u32 | kind:u8 | payload`` (little endian; the
CRC covers kind and payload). Records: an entry (appending entry *i* cuts the log from *i* on,
so conflicts are truncated by replay order), a hard state (the last one wins), a compaction
mark (entries up to an index dropped) and a snapshot mark (log reset to a received snapshot).

``save(hard_state, entries, snapshot)`` writes one Ready's worth of records with ONE write and
ONE fdatasync: group commit. A crash can leave a torn record at the tail of the newest segment
only; on open the tail is checked record by record and cut at the first bad length or
checksum, so a partial write is never replayed. A bad record in an older (sealed) segment is
real corruption and raises ``WalCorrupted``. Opening always starts a fresh segment whose header
repeats the hard state and the compaction point, which is what lets ``compact`` delete whole
old segments.

Power loss (every file operation goes through ``raft.fsio``, so tests can drop whatever was not
fsynced; tests/raft_io/test_wal_power_loss.py):

* a segment is sealed (fsynced) before the next one is created, so only the newest can hold
  bytes that are not durable -- the invariant behind "a torn tail only in the newest segment";
* a new segment's header and its directory entry are fsynced before anything is written to it;
  new directories are made durable in their parents;
* on open, what was found (segments, snapshot files) is fsynced before anything new is
  written: after a process crash some of it may still be only in the page cache, and the
  restarted member acts on it;
* snapshot files are written atomically (temp file, fsync, rename, directory fsync) before the
  log records or compaction that rely on them;
* a torn save may keep a new term's entries without the hard state written after them; on open
  the term is raised to the log's (with no vote: nothing of that term was acknowledged).

Refusals: ``save`` checks a batch before writing any of it (entries contiguous from at most the
next index, terms never going down) and raises ``RaftError`` otherwise, so the WAL can never
hold a log it could not replay. On open, a snapshot file that is damaged or that the
application's ``snapshot_ok`` refuses is skipped with a logged error and an older one is used,
but only if the log still holds every entry after it; otherwise opening fails with
``WalCorrupted`` saying the member must be resynced (starting anyway would skip entries).
"""

from __future__ import annotations

import logging
import os
import struct
import threading
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from raft.fsio import OS_FS, TMP_SUFFIX, FileHandle, FileLock, FileSystem, write_atomic
from raft.memory_storage import limit_size
from raft.types import (
    ConfState,
    Entry,
    EntryType,
    HardState,
    RaftError,
    Snapshot,
    SnapshotMeta,
    StorageCompacted,
)

__all__ = ["WalCorrupted", "WalStorage", "decode_snapshot", "encode_snapshot"]

log = logging.getLogger(__name__)

_FRAME = struct.Struct("<II")  # length of (kind + payload), crc32 of (kind + payload)
_ENTRY = struct.Struct("<QQB")  # term, index, type; data follows
_HARD = struct.Struct("<QQQ")  # term, vote, commit
_MARK = struct.Struct("<QQ")  # index, term
_MAX_RECORD = 1 << 30

K_ENTRY = 1
K_HARD = 2
K_COMPACT = 3
K_SNAPSHOT = 4
K_CONF = 5

_SNAP_MAGIC = b"HLGSNAP1"
_SNAP_HEAD = struct.Struct("<8sIIQ")  # magic, crc32(meta + data), meta length, data length


class WalCorrupted(RaftError):
    """A sealed WAL segment or every snapshot file failed its checksum."""


def _frame(kind: int, payload: bytes) -> bytes:
    body = bytes((kind,)) + payload
    return _FRAME.pack(len(body), zlib.crc32(body)) + body


def _encode_entry(e: Entry) -> bytes:
    body = bytes((K_ENTRY,)) + _ENTRY.pack(e.term, e.index, int(e.type)) + e.data
    return _FRAME.pack(len(body), zlib.crc32(body)) + body


def _encode_ids(ids: frozenset[int]) -> bytes:
    return struct.pack(f"<I{len(ids)}Q", len(ids), *sorted(ids))


def _decode_ids(buf: bytes, pos: int) -> tuple[frozenset[int], int]:
    (n,) = struct.unpack_from("<I", buf, pos)
    pos += 4
    ids = struct.unpack_from(f"<{n}Q", buf, pos)
    return frozenset(ids), pos + 8 * n


def encode_conf_state(cs: ConfState) -> bytes:
    return (
        _encode_ids(cs.voters) + _encode_ids(cs.learners) + _encode_ids(cs.voters_outgoing)
        + _encode_ids(cs.learners_next) + bytes((1 if cs.auto_leave else 0,))
    )


def decode_conf_state(buf: bytes, pos: int = 0) -> tuple[ConfState, int]:
    voters, pos = _decode_ids(buf, pos)
    learners, pos = _decode_ids(buf, pos)
    outgoing, pos = _decode_ids(buf, pos)
    learners_next, pos = _decode_ids(buf, pos)
    auto_leave = bool(buf[pos])
    return ConfState(voters, learners, outgoing, learners_next, auto_leave), pos + 1


def encode_snapshot(snap: Snapshot) -> bytes:
    """Snapshot file bytes: header with checksum, metadata, data."""
    meta = _MARK.pack(snap.meta.index, snap.meta.term) + encode_conf_state(snap.meta.conf_state)
    crc = zlib.crc32(snap.data, zlib.crc32(meta))
    return _SNAP_HEAD.pack(_SNAP_MAGIC, crc, len(meta), len(snap.data)) + meta + snap.data


def decode_snapshot(buf: bytes) -> Snapshot:
    """Inverse of ``encode_snapshot``; raises WalCorrupted on any damage."""
    if len(buf) < _SNAP_HEAD.size:
        raise WalCorrupted("snapshot file too short")
    magic, crc, meta_len, data_len = _SNAP_HEAD.unpack_from(buf)
    if magic != _SNAP_MAGIC or len(buf) != _SNAP_HEAD.size + meta_len + data_len:
        raise WalCorrupted("snapshot file has a bad header or length")
    meta = buf[_SNAP_HEAD.size:_SNAP_HEAD.size + meta_len]
    data = buf[_SNAP_HEAD.size + meta_len:]
    if zlib.crc32(data, zlib.crc32(meta)) != crc:
        raise WalCorrupted("snapshot file checksum mismatch")
    index, term = _MARK.unpack_from(meta)
    cs, _ = decode_conf_state(meta, _MARK.size)
    return Snapshot(SnapshotMeta(index, term, cs), bytes(data))


@dataclass
class _Segment:
    seq: int
    path: Path
    max_index: int = 0  # highest entry index written into this segment (0: none)


@dataclass
class _Replay:
    """Log state rebuilt from records, in record order."""

    base_index: int = 0
    base_term: int | None = 0
    hard: HardState | None = None
    conf: ConfState | None = None

    def __post_init__(self) -> None:
        self.ents: list[Entry] = []

    def last(self) -> int:
        return self.base_index + len(self.ents)

    def entry(self, e: Entry) -> None:
        if e.index <= self.base_index:
            return
        if e.index > self.last() + 1:
            # Older segments were dropped by compaction; a later mark supplies the base term.
            self.base_index, self.base_term, self.ents = e.index - 1, None, [e]
            return
        del self.ents[e.index - self.base_index - 1:]
        self.ents.append(e)

    def compact(self, index: int, term: int) -> None:
        if index < self.base_index:
            return
        if index == self.base_index:
            self.base_term = term
            return
        if index >= self.last():
            self.ents = []
        else:
            del self.ents[:index - self.base_index]
        self.base_index, self.base_term = index, term

    def reset(self, index: int, term: int) -> None:
        self.base_index, self.base_term, self.ents = index, term, []


def _scan(data: bytes) -> tuple[list[tuple[int, bytes]], int]:
    """Parse records; returns them and the offset just past the last good one."""
    out: list[tuple[int, bytes]] = []
    pos, n = 0, len(data)
    while pos + _FRAME.size <= n:
        length, crc = _FRAME.unpack_from(data, pos)
        if length == 0 or length > _MAX_RECORD or pos + _FRAME.size + length > n:
            break
        body = data[pos + _FRAME.size:pos + _FRAME.size + length]
        if zlib.crc32(body) != crc:
            break
        out.append((body[0], body[1:]))
        pos += _FRAME.size + length
    return out, pos


class WalStorage:
    """Durable ``LogStorage``: reads are served from memory, writes go to the WAL first.

    Thread safety: one writer (the driver thread) may call ``save``/``compact``/``create_snapshot``
    while other threads read; a lock guards the in-memory view.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        segment_bytes: int = 64 << 20,
        sync: bool = True,
        keep_snapshots: int = 2,
        fs: FileSystem | None = None,
        snapshot_ok: Callable[[bytes], bool] | None = None,
    ) -> None:
        """``snapshot_ok(data)``: the application's check of a snapshot file's data on open."""
        self.path = Path(path)
        self.fs = fs = fs or OS_FS
        self._snapshot_ok = snapshot_ok
        self.segment_bytes = segment_bytes
        self.sync = sync
        self.keep_snapshots = keep_snapshots
        self._wal_dir = self.path / "wal"
        self._snap_dir = self.path / "snap"
        fs.makedirs(self._wal_dir, sync=sync)
        fs.makedirs(self._snap_dir, sync=sync)
        self._lock = threading.RLock()
        try:
            self._dir_lock: FileLock | None = fs.lock(self.path / "LOCK")
        except OSError:
            raise RaftError(f"{self.path} is in use by another WalStorage") from None
        self._segments: list[_Segment] = []
        self._fh: FileHandle | None = None
        self._size = 0
        self._dirty = False
        self.fsyncs = 0
        """Number of fdatasync calls made on segments (group commit is visible here)."""
        try:
            self._snap = self._load_snapshot()
            self._replay()
            if sync:
                self._make_found_state_durable()
            self._open_segment()
        except BaseException:
            self.close()
            raise

    # ------------------------------------------------------------------ open / replay
    def _load_snapshot(self) -> Snapshot:
        names = self.fs.listdir(self._snap_dir)
        for name in names:
            if name.endswith(TMP_SUFFIX):
                self.fs.unlink(self._snap_dir / name)
        self._skipped_snapshots: list[str] = []
        for name in sorted((n for n in names if n.endswith(".snap")), reverse=True):
            try:
                snap = decode_snapshot(self.fs.read_bytes(self._snap_dir / name))
                if self._snapshot_ok is not None and not self._snapshot_ok(snap.data):
                    raise WalCorrupted("the application refuses its data")
            except (WalCorrupted, OSError, struct.error) as exc:
                # a damaged newer snapshot: fall back to an older one (if the log allows it;
                # checked after replay)
                log.error("raft WAL: ignoring snapshot file %s: %s", name, exc)
                self._skipped_snapshots.append(name)
                continue
            return snap
        return Snapshot()

    def _replay(self) -> None:
        rp = _Replay()
        files = [self._wal_dir / n for n in sorted(self.fs.listdir(self._wal_dir))
                 if n.endswith(".wal")]
        for i, f in enumerate(files):
            data = self.fs.read_bytes(f)
            records, good = _scan(data)
            if good != len(data):
                if i != len(files) - 1:
                    raise WalCorrupted(f"{f.name}: bad record at offset {good}")
                fh = self.fs.open_append(f, create=False)  # torn tail of the newest segment
                try:
                    fh.truncate(good)
                    fh.fsync()
                finally:
                    fh.close()
            seg = _Segment(int(f.stem, 16), f)
            for kind, payload in records:
                if kind == K_ENTRY:
                    term, index, typ = _ENTRY.unpack_from(payload)
                    rp.entry(Entry(term, index, EntryType(typ), bytes(payload[_ENTRY.size:])))
                    seg.max_index = max(seg.max_index, index)
                elif kind == K_HARD:
                    rp.hard = HardState(*_HARD.unpack_from(payload))
                elif kind == K_COMPACT:
                    rp.compact(*_MARK.unpack_from(payload))
                elif kind == K_SNAPSHOT:
                    rp.reset(*_MARK.unpack_from(payload))
                elif kind == K_CONF:
                    rp.conf, _ = decode_conf_state(payload)
                else:
                    raise WalCorrupted(f"{f.name}: unknown record kind {kind}")
            self._segments.append(seg)
        snap = self._snap.meta
        if rp.base_term is None:
            raise WalCorrupted("compacted log has no base term")
        if snap.index < rp.base_index:
            skipped = ", ".join(self._skipped_snapshots) or "none"
            raise WalCorrupted(
                f"{self.path}: the log starts after index {rp.base_index} but the newest usable "
                f"snapshot is at {snap.index} (unusable snapshot files: {skipped}); entries in "
                "between are lost here: wipe this member's data directory and re-add it "
                "(replSetReconfig) to resync it from the others")
        if snap.index > rp.base_index:
            # The snapshot was saved but the WAL never recorded its reset (crash in between),
            # or it was made by the application: keep the log if it holds the snapshot's entry.
            held = rp.last() >= snap.index
            if not held or rp.ents[snap.index - rp.base_index - 1].term != snap.term:
                rp.reset(snap.index, snap.term)
        self._base_index, self._base_term = rp.base_index, rp.base_term
        self._ents = rp.ents
        self._hard = rp.hard or HardState()
        if self._hard.commit < snap.index:
            self._hard = HardState(self._hard.term, self._hard.vote, snap.index)
        top = max(snap.term, self._base_term, self._ents[-1].term if self._ents else 0)
        if self._hard.term < top:
            # A power cut kept a save's entries (or a leader snapshot's file) but not the hard
            # state written after them. Nothing of that term was acknowledged (that waits for
            # the fsync), no vote in it either: restart in that term, not having voted, so the
            # term is never below the log's.
            self._hard = HardState(top, 0, self._hard.commit)
        self._conf = rp.conf

    def _make_found_state_durable(self) -> None:
        """What a restarted member found is what it acts on (it answers a leader's probe with
        its last index, which counts as holding those entries), but after a process crash some
        of it may still be only in the OS page cache: a segment tail written without fsync, a
        snapshot renamed in just before the kill. Make it durable before writing anything that
        depends on it (the new segment's header repeats the log base and hard state)."""
        for seg in self._segments:
            fh = self.fs.open_append(seg.path, create=False)
            try:
                fh.fdatasync()
            finally:
                fh.close()
        self.fs.fsync_dir(self._snap_dir)
        self.fs.fsync_dir(self._wal_dir)

    def _open_segment(self) -> None:
        """Start the next segment. The current one is sealed (fsynced) FIRST: only the newest
        segment may ever hold bytes that are not durable, so only it can have a torn tail."""
        if self._fh is not None:
            self.flush()
            self._fh.close()
            self._fh = None
        seq = self._segments[-1].seq + 1 if self._segments else 1
        path = self._wal_dir / f"{seq:016x}.wal"
        fh = self.fs.open_append(path)
        header = [
            _frame(K_HARD, _HARD.pack(self._hard.term, self._hard.vote, self._hard.commit)),
            _frame(K_COMPACT, _MARK.pack(self._base_index, self._base_term)),
        ]
        if self._conf is not None:
            header.append(_frame(K_CONF, encode_conf_state(self._conf)))
        buf = b"".join(header)
        fh.write(buf)
        if self.sync:
            fh.fsync()
            self.fs.fsync_dir(self._wal_dir)
        self._fh, self._size, self._dirty = fh, len(buf), False
        self._segments.append(_Segment(seq, path))

    # ------------------------------------------------------------------ LogStorage (reads)
    def initial_state(self) -> tuple[HardState, ConfState]:
        with self._lock:
            if not self._snap.empty or self._conf is None:
                return self._hard.copy(), self._snap.meta.conf_state
            return self._hard.copy(), self._conf

    def hard_state(self) -> HardState:
        with self._lock:
            return self._hard.copy()

    def first_index(self) -> int:
        with self._lock:
            return self._base_index + 1

    def last_index(self) -> int:
        with self._lock:
            return self._base_index + len(self._ents)

    def term(self, i: int) -> int:
        with self._lock:
            if i < self._base_index:
                raise StorageCompacted(f"term({i}): compacted up to {self._base_index}")
            if i == self._base_index:
                return self._base_term
            if i > self._base_index + len(self._ents):
                raise RaftError(f"term({i}): beyond last index {self.last_index()}")
            return self._ents[i - self._base_index - 1].term

    def entries(self, lo: int, hi: int, max_bytes: int | None = None) -> list[Entry]:
        with self._lock:
            if lo <= self._base_index:
                raise StorageCompacted(f"entries({lo}): compacted up to {self._base_index}")
            last = self._base_index + len(self._ents)
            if hi > last + 1:
                raise RaftError(f"entries({lo}, {hi}): beyond last index {last}")
            out = self._ents[lo - self._base_index - 1:hi - self._base_index - 1]
        return limit_size(out, max_bytes)

    def snapshot(self) -> Snapshot:
        with self._lock:
            return self._snap

    # ------------------------------------------------------------------ writes
    def save(
        self,
        hard_state: HardState | None,
        entries: Sequence[Entry] = (),
        snapshot: Snapshot | None = None,
        *,
        sync: bool = True,
    ) -> None:
        """Persist one Ready: snapshot (if any), entries, hard state; ONE fdatasync for all.

        Appending entry *i* replaces every entry from *i* on. ``sync=False`` skips the fsync
        (a Ready with only a commit-index change need not be durable at once). Entries that
        would leave a gap or make terms go down raise RaftError before anything is written.
        """
        if entries:
            self._check_append(entries, snapshot)
        if snapshot is not None and not snapshot.empty:
            self._write_snapshot_file(snapshot)
        parts: list[bytes] = []
        if snapshot is not None and not snapshot.empty:
            parts.append(_frame(K_SNAPSHOT, _MARK.pack(snapshot.meta.index, snapshot.meta.term)))
        parts.extend(_encode_entry(e) for e in entries)
        if hard_state is not None:
            parts.append(_frame(K_HARD, _HARD.pack(hard_state.term, hard_state.vote,
                                                   hard_state.commit)))
        if parts:
            self._write(b"".join(parts), sync=sync)
            if entries:
                seg = self._segments[-1]
                seg.max_index = max(seg.max_index, max(e.index for e in entries))
        with self._lock:
            if snapshot is not None and not snapshot.empty:
                self._snap = snapshot
                self._base_index, self._base_term = snapshot.meta.index, snapshot.meta.term
                self._ents = []
                self._conf = None
            if entries:
                first = entries[0].index
                if first <= self._base_index:
                    skip = self._base_index + 1 - first
                    entries = list(entries)[skip:]
                    first = self._base_index + 1
                if entries:
                    last = self._base_index + len(self._ents)
                    if first > last + 1:
                        raise RaftError(f"append at {first} leaves a gap after {last}")
                    del self._ents[first - self._base_index - 1:]
                    self._ents.extend(entries)
            if hard_state is not None:
                self._hard = hard_state.copy()
        if self._size >= self.segment_bytes:
            self._open_segment()

    def _check_append(self, entries: Sequence[Entry], snapshot: Snapshot | None) -> None:
        with self._lock:
            if snapshot is not None and not snapshot.empty:
                base, last = snapshot.meta.index, snapshot.meta.index
                prev_of = {base: snapshot.meta.term}.get
            else:
                base, last = self._base_index, self._base_index + len(self._ents)
                prev_of = self._term_or_none
            first = entries[0].index
            if first > last + 1:
                raise RaftError(f"append at {first} leaves a gap after {last}")
            prev = prev_of(first - 1) if first - 1 >= base else None
            want = first
            for e in entries:
                if e.index != want:
                    raise RaftError(f"entries not contiguous: {e.index} where {want} belongs")
                if prev is not None and e.term < prev:
                    raise RaftError(f"entry {e.index} has term {e.term} after term {prev}")
                prev = e.term
                want += 1

    def _term_or_none(self, i: int) -> int | None:
        if i == self._base_index:
            return self._base_term
        if self._base_index < i <= self._base_index + len(self._ents):
            return self._ents[i - self._base_index - 1].term
        return None

    def set_conf_state(self, conf_state: ConfState) -> None:
        """Record a bootstrap configuration (used by ``initial_state`` until a snapshot)."""
        self._write(_frame(K_CONF, encode_conf_state(conf_state)), sync=True)
        with self._lock:
            self._conf = conf_state

    def _write(self, buf: bytes, *, sync: bool) -> None:
        assert self._fh is not None
        self._fh.write(buf)
        self._size += len(buf)
        self._dirty = True
        if sync:
            self.flush()

    def flush(self) -> None:
        """fdatasync what ``save(..., sync=False)`` wrote: group commit across saves."""
        if self._dirty and self.sync:
            assert self._fh is not None
            self._fh.fdatasync()
            self.fsyncs += 1
        self._dirty = False

    def create_snapshot(self, index: int, conf_state: ConfState, data: bytes) -> Snapshot:
        """Save the application's state-machine image taken at applied ``index``; returns the
        latest snapshot (this one, unless a newer one exists). Safe to call from a thread
        other than the one writing the log (the file is written outside the lock)."""
        with self._lock:
            if index <= self._snap.meta.index:
                return self._snap
            term = self.term(index)
        snap = Snapshot(SnapshotMeta(index, term, conf_state), data)
        self._write_snapshot_file(snap)
        with self._lock:
            # a snapshot installed meanwhile (another thread) may be newer: never go back
            if index > self._snap.meta.index:
                self._snap = snap
            return self._snap

    def _write_snapshot_file(self, snap: Snapshot) -> None:
        final = self._snap_dir / f"{snap.meta.index:016x}.snap"
        write_atomic(self.fs, final, encode_snapshot(snap), sync=self.sync)
        snaps = sorted(n for n in self.fs.listdir(self._snap_dir) if n.endswith(".snap"))
        for name in snaps[:-self.keep_snapshots]:
            # two threads may save snapshots at once
            self.fs.unlink(self._snap_dir / name, missing_ok=True)

    def compact(self, index: int) -> None:
        """Drop entries up to ``index`` (which must not pass the latest snapshot) and delete
        whole segments that hold nothing newer."""
        with self._lock:
            if index <= self._base_index:
                return
            if index > self._snap.meta.index:
                raise RaftError(f"compact({index}) beyond snapshot {self._snap.meta.index}")
            term = self.term(index)
        self._write(_frame(K_COMPACT, _MARK.pack(index, term)), sync=True)
        with self._lock:
            del self._ents[:index - self._base_index]
            self._base_index, self._base_term = index, term
        removed = False
        while len(self._segments) > 1 and self._segments[0].max_index <= index:
            self.fs.unlink(self._segments.pop(0).path)
            removed = True
        if removed and self.sync:
            self.fs.fsync_dir(self._wal_dir)

    def segment_paths(self) -> list[Path]:
        return [s.path for s in self._segments]

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None
        if self._dir_lock is not None:
            self._dir_lock.release()
            self._dir_lock = None

    def __enter__(self) -> WalStorage:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
