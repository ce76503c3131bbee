"""ReadIndex bookkeeping on the leader: linearizable reads without writing to the log.

Owns the queue of pending read requests. Each request records the commit index when it
arrived; the leader broadcasts a heartbeat carrying the request's context, and once a quorum
has answered that heartbeat the request and every earlier one are released with that index.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

from raft.types import NONE


@dataclass(slots=True)
class ReadRequest:
    index: int
    context: bytes
    frm: int = NONE  # NONE: a local request; else the follower that forwarded it
    acks: set[int] = field(default_factory=set)


class ReadOnly:
    def __init__(self) -> None:
        self._pending: OrderedDict[bytes, ReadRequest] = OrderedDict()

    def add_request(self, index: int, context: bytes, frm: int, self_id: int) -> bool:
        """Queue a request; False if a request with this context is already pending."""
        if context in self._pending:
            return False
        self._pending[context] = ReadRequest(index, context, frm, {self_id})
        return True

    def recv_ack(self, frm: int, context: bytes) -> set[int] | None:
        req = self._pending.get(context)
        if req is None:
            return None
        req.acks.add(frm)
        return req.acks

    def advance(self, context: bytes) -> list[ReadRequest]:
        """Release (and return) every request up to and including ``context``."""
        if context not in self._pending:
            return []
        out: list[ReadRequest] = []
        while self._pending:
            ctx, req = self._pending.popitem(last=False)
            out.append(req)
            if ctx == context:
                break
        return out

    def last_pending_context(self) -> bytes:
        if not self._pending:
            return b""
        return next(reversed(self._pending))

    def __len__(self) -> int:
        return len(self._pending)
