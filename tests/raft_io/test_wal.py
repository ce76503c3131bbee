"""WalStorage: durability, group commit, conflict truncation, torn tails, compaction, snapshots."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

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
from raft.wal import WalCorrupted, WalStorage, decode_snapshot, encode_snapshot


def ents(lo: int, hi: int, term: int, size: int = 8) -> list[Entry]:
    return [Entry(term, i, EntryType.NORMAL, f"{term}:{i}".encode().ljust(size, b".")) for i in range(lo, hi + 1)]


def log_of(w: WalStorage) -> list[Entry]:
    return w.entries(w.first_index(), w.last_index() + 1)


def test_roundtrip_and_reopen(tmp_path: Path) -> None:
    with WalStorage(tmp_path) as w:
        w.save(HardState(1, 2, 0), ents(1, 5, 1))
        w.save(HardState(1, 2, 4), [])
        assert w.last_index() == 5 and w.first_index() == 1
    with WalStorage(tmp_path) as w:
        assert log_of(w) == ents(1, 5, 1)
        hs, _ = w.initial_state()
        assert (hs.term, hs.vote, hs.commit) == (1, 2, 4)
        assert w.term(0) == 0 and w.term(3) == 1


def test_one_open_storage_per_directory(tmp_path: Path) -> None:
    with WalStorage(tmp_path), pytest.raises(RaftError, match="in use"):
        WalStorage(tmp_path)
    WalStorage(tmp_path).close()  # released on close


def test_group_commit_one_fsync_per_save(tmp_path: Path) -> None:
    with WalStorage(tmp_path) as w:
        before = w.fsyncs
        w.save(HardState(3, 1, 10), ents(1, 500, 3))
        assert w.fsyncs == before + 1
        w.save(None, ents(501, 600, 3), sync=False)
        assert w.fsyncs == before + 1


def test_conflict_truncates_from_index(tmp_path: Path) -> None:
    with WalStorage(tmp_path) as w:
        w.save(HardState(1, 1, 0), ents(1, 10, 1))
        w.save(HardState(2, 3, 0), ents(5, 7, 2))
        expected = ents(1, 4, 1) + ents(5, 7, 2)
        assert log_of(w) == expected
    with WalStorage(tmp_path) as w:
        assert log_of(w) == expected and w.last_index() == 7


def test_max_bytes_cuts_but_returns_one(tmp_path: Path) -> None:
    with WalStorage(tmp_path) as w:
        w.save(None, ents(1, 10, 1, size=100))
        assert len(w.entries(1, 11, max_bytes=1)) == 1
        assert len(w.entries(1, 11, max_bytes=300)) == 2


def _acked_then_tail(tmp_path: Path) -> tuple[Path, int, int, list[Entry], HardState, list[Entry]]:
    """Acknowledged batches, then an unacknowledged tail batch; returns the segment and the
    byte range [acked_end, full_end) of the tail."""
    src = tmp_path / "src"
    w = WalStorage(src)
    w.save(HardState(1, 1, 0), ents(1, 6, 1))
    w.save(HardState(2, 2, 3), ents(4, 8, 2))  # conflict: 4..6 replaced
    seg = w.segment_paths()[-1]
    acked_end = seg.stat().st_size
    acked = ents(1, 3, 1) + ents(4, 8, 2)
    tail = ents(9, 11, 2, size=20)
    w.save(HardState(2, 2, 8), tail)
    w.close()
    return seg, acked_end, seg.stat().st_size, acked, HardState(2, 2, 3), tail


def test_torn_tail_at_every_byte_offset(tmp_path: Path) -> None:
    seg, lo, hi, acked, acked_hs, tail = _acked_then_tail(tmp_path)
    full = seg.read_bytes()
    for cut in range(lo, hi + 1):
        d = tmp_path / f"c{cut}"
        shutil.copytree(seg.parent.parent, d)
        (d / "wal" / seg.name).write_bytes(full[:cut])
        with WalStorage(d) as w:
            log = log_of(w)
            assert log[:len(acked)] == acked, cut
            assert log[len(acked):] == tail[:len(log) - len(acked)], cut  # a clean prefix only
            hs = w.hard_state()
            if cut == hi:
                assert hs.commit == 8 and log == acked + tail
            else:
                assert hs == acked_hs
        with WalStorage(d) as w:  # the cut is itself durable: reopen again, same view
            assert log_of(w)[:len(acked)] == acked
        shutil.rmtree(d)


def test_corrupt_tail_bytes_never_replayed(tmp_path: Path) -> None:
    seg, lo, hi, acked, _, tail = _acked_then_tail(tmp_path)
    full = seg.read_bytes()
    for pos in range(lo, hi):
        d = tmp_path / f"x{pos}"
        shutil.copytree(seg.parent.parent, d)
        damaged = bytearray(full)
        damaged[pos] ^= 0x5A
        (d / "wal" / seg.name).write_bytes(bytes(damaged))
        with WalStorage(d) as w:
            log = log_of(w)
            assert log[:len(acked)] == acked, pos
            assert log[len(acked):] == tail[:len(log) - len(acked)], pos
        shutil.rmtree(d)


def test_zero_filled_tail_is_cut(tmp_path: Path) -> None:
    seg, _, _, acked, _, tail = _acked_then_tail(tmp_path)
    with open(seg, "ab") as fh:
        fh.write(b"\0" * 4096)
    with WalStorage(seg.parent.parent) as w:
        assert log_of(w) == acked + tail


def test_corruption_in_sealed_segment_raises(tmp_path: Path) -> None:
    with WalStorage(tmp_path) as w:
        w.save(HardState(1, 1, 0), ents(1, 5, 1))
        first = w.segment_paths()[0]
    with WalStorage(tmp_path) as w:  # reopening seals the first segment
        w.save(None, ents(6, 7, 1))
    data = bytearray(first.read_bytes())
    data[len(data) - 3] ^= 0xFF
    first.write_bytes(bytes(data))
    with pytest.raises(WalCorrupted):
        WalStorage(tmp_path)


def test_segments_roll_and_compaction_drops_old_ones(tmp_path: Path) -> None:
    cs = ConfState(voters=frozenset({1, 2, 3}))
    with WalStorage(tmp_path, segment_bytes=2000) as w:
        w.set_conf_state(cs)
        for lo in range(1, 400, 20):
            w.save(HardState(1, 1, lo + 19), ents(lo, lo + 19, 1, size=40))
        assert len(w.segment_paths()) > 5
        with pytest.raises(Exception, match="beyond snapshot"):
            w.compact(300)
        snap = w.create_snapshot(350, cs, b"state@350")
        assert snap.meta.term == 1
        n_before = len(w.segment_paths())
        w.compact(300)
        assert len(w.segment_paths()) < n_before
        assert w.first_index() == 301 and w.term(300) == 1
        with pytest.raises(StorageCompacted):
            w.entries(300, 302)
        with pytest.raises(StorageCompacted):
            w.term(299)
        expected = log_of(w)
    with WalStorage(tmp_path, segment_bytes=2000) as w:
        assert w.first_index() == 301 and w.last_index() == 400
        assert log_of(w) == expected
        assert w.term(300) == 1
        assert w.snapshot().data == b"state@350"
        hs, conf = w.initial_state()
        assert conf == cs and hs.commit == 400


def test_compaction_survives_many_reopens_and_appends(tmp_path: Path) -> None:
    for round_ in range(6):
        with WalStorage(tmp_path, segment_bytes=1500) as w:
            lo = w.last_index() + 1
            w.save(HardState(round_ + 1, 1, lo + 29), ents(lo, lo + 29, round_ + 1, size=30))
            w.create_snapshot(lo + 20, ConfState(voters=frozenset({1})), b"s")
            w.compact(lo + 10)
            assert w.first_index() == lo + 11
    with WalStorage(tmp_path, segment_bytes=1500) as w:
        assert w.last_index() == 180 and w.first_index() == 162
        assert [e.index for e in log_of(w)] == list(range(162, 181))
        assert w.term(161) == 6


def test_snapshot_from_leader_resets_log(tmp_path: Path) -> None:
    cs = ConfState(voters=frozenset({1, 2, 3}))
    snap = Snapshot(SnapshotMeta(100, 4, cs), b"image")
    with WalStorage(tmp_path) as w:
        w.save(HardState(1, 1, 5), ents(1, 10, 1))
        w.save(HardState(4, 0, 100), ents(101, 102, 4), snapshot=snap)
        assert w.first_index() == 101 and w.last_index() == 102 and w.term(100) == 4
    with WalStorage(tmp_path) as w:
        assert w.first_index() == 101 and w.last_index() == 102 and w.term(100) == 4
        assert w.snapshot() == snap
        assert w.initial_state()[1] == cs


def test_crash_between_snapshot_file_and_wal_record(tmp_path: Path) -> None:
    snap = Snapshot(SnapshotMeta(50, 3, ConfState(voters=frozenset({1}))), b"img")
    with WalStorage(tmp_path) as w:
        w.save(HardState(1, 1, 5), ents(1, 10, 1))
        w._write_snapshot_file(snap)  # the crash: the WAL never saw the reset record
    (tmp_path / "snap" / "dead.tmp").write_bytes(b"half")
    with WalStorage(tmp_path) as w:
        assert w.first_index() == 51 and w.last_index() == 50 and w.term(50) == 3
        assert w.hard_state().commit == 50
        assert not list((tmp_path / "snap").glob("*.tmp"))


def test_snapshot_file_checksum(tmp_path: Path) -> None:
    snap = Snapshot(SnapshotMeta(7, 2, ConfState(voters=frozenset({1, 2}), learners=frozenset({9}))), b"x" * 100)
    raw = encode_snapshot(snap)
    assert decode_snapshot(raw) == snap
    for pos in (0, 10, len(raw) - 1):
        bad = bytearray(raw)
        bad[pos] ^= 1
        with pytest.raises(WalCorrupted):
            decode_snapshot(bytes(bad))
    with pytest.raises(WalCorrupted):
        decode_snapshot(raw[:-1])


# ---------------------------------------------------------------------- model-based

_ops = st.lists(st.one_of(
    st.tuples(st.just("append"), st.integers(0, 6), st.integers(1, 8), st.integers(0, 90)),
    st.tuples(st.just("snapshot_compact"), st.integers(0, 40)),
    st.tuples(st.just("reopen")),
    st.tuples(st.just("leader_snapshot"), st.integers(1, 30)),
), min_size=1, max_size=25)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=_ops)
def test_matches_a_simple_model_across_reopens(tmp_path_factory: pytest.TempPathFactory,
                                               ops: list[tuple]) -> None:
    """Appends with conflicts, snapshots + compaction, leader snapshots and reopens, against
    a plain list model; tiny segments so rolls and segment deletion happen constantly."""
    d = tmp_path_factory.mktemp("model")
    w = WalStorage(d, segment_bytes=300)
    base, base_term, log = 0, 0, []  # model: entries after (base, base_term)
    term, snap_idx = 1, 0  # entries up to a snapshot are committed: never overwritten
    try:
        for op in ops:
            if op[0] == "append":
                _, back, n, size = op
                last = base + len(log)
                start = max(base + 1, snap_idx + 1, last + 1 - back)
                term += 1
                new = [Entry(term, i, EntryType.NORMAL, bytes([i % 251]) * size)
                       for i in range(start, start + n)]
                w.save(HardState(term, 1, 0), new)
                del log[start - base - 1:]
                log.extend(new)
            elif op[0] == "snapshot_compact":
                last = base + len(log)
                if last <= base:
                    continue
                at = base + 1 + op[1] % (last - base)
                w.create_snapshot(at, ConfState(voters=frozenset({1})), b"s%d" % at)
                snap_idx = max(snap_idx, at)
                cut = max(base + 1, at - 3)
                if cut <= at:
                    cut_term = log[cut - base - 1].term
                    w.compact(cut)
                    del log[:cut - base]
                    base, base_term = cut, cut_term
            elif op[0] == "leader_snapshot":
                term += 1
                idx = base + len(log) + op[1]
                snap = Snapshot(SnapshotMeta(idx, term, ConfState(voters=frozenset({1, 2}))), b"L")
                w.save(HardState(term, 0, idx), [], snapshot=snap)
                base, base_term, log, snap_idx = idx, term, [], idx
            else:
                w.close()
                w = WalStorage(d, segment_bytes=300)
            assert w.first_index() == base + 1 and w.last_index() == base + len(log)
            assert w.term(base) == base_term
            if log:
                assert w.entries(base + 1, base + len(log) + 1) == log
        w.close()
        w = WalStorage(d, segment_bytes=300)
        assert w.first_index() == base + 1 and log_of(w) == log and w.term(base) == base_term
    finally:
        w.close()


# ---------------------------------------------------------------------- refused writes, bad snapshots

def test_append_with_an_index_gap_is_refused_and_nothing_written(tmp_path: Path) -> None:
    """Entries that would leave a gap used to be written, and the reopened WAL was unreadable
    ("compacted log has no base term"). Now ``save`` raises before writing anything."""
    with WalStorage(tmp_path) as w:
        w.save(HardState(1, 1, 2), ents(1, 3, 1))
        size = sum(p.stat().st_size for p in w.segment_paths())
        for bad in ([Entry(1, 4), Entry(1, 6)],          # hole inside the batch
                    [Entry(1, 6), Entry(1, 7)],          # hole after the log
                    [Entry(1, 4), Entry(1, 4)],          # repeated index
                    [Entry(2, 4), Entry(1, 5)]):         # term going backwards
            with pytest.raises(RaftError):
                w.save(HardState(2, 1, 3), bad)
        assert sum(p.stat().st_size for p in w.segment_paths()) == size
        assert w.last_index() == 3 and w.hard_state() == HardState(1, 1, 2)
        w.save(None, ents(4, 5, 1))  # still writable
    with WalStorage(tmp_path) as w:
        assert log_of(w) == ents(1, 5, 1)


def test_corrupt_newest_snapshot_falls_back_to_an_older_one(tmp_path: Path,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    cs = ConfState(voters=frozenset({1}))
    with WalStorage(tmp_path) as w:
        w.save(HardState(1, 1, 30), ents(1, 30, 1))
        w.create_snapshot(10, cs, b"old")
        w.create_snapshot(20, cs, b"new")
        w.compact(5)
    newest = sorted((tmp_path / "snap").glob("*.snap"))[-1]
    newest.write_bytes(newest.read_bytes()[:-3])  # torn
    with caplog.at_level("ERROR", logger="raft.wal"), WalStorage(tmp_path) as w:
        assert w.snapshot().meta.index == 10 and w.snapshot().data == b"old"
        assert log_of(w) == ents(6, 30, 1)  # the log still covers everything after it
    assert any("snapshot" in r.getMessage() and newest.name in r.getMessage()
               for r in caplog.records)


def test_snapshot_the_application_rejects_is_skipped(tmp_path: Path) -> None:
    cs = ConfState(voters=frozenset({1}))
    with WalStorage(tmp_path) as w:
        w.save(HardState(1, 1, 30), ents(1, 30, 1))
        w.create_snapshot(10, cs, b"GOOD old")
        w.create_snapshot(20, cs, b"garbage")
    with WalStorage(tmp_path, snapshot_ok=lambda data: data.startswith(b"GOOD")) as w:
        assert w.snapshot().data == b"GOOD old"


def test_unusable_snapshot_without_the_log_behind_it_is_a_clear_startup_error(
        tmp_path: Path) -> None:
    """If the only usable snapshot is older than the log's start, the entries in between are
    gone: starting would silently skip them, so opening fails with a message saying what to
    do (resync the member)."""
    cs = ConfState(voters=frozenset({1}))
    with WalStorage(tmp_path) as w:
        w.save(HardState(1, 1, 30), ents(1, 30, 1))
        w.create_snapshot(20, cs, b"new")
        w.compact(15)
    snap = next((tmp_path / "snap").glob("*.snap"))
    snap.write_bytes(b"\0" * 10)
    with pytest.raises(WalCorrupted, match="resync"):
        WalStorage(tmp_path)
