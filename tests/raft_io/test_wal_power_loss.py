"""WalStorage under power loss: a simulated disk (tests/power_loss_fs.py) drops whatever was not
fsynced when the power is cut, and the reopened log must start and hold every write that was
acknowledged (fsynced) before the cut.

First one fault at a time, each the reproduction of a bug; then a driver that uses the WAL the
way ``RaftNode`` does -- Readies saved with ``sync=False`` and one ``flush`` for the group (the
acknowledgement point), commit-only saves without a flush, application snapshots followed by
compaction, snapshots from a leader, conflicting appends from new terms, clean reopens and
process crashes (SIGKILL: the page cache survives) -- crashed at random points. Tiny segments
make rollovers and segment deletion constant."""

from __future__ import annotations

import random
from pathlib import Path

from raft.types import ConfState, Entry, EntryType, HardState, Snapshot, SnapshotMeta
from raft.wal import WalStorage
from tests.power_loss_fs import PowerLoss, ProcessKilled, SimDisk

CONF = ConfState(voters=frozenset({1, 2, 3}))
SEGMENT = 500


def ents(lo: int, hi: int, term: int = 1, size: int = 40) -> list[Entry]:
    return [Entry(term, i, EntryType.NORMAL, b"%d:%d:" % (term, i) + b"." * size)
            for i in range(lo, hi + 1)]


def log_of(w: WalStorage) -> list[Entry]:
    return w.entries(w.first_index(), w.last_index() + 1)


def test_power_loss_after_creating_the_data_directory_keeps_the_log(tmp_path: Path) -> None:
    """A new data directory's name must be durable (its parent fsynced) before anything in it
    is acknowledged, or the whole log can vanish with the directory entry."""
    for seed in range(8):
        disk = SimDisk(tmp_path / str(seed), random.Random(seed))
        path = disk.root / "member" / "raft"
        with WalStorage(path, fs=disk.mount()) as w:
            w.save(HardState(1, 1, 0), ents(1, 3))  # acknowledged
        disk.power_cut()
        with WalStorage(path, fs=disk.mount()) as w:
            assert log_of(w) == ents(1, 3), seed
            assert w.hard_state() == HardState(1, 1, 0)


def test_power_loss_during_segment_rollover_leaves_a_startable_log(tmp_path: Path) -> None:
    """A Ready saved without sync that fills the segment rolls over before the group's flush:
    the old segment must be sealed (fsynced) before the new one exists, or a cut in between
    leaves a durable new segment behind a torn old one (the member refuses to start) and a
    durable header whose commit index points past the surviving log."""
    for k in range(1, 14):
        for seed in range(6):
            disk = SimDisk(tmp_path / f"{k}-{seed}", random.Random(seed))
            path = disk.root / "raft"
            w = WalStorage(path, segment_bytes=300, fs=disk.mount())
            w.save(HardState(1, 1, 0), ents(1, 3))
            disk.crash_after(k)
            try:
                w.save(HardState(1, 1, 3), ents(4, 12), sync=False)  # past 300 bytes: rollover
                w.flush()
            except PowerLoss:
                pass
            else:
                disk.crash_after(None)
                disk.power_cut()
            with WalStorage(path, segment_bytes=300, fs=disk.mount()) as w:
                assert log_of(w)[:3] == ents(1, 3), (k, seed)
                assert w.hard_state().commit <= w.last_index(), (k, seed)


def test_power_loss_after_a_process_crash_and_restart(tmp_path: Path) -> None:
    """After a SIGKILL the restarted member trusts (and may acknowledge) the log it finds in
    the page cache, so opening must make it durable before writing anything new; otherwise a
    later power cut tears the tail of what is by then an older segment."""
    for seed in range(10):
        disk = SimDisk(tmp_path / str(seed), random.Random(seed))
        path = disk.root / "raft"
        w = WalStorage(path, fs=disk.mount())
        w.save(HardState(1, 1, 0), ents(1, 3))
        w.save(HardState(1, 1, 2), ents(4, 6), sync=False)  # written, not yet fsynced
        disk.process_crash()
        with WalStorage(path, fs=disk.mount()) as w:
            seen = log_of(w)
            assert seen == ents(1, 6)
        disk.power_cut()
        with WalStorage(path, fs=disk.mount()) as w:
            assert log_of(w) == seen, seed


def test_power_loss_after_a_process_crash_during_a_snapshot_install(tmp_path: Path) -> None:
    """A leader's snapshot renamed into place by a process killed before the directory fsync:
    the restarted member resets its log to that snapshot, so the rename must be made durable
    before the reset is; otherwise a power cut leaves a log based on a snapshot that is gone."""
    snap = Snapshot(SnapshotMeta(50, 2, CONF), b"L@50")
    for k in range(1, 8):
        for seed in range(4):
            disk = SimDisk(tmp_path / f"{k}-{seed}", random.Random(seed))
            path = disk.root / "raft"
            w = WalStorage(path, fs=disk.mount())
            w.save(HardState(1, 1, 3), ents(1, 3))
            disk.crash_after(k, power=False)
            try:
                w.save(HardState(2, 0, 50), [], snapshot=snap, sync=False)
                w.flush()
            except ProcessKilled:
                pass
            else:
                disk.crash_after(None)
                disk.process_crash()
            with WalStorage(path, fs=disk.mount()) as w:
                seen = (w.first_index(), w.snapshot().meta.index)
            disk.power_cut()
            with WalStorage(path, fs=disk.mount()) as w:
                assert (w.first_index(), w.snapshot().meta.index) == seen, (k, seed)
                assert w.first_index() - 1 <= w.snapshot().meta.index


def test_power_loss_never_leaves_the_term_below_the_logs(tmp_path: Path) -> None:
    """A torn save can keep a new term's entries (or a leader snapshot's file) without the hard
    state written after them; the reopened log restarts in that term, with no vote."""
    snap = Snapshot(SnapshotMeta(40, 3, CONF), b"L@40")
    for seed in range(24):
        disk = SimDisk(tmp_path / str(seed), random.Random(seed))
        path = disk.root / "raft"
        w = WalStorage(path, fs=disk.mount())
        w.save(HardState(1, 1, 0), ents(1, 3))
        w.save(HardState(2, 3, 0), ents(2, 6, term=2), sync=False)
        if seed % 2:
            w.save(HardState(3, 0, 40), [], snapshot=snap, sync=False)
        disk.power_cut()
        with WalStorage(path, fs=disk.mount()) as w:
            hs = w.hard_state()
            terms = [w.term(w.first_index() - 1)] + [e.term for e in log_of(w)]
            assert hs.term >= max(terms, default=0), seed
            assert hs.vote in {1: {1}, 2: {0, 3}, 3: {0}}[hs.term], seed  # 0: raised term
