"""A single member without Raft: writes apply at once through the same state machine.

Used by the command-layer tests and for embedding a node in one process. It behaves like a
one-member replica set that is always primary: every entry is applied immediately with the next
log index, so replies come from exactly the code path a replicated member uses.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from typing import Any

from bson import Timestamp

from node.commands.context import RequestContext
from node.commands.member import WriteConcern
from node.engine.errors import MongoError
from node.server.statemachine import StateMachine


class StandaloneMember:
    """Always-writable single member; hello reports no replica set."""

    def __init__(self, state_machine: StateMachine, address: str = "localhost:0") -> None:
        self.sm = state_machine
        self.address = address
        self._lock = threading.Lock()

    def set_size(self) -> int:
        return 1

    def require_writable(self) -> None:
        return None

    def check_readable(self, cmd: Mapping[str, Any], ctx: RequestContext) -> None:
        return None

    def submit(
        self, entry: dict[str, Any], wc: WriteConcern
    ) -> tuple[dict[str, Any], dict[str, Any] | None]:
        with self._lock:
            index = self.sm.applied_index + 1
            return self.sm.apply(index, entry), None

    def submit_async(
        self, entry: dict[str, Any], wc: WriteConcern
    ) -> Future[tuple[dict[str, Any], dict[str, Any] | None]]:
        out: Future[tuple[dict[str, Any], dict[str, Any] | None]] = Future()
        out.set_result(self.submit(entry, wc))
        return out

    def cluster_time(self) -> Timestamp:
        return self.sm.cluster_time

    def applied_index(self) -> int:
        return self.sm.applied_index

    def log_index(self) -> int:
        return self.sm.applied_index  # every write applies at once

    def follower_grace_s(self) -> float:
        return 0.0

    def wait_for(self, pred: Callable[[], bool], timeout: float) -> bool:
        return pred()  # nothing arrives later: what is not applied never will be

    def hello(self, ctx: RequestContext) -> dict[str, Any]:
        return {"isWritablePrimary": True, "me": self.address}

    def repl_set_get_status(self) -> dict[str, Any]:
        raise MongoError(76, "not running with --replSet", code_name="NoReplicationEnabled")

    def repl_set_get_config(self) -> dict[str, Any]:
        raise MongoError(76, "not running with --replSet", code_name="NoReplicationEnabled")

    def step_down(self, step_down_secs: float, catch_up_secs: float) -> None:
        raise MongoError(76, "not running with --replSet", code_name="NoReplicationEnabled")

    def reconfig(self, config: Mapping[str, Any], force: bool) -> None:
        raise MongoError(76, "not running with --replSet", code_name="NoReplicationEnabled")


def standalone_dispatcher(store: Any = None, *, cursor_timeout_s: float = 600.0,
                          max_sort_bytes: int | None = None) -> Any:
    """A dispatcher over one in-process member (MemoryStore by default): for tests, embedding.
    ``max_sort_bytes``: the blocking sort/``$group`` memory limit (default MongoDB's 100 MiB)."""
    from node.commands.appliers import APPLIERS, STATEMENTS
    from node.commands.cursors import CursorRegistry
    from node.commands.dispatcher import Dispatcher, NodeServices
    from node.commands.engine_ops import open_engine
    from node.commands.table import NODE_COMMANDS

    if store is None:
        from node.engine.memory_store import MemoryStore

        store = MemoryStore()
    engine = (open_engine(store) if max_sort_bytes is None
              else open_engine(store, max_sort_bytes=max_sort_bytes))
    sm = StateMachine(engine, store, APPLIERS, statements=STATEMENTS)
    services = NodeServices(engine, StandaloneMember(sm), CursorRegistry(cursor_timeout_s))
    services.tail_waits.attach(engine, sm)
    return Dispatcher(services, NODE_COMMANDS)
