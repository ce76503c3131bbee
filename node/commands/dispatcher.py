""":class:`Dispatcher`, the entry point every transport calls, and :class:`Command`, a row of a
handler table.

A dispatcher is built from a table and the services its handlers reach: a node serves
:data:`node.commands.table.NODE_COMMANDS` over :class:`NodeServices`; a router serves its own
table over its own services, with the same error model, BSON entry point and deferred replies.
``Dispatcher.run(db, command, ctx)`` finds the handler for the command's first field in its
table, runs it, and always returns a reply document: the handler's (with ``ok: 1.0``
added) or MongoDB's error reply for a :class:`~node.engine.errors.MongoError`. Anything else a
handler raises is a bug: it is logged and answered as InternalError (code 1), and the node keeps
serving. ``Dispatcher.run_bson`` is the same for transports that carry raw BSON (malformed BSON
gets InvalidBSON, code 22; BSON nested more than 200 deep Overflow, code 15).

A handler is ``handler(services, db: str, cmd: Mapping, ctx: RequestContext) -> dict``.
Write handlers may instead return a :class:`~node.commands.pending.PendingReply` when the transport
set ``ctx.deferred_replies``; ``Dispatcher.start``/``settle`` and ``run_bson_async`` let such a
transport answer without a thread waiting per write (``run`` simply waits).
Adding a command means writing its handler in the family module and one line in the table.

Every command runs as an operation of the dispatcher's :class:`~node.ops.hook.OpsHook`
(``currentOp``, ``killOp``, ``top``, ``opcounters``, latency histograms, the slow-operation
log); a deferred write is counted when its reply settles.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import bson
from bson.codec_options import CodecOptions
from bson.errors import BSONError

from node.commands.args import check_db_name
from node.commands.catalog_requests import check_command_fields
from node.commands.context import RequestContext
from node.commands.cursors import CursorRegistry
from node.commands.generic_args import check_generic_args
from node.commands.member import Member
from node.commands.pending import PendingReply
from node.commands.read_concern import Snapshots
from node.commands.tailing import TailWaits
from node.engine.errors import MongoError, command_not_found
from node.engine.limits import bson_too_deep, bson_too_deep_error
from node.ops import current as ops_current
from node.ops.hook import DEFAULT_SLOW_MS, OpsHook

log = logging.getLogger("helogale.commands")

CODEC = CodecOptions(document_class=dict, tz_aware=True)
INVALID_BSON = 22


UNKNOWN_COMMAND = "<UNKNOWN>"
"""The name statistics count every command the table does not know under."""

@dataclass
class NodeServices:
    """What a node's handlers reach: the engine (reads), the member (writes, topology),
    cursors, and the command table they are served from (set by :class:`Dispatcher`)."""

    engine: Any
    member: Member
    cursors: CursorRegistry = field(default_factory=CursorRegistry)
    started_at: float = field(default_factory=time.time)
    routing: RoutingCheck | None = None
    sharding: Any = None
    """The config-server or shard role (``node.sharding``), None on a plain replica set."""
    test_commands: bool = False
    """``--enable-test-commands``: serve ``configureFailPoint``."""
    commands: Mapping[str, Command] = field(default_factory=dict)
    session_timeout_minutes: float = 30.0
    authz: Any = None
    """``--auth``: the :class:`~node.security.authz.Authorizer` every command passes first."""
    users: Any = None
    """Where authentication finds users (:class:`~node.security.authz.LocalUsers`)."""
    tail_waits: TailWaits = field(default_factory=TailWaits)
    """Where awaitData getMores on capped collections wait (``node.commands.tailing``)."""
    ops: Any = None
    """The dispatcher's :class:`~node.ops.hook.OpsHook` (set by :class:`Dispatcher`)."""
    snapshots: Snapshots = field(default_factory=Snapshots)
    """``readConcern: snapshot`` reads and the snapshots kept for ``atClusterTime``."""
    cluster_time: Callable[[], Any] | None = None
    """A replica-set member's cluster time (``operationTime`` of replies to commands carrying
    a session); None on a standalone member and a router, as MongoDB's return none."""


