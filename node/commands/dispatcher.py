"""The one command table and :class:`Dispatcher`, the entry point every transport calls.

``Dispatcher.run(db, command, ctx)`` finds the handler for the command's first field in
:data:`COMMANDS`, runs it, and always returns a reply document: the handler's (with ``ok: 1.0``
added) or MongoDB's error reply for a :class:`~node.engine.errors.MongoError`. Anything else a
handler raises is a bug: it is logged and answered as InternalError (code 1), and the node keeps
serving. ``Dispatcher.run_bson`` is the same for transports that carry raw BSON (malformed BSON
gets InvalidBSON, code 22).

A handler is ``handler(node: NodeServices, db: str, cmd: Mapping, ctx: RequestContext) -> dict``.
Write handlers may instead return a :class:`~node.commands.pending.PendingReply` when the transport
set ``ctx.deferred_replies``; ``Dispatcher.start``/``settle`` and ``run_bson_async`` let such a
transport answer without a thread waiting per write (``run`` simply waits).
Adding a command means writing its handler in the family module and one line in the table.
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

from node.commands import admin, catalog, crud, explain, indexes, query, rename
from node.commands.args import check_db_name
from node.commands.context import RequestContext
from node.commands.cursors import CursorRegistry
from node.commands.member import Member
from node.commands.pending import PendingReply
from node.engine.errors import MongoError, command_not_found

log = logging.getLogger("helogale.commands")

CODEC = CodecOptions(document_class=dict, tz_aware=True)
INVALID_BSON = 22


@dataclass
class NodeServices:
    """What handlers reach: the engine (reads), the member (writes, topology), cursors."""

    engine: Any
    member: Member
    cursors: CursorRegistry = field(default_factory=CursorRegistry)
    started_at: float = field(default_factory=time.time)
    routing: RoutingCheck | None = None
    session_timeout_minutes: float = 30.0


class RoutingCheck(Protocol):
    """Sharding seam (not built yet): refuse commands for collections this set does not own,
    or routed with a stale routing version (``shardVersion``), before any handler runs."""

    def check(self, db: str, command: Mapping[str, Any]) -> None: ...


Handler = Callable[[NodeServices, str, Mapping[str, Any], RequestContext],
                   dict[str, Any] | PendingReply]


@dataclass(frozen=True)
class Command:
    """One table row: the handler, whether it only runs against ``admin``, help text."""

    handler: Handler
    admin_only: bool = False
    help: str = ""


COMMANDS: dict[str, Command] = {
    # crud
    "insert": Command(crud.insert, help="insert documents"),
    "update": Command(crud.update, help="update documents"),
    "delete": Command(crud.delete, help="delete documents"),
    "findAndModify": Command(crud.find_and_modify, help="modify one document, return it"),
    "findandmodify": Command(crud.find_and_modify, help="modify one document, return it"),
    # query
    "find": Command(query.find, help="query a collection"),
    "getMore": Command(query.get_more, help="next batch of a cursor"),
    "killCursors": Command(query.kill_cursors, help="close cursors"),
    "count": Command(query.count, help="count matching documents"),
    "distinct": Command(query.distinct, help="distinct values of a field"),
    "aggregate": Command(query.aggregate, help="a small aggregation pipeline subset"),
    "explain": Command(explain.explain, help="how a find/count/distinct would run"),
    # indexes
    "createIndexes": Command(indexes.create_indexes, help="build indexes"),
    "dropIndexes": Command(indexes.drop_indexes, help="drop indexes"),
    "listIndexes": Command(indexes.list_indexes, help="list a collection's indexes"),
    # catalog
    "listCollections": Command(catalog.list_collections, help="list collections"),
    "listDatabases": Command(catalog.list_databases, admin_only=True, help="list databases"),
    "create": Command(catalog.create, help="create a collection"),
    "drop": Command(catalog.drop, help="drop a collection"),
    "dropDatabase": Command(catalog.drop_database, help="drop the current database"),
    "collStats": Command(catalog.coll_stats, help="collection statistics"),
    "dbStats": Command(catalog.db_stats, help="database statistics"),
    "renameCollection": Command(rename.rename_collection_command, admin_only=True,
                                help="rename a collection"),
    # admin
    "hello": Command(admin.hello, help="topology handshake"),
    "isMaster": Command(admin.hello, help="legacy topology handshake"),
    "ismaster": Command(admin.hello, help="legacy topology handshake"),
    "ping": Command(admin.ping, help="liveness"),
    "buildInfo": Command(admin.build_info, help="server version"),
    "buildinfo": Command(admin.build_info, help="server version"),
    "getParameter": Command(admin.get_parameter, admin_only=True, help="server parameters"),
    "serverStatus": Command(admin.server_status, help="server status"),
    "endSessions": Command(admin.end_sessions, help="end logical sessions"),
    "killSessions": Command(admin.end_sessions, help="end logical sessions"),
    "getLastError": Command(admin.get_last_error, help="classic write acknowledgement"),
    "connectionStatus": Command(admin.connection_status, help="authentication info"),
    "listCommands": Command(admin.list_commands, help="the command table"),
    "replSetGetStatus": Command(admin.repl_set_get_status, admin_only=True,
                                help="replica set member states"),
    "replSetGetConfig": Command(admin.repl_set_get_config, admin_only=True,
                                help="replica set configuration"),
    "replSetStepDown": Command(admin.repl_set_step_down, admin_only=True,
                               help="primary steps down"),
    "replSetReconfig": Command(admin.repl_set_reconfig, admin_only=True,
                               help="change the replica set's members"),
}


class Dispatcher:
    """Runs command documents against one node; never raises."""

    def __init__(self, services: NodeServices) -> None:
        self.services = services

    @property
    def commands(self) -> Mapping[str, Command]:
        return COMMANDS

    def run(self, db: str, command: Mapping[str, Any], ctx: RequestContext) -> dict[str, Any]:
        """Run one command; the reply always has ``ok`` (1.0 or 0.0 with errmsg/code)."""
        reply = self.start(db, command, ctx)
        return self.settle(reply, command) if isinstance(reply, PendingReply) else reply

    def start(self, db: str, command: Mapping[str, Any], ctx: RequestContext
              ) -> dict[str, Any] | PendingReply:
        """Run one command as far as it goes without waiting: the reply, or (only when
        ``ctx.deferred_replies``) a write's :class:`PendingReply` for :meth:`settle`."""
        try:
            if not isinstance(command, Mapping) or not command:
                raise MongoError(9, "Command document is empty or not a document",
                                 code_name="FailedToParse")
            name = next(iter(command))
            spec = COMMANDS.get(name)
            if spec is None:
                raise command_not_found(name)
            if not isinstance(db, str):
                raise MongoError(73, "Invalid database name")
            check_db_name(db)
            if spec.admin_only and db != "admin":
                raise MongoError(13, f"{name} may only be run against the admin database.",
                                 code_name="Unauthorized")
            if self.services.routing is not None:
                self.services.routing.check(db, command)
            reply = spec.handler(self.services, db, command, ctx)
        except Exception as exc:
            return _error_reply(exc, command)
        if isinstance(reply, PendingReply):
            return reply
        reply.setdefault("ok", 1.0)
        return reply

    def settle(self, pending: PendingReply, command: Any = None) -> dict[str, Any]:
        """The reply of a :class:`PendingReply` from :meth:`start` (waits if needed)."""
        try:
            reply = pending.settle()
        except Exception as exc:
            return _error_reply(exc, command)
        reply.setdefault("ok", 1.0)
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
    """The command document, or :class:`_InvalidBSON` with the error reply."""
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
