"""In-memory :class:`~node.engine.storage.KVStore`: multi-version ordered tables.

Used by tests, the demo and benchmarks. Semantics match the durable store:

* one writer at a time (``write()`` blocks while another write transaction is open);
* the writer sees its own uncommitted changes; leaving its ``with`` block normally commits
  atomically, leaving it by an exception aborts and restores everything;
* readers (``read()``) see the snapshot committed when they started, for as long as they stay
  open, whatever the writer does meanwhile; readers never block the writer.

How: every table keeps a sorted list of keys and, per key, a short list of ``(version, value)``
entries (``None`` = deleted). Committed state is the newest entry with a version at or below
the committed version; the open writer writes entries at ``committed + 1`` which no reader can
see, and commit is a single assignment of the committed version. Abort replays an undo log.
Entries older than the oldest open reader's snapshot are pruned when a key is rewritten.
Iterators re-find their place by key whenever the key list shifted under them, so a scan stays
correct while the writer inserts or prunes concurrently.
"""

from __future__ import annotations

import threading
from bisect import bisect_left, bisect_right
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from node.engine.storage import pinned_read

_Versions = list[tuple[int, bytes | None]]


class _Table:
    """One table: sorted keys plus the version chain of every key."""

    __slots__ = ("chains", "keys")

    def __init__(self) -> None:
        self.keys: list[bytes] = []
        self.chains: dict[bytes, _Versions] = {}

    def visible(self, key: bytes, version: int) -> bytes | None:
        chain = self.chains.get(key)
        if not chain:
            return None
        for ver, value in reversed(chain):
            if ver <= version:
                return value
        return None

    def scan(
        self, version: int, start: bytes, end: bytes | None, reverse: bool
    ) -> Iterator[tuple[bytes, bytes]]:
        keys = self.keys
        if not reverse:
            i = bisect_left(keys, start)
            while i < len(keys):
                k = keys[i]
                if end is not None and k >= end:
                    return
                value = self.visible(k, version)
                if value is not None:
                    yield k, value
                if i < len(keys) and keys[i] == k:
                    i += 1
                else:
                    i = bisect_right(keys, k)
        else:
            i = (bisect_left(keys, end) if end is not None else len(keys)) - 1
            while i >= 0:
                if i >= len(keys):
                    i = len(keys) - 1
                    continue
                k = keys[i]
                if k < start:
                    return
                value = self.visible(k, version)
                if value is not None:
                    yield k, value
                if i < len(keys) and keys[i] == k:
                    i -= 1
                else:
                    i = bisect_left(keys, k) - 1


class _ReadTxn:
    """A snapshot of every table at one committed version."""

    def __init__(self, store: MemoryStore, version: int) -> None:
        self._store = store
        self._version = version

    def _table(self, name: str) -> _Table | None:
        return self._store._resolve(name, self._version)

    def get(self, table: str, key: bytes) -> bytes | None:
        t = self._table(table)
        return None if t is None else t.visible(bytes(key), self._version)

    def scan(
        self,
        table: str,
        start: bytes = b"",
        end: bytes | None = None,
        *,
        reverse: bool = False,
    ) -> Iterator[tuple[bytes, bytes]]:
        t = self._table(table)
        if t is None:
            return iter(())
        return t.scan(self._version, bytes(start), None if end is None else bytes(end), reverse)

    def tables(self) -> list[str]:
        names = list(self._store._tables)
        return sorted(n for n in names if self._store._resolve(n, self._version) is not None)


