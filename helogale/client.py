"""``MongoClient`` (and the classic ``Connection``): options, the topology, the executor, and
databases. The client is thread-safe; all threads share its monitors and gRPC channels. It is
not fork-safe, by design: used in a child forked after it was made it raises
:class:`~helogale.errors.InvalidOperation` (create clients after forking; docs/web-apps.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bson.codec_options import CodecOptions

from helogale.auth import Credentials
from helogale.channel import Address, Channel, ChannelPool
from helogale.database import Database
from helogale.errors import ConfigurationError, check_reply
from helogale.read_concern import ReadConcern
from helogale.read_preferences import ReadPreference, ServerMode, read_pref_from_name
from helogale.retry import Executor
from helogale.tls import client_tls
from helogale.topology import MONGOS, Topology
from helogale.uri import DEFAULT_HOST, DEFAULT_PORT, SCHEME, parse_host, parse_uri, validate_option
from helogale.write_concern import WriteConcern

DEFAULT_SOCKET_TIMEOUT_MS = 600_000
"""Ten minutes: the longest any one request may wait for its reply unless ``socketTimeoutMS``
says otherwise (0: no limit, pymongo's meaning). Long enough for any request in normal use (a
server's idle cursors live as long; a long query streams in batches, each its own request),
finite so that a server that accepted the request and never answers cannot block a caller
forever."""

_DEFAULTS: dict[str, Any] = {
    "serverSelectionTimeoutMS": 30000,
    "connectTimeoutMS": 20000,
    "socketTimeoutMS": DEFAULT_SOCKET_TIMEOUT_MS,
    "heartbeatFrequencyMS": 10000,
    "localThresholdMS": 15,
    "retryWrites": True,
    "retryReads": True,
    "directConnection": False,
}


def _seeds_and_options(
    host: str | Sequence[str] | None, port: int | None
) -> tuple[list[Address], str | None, dict[str, Any]]:
    hosts = [host] if isinstance(host, str) else list(host or [DEFAULT_HOST])
    seeds: list[Address] = []
    database: str | None = None
    options: dict[str, Any] = {}
    default_port = port if port is not None else DEFAULT_PORT
    for entry in hosts:
        if "://" in entry:
            parsed = parse_uri(entry, default_port)
            seeds.extend(parsed.hosts)
            database = database or parsed.database
            options.update(parsed.options)
            if parsed.username is not None:
                options["username"] = parsed.username
                if parsed.password is not None:
                    options["password"] = parsed.password
        else:
            seeds.extend(parse_host(part, default_port) for part in entry.split(","))
    return seeds, database, options


def _credentials(opts: dict[str, Any], database: str | None) -> Credentials | None:
    """The URI's (or keywords') ``username``/``password``; ``authSource`` defaults to the URI's
    database, else ``admin`` (pymongo's rule)."""
    user = opts.get("username")
    if user is None:
        return None
    password = opts.get("password")
    if password is None:
        raise ConfigurationError("a username needs a password (SCRAM-SHA-256)")
    return Credentials(user, password, opts.get("authSource") or database or "admin")


class MongoClient:
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

    def __init__(
        self,
        host: str | Sequence[str] | None = None,
        port: int | None = None,
        document_class: type = dict,
        tz_aware: bool = False,
        connect: bool = True,
        **kwargs: Any,
    ) -> None:
        seeds, database, options = _seeds_and_options(host, port)
        for key, value in kwargs.items():
            name, typed = validate_option(key, value)
            options[name] = typed
        self._options = {**_DEFAULTS, **options}
        self._default_database = database
        self._codec_options = CodecOptions(document_class=document_class, tz_aware=tz_aware)
        opts = self._options
        if opts.get("safe") is False:
            self._write_concern = WriteConcern(w=0)
        else:
            self._write_concern = WriteConcern(
                w=opts.get("w"), wtimeout=opts.get("wTimeoutMS"), j=opts.get("journal")
            )
        self._read_preference: ServerMode = read_pref_from_name(opts.get("readPreference", "primary"))
        socket_timeout = opts.get("socketTimeoutMS")
        self._channels = ChannelPool(socket_timeout / 1000.0 if socket_timeout else None,
                                     _credentials(opts, database), client_tls(opts))
        self._topology = Topology(
            seeds,
            self._channels,
            replica_set_name=opts.get("replicaSet"),
            direct_connection=bool(opts["directConnection"]),
            heartbeat_frequency=max(opts["heartbeatFrequencyMS"], 100) / 1000.0,
            server_selection_timeout=opts["serverSelectionTimeoutMS"] / 1000.0,
            local_threshold=opts["localThresholdMS"] / 1000.0,
            connect_timeout=(opts["connectTimeoutMS"] or 20000) / 1000.0,
        )
        self._seeds = seeds
        self.executor = Executor(
            self._topology, retry_reads=bool(opts["retryReads"]), retry_writes=bool(opts["retryWrites"])
        )
        if connect:
            self._topology.open()

    # --- options and state ---------------------------------------------------------------------
    @property
    def codec_options(self) -> CodecOptions:
        return self._codec_options

    @property
    def read_preference(self) -> ServerMode:
        return self._read_preference

    @property
    def write_concern(self) -> WriteConcern:
        return self._write_concern

    @property
    def read_concern(self) -> ReadConcern:
        return ReadConcern(self._options.get("readConcernLevel"))

    @property
    def options(self) -> dict[str, Any]:
        return {k: v for k, v in self._options.items() if k != "password"}

    @property
    def topology(self) -> Topology:
        return self._topology

    @property
    def primary(self) -> Address | None:
        """The current primary's ``(host, port)``, or None if none is known."""
        return self._topology.primary()

    @property
    def secondaries(self) -> set[Address]:
        return {s.address for s in self._topology.servers() if s.is_secondary}

    @property
    def nodes(self) -> frozenset[Address]:
        """Every server the client currently knows to be up."""
        return frozenset(s.address for s in self._topology.servers() if s.is_known)

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

    # --- databases ---------------------------------------------------------------------------------
    def __getitem__(self, name: str) -> Database:
        return Database(self, name)

    def __getattr__(self, name: str) -> Database:
        if name.startswith("_"):
            raise AttributeError(
                f"MongoClient has no attribute {name!r}. To access the {name} database, "
                f"use client[{name!r}]."
            )
        return self[name]

    def get_database(
        self,
        name: str | None = None,
        codec_options: CodecOptions | None = None,
        read_preference: ServerMode | None = None,
        write_concern: WriteConcern | None = None,
        read_concern: ReadConcern | None = None,
    ) -> Database:
        if name is None:
            name = self._default_database
            if name is None:
                raise ConfigurationError("No default database name defined or provided.")
        return Database(self, name, codec_options, read_preference, write_concern, read_concern)

    def get_default_database(self, default: str | None = None) -> Database:
        name = self._default_database or default
        if name is None:
            raise ConfigurationError("No default database name defined or provided.")
        return Database(self, name)

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
        if read_preference.mode != ReadPreference.PRIMARY.mode:
            return {**command, "$readPreference": read_preference.document}
        if self._topology.direct and not server_writable:
            return {**command, "$readPreference": {"mode": "primaryPreferred"}}
        return command

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

    def __eq__(self, other: object) -> bool:
        if isinstance(other, MongoClient):
            return self is other or (set(self._seeds) == set(other._seeds) and self._options == other._options)
        return NotImplemented

    def __hash__(self) -> int:
        return hash(frozenset(self._seeds))

    def __repr__(self) -> str:
        hosts = ",".join(f"{h}:{p}" for h, p in self._seeds)
        return f"MongoClient({SCHEME}{hosts})"


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
