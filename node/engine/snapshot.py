"""Whole-store snapshots: stream a consistent copy of every table out as chunks, load it back.

Used for replica resync: the source streams :func:`dump_snapshot` (all tables read in one read
transaction, so the copy is consistent and the writer is never blocked), the target feeds the
chunks, cut anywhere, to :func:`load_snapshot`, which writes everything in one write transaction
and commits only after the trailer's counts and CRC-32 check out. Works on any
:class:`~node.engine.storage.KVStore` (in-memory or LMDB), so a snapshot of one loads into the
other. The applied log index lives in the store (table ``meta``), so it travels with the data.

Stream format: magic ``HLGSNAP1``, then records -- ``T`` + u32 length + table name (UTF-8),
``R`` + u32 length + key + u32 length + value (a row of the last ``T`` table), and finally ``E``
+ u64 tables + u64 rows + u32 CRC-32 of every byte before the CRC.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from node.engine.storage import KVStore

MAGIC = b"HLGSNAP1"
_U32 = struct.Struct(">I")
_END = struct.Struct(">QQ")
DEFAULT_CHUNK_SIZE = 1 << 20


class SnapshotError(ValueError):
    """A snapshot stream that is truncated, corrupt, or loaded into a non-empty store."""


@dataclass(frozen=True)
class SnapshotInfo:
    """What a snapshot held."""

    tables: int
    rows: int


def dump_snapshot(store: KVStore, chunk_size: int = DEFAULT_CHUNK_SIZE) -> Iterator[bytes]:
    """Chunks (about ``chunk_size`` bytes each) of a consistent snapshot of every table.

    The read transaction is opened when iteration starts and held until the last chunk.
    """
    crc = 0
    buf = bytearray(MAGIC)
    tables = rows = 0
    with store.read() as txn:
        for name in txn.tables():
            raw = name.encode("utf-8")
            buf += b"T" + _U32.pack(len(raw)) + raw
            tables += 1
            for key, value in txn.scan(name):
                buf += b"R" + _U32.pack(len(key)) + key + _U32.pack(len(value)) + value
                rows += 1
                if len(buf) >= chunk_size:
                    chunk = bytes(buf)
                    crc = zlib.crc32(chunk, crc)
                    yield chunk
                    buf.clear()
    buf += b"E" + _END.pack(tables, rows)
    crc = zlib.crc32(buf, crc)
    buf += _U32.pack(crc)
    yield bytes(buf)


class _Reader:
    """Pull exact byte counts out of an iterator of arbitrarily cut chunks, CRC-ing them."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        self._chunks = iter(chunks)
        self._buf = bytearray()
        self._pos = 0
        self.crc = 0

    def take(self, n: int, *, checksum: bool = True) -> bytes:
        while len(self._buf) - self._pos < n:
            try:
                chunk = next(self._chunks)
            except StopIteration:
                raise SnapshotError("snapshot stream is truncated") from None
            del self._buf[: self._pos]
            self._pos = 0
            self._buf += chunk
        out = bytes(self._buf[self._pos : self._pos + n])
        self._pos += n
        if checksum:
            self.crc = zlib.crc32(out, self.crc)
        return out

    def at_end(self) -> bool:
        if len(self._buf) > self._pos:
            return False
        for chunk in self._chunks:
            if chunk:
                self._buf = bytearray(chunk)
                self._pos = 0
                return False
        return True


def looks_intact(data: bytes | memoryview) -> bool:
    """Whether ``data`` is a whole snapshot stream whose checksum holds (magic, trailer, CRC),
    without parsing its records: quick enough to check a snapshot before installing it."""
    view = memoryview(data)
    tail = len(MAGIC) + 1 + _END.size + _U32.size
    if len(view) < tail or view[:len(MAGIC)] != MAGIC or view[-(1 + _END.size + _U32.size)] != ord("E"):
        return False
    (crc,) = _U32.unpack(view[-_U32.size:])
    return zlib.crc32(view[:-_U32.size]) == crc


def load_snapshot(store: KVStore, chunks: Iterable[bytes], *, replace: bool = False) -> SnapshotInfo:
    """Load a snapshot stream into ``store`` in one transaction; nothing changes unless all of it
    arrived intact. The store must be empty unless ``replace`` (then its tables are dropped in the
    same transaction, so readers see either the old or the new contents)."""
    reader = _Reader(chunks)
    if reader.take(len(MAGIC)) != MAGIC:
        raise SnapshotError("not a helogale snapshot (bad magic)")
    with store.write() as txn:
        existing = txn.tables()
        if existing and not replace:
            raise SnapshotError(f"snapshot target is not empty ({len(existing)} tables)")
        for name in existing:
            txn.drop_table(name)
        table: str | None = None
        tables = rows = 0
        while True:
            tag = reader.take(1)
            if tag == b"T":
                (n,) = _U32.unpack(reader.take(4))
                table = reader.take(n).decode("utf-8")
                tables += 1
            elif tag == b"R":
                if table is None:
                    raise SnapshotError("snapshot row before any table")
                (n,) = _U32.unpack(reader.take(4))
                key = reader.take(n)
                (n,) = _U32.unpack(reader.take(4))
                txn.put(table, key, reader.take(n))
                rows += 1
            elif tag == b"E":
                want_tables, want_rows = _END.unpack(reader.take(_END.size))
                expected_crc = reader.crc
                (crc,) = _U32.unpack(reader.take(4, checksum=False))
                if crc != expected_crc:
                    raise SnapshotError("snapshot checksum mismatch")
                if (want_tables, want_rows) != (tables, rows):
                    raise SnapshotError("snapshot counts do not match its contents")
                if not reader.at_end():
                    raise SnapshotError("unexpected bytes after the snapshot trailer")
                break
            else:
                raise SnapshotError(f"corrupt snapshot (record tag {tag!r})")
    return SnapshotInfo(tables=tables, rows=rows)
