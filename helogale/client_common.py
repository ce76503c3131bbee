"""What both clients (``MongoClient`` and ``helogale.asyncio.AsyncMongoClient``) share that
does no I/O: seeds and options from the URI and keywords, the credentials, the write concern,
read preference, read concern and codec options they imply, the topology's settings, database
handles and the ``$readPreference`` a command carries."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bson.codec_options import CodecOptions

from helogale.auth import Credentials
from helogale.channel import Address
from helogale.errors import ConfigurationError
from helogale.read_concern import ReadConcern
from helogale.read_preferences import ReadPreference, ServerMode, read_pref_from_name
from helogale.tls import ClientTLS, client_tls
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



class HasOptions:
    """The codec options, read preference, write concern and read concern a client, database
    or collection carries (and passes down)."""

    _codec_options: CodecOptions
    _read_preference: ServerMode
    _write_concern: WriteConcern
    _read_concern: ReadConcern

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
        return self._read_concern


class ClientBase(HasOptions):
    """Options, and database handles of ``_database_class``; subclasses add the I/O (and
    ``_topology``)."""

    _database_class: Any
    _pool_class: Any
    """``(timeout, credentials, tls)`` -> the channels by address"""
    _topology_class: Any
    _executor_class: Any

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
        self._read_preference = read_pref_from_name(opts.get("readPreference", "primary"))
        self._read_concern = ReadConcern(opts.get("readConcernLevel"))
        self._seeds = seeds
        self._credentials = _credentials(opts, database)
        self._channels = self._pool_class(self._socket_timeout, self._credentials, self._tls)
        self._topology = self._topology_class(seeds, self._channels, **self._topology_settings())
        self.executor = self._executor_class(self._topology, **self._retry_settings())
        if connect:
            self._connect()

    def _connect(self) -> None:
        """Start monitoring the servers (``connect=True``)."""
        raise NotImplementedError

    # --- what the I/O parts are built from -------------------------------------------------------
    @property
    def _socket_timeout(self) -> float | None:
        socket_timeout = self._options.get("socketTimeoutMS")
        return socket_timeout / 1000.0 if socket_timeout else None

    @property
    def _tls(self) -> ClientTLS | None:
        return client_tls(self._options)

    def _topology_settings(self) -> dict[str, Any]:
        opts = self._options
        return {
            "replica_set_name": opts.get("replicaSet"),
            "direct_connection": bool(opts["directConnection"]),
            "heartbeat_frequency": max(opts["heartbeatFrequencyMS"], 100) / 1000.0,
            "server_selection_timeout": opts["serverSelectionTimeoutMS"] / 1000.0,
            "local_threshold": opts["localThresholdMS"] / 1000.0,
            "connect_timeout": (opts["connectTimeoutMS"] or 20000) / 1000.0,
        }

    def _retry_settings(self) -> dict[str, bool]:
        return {"retry_reads": bool(self._options["retryReads"]),
                "retry_writes": bool(self._options["retryWrites"])}

    # --- options and state -----------------------------------------------------------------------
    @property
    def options(self) -> dict[str, Any]:
        return {k: v for k, v in self._options.items() if k != "password"}

    @property
    def topology(self) -> Any:
        return self._topology

    @property
    def primary(self) -> Address | None:
        """The current primary's ``(host, port)``, or None if none is known."""
        return self._topology.primary()  # type: ignore[no-any-return]

    @property
    def nodes(self) -> frozenset[Address]:
        """Every server the client currently knows to be up."""
        return frozenset(s.address for s in self._topology.servers() if s.is_known)

    # --- databases -------------------------------------------------------------------------------
    def __getitem__(self, name: str) -> Any:
        return self._database_class(self, name)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(
                f"{type(self).__name__} has no attribute {name!r}. To access the {name} "
                f"database, use client[{name!r}]."
            )
        return self[name]

    def get_database(
        self,
        name: str | None = None,
        codec_options: CodecOptions | None = None,
        read_preference: ServerMode | None = None,
        write_concern: WriteConcern | None = None,
        read_concern: ReadConcern | None = None,
    ) -> Any:
        if name is None:
            name = self._default_database
            if name is None:
                raise ConfigurationError("No default database name defined or provided.")
        return self._database_class(self, name, codec_options, read_preference, write_concern,
                                    read_concern)

    def get_default_database(self, default: str | None = None) -> Any:
        name = self._default_database or default
        if name is None:
            raise ConfigurationError("No default database name defined or provided.")
        return self._database_class(self, name)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, ClientBase):
            return self is other or (set(self._seeds) == set(other._seeds) and self._options == other._options)
        return NotImplemented

    def __hash__(self) -> int:
        return hash(frozenset(self._seeds))

    def __repr__(self) -> str:
        hosts = ",".join(f"{h}:{p}" for h, p in self._seeds)
        return f"{type(self).__name__}({SCHEME}{hosts})"


def with_read_preference(command: dict[str, Any], read_preference: ServerMode, direct: bool,
                         server_writable: bool) -> dict[str, Any]:
    """``command`` with the ``$readPreference`` it carries to ``server`` (none for primary)."""
    if read_preference.mode != ReadPreference.PRIMARY.mode:
        return {**command, "$readPreference": read_preference.document}
    if direct and not server_writable:
        return {**command, "$readPreference": {"mode": "primaryPreferred"}}
    return command
