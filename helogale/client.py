"""``MongoClient`` (and the classic ``Connection``): the topology, the executor, and databases
(options and database handles come from :mod:`helogale.client_common`, shared with the asyncio
client). The client is thread-safe; all threads share its monitors and gRPC channels. It is
not fork-safe, by design: used in a child forked after it was made it raises
:class:`~helogale.errors.InvalidOperation` (create clients after forking; docs/web-apps.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bson.codec_options import CodecOptions

from helogale.channel import Address, Channel, ChannelPool
from helogale.client_common import DEFAULT_SOCKET_TIMEOUT_MS, ClientBase, with_read_preference
from helogale.database import Database
from helogale.errors import check_reply
from helogale.read_preferences import ReadPreference, ServerMode
from helogale.retry import Executor
from helogale.topology import MONGOS, Topology
from helogale.uri import DEFAULT_HOST, DEFAULT_PORT

__all__ = ["DEFAULT_SOCKET_TIMEOUT_MS", "Connection", "MongoClient"]


class MongoClient(ClientBase):
    """``MongoClient(host="helogale://h1:p1,h2:p2/?replicaSet=rs0", port=None, **options)``.

    ``host`` may be a ``helogale://`` URI, ``"host[:port]"`` or a list of either. Keyword options
    (case-insensitive, as in the URI) override the URI's: ``replicaSet``, ``w``, ``wTimeoutMS``,
    ``journal``, ``readPreference``, ``retryWrites``, ``retryReads``, ``serverSelectionTimeoutMS``,
    ``connectTimeoutMS``, ``socketTimeoutMS``, ``heartbeatFrequencyMS``, ``localThresholdMS``,
    ``directConnection``, ``username``, ``password``, ``authSource`` (also from
    ``helogale://user:pass@host/``: SCRAM-SHA-256 on every connection, again after a
    reconnect), ``tls``, ``tlsCAFile``, ``tlsCertificateKeyFile``.
    """

    HOST = DEFAULT_HOST
    PORT = DEFAULT_PORT
    _database_class = Database

    _pool_class = ChannelPool
    _topology_class = Topology
    _executor_class = Executor

    def _connect(self) -> None:
        self._topology.open()

    # --- state ---------------------------------------------------------------------------------
    @property
    def secondaries(self) -> set[Address]:
        return {s.address for s in self._topology.servers() if s.is_secondary}

    @property
    def address(self) -> Address | None:
        """The server writes go to (waits for it like an operation would)."""
        return self._topology.select_server(ReadPreference.PRIMARY).address

    @property
    def is_primary(self) -> bool:
        """Whether the server writes go to takes writes: a primary, a standalone or a router."""
        return self._topology.select_server(ReadPreference.PRIMARY).is_writable

    @property
    def is_mongos(self) -> bool:
        """Whether the client is connected to routers (a Sharded topology)."""
        return self._topology.select_server(ReadPreference.PRIMARY).server_type == MONGOS

    def server_info(self) -> dict[str, Any]:
        return self.admin.command("hello")

    def list_databases(self, **kwargs: Any) -> list[dict[str, Any]]:
        reply = self.admin.command({"listDatabases": 1, **kwargs})
        return list(reply.get("databases", []))

    def list_database_names(self) -> list[str]:
        return [d["name"] for d in self.list_databases(nameOnly=True)]

    def drop_database(self, name_or_database: str | Database) -> None:
        name = name_or_database.name if isinstance(name_or_database, Database) else name_or_database
        if not isinstance(name, str):
            raise TypeError("name_or_database must be an instance of str or a Database")
        self[name].command("dropDatabase")

    # --- running commands (used by Database, Collection, Cursor) ---------------------------------------
    def _with_read_preference(
        self, command: dict[str, Any], read_preference: ServerMode, server_writable: bool
    ) -> dict[str, Any]:
        return with_read_preference(command, read_preference, self._topology.direct,
                                    server_writable)

    def read_command(
        self,
        db: str,
        command: dict[str, Any],
        read_preference: ServerMode,
        codec_options: CodecOptions,
    ) -> tuple[dict[str, Any], Address]:
        """A read command, retried per the retry policy; returns ``(reply, server address)``."""

        def operation(server: Any, channel: Channel) -> tuple[dict[str, Any], Address]:
            document = self._with_read_preference(command, read_preference, server.is_writable)
            reply = channel.run(db, document, codec_options)
            check_reply(reply, server.address)
            return reply, server.address

        return self.executor.read(operation, read_preference)

    def run_command(
        self,
        db: str,
        command: dict[str, Any],
        *,
        read_preference: ServerMode = ReadPreference.PRIMARY,
        codec_options: CodecOptions | None = None,
        check: bool = True,
        allowable_errors: tuple[Any, ...] = (),
    ) -> dict[str, Any]:
        """Any command, passed through unchanged (not retried); the raw reply is returned."""
        codec = codec_options or self._codec_options

        def operation(server: Any, channel: Channel) -> dict[str, Any]:
            document = self._with_read_preference(command, read_preference, server.is_writable)
            reply = channel.run(db, document, codec)
            if check:
                check_reply(reply, server.address, allowable_errors)
            return reply

        return self.executor.run(operation, read_preference=read_preference, retryable=False)

    # --- lifecycle ------------------------------------------------------------------------------------
    def close(self) -> None:
        """Stop the monitors (their threads are joined) and close every channel. In a process
        forked after the client was made it does nothing: all of that is the parent's."""
        if self._channels.forked:
            return
        self._topology.close()
        self._channels.close()

    def __enter__(self) -> MongoClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Connection(MongoClient):
    """The classic ``Connection(host, port)``: like :class:`MongoClient`, but it waits for a
    server at construction and raises :class:`~helogale.errors.ConnectionFailure` (as
    ``ServerSelectionTimeoutError``) when none answers within ``serverSelectionTimeoutMS``."""

    def __init__(self, host: str | Sequence[str] | None = None, port: int | None = None,
                 document_class: type = dict, tz_aware: bool = False, **kwargs: Any) -> None:
        super().__init__(host, port, document_class, tz_aware, connect=True, **kwargs)
        try:
            self._topology.select_server(ReadPreference.NEAREST)
        except Exception:
            self.close()
            raise
