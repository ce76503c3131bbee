"""The retry policy — the one place that decides whether an operation runs again — and the
server sessions (``lsid`` + ``txnNumber``) that make retrying a write safe.

:meth:`Executor.run` selects a server, runs the operation there, and on a retryable failure
(network error, NotWritablePrimary and the other "not primary / shutting down" codes) marks the
server unknown and runs the operation again on a freshly selected server — the new primary once
the monitors find it. Reads are retried when ``retryReads`` is on; writes only when retryable
(``retryWrites`` on and a single-statement-per-document write carrying a session id and
transaction number, which the server uses to apply it at most once). Retries continue until
``serverSelectionTimeoutMS`` after the first failure (at most ``MAX_ATTEMPTS`` runs in all), so
a failover costs a pause, not an error.

Through routers (a Sharded topology) the same policy applies, with two differences, as in
pymongo: a "not primary" answer from a router comes from a shard behind it (the router already
waited for that shard's failover), so the router is *not* marked unknown (only a network error
does that); and a retry prefers another router than the one that failed, when one is known.

Two rules keep this safe and bounded:

* a write is run again only with the ``lsid`` and ``txnNumber`` its first run carried: a write
  first sent without them (to a standalone member, which takes no sessions) is never re-sent,
  and a retry that would land on such a server raises the first error instead;
* a request that timed out (``socketTimeoutMS``: :class:`~helogale.errors.NetworkTimeout`) is
  not run again, and the server is not marked unknown: the server may still be running it, and
  the caller asked for a bound on the wait, not for a longer one.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from bson.binary import Binary
from bson.codec_options import DEFAULT_CODEC_OPTIONS
from bson.int64 import Int64

from helogale.channel import Address, Channel
from helogale.errors import (
    AutoReconnect,
    NetworkTimeout,
    PyMongoError,
    is_not_primary,
    is_retryable,
)
from helogale.read_preferences import ReadPreference, ServerMode
from helogale.topology import MONGOS, RS_PRIMARY, ServerDescription

T = TypeVar("T")
MAX_ATTEMPTS = 10

Operation = Callable[[ServerDescription, Channel], T]


class RetryRefused(Exception):
    """Raised by an operation instead of running on the server selected for a retry (it cannot
    carry what the first run carried); :meth:`Executor.run` then raises the first error."""


@dataclass
class ServerSession:
    """A logical session: ``lsid`` and the last transaction number used with it."""

    lsid: dict[str, Any] = field(default_factory=lambda: {"id": Binary(uuid.uuid4().bytes, 4)})
    txn_number: int = 0

    def next_txn_number(self) -> Int64:
        self.txn_number += 1
        return Int64(self.txn_number)


class SessionPool:
    """Sessions reused across operations; one operation holds a session at a time, so the
    transaction numbers of a session always increase in the order the server sees them."""

    def __init__(self) -> None:
        self._free: list[ServerSession] = []
        self._lock = threading.Lock()

    def checkout(self) -> ServerSession:
        with self._lock:
            return self._free.pop() if self._free else ServerSession()

    def checkin(self, session: ServerSession) -> None:
        with self._lock:
            self._free.append(session)


def supports_retryable_writes(server: ServerDescription) -> bool:
    """Retryable writes need a replica-set primary or a router (not a standalone node)."""
    return server.server_type in (RS_PRIMARY, MONGOS)


def _avoiding(
    addresses: set[Address],
) -> Callable[[list[ServerDescription]], list[ServerDescription]]:
    """A selector preferring servers other than ``addresses`` (all of them if none is left)."""
    def select(candidates: list[ServerDescription]) -> list[ServerDescription]:
        return [s for s in candidates if s.address not in addresses] or candidates
    return select


class RetryLoop:
    """The retry policy's decisions for one operation, without I/O: which server to select
    next (``selection``) and, after a failure, whether to run again (``failed`` raises when
    not). Both clients drive it: :class:`Executor` with threads, the asyncio client's
    executor with awaits."""

    def __init__(self, topology: Any, retryable: bool | Callable[[], bool],
                 address: Address | None = None) -> None:
        self.topology = topology
        self.retryable = retryable
        self.address = address
        self.deadline: float | None = None
        self.attempts = 0
        self.first_error: PyMongoError | None = None
        self.failed_routers: set[Address] = set()

    def selection(self) -> dict[str, Any]:
        """Keyword arguments for ``select_server`` (``timeout``, ``selector``) this attempt."""
        self.attempts += 1
        remaining = None
        if self.deadline is not None:
            remaining = max(self.deadline - time.monotonic(), 0.0)
        selector = _avoiding(self.failed_routers) if self.failed_routers else None
        return {"timeout": remaining, "selector": selector}

    def refused(self) -> PyMongoError:
        """The error to raise when the operation refused the server selected for a retry."""
        assert self.first_error is not None
        return self.first_error

    def failed(self, exc: PyMongoError, server: ServerDescription) -> None:
        """Account for ``exc`` raised by the operation on ``server``: mark the server unknown
        when the error says so, then return to run again or raise ``exc``."""
        topology = self.topology
        timed_out = isinstance(exc, NetworkTimeout)
        router = server.server_type == MONGOS or topology.is_sharded
        if is_not_primary(exc):  # (NotPrimaryError is an AutoReconnect, as in pymongo)
            if not router:  # a router relays a shard's answer: it is itself fine
                topology.mark_unknown(server.address, exc)
        elif isinstance(exc, AutoReconnect) and not timed_out:
            topology.mark_unknown(server.address, exc)
        if router:
            self.failed_routers.add(server.address)
        retryable = self.retryable
        may_retry = retryable() if callable(retryable) else retryable
        if self.address is not None or not may_retry or not is_retryable(exc):
            raise exc
        if self.first_error is None:
            self.first_error = exc
        if self.deadline is None:
            self.deadline = time.monotonic() + topology.server_selection_timeout
        if self.attempts >= MAX_ATTEMPTS or time.monotonic() >= self.deadline:
            raise exc


class RetryableWrite:
    """The session fields of one write, the same on every attempt (see :meth:`Executor.write`);
    no I/O."""

    def __init__(self, sessions: SessionPool, retry: bool) -> None:
        self._sessions = sessions
        self.retry = retry
        self.session = sessions.checkout() if retry else None
        self.fields: dict[str, Any] | None = None

    def session_fields(self, server: ServerDescription) -> dict[str, Any] | None:
        """``{lsid, txnNumber}`` for a run on ``server`` (None: it takes no sessions); raises
        :class:`RetryRefused` when a retry would go to a server that takes no sessions."""
        if self.session is None:
            return None
        if supports_retryable_writes(server):
            if self.fields is None:
                self.fields = {"lsid": self.session.lsid,
                               "txnNumber": self.session.next_txn_number()}
            return self.fields
        if self.fields is not None:
            raise RetryRefused  # this server would take the write without its session
        return None

    def may_retry(self) -> bool:
        """Retried only once it went out with lsid + txnNumber (and it always will again)."""
        return self.retry and self.fields is not None

    def release(self) -> None:
        if self.session is not None:
            self._sessions.checkin(self.session)
            self.session = None


class Executor:
    """Runs operations against the topology with the client's retry policy."""

    def __init__(
        self,
        topology: Any,
        *,
        retry_reads: bool = True,
        retry_writes: bool = True,
    ) -> None:
        self.topology = topology
        self.retry_reads = retry_reads
        self.retry_writes = retry_writes
        self.sessions = SessionPool()
        self._lock = threading.Lock()
        self.retries = 0  # operations run again after a retryable failure (for tests and stats)

    def _count_retry(self) -> None:
        with self._lock:
            self.retries += 1

    def run(
        self,
        operation: Operation[T],
        *,
        read_preference: ServerMode = ReadPreference.PRIMARY,
        retryable: bool | Callable[[], bool],
        address: Address | None = None,
    ) -> T:
        """Run ``operation(server, channel)``; retry it while ``retryable`` (a flag, or a
        function asked after each failure) and the error allow.

        With ``address`` the operation is pinned to that server (``getMore``/``killCursors``)
        and is never retried elsewhere.
        """
        topology = self.topology
        loop = RetryLoop(topology, retryable, address)
        while True:
            selection = loop.selection()
            if address is not None:
                server = ServerDescription(address)
            else:
                server = topology.select_server(read_preference, **selection)
            channel = topology.channels.get(server.address)
            try:
                return operation(server, channel)
            except RetryRefused:
                raise loop.refused() from None
            except PyMongoError as exc:
                loop.failed(exc, server)
                self._count_retry()

    def read(
        self, operation: Operation[T], read_preference: ServerMode = ReadPreference.PRIMARY
    ) -> T:
        """A read: retried when ``retryReads`` is on."""
        return self.run(operation, read_preference=read_preference, retryable=self.retry_reads)

    def write(
        self,
        build: Callable[[ServerDescription, dict[str, Any] | None], tuple[str, dict[str, Any]]],
        handle: Callable[[dict[str, Any], ServerDescription], T],
        *,
        retryable: bool,
        codec_options: Any = None,
    ) -> T:
        """A write command: ``build(server, session_fields)`` returns ``(db, command)``;
        ``handle(reply, server)`` checks the reply (raising mapped errors) and returns the result.

        When the write is retryable, ``session_fields`` is ``{lsid, txnNumber}`` — the same on
        every attempt, so the server recognises a retry of a write it already applied. A write
        whose first run went without them (the server takes no sessions) is never run again,
        and a retry is never sent without them.
        """
        write = RetryableWrite(self.sessions, retryable and self.retry_writes)

        def operation(server: ServerDescription, channel: Channel) -> T:
            db, command = build(server, write.session_fields(server))
            return handle(channel.run(db, command, codec_options or DEFAULT_CODEC_OPTIONS), server)

        try:
            return self.run(operation, retryable=write.may_retry)
        finally:
            write.release()
