"""Per-request context handed by a transport to the dispatcher.

The dispatcher knows nothing about sockets; the transport says which kind it is (``"grpc"`` or
``"wire"``) so that ``hello`` answers with the addresses a client on that transport can dial, and
gives a connection id for logs and ``hello.connectionId``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

GRPC = "grpc"
WIRE = "wire"


@dataclass(frozen=True)
class RequestContext:
    """Who is asking and over what: transport kind, connection id, peer address."""

    transport: str = GRPC
    connection_id: int = 0
    peer: str = ""
    deferred_replies: bool = False
    """The transport accepts a :class:`~node.commands.pending.PendingReply` from a write (it
    answers out of order, when the write has applied) instead of a thread blocked on it."""
    auth: Any = None
    """The connection's :class:`~node.security.authz.AuthSession` (a transport sets one on
    every request when the member runs with ``--auth``); None: an in-process caller."""
