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

import os
import random
from dataclasses import dataclass
from pathlib import Path

import pytest

from raft.types import ConfState, Entry, EntryType, HardState, Snapshot, SnapshotMeta
from raft.wal import WalStorage
from tests.power_loss_fs import Crash, PowerLoss, ProcessKilled, SimDisk

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


# ---------------------------------------------------------------------- random crash points

@dataclass(frozen=True)
class View:
    """What a WalStorage holds, as Raft sees it."""

    hard: HardState
    base: int
    base_term: int
    ents: dict[int, Entry]
    snap_index: int
    snap_term: int
    snap_data: bytes

    @property
    def last(self) -> int:
        return self.base + len(self.ents)


def view_of(w: WalStorage) -> View:
    first, last = w.first_index(), w.last_index()
    ents = {e.index: e for e in w.entries(first, last + 1)} if last >= first else {}
    snap = w.snapshot()
    return View(w.hard_state(), first - 1, w.term(first - 1), ents, snap.meta.index,
                snap.meta.term, snap.data)


class Driver:
    """Drives one WalStorage on a SimDisk like a Raft member would; checks after every crash."""

    def __init__(self, root: Path, seed: int) -> None:
        self.rng = random.Random(seed)
        self.disk = SimDisk(root, random.Random(seed * 7919 + 1))
        self.path = root / "data" / "raft"
        self.written: set[tuple[int, int, bytes]] = set()
        self.snaps: dict[tuple[int, int], bytes] = {}
        self.nonce = 0
        self.w: WalStorage | None = None
        self.cuts = 0
        self._open(fresh=True)

    # ------------------------------------------------------------------ lifecycle
    def _open(self, *, fresh: bool = False) -> None:
        self.w = WalStorage(self.path, segment_bytes=SEGMENT, fs=self.disk.mount())
        if fresh:
            self.w.set_conf_state(CONF)
        v = view_of(self.w)
        self.term, self.vote, self.commit = v.hard.term, v.hard.vote, v.hard.commit
        # everything a restarted member holds it may acknowledge (a probe's answer counts): it
        # must be durable from here on
        self.acked = v

    def _abandon(self) -> None:
        if self.w is not None:
            self.w.close()  # a dead process's handles: closing does nothing
            self.w = None

    def crashed(self, *, cut: bool = True) -> None:
        """The process was killed or the power cut (an armed Crash, or ``cut`` now): reopen
        and hold the recovered log against what was acknowledged."""
        self._abandon()
        if cut and self.disk.power_cuts == self.cuts:
            self.disk.power_cut()
        self.cuts = self.disk.power_cuts
        self.disk.crash_after(None)
        acked = self.acked
        self._open()
        check_recovered(acked, self.acked, self.written, self.snaps)
        again = view_of(self.w)
        self._abandon()
        self._open()  # recovery is itself durable and idempotent
        assert view_of(self.w) == again

    # ------------------------------------------------------------------ workload
    def step(self) -> None:
        w = self.w
        assert w is not None
        r = self.rng.random()
        last = w.last_index()
        if r < 0.5:
            self._append(last)
        elif r < 0.62 and self.commit < last:
            self.commit = self.rng.randint(self.commit + 1, last)
            w.save(HardState(self.term, self.vote, self.commit), sync=False)  # not must_sync
        elif r < 0.75:
            self._flush()
        elif r < 0.85:
            self._app_snapshot()
        elif r < 0.9:
            self._leader_snapshot(last)
        elif r < 0.95:
            before = view_of(w)
            self._abandon()
            self.disk.process_crash()  # SIGKILL: nothing lost, the page cache stays
            self._open()
            assert self.acked == before
        else:
            before = view_of(w)
            self._abandon()
            self._open()
            assert self.acked == before

    def _entries(self, lo: int, n: int) -> list[Entry]:
        out = []
        for i in range(lo, lo + n):
            self.nonce += 1
            data = f"{self.term}:{i}:{self.nonce}:".encode() + b"x" * self.rng.randint(0, 90)
            out.append(Entry(self.term, i, EntryType.NORMAL, data))
            self.written.add((i, self.term, data))
        return out

    def _append(self, last: int) -> None:
        w = self.w
        assert w is not None
        lo = last + 1
        if last > max(self.commit, w.first_index() - 1) and self.rng.random() < 0.2:
            lo = self.rng.randint(max(self.commit, w.first_index() - 1) + 1, last)
            self.term, self.vote = self.term + 1, self.rng.randint(1, 3)  # a new leader's log
        elif self.rng.random() < 0.1:
            self.term, self.vote = self.term + 1, self.rng.randint(1, 3)
        w.save(HardState(self.term, self.vote, self.commit),
               self._entries(lo, self.rng.randint(1, 6)), sync=False)
        if self.rng.random() < 0.6:
            self._flush()

    def _flush(self) -> None:
        assert self.w is not None
        self.w.flush()
        self.acked = view_of(self.w)

    def _app_snapshot(self) -> None:
        """RaftNode's ``_maybe_snapshot``: an image at an applied (committed, durable) index,
        then the log compacted behind it, keeping a few entries."""
        w = self.w
        assert w is not None
        self._flush()
        snap = w.snapshot().meta.index
        if self.commit <= snap:
            return
        idx = self.rng.randint(snap + 1, self.commit)
        data = b"A@%d" % idx
        self.snaps[(idx, w.term(idx))] = data
        w.create_snapshot(idx, CONF, data)
        cut = idx - self.rng.randint(0, 5)
        if cut >= w.first_index():
            w.compact(cut)
        self.acked = view_of(w)

    def _leader_snapshot(self, last: int) -> None:
        w = self.w
        assert w is not None
        self.term, self.vote = self.term + 1, 0
        idx = max(last, self.commit) + self.rng.randint(1, 20)
        data = b"L@%d" % idx
        self.snaps[(idx, self.term)] = data
        self.commit = idx
        w.save(HardState(self.term, self.vote, idx), [],
               snapshot=Snapshot(SnapshotMeta(idx, self.term, CONF), data), sync=False)
        self._flush()


