"""Talking to another replica set of the cluster (the config servers, a shard) by its
connection string, for shards, config servers and routers alike.

A connection string names a set and its members' gRPC addresses: ``"cfg/h1:p1,h2:p2"``.
:class:`RemoteSet` wraps the ``helogale`` client (its topology monitors find the primary and
follow failovers) and runs raw commands there: the reply comes back as the server gave it
(``ok: 0`` included, for the caller to interpret), and the client's one retry policy runs the
command again on the new primary when that is safe:

* ``retry="safe"`` (reads, and writes carrying ``lsid`` + ``txnNumber``, which the shard
  deduplicates): after a network error or any "not primary" answer;
* ``retry="refused"`` (writes without a session): only when the server refused the command
  before running it (NotWritablePrimary, NotPrimaryNoSecondaryOk), never after an error that
  leaves the outcome unknown;
* ``retry="never"``.

Commands go over a member's command link (``node.server.command_link``: plain TCP on its Raft
port, about 1 ms cheaper per round trip than gRPC here) when this process holds the cluster key
(:func:`set_link_key`), the member's ``hello`` names a link address (``LINK_FIELD``) and TLS
is off; otherwise, or while a member's link cannot be opened, over gRPC as before. Either way
the same retry policy runs: a broken link is a network error like a broken stream.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any, Literal

from helogale.channel import Address, Channel, decode_reply, encode_command, format_address
from helogale.client import MongoClient
from helogale.errors import NotPrimaryError
from helogale.read_preferences import ReadPreference, ServerMode
from helogale.topology import ServerDescription
from node.security.authz import AUDIT_FIELD, acting_users
from node.server.command_link import LINK_FIELD, CommandLinks

Retry = Literal["safe", "refused", "never"]
REFUSED_CODES = frozenset({10107, 13435})
NOT_PRIMARY_CODES = frozenset({10107, 13435, 13436, 11600, 11602, 189, 91})


_INTERNAL_KEY: bytes | None = None


def set_internal_key(key: bytes | None) -> None:
    """Authenticate every set this process connects to from now on as the internal user
    (``__system@local``, the cluster key as password): a member or router with ``--auth``."""
    global _INTERNAL_KEY
    _INTERNAL_KEY = key


_INTERNAL_TLS: Any = None


def set_internal_tls(tls: Any) -> None:
    """Dial every set from now on with TLS (``raft.tls.TLSSettings``), presenting this
    process's certificate."""
    global _INTERNAL_TLS
    _INTERNAL_TLS = tls


_LINKS: CommandLinks | None = None


def set_link_key(key: bytes | None) -> None:
    """Run commands over command links, proving ``key`` (the cluster key file), from now on;
    None: gRPC only. Links stay off while internal TLS is on (they are plain TCP)."""
    global _LINKS
    if (_LINKS.key if _LINKS is not None else None) == key:
        return  # (several apps in one process, as in tests: keep the links they share)
    old, _LINKS = _LINKS, (CommandLinks(key) if key is not None else None)
    if old is not None:
        old.close()


def _links() -> CommandLinks | None:
    return _LINKS if _INTERNAL_TLS is None else None


def link_address(advertised: str, reached_at: Address) -> str:
    """Where to dial a member's command link: the address its ``hello`` gave, with a wildcard
    host (a member listening on every interface) replaced by the host we reach it at."""
    host, _, port = advertised.rpartition(":")
    if host.strip("[]") in ("", "0.0.0.0", "::"):
        return format_address((reached_at[0], int(port)))
    return advertised


def parse_connection_string(text: str) -> tuple[str | None, list[str]]:
    """``"name/h1:p1,h2:p2"`` -> (``"name"``, hosts); a bare host list has no set name."""
    name, sep, hosts = text.partition("/")
    if not sep:
        name, hosts = "", text
    members = [h.strip() for h in hosts.split(",") if h.strip()]
    if not members:
        raise ValueError(f"connection string {text!r} names no host")
    return (name or None), members


def connection_string(name: str | None, hosts: list[str]) -> str:
    return (f"{name}/" if name else "") + ",".join(hosts)


