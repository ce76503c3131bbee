"""The storage interface the engine runs on: an ordered, transactional key-value store.

A store holds named *tables*; each table is an ordered map from ``bytes`` keys to ``bytes``
values, ordered by unsigned byte comparison. All access happens inside a transaction:

* ``store.read()`` gives a consistent snapshot (:class:`ReadTxn`); readers never block the writer.
* ``store.write()`` gives the single writer (:class:`WriteTxn`); leaving the ``with`` block
  normally commits atomically and durably, leaving it by an exception aborts and changes nothing.

The engine (collections, indexes, catalog) is written only against these protocols, so the
in-memory store (tests, demos) and the durable LMDB store are interchangeable.

Pinned reads (``readConcern: snapshot``): inside :func:`pinned`, every ``store.read()`` of that
store in the current context gives the one pinned snapshot (borrowed: leaving the ``with``
does not end it), so a whole command and its cursor's later batches (``$lookup``, catalog
lookups included) read one point in time.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from contextvars import ContextVar
from typing import Any, Protocol


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


_PINNED: ContextVar[tuple[Any, Any] | None] = ContextVar("helogale_pinned_read", default=None)


def pinned_read(store: Any) -> Any:
    """The read transaction pinned for ``store`` in this context (see :func:`pinned`), or
    None: a store's ``read()`` yields it instead of opening a new snapshot."""
    pin = _PINNED.get()
    return pin[1] if pin is not None and pin[0] is store else None


@contextmanager
def pinned(store: Any, txn: Any) -> Iterator[None]:
    """Make ``txn`` (an open read transaction of ``store``) the snapshot every
    ``store.read()`` in this context returns, for the body; the caller ends ``txn``."""
    token = _PINNED.set((store, txn))
    try:
        yield
    finally:
        _PINNED.reset(token)