class _WriteTxn(_ReadTxn):
    """The single writer: writes entries at a version no reader can see until commit."""

    def __init__(self, store: MemoryStore, version: int) -> None:
        super().__init__(store, version)
        self._undo: list[Callable[[], None]] = []
        self._touched: dict[tuple[int, bytes], _Table] = {}

    def _writable(self, name: str) -> _Table:
        t = self._table(name)
        if t is not None:
            return t
        t = _Table()
        chain = self._store._tables.setdefault(name, [])
        chain.append((self._version, t))
        self._undo.append(lambda: self._store._pop_table_entry(name))
        return t

    def _write(self, t: _Table, key: bytes, value: bytes | None) -> None:
        chain = t.chains.get(key)
        if chain is None:
            chain = t.chains[key] = []
            i = bisect_left(t.keys, key)
            t.keys.insert(i, key)
        if chain and chain[-1][0] == self._version:
            previous = chain[-1]
            chain[-1] = (self._version, value)

            def undo_overwrite() -> None:
                chain[-1] = previous

            self._undo.append(undo_overwrite)
            return
        self._store._prune(chain)
        chain.append((self._version, value))

        def undo_append() -> None:
            chain.pop()
            if not chain:
                self._store._forget_key(t, key)

        self._undo.append(undo_append)
        self._touched[(id(t), key)] = t

    def put(self, table: str, key: bytes, value: bytes) -> None:
        self._write(self._writable(table), bytes(key), bytes(value))

    def delete(self, table: str, key: bytes) -> bool:
        key = bytes(key)
        t = self._table(table)
        if t is None or t.visible(key, self._version) is None:
            return False
        self._write(t, key, None)
        return True

    def drop_table(self, table: str) -> None:
        if self._table(table) is None:
            return
        self._store._tables[table].append((self._version, None))
        self._undo.append(lambda: self._store._pop_table_entry(table))

    def _abort(self) -> None:
        for undo in reversed(self._undo):
            undo()
        self._undo.clear()


class MemoryStore:
    """An ordered, transactional, snapshot-isolated key-value store held in memory."""

    def __init__(self) -> None:
        self._tables: dict[str, list[tuple[int, _Table | None]]] = {}
        self._committed = 0
        self._write_lock = threading.Lock()
        self._readers_lock = threading.Lock()
        self._readers: Counter[int] = Counter()
        self._closed = False

    # -- internals shared with the transactions ------------------------------------------------
    def _resolve(self, name: str, version: int) -> _Table | None:
        chain = self._tables.get(name)
        if not chain:
            return None
        for ver, table in reversed(chain):
            if ver <= version:
                return table
        return None

    def _pop_table_entry(self, name: str) -> None:
        chain = self._tables[name]
        chain.pop()
        if not chain:
            del self._tables[name]

    @staticmethod
    def _forget_key(t: _Table, key: bytes) -> None:
        if t.chains.get(key) == []:
            del t.chains[key]
            i = bisect_left(t.keys, key)
            if i < len(t.keys) and t.keys[i] == key:
                del t.keys[i]

    def _oldest_snapshot(self) -> int:
        with self._readers_lock:
            return min(self._readers) if self._readers else self._committed

    def _prune(self, chain: _Versions) -> None:
        """Drop entries no open or future reader can see (keep the newest at/below the oldest)."""
        if len(chain) < 2:
            return
        oldest = self._oldest_snapshot()
        keep_from = 0
        for i, (ver, _) in enumerate(chain):
            if ver <= oldest:
                keep_from = i
        if keep_from:
            del chain[:keep_from]

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("store is closed")

    # -- KVStore --------------------------------------------------------------------------------
    @contextmanager
    def read(self) -> Iterator[_ReadTxn]:
        """A snapshot of the committed state; stays stable while it is open (the pinned one,
        inside :func:`node.engine.storage.pinned`)."""
        self._check_open()
        borrowed = pinned_read(self)
        if borrowed is not None:
            yield borrowed
            return
        with self._readers_lock:
            version = self._committed
            self._readers[version] += 1
        try:
            yield _ReadTxn(self, version)
        finally:
            with self._readers_lock:
                self._readers[version] -= 1
                if not self._readers[version]:
                    del self._readers[version]

    @contextmanager
    def write(self) -> Iterator[_WriteTxn]:
        """The single write transaction: commits on normal exit, aborts on an exception."""
        self._check_open()
        with self._write_lock:
            txn = _WriteTxn(self, self._committed + 1)
            try:
                yield txn
            except BaseException:
                txn._abort()
                raise
            with self._readers_lock:
                self._committed = txn._version
            self._collect(txn)

    def _collect(self, txn: _WriteTxn) -> None:
        """After commit: forget keys whose only visible state is a deletion nobody can see."""
        if self._readers:
            return
        for (_, key), t in txn._touched.items():
            chain = t.chains.get(key)
            if chain is not None:
                self._prune(chain)
                if len(chain) == 1 and chain[0][1] is None:
                    chain.clear()
                    self._forget_key(t, key)
        for name in list(self._tables):
            chain = self._tables[name]
            if len(chain) > 1:
                del chain[:-1]
            if chain and chain[-1][1] is None:
                del self._tables[name]

    def close(self) -> None:
        self._closed = True
