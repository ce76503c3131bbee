"""What servers exist and what they are: background monitors (``hello``) and server selection.

One :class:`Monitor` thread per known server sends ``hello`` every ``heartbeat_frequency`` seconds
(immediately, rate-limited, when an operation is waiting for a suitable server or a server was
marked unknown). Replies become :class:`ServerDescription` values held by :class:`Topology`,
which learns the replica set's members from them (adding and removing monitors) and selects a
server by read preference and latency window, waiting up to ``server_selection_timeout``.

Routers (``hello`` says ``msg: "isdbgrid"``) make the topology *Sharded*, as pymongo treats a
seed list of mongos: without a ``replicaSet`` option, the first router seen fixes the type
(for good: it stays Sharded while every router is down), servers that are not routers are
dropped, and selection picks any known router within the latency window for reads and writes
alike (the read preference travels to the router as ``$readPreference``; it does not select).
With a ``replicaSet`` option a router is not a member of that set and is dropped.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from helogale.channel import Address, ChannelPool, format_address
from helogale.errors import InvalidOperation, PyMongoError, ServerSelectionTimeoutError
from helogale.read_preferences import ReadPreference, ServerMode
from helogale.uri import DEFAULT_PORT, parse_host

UNKNOWN = "Unknown"
STANDALONE = "Standalone"
MONGOS = "Mongos"
RS_PRIMARY = "RSPrimary"
RS_SECONDARY = "RSSecondary"
RS_ARBITER = "RSArbiter"
RS_OTHER = "RSOther"
RS_GHOST = "RSGhost"

MIN_HEARTBEAT_INTERVAL = 0.1
RTT_ALPHA = 0.2


def _address(text: str) -> Address:
    return parse_host(str(text), DEFAULT_PORT)


@dataclass(frozen=True)
class ServerDescription:
    """One server as its latest ``hello`` reply (or failure) describes it."""

    address: Address
    server_type: str = UNKNOWN
    round_trip_time: float | None = None
    set_name: str | None = None
    hosts: frozenset[Address] = frozenset()
    primary: Address | None = None
    me: Address | None = None
    tags: Mapping[str, Any] = field(default_factory=dict)
    election_id: Any = None
    set_version: int | None = None
    error: str | None = None
    hello: Mapping[str, Any] | None = None

    @classmethod
    def from_hello(cls, address: Address, reply: Mapping[str, Any], rtt: float) -> ServerDescription:
        if reply.get("msg") == "isdbgrid":
            server_type = MONGOS
        elif reply.get("setName") is not None:
            if reply.get("isWritablePrimary") or reply.get("ismaster"):
                server_type = RS_PRIMARY
            elif reply.get("hidden"):
                server_type = RS_OTHER
            elif reply.get("secondary"):
                server_type = RS_SECONDARY
            elif reply.get("arbiterOnly"):
                server_type = RS_ARBITER
            else:
                server_type = RS_OTHER
        elif reply.get("isreplicaset"):
            server_type = RS_GHOST
        else:
            server_type = STANDALONE
        hosts = [
            *reply.get("hosts", ()),
            *reply.get("passives", ()),
            *reply.get("arbiters", ()),
        ]
        primary = reply.get("primary")
        me = reply.get("me")
        return cls(
            address=address,
            server_type=server_type,
            round_trip_time=rtt,
            set_name=reply.get("setName"),
            hosts=frozenset(_address(h) for h in hosts),
            primary=_address(primary) if primary else None,
            me=_address(me) if me else None,
            tags=dict(reply.get("tags") or {}),
            election_id=reply.get("electionId"),
            set_version=reply.get("setVersion"),
            hello=dict(reply),
        )

    @property
    def is_known(self) -> bool:
        return self.server_type != UNKNOWN

    @property
    def is_writable(self) -> bool:
        return self.server_type in (RS_PRIMARY, STANDALONE, MONGOS)

    @property
    def is_secondary(self) -> bool:
        return self.server_type == RS_SECONDARY

    @property
    def is_readable(self) -> bool:
        return self.is_writable or self.is_secondary


class Monitor:
    """Background ``hello`` loop for one server."""

    def __init__(self, topology: Topology, address: Address) -> None:
        self._topology = topology
        self.address = address
        self._wake = threading.Event()
        self._stopped = threading.Event()
        self._thread = threading.Thread(
            target=self._loop, name=f"helogale-monitor-{format_address(address)}", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def request_check(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stopped.set()
        self._wake.set()

    def join(self, timeout: float | None = None) -> None:
        if self._thread is not threading.current_thread() and self._thread.is_alive():
            self._thread.join(timeout)

    def _loop(self) -> None:
        topology = self._topology
        while not self._stopped.is_set():
            self._check()
            self._wake.wait(topology.heartbeat_frequency)
            if self._stopped.is_set():
                return
            self._wake.clear()
            # rate limit: at most one check per MIN_HEARTBEAT_INTERVAL even when asked more often
            self._stopped.wait(MIN_HEARTBEAT_INTERVAL)

    def _check(self) -> None:
        topology = self._topology
        start = time.monotonic()
        try:
            channel = topology.channels.get(self.address)
            reply = channel.run("admin", {"hello": 1}, timeout=topology.connect_timeout)
        except PyMongoError as exc:
            if not self._stopped.is_set():
                topology.on_check_failed(self.address, exc)
            return
        if self._stopped.is_set():
            return
        if not reply.get("ok"):
            topology.on_check_failed(self.address, PyMongoError(str(reply.get("errmsg"))))
            return
        topology.on_hello(self.address, reply, time.monotonic() - start)


class Topology:
    """The client's view of the deployment, kept current by monitors; thread-safe."""

    def __init__(
        self,
        seeds: list[Address],
        channels: ChannelPool,
        *,
        replica_set_name: str | None = None,
        direct_connection: bool = False,
        heartbeat_frequency: float = 10.0,
        server_selection_timeout: float = 30.0,
        local_threshold: float = 0.015,
        connect_timeout: float = 10.0,
    ) -> None:
        if direct_connection and len(seeds) != 1:
            raise InvalidOperation("directConnection=true needs exactly one host")
        self.seeds = list(dict.fromkeys(seeds))
        self.channels = channels
        self.replica_set_name = replica_set_name
        self.direct = direct_connection
        self.heartbeat_frequency = heartbeat_frequency
        self.server_selection_timeout = server_selection_timeout
        self.local_threshold = local_threshold
        self.connect_timeout = connect_timeout
        self._cond = threading.Condition()
        self._servers: dict[Address, ServerDescription] = {a: ServerDescription(a) for a in self.seeds}
        self._monitors: dict[Address, Monitor] = {}
        self._max_election: tuple[Any, Any] | None = None
        self._sharded = False  # a router was seen (see module docstring)
        self._deposed: list[Address] = []
        self._retired: list[Monitor] = []
        self._opened = False
        self._closed = False

    # --- lifecycle ------------------------------------------------------------------------
    def open(self) -> None:
        with self._cond:
            if self._closed:
                raise InvalidOperation("Cannot use MongoClient after close")
            if self._opened:
                return
            self._opened = True
            for address in self._servers:
                self._start_monitor_locked(address)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            monitors, self._monitors = list(self._monitors.values()), {}
            monitors += self._retired
            self._retired = []
            self._cond.notify_all()
        for monitor in monitors:
            monitor.stop()
        for monitor in monitors:
            monitor.join(5.0)

    def _start_monitor_locked(self, address: Address) -> None:
        if address in self._monitors or self._closed:
            return
        monitor = Monitor(self, address)
        self._monitors[address] = monitor
        monitor.start()

    def _remove_server_locked(self, address: Address) -> None:
        self._servers.pop(address, None)
        monitor = self._monitors.pop(address, None)
        if monitor is not None:
            monitor.stop()
            self._retired.append(monitor)  # joined by close()

    # --- monitor callbacks -----------------------------------------------------------------
    def on_hello(self, address: Address, reply: Mapping[str, Any], rtt: float) -> None:
        with self._cond:
            old = self._servers.get(address)
            if old is None or self._closed:
                return
            if old.round_trip_time is not None:
                rtt = RTT_ALPHA * rtt + (1 - RTT_ALPHA) * old.round_trip_time
            desc = ServerDescription.from_hello(address, reply, rtt)
            self._update_locked(desc)
            self._cond.notify_all()
            deposed, self._deposed = self._deposed, []
        for other in deposed:
            self.channels.cancel_in_flight(other)  # writes waiting on a deposed primary

    def on_check_failed(self, address: Address, error: BaseException) -> None:
        with self._cond:
            if address not in self._servers or self._closed:
                return
            self._servers[address] = ServerDescription(address, error=str(error))
            self._request_check_all_locked()
            self._cond.notify_all()
        # requests waiting on a server that stopped answering would hang: hand them to the
        # retry policy instead
        self.channels.cancel_in_flight(address)

    def _update_locked(self, desc: ServerDescription) -> None:
        address = desc.address
        if self.direct:
            self._servers[address] = desc
            return
        if desc.server_type == MONGOS:
            if self.replica_set_name is not None:
                self._remove_server_locked(address)  # not a member of the named set
                return
            if not self._sharded:
                self._sharded = True
                for other, other_desc in list(self._servers.items()):
                    if other_desc.is_known and other_desc.server_type != MONGOS:
                        self._remove_server_locked(other)
        elif self._sharded and desc.is_known:
            self._remove_server_locked(address)  # a member or standalone among routers
            return
        if desc.server_type in (RS_PRIMARY, RS_SECONDARY, RS_ARBITER, RS_OTHER):
            if self.replica_set_name is None:
                self.replica_set_name = desc.set_name
            elif desc.set_name != self.replica_set_name:
                self._remove_server_locked(address)  # a member of some other set
                return
        if desc.server_type == RS_PRIMARY and desc.election_id is not None:
            key = (desc.set_version or 0, desc.election_id)
            if self._max_election is not None and _key_less(key, self._max_election):
                # a stale primary (deposed, not yet aware): treat it as unknown
                self._servers[address] = ServerDescription(address, error="stale primary")
                return
            self._max_election = key
        self._servers[address] = desc
        if desc.server_type == RS_PRIMARY:
            for other, other_desc in list(self._servers.items()):
                if other != address and other_desc.server_type == RS_PRIMARY:
                    self._servers[other] = ServerDescription(other, error="another primary elected")
                    self._deposed.append(other)
            if desc.hosts:
                for host in desc.hosts:
                    if host not in self._servers:
                        self._servers[host] = ServerDescription(host)
                        self._start_monitor_locked(host)
                for other in list(self._servers):
                    if other not in desc.hosts:
                        self._remove_server_locked(other)
        elif desc.server_type in (RS_SECONDARY, RS_ARBITER, RS_OTHER):
            learned = set(desc.hosts)
            if desc.primary is not None:
                learned.add(desc.primary)
            for host in learned:
                if host not in self._servers:
                    self._servers[host] = ServerDescription(host)
                    self._start_monitor_locked(host)

    # --- failures seen by operations --------------------------------------------------------
    def mark_unknown(self, address: Address, error: BaseException) -> None:
        """An operation on ``address`` failed (network / not primary): forget what it was and
        re-check every server now."""
        with self._cond:
            if address in self._servers:
                self._servers[address] = ServerDescription(address, error=str(error))
            self._request_check_all_locked()
            self._cond.notify_all()

    def request_check_all(self) -> None:
        with self._cond:
            self._request_check_all_locked()

    def _request_check_all_locked(self) -> None:
        for monitor in self._monitors.values():
            monitor.request_check()

    # --- selection ----------------------------------------------------------------------------
    @property
    def topology_type(self) -> str:
        with self._cond:
            return self._topology_type_locked()

    def _topology_type_locked(self) -> str:
        servers = list(self._servers.values())
        if self.direct:
            return "Single"
        if self._sharded:
            return "Sharded"
        if any(s.server_type == STANDALONE for s in servers) and len(servers) == 1:
            return "Single"
        if self.replica_set_name is not None or any(s.set_name for s in servers):
            if any(s.server_type == RS_PRIMARY for s in servers):
                return "ReplicaSetWithPrimary"
            return "ReplicaSetNoPrimary"
        return "Unknown"

    def _candidates_locked(self, read_preference: ServerMode) -> list[ServerDescription]:
        servers = [s for s in self._servers.values() if s.is_known]
        kind = self._topology_type_locked()
        if kind == "Single":
            return servers
        if kind == "Sharded":
            return [s for s in servers if s.server_type == MONGOS]
        return read_preference.select(servers)

    def select_server(
        self,
        read_preference: ServerMode = ReadPreference.PRIMARY,
        timeout: float | None = None,
        selector: Callable[[list[ServerDescription]], list[ServerDescription]] | None = None,
    ) -> ServerDescription:
        """A server for ``read_preference`` (the primary by default), waiting for one to appear."""
        self.channels.check_process()  # before taking a lock a parent's thread may have held
        self.open()
        wait = self.server_selection_timeout if timeout is None else timeout
        deadline = time.monotonic() + wait
        with self._cond:
            while True:
                if self._closed:
                    raise InvalidOperation("Cannot use MongoClient after close")
                candidates = self._candidates_locked(read_preference)
                if selector is not None:
                    candidates = selector(candidates)
                if candidates:
                    return self._within_latency(candidates)
                self._request_check_all_locked()
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise ServerSelectionTimeoutError(
                        f"No server for {read_preference.mongos_mode} within {wait:.1f}s; "
                        f"topology: {self._summary_locked()}"
                    )
                self._cond.wait(min(remaining, 1.0))

    def _within_latency(self, candidates: list[ServerDescription]) -> ServerDescription:
        fastest = min((s.round_trip_time or 0.0) for s in candidates)
        window = [s for s in candidates if (s.round_trip_time or 0.0) <= fastest + self.local_threshold]
        return random.choice(window)

    def _summary_locked(self) -> str:
        parts = []
        for desc in self._servers.values():
            part = f"{format_address(desc.address)} {desc.server_type}"
            if desc.error:
                part += f" ({desc.error})"
            parts.append(part)
        return f"{self._topology_type_locked()} [" + ", ".join(parts) + "]"

    # --- views ----------------------------------------------------------------------------------
    @property
    def is_sharded(self) -> bool:
        """Whether the seeds turned out to be routers (the topology type is Sharded)."""
        with self._cond:
            return self._sharded and not self.direct

    def servers(self) -> list[ServerDescription]:
        with self._cond:
            return list(self._servers.values())

    def primary(self) -> Address | None:
        with self._cond:
            for desc in self._servers.values():
                if desc.server_type == RS_PRIMARY:
                    return desc.address
            return None

    def description(self) -> str:
        with self._cond:
            return self._summary_locked()


def _key_less(a: tuple[Any, Any], b: tuple[Any, Any]) -> bool:
    try:
        return bool(a < b)
    except TypeError:
        return False
