"""Every log entry op and its applier (the state machine's table), gathered from the families."""

from __future__ import annotations

from node.commands import agg_writes, apply_ops, catalog, crud, indexes, rename, sessions
from node.server.statemachine import Applier, Grouper, StatementsApplier
from node.sharding import migration_ops, ownership

APPLIERS: dict[str, Applier] = {
    **crud.APPLIERS,
    **agg_writes.APPLIERS,
    **indexes.APPLIERS,
    **catalog.APPLIERS,
    **rename.APPLIERS,
    **apply_ops.APPLIERS,
    **ownership.APPLIERS,
    **migration_ops.APPLIERS,
    **sessions.APPLIERS,
}

GROUPERS: dict[str, Grouper] = dict(crud.GROUPERS)

STATEMENTS: dict[str, StatementsApplier] = dict(crud.STATEMENTS)
"""Retryable writes applied statement by statement (``lsid`` + ``txnNumber`` entries)."""