class RemoteSet:
    """A replica set reached through its connection string (see module docstring)."""

    def __init__(self, conn: str, *, server_selection_timeout_ms: int = 15000,
                 socket_timeout_ms: int = 60000) -> None:
        self.conn = conn
        self.name, self.hosts = parse_connection_string(conn)
        options: dict[str, Any] = {"serverSelectionTimeoutMS": server_selection_timeout_ms,
                                   "socketTimeoutMS": socket_timeout_ms,
                                   "heartbeatFrequencyMS": 2000,
                                   "retryWrites": False}
        if self.name:
            options["replicaSet"] = self.name
        if _INTERNAL_TLS is not None:
            options.update(tls=True, tlsCAFile=_INTERNAL_TLS.ca_file,
                           tlsCertificateKeyFile=_INTERNAL_TLS.certificate_key_file)
        if _INTERNAL_KEY is not None:  # --auth: the cluster's own identity (the key file)
            options.update(username="__system", password=_INTERNAL_KEY.decode("ascii"),
                           authSource="local")
        self.client = MongoClient(self.hosts, **options)
        self._socket_timeout = socket_timeout_ms / 1000
        self._link_addresses: dict[Address, str] = {}
        """Each member's command link address, from its last ``hello``."""
        self.client.executor.topology.channels.on_cancel.append(self._abandon_link)

    def _abandon_link(self, server: Address) -> None:
        """The topology gave up on ``server`` (unreachable, or deposed): requests waiting on
        its link get AutoReconnect now, as those on its gRPC channel do."""
        links, address = _links(), self._link_addresses.get(server)
        if links is not None and address is not None:
            links.abandon(address)

    def _link_address(self, server: ServerDescription) -> str | None:
        """Where ``server``'s command link listens (its ``hello`` says; a wildcard host is
        the host we reach it at), or None without one."""
        if server.hello is None:  # a pinned server: what its last hello said
            return self._link_addresses.get(server.address)
        advertised = server.hello.get(LINK_FIELD)
        if not isinstance(advertised, str):
            self._link_addresses.pop(server.address, None)
            return None
        address = self._link_addresses[server.address] = link_address(advertised,
                                                                        server.address)
        return address

    def _send(self, server: ServerDescription, channel: Channel, db: str,
              document: Mapping[str, Any], timeout: float | None) -> dict[str, Any]:
        """``document`` to ``server``: over its command link when there is one, else gRPC."""
        links = _links()
        address = self._link_address(server) if links is not None else None
        link = links.get(address) if links is not None and address is not None else None
        if link is None:
            return channel.run(db, document, self.client.codec_options, timeout=timeout)
        codec = self.client.codec_options
        raw = link.run(db, encode_command(document, codec),
                       timeout if timeout is not None else self._socket_timeout)
        return decode_reply(raw, codec, server.address)

    def command(self, db: str, cmd: Mapping[str, Any], *, retry: Retry = "safe",
                read_preference: ServerMode = ReadPreference.PRIMARY,
                timeout: float | None = None) -> dict[str, Any]:
        """Run ``cmd`` on the primary (or as ``read_preference`` allows); the raw reply."""
        return self.run(db, cmd, retry=retry, read_preference=read_preference,
                        timeout=timeout)[0]

    def run(self, db: str, cmd: Mapping[str, Any], *, retry: Retry = "safe",
            read_preference: ServerMode = ReadPreference.PRIMARY, timeout: float | None = None,
            address: Address | None = None) -> tuple[dict[str, Any], Address | None]:
        """:meth:`command`, also saying which member answered; with ``address`` the command
        goes to that member only (a cursor's ``getMore``), never retried elsewhere."""
        executor = self.client.executor
        answered: list[Address] = []
        acting = acting_users()
        refused = [False]  # did the last attempt end with the server refusing to run it?

        def operation(server: ServerDescription, channel: Channel) -> dict[str, Any]:
            refused[0] = False
            document = dict(cmd)
            if _INTERNAL_KEY is not None and acting:  # who this call is made for (auditing)
                document[AUDIT_FIELD] = {"users": list(acting)}
            if read_preference.mode != ReadPreference.PRIMARY.mode:
                document["$readPreference"] = read_preference.document
            reply = self._send(server, channel, db, document, timeout)
            if isinstance(reply, dict):  # that set's own clock: meaningless to our caller
                reply.pop("operationTime", None)
            answered.append(server.address)
            code = reply.get("code") if not reply.get("ok") else None
            if code in NOT_PRIMARY_CODES and (retry == "safe" or (retry == "refused"
                                                                  and code in REFUSED_CODES)):
                refused[0] = True
                raise NotPrimaryError(str(reply.get("errmsg")), reply, server.address)
            return reply

        def may_retry() -> bool:
            # "refused": a network error leaves the outcome unknown (the command may have run)
            return address is None and (retry == "safe" or (retry == "refused" and refused[0]))

        try:
            reply = executor.run(operation, read_preference=read_preference,
                                 retryable=may_retry, address=address)
        except NotPrimaryError as exc:  # retries ran out: the last answer is the reply
            details = getattr(exc, "errors", None)
            if isinstance(details, Mapping):
                return dict(details), (answered[-1] if answered else None)
            raise
        return reply, (answered[-1] if answered else None)

    def close(self) -> None:
        self.client.close()


class RemoteSets:
    """One :class:`RemoteSet` per connection string, made on first use; thread-safe."""

    def __init__(self) -> None:
        self._sets: dict[str, RemoteSet] = {}
        self._lock = threading.Lock()

    def get(self, conn: str) -> RemoteSet:
        with self._lock:
            found = self._sets.get(conn)
            if found is None:
                found = self._sets[conn] = RemoteSet(conn)
            return found

    def close(self) -> None:
        with self._lock:
            sets, self._sets = list(self._sets.values()), {}
        for s in sets:
            s.close()
