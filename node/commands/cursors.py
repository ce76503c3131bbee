"""The server cursor registry: open cursors by id, batches for ``getMore``, idle expiry.

A cursor wraps an iterator of result documents for one namespace (and the ``maxTimeMS`` budget
of the command that opened it, spent across batches). ``find``/``aggregate`` hand the
first batch back directly and register the rest here only if more remain; ``getMore`` takes the
next batch (by count and by the 16 MiB reply budget); ``killCursors`` closes them. A cursor that
nobody touched for ``idle_timeout_s`` is closed by :meth:`CursorRegistry.reap`, which the
registry runs itself on every call and which servers may also call from a timer.

Every open cursor holds its query's store snapshot (an LMDB read transaction, one of the
environment's reader slots), so open cursors are capped: ``max_open`` on the node and
``max_per_connection`` per client connection (``RequestContext.connection_id``; a gRPC client
multiplexes all its threads on one). A query whose results fit in the first batch needs no
cursor and is always answered; one that would leave a cursor open past a cap is refused with
ExceededMemoryLimit (146) and its snapshot closed at once. MongoDB has no cursor-count limit
and no code for it; 146 is its code for a server resource limit that a retry will not fix
(drivers do not retry it), and the message names the cap. Refusing the newcomer rather than
closing someone's least-recently-used cursor keeps one client's leak from killing another
client's live cursors; leaked cursors still go after ``idle_timeout_s``.

A cursor belongs to the users that were authenticated on the connection that opened it (with
``--auth``): ``getMore`` and ``killCursors`` from a connection authenticated as none of them
are refused with Unauthorized (13), as MongoDB refuses them. Cursor ids are random 63-bit
numbers, so an id seen in one place says nothing about the next.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import bson

from node.commands.deadline import UNLIMITED, TimeBudget
from node.engine.errors import CURSOR_NOT_FOUND, MongoError

log = logging.getLogger("helogale.cursors")

MAX_BATCH_BYTES = 16 * 1024 * 1024 - 16 * 1024
DEFAULT_FIRST_BATCH = 101
DEFAULT_IDLE_TIMEOUT_S = 600.0
DEFAULT_MAX_OPEN = 4096
"""Open cursors per node (each pins a store reader; the store gets this many reader slots
plus a reserve for short reads, snapshots and replication, see ``node.server.app``)."""
DEFAULT_MAX_PER_CONNECTION = 1024
EXCEEDED_MEMORY_LIMIT = 146
_REFUSAL_LOG_EVERY_S = 10.0


@dataclass
class _Cursor:
    cursor_id: int
    ns: str
    source: Iterator[dict[str, Any]]
    last_used: float
    connection_id: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    peeked: list[dict[str, Any]] = field(default_factory=list)
    budget: TimeBudget = UNLIMITED
    """The ``maxTimeMS`` of the command that opened it, spent across its batches."""
    tail: Any = None
    """A tailable cursor's position (``node.commands.tailing.Tail``); it holds no snapshot
    and its ``source`` is empty: each batch is read afresh."""
    owners: frozenset[tuple[str, str]] | None = None
    """The ``(user, db)`` authenticated where it was opened; None: anyone may use it (no
    ``--auth``, an in-process caller)."""


def cursor_owners(auth: Any) -> frozenset[tuple[str, str]] | None:
    """The owners a cursor opened under ``auth`` (a ``RequestContext.auth``) gets."""
    return None if auth is None else frozenset(auth.users)


def _check_owner(cursor: _Cursor, auth: Any) -> None:
    """Unauthorized (13) unless ``auth`` holds one of the cursor's owners (or either side
    carries no authentication: no ``--auth``, or a cursor nobody owned)."""
    if auth is None or not cursor.owners or cursor.owners & set(auth.users):
        return
    raise MongoError(13, f"cursor id {cursor.cursor_id} was not created by the authenticated "
                     "user", code_name="Unauthorized")


def _close(source: Iterator[Any]) -> None:
    close = getattr(source, "close", None)
    if callable(close):
        close()


def take_batch(
    source: Iterator[dict[str, Any]], limit: int | None, pending: list[dict[str, Any]]
) -> tuple[list[dict[str, Any]], bool]:
    """Up to ``limit`` documents (None: as many as fit in a reply) and whether more remain.

    ``pending`` carries a document read ahead to learn whether the source is exhausted.
    """
    batch: list[dict[str, Any]] = []
    size = 0
    while limit is None or len(batch) < limit:
        if pending:
            doc = pending.pop()
        else:
            try:
                doc = next(source)
            except StopIteration:
                return batch, False
        doc_size = len(bson.encode(doc)) if batch else 0
        if batch and size + doc_size > MAX_BATCH_BYTES:
            pending.append(doc)
            return batch, True
        size += doc_size
        batch.append(doc)
    if pending:
        return batch, True
    try:
        pending.append(next(source))
    except StopIteration:
        return batch, False
    return batch, True


REAP_INTERVAL_S = 5.0
"""How often members and routers close cursors idle past their timeout."""


class CursorRegistry:
    """Open server cursors of one node, thread-safe."""

    def __init__(
        self,
        idle_timeout_s: float = DEFAULT_IDLE_TIMEOUT_S,
        clock: Callable[[], float] = time.monotonic,
        *,
        max_open: int = DEFAULT_MAX_OPEN,
        max_per_connection: int = DEFAULT_MAX_PER_CONNECTION,
    ) -> None:
        self.idle_timeout_s = idle_timeout_s
        self.max_open = max_open
        self.max_per_connection = max_per_connection
        self.refused = 0
        """Cursors refused at a cap since start."""
        self._clock = clock
        self._lock = threading.Lock()
        self._cursors: dict[int, _Cursor] = {}
        self._per_connection: dict[int, int] = {}
        self._last_refusal_log = -_REFUSAL_LOG_EVERY_S

    def __len__(self) -> int:
        with self._lock:
            return len(self._cursors)

    def first_batch(
        self, ns: str, source: Iterator[dict[str, Any]], batch_size: int | None,
        budget: TimeBudget = UNLIMITED, connection_id: int = 0, auth: Any = None,
    ) -> tuple[list[dict[str, Any]], int]:
        """Take the first batch; register the rest (returns cursor id, 0 when exhausted).
        ``budget`` bounds the running time of this batch and every later one. Raises
        ExceededMemoryLimit (146), closing ``source``, when a cursor would have to stay open
        past a cap (``connection_id``'s or the node's). ``auth`` (the request's
        ``RequestContext.auth``) names the cursor's owners."""
        self.reap()
        limit = DEFAULT_FIRST_BATCH if batch_size is None else batch_size
        pending: list[dict[str, Any]] = []
        try:
            with budget.running():
                batch, more = take_batch(source, limit, pending)
        except BaseException:
            _close(source)
            raise
        if not more:
            _close(source)
            return batch, 0
        cursor = _Cursor(0, ns, source, self._clock(), connection_id, peeked=pending,
                         budget=budget, owners=cursor_owners(auth))
        refusal = self._register(cursor)
        if refusal is not None:
            _close(source)
            raise refusal
        return batch, cursor.cursor_id

    def _register(self, cursor: _Cursor) -> MongoError | None:
        """Keep ``cursor`` open under a new random id, or (past a cap) count and log the
        refusal and return it."""
        with self._lock:
            refusal = self._refusal(cursor.connection_id)
            if refusal is None:
                while not cursor.cursor_id or cursor.cursor_id in self._cursors:
                    cursor.cursor_id = secrets.randbits(63)
                self._cursors[cursor.cursor_id] = cursor
                self._per_connection[cursor.connection_id] = (
                    self._per_connection.get(cursor.connection_id, 0) + 1)
                return None
            self.refused += 1
        self._log_refusal(refusal)
        return refusal

    def _refusal(self, connection_id: int) -> MongoError | None:
        """The error refusing one more cursor for ``connection_id`` (lock held), or None."""
        if self._per_connection.get(connection_id, 0) >= self.max_per_connection:
            return MongoError(
                EXCEEDED_MEMORY_LIMIT,
                f"Cannot open more than {self.max_per_connection} cursors on one connection: "
                "close cursors (killCursors) or read them to the end",
                code_name="ExceededMemoryLimit")
        if len(self._cursors) >= self.max_open:
            return MongoError(
                EXCEEDED_MEMORY_LIMIT,
                f"Cannot open more than {self.max_open} cursors on this server: too many open "
                "cursors; close cursors (killCursors) or read them to the end",
                code_name="ExceededMemoryLimit")
        return None

    def _log_refusal(self, error: MongoError) -> None:
        now = self._clock()
        if now - self._last_refusal_log >= _REFUSAL_LOG_EVERY_S:
            self._last_refusal_log = now
            log.warning("cursor refused", extra={"fields": {
                "errmsg": error.errmsg, "open": len(self), "refused": self.refused}})

    def open_tail(self, ns: str, tail: Any, connection_id: int = 0, auth: Any = None) -> int:
        """Register a tailable cursor (``tail`` keeps its place); returns its id. Raises
        ExceededMemoryLimit (146) past a cap, as :meth:`first_batch` does."""
        self.reap()
        cursor = _Cursor(0, ns, iter(()), self._clock(), connection_id, tail=tail,
                         owners=cursor_owners(auth))
        refusal = self._register(cursor)
        if refusal is not None:
            raise refusal
        return cursor.cursor_id

    def lookup(self, cursor_id: int, ns: str, auth: Any = None) -> _Cursor:
        """The open cursor ``cursor_id`` of ``ns`` (touched: not idle); CursorNotFound (43),
        or Unauthorized (13) for another namespace's or another user's (``auth``: the
        request's ``RequestContext.auth``)."""
        self.reap()
        with self._lock:
            cursor = self._cursors.get(cursor_id)
        if cursor is None:
            raise MongoError(CURSOR_NOT_FOUND, f"cursor id {cursor_id} not found")
        if cursor.ns != ns:
            raise MongoError(
                13, f"Requested getMore on namespace '{ns}', but cursor belongs to a "
                f"different namespace {cursor.ns}", code_name="Unauthorized"
            )
        _check_owner(cursor, auth)
        cursor.last_used = self._clock()
        return cursor

    def close(self, cursor_id: int) -> bool:
        """Close one cursor (a tailable cursor whose collection went); False if unknown."""
        return self._drop(cursor_id)

    def get_more(
        self, cursor_id: int, ns: str, batch_size: int | None, auth: Any = None
    ) -> tuple[list[dict[str, Any]], int]:
        """The next batch of an open cursor and its id (0 once exhausted and closed)."""
        cursor = self.lookup(cursor_id, ns, auth)
        with cursor.lock:
            cursor.last_used = self._clock()
            try:
                with cursor.budget.running():
                    batch, more = take_batch(cursor.source, batch_size, cursor.peeked)
            except MongoError:
                self._drop(cursor_id)  # a cursor whose read failed (or timed out) is dead
                raise
        if not more:
            self._drop(cursor_id)
            return batch, 0
        return batch, cursor_id

    def kill(self, cursor_ids: list[int], auth: Any = None) -> tuple[list[int], list[int]]:
        """Close cursors; returns (killed, not found). Unauthorized (13), closing none, when
        one of them belongs to users ``auth`` is not authenticated as."""
        with self._lock:
            mine = [self._cursors.get(cid) for cid in cursor_ids]
        for cursor in mine:
            if cursor is not None:
                _check_owner(cursor, auth)
        killed: list[int] = []
        not_found: list[int] = []
        for cid in cursor_ids:
            (killed if self._drop(cid) else not_found).append(cid)
        return killed, not_found

    def reap(self) -> int:
        """Close cursors idle longer than the timeout; returns how many."""
        now = self._clock()
        with self._lock:
            stale = [
                cid for cid, c in self._cursors.items()
                if now - c.last_used > self.idle_timeout_s and not c.lock.locked()
            ]
        return sum(1 for cid in stale if self._drop(cid))

    def close_all(self) -> None:
        with self._lock:
            ids = list(self._cursors)
        for cid in ids:
            self._drop(cid)

    def _drop(self, cursor_id: int) -> bool:
        with self._lock:
            cursor = self._cursors.pop(cursor_id, None)
            if cursor is not None:
                left = self._per_connection.get(cursor.connection_id, 1) - 1
                if left > 0:
                    self._per_connection[cursor.connection_id] = left
                else:
                    self._per_connection.pop(cursor.connection_id, None)
        if cursor is None:
            return False
        _close(cursor.source)
        if cursor.tail is not None:
            _close(cursor.tail)
        return True