def check_recovered(acked: View, rec: View, written: set[tuple[int, int, bytes]],
                    snaps: dict[tuple[int, int], bytes]) -> None:
    """Raft's requirements of a log reopened after a power cut, against the last state that
    was durable (acknowledged) before it."""
    # the hard state: never forget a term or a vote; the commit index stays inside the log
    assert rec.hard.term >= acked.hard.term
    if rec.hard.term == acked.hard.term:
        assert rec.hard.vote == acked.hard.vote
    assert rec.hard.commit >= acked.hard.commit
    assert rec.hard.commit <= max(rec.last, rec.snap_index), "commit beyond the log"
    # snapshots: at least as new as the acknowledged one, and one that was really written
    assert rec.snap_index >= acked.snap_index
    if rec.snap_index:
        assert snaps[(rec.snap_index, rec.snap_term)] == rec.snap_data
    assert rec.base <= rec.snap_index or rec.base == 0, "log compacted past its snapshot"
    # entries: only written ones, terms never going down
    prev = rec.base_term
    for i in range(rec.base + 1, rec.last + 1):
        e = rec.ents[i]
        assert (e.index, e.term, e.data) in written, f"entry {i} was never written"
        assert e.term >= prev
        prev = e.term
    # every acknowledged entry is still there, covered by a snapshot, or (not committed) was
    # replaced by a later, higher-term write or a newer leader snapshot
    newer_leader_snap = (rec.snap_index > acked.snap_index
                         and snaps.get((rec.snap_index, rec.snap_term), b"").startswith(b"L"))
    replaced_from = next((i for i in range(max(acked.hard.commit, rec.base) + 1, rec.last + 1)
                          if i in acked.ents and rec.ents[i].term > acked.ents[i].term), None)
    for i, e in acked.ents.items():
        if i <= rec.snap_index and (i <= rec.base or i not in rec.ents):
            continue  # inside the recovered snapshot
        if i in rec.ents and rec.ents[i] == e:
            continue
        assert i > acked.hard.commit, f"committed entry {i} lost or changed"
        assert newer_leader_snap or (replaced_from is not None and replaced_from <= i), (
            f"acknowledged entry {i} lost")
    if acked.base_term and rec.base == acked.base:
        assert rec.base_term == acked.base_term


def run_case(root: Path, seed: int, steps: int, crashes: int) -> int:
    """``steps`` operations with up to ``crashes`` crashes (power cuts, some process kills) at
    random mutating calls, and a power cut at the end; returns the number of power cuts."""
    d = Driver(root, seed)
    rng = random.Random(seed ^ 0x5EED)
    done = 0

    def arm() -> None:
        d.disk.crash_after(rng.randint(1, 80), power=rng.random() < 0.75)

    arm()
    for _ in range(steps):
        try:
            d.step()
        except Crash as crash:
            d.crashed(cut=isinstance(crash, PowerLoss))
            done += 1
            if done < crashes:
                arm()
    d.disk.crash_after(None)
    d.crashed()  # and a power cut at the very end
    d._abandon()
    return d.disk.power_cuts


def test_wal_power_loss_at_random_crash_points(tmp_path: Path) -> None:
    seed0 = int(os.environ.get("POWER_LOSS_SEED", "1"))
    cuts = sum(run_case(tmp_path / f"c{i}", seed0 + i, steps=80, crashes=2) for i in range(16))
    assert cuts >= 30


@pytest.mark.slow
def test_wal_power_loss_many_crash_points(tmp_path: Path) -> None:
    seed0 = int(os.environ.get("POWER_LOSS_SEED", "1000"))
    cuts = sum(run_case(tmp_path / f"c{i}", seed0 + i, steps=300, crashes=8)
               for i in range(300))
    assert cuts >= 1500
