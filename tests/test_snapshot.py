"""snapshot: consistent whole-store dumps, loads across store kinds, corruption refused."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

from node.engine.lmdb_store import LMDBStore
from node.engine.memory_store import MemoryStore
from node.engine.snapshot import SnapshotError, dump_snapshot, load_snapshot


def _contents(store: Any) -> dict[str, list[tuple[bytes, bytes]]]:
    with store.read() as r:
        return {t: list(r.scan(t)) for t in r.tables()}


def _fill(store: Any, n: int = 3000) -> None:
    with store.write() as w:
        for i in range(n):
            w.put("docs:db.c", i.to_bytes(4, "big"), b"doc%d" % i * (i % 5 + 1))
            if i % 3 == 0:
                w.put("idx:db.c:x_1", b"k%06d" % i, b"")
        w.put("meta", b"applied", b"42")
        w.put("catalog", b"", b"empty key")


def _rechunk(chunks: Iterable[bytes], size: int) -> Iterator[bytes]:
    data = b"".join(chunks)
    for i in range(0, len(data), size):
        yield data[i : i + size]


@pytest.fixture
def lmdb_store(tmp_path: Path) -> Iterator[LMDBStore]:
    s = LMDBStore(tmp_path / "src", sync=False)
    yield s
    s.close()


def test_roundtrip_between_store_kinds(lmdb_store: LMDBStore, tmp_path: Path) -> None:
    _fill(lmdb_store)
    chunks = list(dump_snapshot(lmdb_store, chunk_size=4096))
    assert len(chunks) > 10 and max(len(c) for c in chunks) < 8192
    mem = MemoryStore()
    info = load_snapshot(mem, chunks)
    assert (info.tables, info.rows) == (4, 3000 + 1000 + 2)
    assert _contents(mem) == _contents(lmdb_store)
    with LMDBStore(tmp_path / "dst", sync=False) as dst:
        load_snapshot(dst, dump_snapshot(mem))
        assert _contents(dst) == _contents(lmdb_store)


@pytest.mark.parametrize("size", [1, 7, 1000])
def test_chunks_may_be_cut_anywhere(lmdb_store: LMDBStore, size: int) -> None:
    _fill(lmdb_store, 200)
    mem = MemoryStore()
    load_snapshot(mem, _rechunk(dump_snapshot(lmdb_store), size))
    assert _contents(mem) == _contents(lmdb_store)


def test_dump_is_consistent_while_the_writer_commits(lmdb_store: LMDBStore) -> None:
    _fill(lmdb_store)
    before = _contents(lmdb_store)
    stream = dump_snapshot(lmdb_store, chunk_size=1024)
    first = next(stream)  # the read transaction is open from here on
    with lmdb_store.write() as w:  # not blocked by the open snapshot
        w.drop_table("idx:db.c:x_1")
        w.put("docs:db.c", b"\x00", b"new")
        w.put("meta", b"applied", b"43")
    mem = MemoryStore()
    load_snapshot(mem, [first, *stream])
    assert _contents(mem) == before
    assert _contents(lmdb_store) != before


def test_corrupt_or_truncated_stream_changes_nothing(lmdb_store: LMDBStore) -> None:
    _fill(lmdb_store, 100)
    data = b"".join(dump_snapshot(lmdb_store))
    target = MemoryStore()
    flipped = bytearray(data)
    flipped[len(data) // 2] ^= 0x01
    with pytest.raises(SnapshotError):
        load_snapshot(target, [bytes(flipped)])
    with pytest.raises(SnapshotError, match="truncated"):
        load_snapshot(target, [data[:-3]])
    with pytest.raises(SnapshotError, match="magic"):
        load_snapshot(target, [b"garbage!" + data[8:]])
    with pytest.raises(SnapshotError):
        load_snapshot(target, [data + b"x"])
    assert _contents(target) == {}


def test_target_must_be_empty_unless_replacing(lmdb_store: LMDBStore) -> None:
    _fill(lmdb_store, 50)
    target = MemoryStore()
    with target.write() as w:
        w.put("stale", b"k", b"v")
        w.put("meta", b"applied", b"7")
    with pytest.raises(SnapshotError, match="not empty"):
        load_snapshot(target, dump_snapshot(lmdb_store))
    assert _contents(target) == {"meta": [(b"applied", b"7")], "stale": [(b"k", b"v")]}
    load_snapshot(target, dump_snapshot(lmdb_store), replace=True)
    assert _contents(target) == _contents(lmdb_store)
