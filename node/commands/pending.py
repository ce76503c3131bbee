"""A command reply that is still being produced: a write waiting for its log entry to apply.

A transport that can answer out of order (the gRPC command stream) marks its requests'
:class:`~node.commands.context.RequestContext` with ``deferred_replies``; write handlers then
return a :class:`PendingReply` instead of blocking a thread until the entry is committed and
applied. The dispatcher turns it into the reply document when the member's future completes
(in the thread that completes it), so a thousand writes in flight hold no thread each.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class PendingReply:
    """``finish(future.result())`` is the reply; either may raise MongoError."""

    future: Future[Any]
    finish: Callable[[Any], dict[str, Any]]
    op: Any = None
    """The dispatcher's running operation (counted when the reply settles)."""

    def add_done_callback(self, fn: Callable[[PendingReply], None]) -> None:
        """Call ``fn`` with this reply once the future is done (at once if it already is).

        The callback holds this reply's fields, not the reply itself: the future keeps its
        callbacks after running them, so ``future -> callback -> reply -> future`` would be a
        reference cycle per write, left for the garbage collector (about 30 objects per write
        on a primary, several percent of its CPU in collections)."""
        finish, op = self.finish, self.op
        self.future.add_done_callback(lambda f: fn(PendingReply(f, finish, op)))

    def settle(self) -> dict[str, Any]:
        """The reply, waiting for it if needed."""
        return self.finish(self.future.result())
