"""Which failures are the member's own (its disk, its store, its memory) rather than the
operation's: the state machine must never turn one into a reply.

Applying a committed entry is deterministic, so an error raised by an applier (a MongoError,
or a bug that every member hits alike) is recorded with the entry's index on every member the
same way. An *environmental* failure (LMDB's map or reader table full, an I/O error, memory
exhausted, the store closed under the applier) happens on one member only: recording the index
as applied with an error reply there would make that member silently diverge from the others.
Such a failure propagates instead: the Raft driver's fatal path stops the member, which
exits, and a restarted member applies the entry again (from its last committed transaction).
"""

from __future__ import annotations

import lmdb

from node.engine.lmdb_store import StoreClosed

ENVIRONMENTAL: tuple[type[BaseException], ...] = (lmdb.Error, OSError, MemoryError, StoreClosed)
"""Failures of the member rather than of the operation."""

DETERMINISTIC_STORE_ERRORS: tuple[type[BaseException], ...] = (lmdb.BadValsizeError,)
"""Store errors decided by the data alone (a key or value size LMDB refuses): every member
hits them on the same entry, so they are recorded like any other applier error."""


def is_environmental(exc: BaseException) -> bool:
    """Whether ``exc`` (or an exception it was raised from or while handling) is one of the
    member's own failures (see the module docstring)."""
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, ENVIRONMENTAL) and not isinstance(cur, DETERMINISTIC_STORE_ERRORS):
            return True
        cur = cur.__cause__ or cur.__context__
    return False
