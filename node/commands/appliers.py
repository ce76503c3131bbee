"""Every log entry op and its applier (the state machine's table), gathered from the families."""

from __future__ import annotations

from node.commands import catalog, crud, indexes, rename, sessions
from node.server.statemachine import Applier, Grouper

APPLIERS: dict[str, Applier] = {
    **crud.APPLIERS,
    **indexes.APPLIERS,
    **catalog.APPLIERS,
    **rename.APPLIERS,
    **sessions.APPLIERS,
}

GROUPERS: dict[str, Grouper] = dict(crud.GROUPERS)
