"""The storage interface the engine runs on: an ordered, transactional key-value store.

A store holds named *tables*; each table is an ordered map from ``bytes`` keys to ``bytes``
values, ordered by unsigned byte comparison. All access happens inside a transaction:

* ``store.read()`` gives a consistent snapshot (:class:`ReadTxn`); readers never block the writer.
* ``store.write()`` gives the single writer (:class:`WriteTxn`); leaving the ``with`` block
  normally commits atomically and durably, leaving it by an exception aborts and changes nothing.

The engine (collections, indexes, catalog) is written only against these protocols, so the
in-memory store (tests, demos) and the durable LMDB store are interchangeable.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import Protocol


class ReadTxn(Protocol):
    """A consistent read-only view of every table."""

    def get(self, table: str, key: bytes) -> bytes | None:
        """The value stored under ``key``, or ``None``."""
        ...

    def scan(
        self,
        table: str,
        start: bytes = b"",
        end: bytes | None = None,
        *,
        reverse: bool = False,
    ) -> Iterator[tuple[bytes, bytes]]:
        """Pairs with ``start <= key < end`` (``end=None``: to the end), in key order or reversed."""
        ...

    def tables(self) -> list[str]:
        """Names of the tables that exist, sorted."""
        ...


class WriteTxn(ReadTxn, Protocol):
    """The single writer; sees its own uncommitted changes."""

    def put(self, table: str, key: bytes, value: bytes) -> None:
        """Store ``value`` under ``key``, creating the table if needed."""
        ...

    def delete(self, table: str, key: bytes) -> bool:
        """Remove ``key``; ``True`` if it was there."""
        ...

    def drop_table(self, table: str) -> None:
        """Remove a table and everything in it (no error if absent)."""
        ...


class KVStore(Protocol):
    """An ordered transactional key-value store."""

    def read(self) -> AbstractContextManager[ReadTxn]: ...

    def write(self) -> AbstractContextManager[WriteTxn]: ...

    def close(self) -> None: ...


def put_rows(txn: WriteTxn, table: str, rows: list[tuple[bytes, bytes]]) -> None:
    """:meth:`WriteTxn.put` of every ``(key, value)`` of ``rows``, in one call when the
    transaction has a ``put_many`` (the LMDB store's, fastest with rows in key order)."""
    put_many = getattr(txn, "put_many", None)
    if put_many is not None:
        put_many(table, rows)
        return
    put = txn.put
    for key, value in rows:
        put(table, key, value)