class RoutingCheck(Protocol):
    """Sharding seam: refuse commands for collections this set does not own, or routed with
    a stale routing version (``shardVersion``), before any handler runs."""

    def check_command(self, db: str, command: Mapping[str, Any]) -> None: ...


Handler = Callable[[Any, str, Mapping[str, Any], RequestContext],
                   dict[str, Any] | PendingReply]


@dataclass(frozen=True)
class Command:
    """One table row: the handler and what the transports and the router must know of it.

    ``write``: the command changes data through the log; its handler may return a
    :class:`PendingReply` (``ctx.deferred_replies``), so a stream's reader runs it inline.
    ``retryable_write``: a CRUD write a driver may retry with ``lsid`` + ``txnNumber`` (the
    wire transport adds ``RetryableWriteError`` labels to its failures)."""

    handler: Handler
    admin_only: bool = False
    help: str = ""
    write: bool = False
    retryable_write: bool = False
    action: str | tuple[str, ...] | None = None
    """What a user needs to run it (:mod:`node.security.roles`); None: internal only."""


class Dispatcher:
    """Runs command documents through one handler table against one set of services (a
    node's, or a router's); never raises."""

    def __init__(self, services: Any, commands: Mapping[str, Command], *,
                 slow_ms: int = DEFAULT_SLOW_MS) -> None:
        self.services = services
        self.commands = commands
        services.commands = commands
        self.ops = OpsHook(slow_ms)
        services.ops = self.ops

    def runs_inline(self, name: str | None) -> bool:
        """A command a stream's reader may run itself: a write of a handler that defers its
        reply (it only validates and proposes before returning)."""
        spec = self.commands.get(name) if name is not None else None
        return spec is not None and spec.write

    def is_retryable_write(self, command: Mapping[str, Any]) -> bool:
        """A write a driver may retry: a retryable CRUD write carrying ``lsid`` and
        ``txnNumber`` outside a transaction."""
        if not command:
            return False
        spec = self.commands.get(next(iter(command)))
        return (spec is not None and spec.retryable_write
                and command.get("txnNumber") is not None and command.get("lsid") is not None
                and "autocommit" not in command)

    def run(self, db: str, command: Mapping[str, Any], ctx: RequestContext) -> dict[str, Any]:
        """Run one command; the reply always has ``ok`` (1.0 or 0.0 with errmsg/code)."""
        reply = self.start(db, command, ctx)
        return self.settle(reply, command) if isinstance(reply, PendingReply) else reply

    def start(self, db: str, command: Mapping[str, Any], ctx: RequestContext
              ) -> dict[str, Any] | PendingReply:
        """Run one command as far as it goes without waiting: the reply, or (only when
        ``ctx.deferred_replies``) a write's :class:`PendingReply` for :meth:`settle`."""
        if not isinstance(command, Mapping) or not command:
            return _error_reply(MongoError(9, "Command document is empty or not a document",
                                           code_name="FailedToParse"), command)
        name = next(iter(command))
        # counted by name: one row for every unknown name (as MongoDB's <UNKNOWN>), so a
        # client making names up cannot grow the statistics (or metric labels) without bound
        counted = name if name in self.commands else UNKNOWN_COMMAND
        op = self.ops.begin(db if isinstance(db, str) else "", counted, command, ctx)
        token = ops_current.enter(op)
        try:
            reply = self._start(db, name, command, ctx)
        except Exception as exc:
            reply = _error_reply(exc, command)
        finally:
            ops_current.leave(token)
        if isinstance(reply, PendingReply):
            return PendingReply(reply.future, reply.finish, (op, counted))
        reply.setdefault("ok", 1.0)
        self._stamp(reply, command)
        self.ops.end(op, counted, reply)
        return reply

    def _stamp(self, reply: dict[str, Any], command: Any) -> None:
        """``operationTime`` on a replica-set member's reply to a command with a session
        (every command a driver sends): the cluster time after it ran, which a causally
        consistent session sends back as ``afterClusterTime``. A handler may have set it
        (a snapshot read: its snapshot's time)."""
        clock = getattr(self.services, "cluster_time", None)
        if clock is not None and isinstance(command, Mapping) and "lsid" in command:
            reply.setdefault("operationTime", clock())

    def _start(self, db: str, name: str, command: Mapping[str, Any], ctx: RequestContext
               ) -> dict[str, Any] | PendingReply:
        spec = self.commands.get(name)
        if spec is None:
            raise command_not_found(name)
        if not isinstance(db, str):
            raise MongoError(73, "Invalid database name")
        check_db_name(db)
        if spec.admin_only and db != "admin":
            raise MongoError(13, f"{name} may only be run against the admin database.",
                             code_name="Unauthorized")
        authz = getattr(self.services, "authz", None)
        if authz is not None:  # THE authorization check (--auth)
            authz.check(name, spec, db, command, ctx.auth, ctx.peer)
        if "autocommit" in command or "startTransaction" in command:
            raise MongoError(20, "multi-document transactions are not supported "
                             "(autocommit/startTransaction)", code_name="IllegalOperation")
        check_generic_args(name, command)
        check_command_fields(name, command)
        routing = getattr(self.services, "routing", None)
        if routing is not None:
            routing.check_command(db, command)
        return spec.handler(self.services, db, command, ctx)

    def settle(self, pending: PendingReply, command: Any = None) -> dict[str, Any]:
        """The reply of a :class:`PendingReply` from :meth:`start` (waits if needed)."""
        try:
            reply = pending.settle()
        except Exception as exc:
            reply = _error_reply(exc, command)
        reply.setdefault("ok", 1.0)
        self._stamp(reply, command)
        if pending.op is not None:
            op, name = pending.op
            self.ops.end(op, name, reply)
        return reply

    def run_bson(self, db: str, command: bytes, ctx: RequestContext) -> bytes:
        """:meth:`run` for transports carrying BSON bytes; returns the BSON reply."""
        doc = _decode_command(command)
        reply = doc.reply if isinstance(doc, _InvalidBSON) else self.run(db, doc, ctx)
        return _encode_reply(reply)

    def run_bson_async(self, db: str, command: bytes, ctx: RequestContext,
                       done: Callable[[bytes], None]) -> None:
        """:meth:`run_bson` that calls ``done(reply)`` exactly once instead of returning: at
        once, or (a write, with ``ctx.deferred_replies``) from the thread that completes it."""
        doc = _decode_command(command)
        if isinstance(doc, _InvalidBSON):
            done(_encode_reply(doc.reply))
            return
        reply = self.start(db, doc, ctx)
        if not isinstance(reply, PendingReply):
            done(_encode_reply(reply))
            return
        reply.add_done_callback(lambda p: done(_encode_reply(self.settle(p, doc))))


@dataclass(frozen=True)
class _InvalidBSON:
    reply: dict[str, Any]


def _decode_command(command: bytes) -> Any:
    """The command document, or :class:`_InvalidBSON` with the error reply (Overflow, 15, for
    BSON nested past MongoDB's limit, found before decoding)."""
    if bson_too_deep(command):
        return _InvalidBSON(bson_too_deep_error().to_reply())
    try:
        return bson.decode(command, codec_options=CODEC)
    except (BSONError, ValueError, TypeError, IndexError, OverflowError) as exc:
        return _InvalidBSON(MongoError(INVALID_BSON, f"invalid BSON in command: {exc}",
                                       code_name="InvalidBSON").to_reply())


def _encode_reply(reply: dict[str, Any]) -> bytes:
    try:
        return bson.encode(reply)
    except Exception as exc:  # a reply that cannot be encoded is a bug, not a crash
        log.exception("reply not encodable")
        return bson.encode(MongoError(1, f"reply not encodable: {exc}").to_reply())


def _error_reply(exc: Exception, command: Any) -> dict[str, Any]:
    """The error reply for what a command raised (a handler bug is logged, then answered)."""
    if isinstance(exc, MongoError):
        return exc.to_reply()
    if isinstance(exc, RecursionError):
        return MongoError(15, "Overflow: document or query nested too deeply",
                          code_name="Overflow").to_reply()
    log.exception("command failed: %r", _name_of(command), exc_info=exc)
    return MongoError(1, f"internal error: {type(exc).__name__}: {exc}").to_reply()


def _name_of(command: Any) -> str:
    try:
        return str(next(iter(command)))
    except Exception:
        return "?"
