"""Settings of a member process, from command-line flags and an optional TOML config file.

A member is described by ``ID=HOST:PORT[,wire=HOST:PORT][,priority=P][,raft=HOST:PORT]``: its
Raft id, the gRPC address clients and peers dial, optionally its MongoDB wire-protocol address,
its election priority (0: never primary) and the address this process should dial for Raft
traffic to it (a fault-injecting proxy in chaos tests). Every member of a set starts with the same list, so each knows
every address ``hello`` must report. A config file holds the same keys as the long flags, with
dashes as underscores (``replset``, ``member_id``, ``peers = ["2=127.0.0.1:7002", ...]``).
"""

from __future__ import annotations

import argparse
import tomllib
from dataclasses import dataclass, field
from typing import Any

from raft.tls import TLSConfigError, TLSSettings

DEFAULT_ELECTION_TIMEOUT_MS = 400
DEFAULT_HEARTBEAT_MS = 75


@dataclass(frozen=True)
class MemberSpec:
    """One member of the replica set as configured."""

    id: int
    host: str
    wire_host: str | None = None
    priority: float = 1.0
    raft_host: str | None = None
    """Where THIS process dials the member for Raft traffic (its Raft listen address or a
    chaos proxy in front of it); default: the gRPC host with port + 1."""

    @property
    def raft_address(self) -> str:
        return self.raft_host or default_raft_address(self.host)

    def to_doc(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"_id": self.id, "host": self.host, "priority": self.priority}
        if self.wire_host:
            doc["wireHost"] = self.wire_host
        doc["raftHost"] = self.raft_address
        return doc

    @staticmethod
    def from_doc(doc: dict[str, Any]) -> MemberSpec:
        return MemberSpec(int(doc["_id"]), str(doc["host"]), doc.get("wireHost"),
                          float(doc.get("priority", 1.0)), doc.get("raftHost"))


def default_raft_address(host: str) -> str:
    """The Raft address a member listens on when none is given: gRPC port + 1."""
    name, _, port = host.rpartition(":")
    return f"{name}:{int(port) + 1}"


def parse_member(text: str) -> MemberSpec:
    """``2=127.0.0.1:7002,wire=127.0.0.1:27018,priority=0,raft=127.0.0.1:9000`` -> spec."""
    head, *opts = [p.strip() for p in text.split(",")]
    ident, sep, host = head.partition("=")
    if not sep or not ident.strip().isdigit() or ":" not in host:
        raise ValueError(f"member must look like ID=HOST:PORT, got {text!r}")
    wire: str | None = None
    raft: str | None = None
    priority = 1.0
    for opt in opts:
        key, _, value = opt.partition("=")
        if key == "wire":
            wire = value
        elif key == "raft":
            raft = value
        elif key == "priority":
            priority = float(value)
        else:
            raise ValueError(f"unknown member option {key!r} in {text!r}")
    return MemberSpec(int(ident), host.strip(), wire, priority, raft)


@dataclass
class NodeConfig:
    """Everything a member process needs to start."""

    member_id: int
    listen: str
    replset: str = "rs0"
    advertise: str | None = None
    raft_listen: str | None = None
    peers: list[MemberSpec] = field(default_factory=list)
    data_dir: str | None = None
    election_timeout_ms: int = DEFAULT_ELECTION_TIMEOUT_MS
    heartbeat_ms: int = DEFAULT_HEARTBEAT_MS
    priority: float = 1.0
    wire_port: int | None = None
    wire_listen_host: str = "127.0.0.1"
    advertise_wire: str | None = None
    join: bool = False
    log_level: str = "INFO"
    cursor_timeout_s: float = 600.0
    snapshot_every: int = 50000
    keep_entries: int = 5000
    ttl_monitor_secs: float = 60.0
    """Seconds between the primary's passes deleting documents expired by TTL indexes."""
    balancer_interval_secs: float = 10.0
    """On config servers: seconds between balancer rounds (``balancerStart`` starts one now)."""
    enable_test_commands: bool = False
    """Serve test-only commands (``configureFailPoint``)."""
    cluster_role: str | None = None
    """``"configsvr"`` (holds a sharded cluster's metadata), ``"shardsvr"`` (a shard), or None
    (a plain replica set)."""
    session_timeout_minutes: float = 30.0
    """Logical sessions idle this long lose their retryable-write records (hello reports it)."""
    session_refresh_secs: float = 300.0
    """Seconds between the primary's passes pruning idle sessions' records."""
    max_cursors: int = 4096
    """Open server cursors on this member (each pins a store reader slot)."""
    max_cursors_per_connection: int = 1024
    """Open server cursors per client connection (a gRPC client shares one among threads)."""
    grpc_workers: int = 128
    """gRPC server threads; command streams may hold all but 32 (kept for unary calls)."""
    wire_max_connections: int = 1000
    """Open wire-protocol connections; more are closed as they arrive (a thread each)."""
    wire_stall_timeout_secs: float = 30.0
    """A wire peer that stops mid-message (or stops reading a reply) this long is dropped."""
    wire_idle_timeout_secs: float = 0.0
    """Close wire connections idle this long between messages (0: never, as MongoDB)."""
    wire_max_buffered_bytes: int = 256 * 1024 * 1024
    """Bytes of wire messages being received and run, across connections."""
    max_blocking_sort_bytes: int = 100 * 1024 * 1024
    """Memory a sort without an index (find, aggregate ``$sort``) or a ``$group`` may hold."""
    engine_map_size: int | None = None
    """Bytes the engine's LMDB file may grow to (None: 64 GiB). A member whose store fills
    up exits (see docs/replication.md, Faults)."""
    keyfile: str | None = None
    """Cluster key file (MongoDB's keyFile format): members authenticate each other's Raft
    streams with it. None: the Raft port is open to anyone who can reach it."""
    metrics_port: int | None = field(default_factory=lambda: _env_metrics_port())
    """Serve Prometheus metrics on this port (None: not at all; 0: any free port). Default
    from ``HELOGALE_METRICS_PORT``."""
    metrics_host: str = field(default_factory=lambda: _env_metrics_host())
    """Host the metrics endpoint listens on (default ``HELOGALE_METRICS_HOST`` or 127.0.0.1)."""
    slowms: int = 100
    """Operations slower than this are logged with their plan summary (MongoDB's slowms)."""
    tls_mode: str = "disabled"
    """``--tlsMode``: disabled, preferTLS or requireTLS (``raft.tls``) on every port."""
    tls_certificate_key_file: str | None = None
    tls_ca_file: str | None = None
    tls_require_client_certificate: bool = False
    auth: bool = False
    """``--auth``: every command but the handshake and authentication needs an authenticated
    user holding a role that allows it (docs/security.md)."""
    unsafe_ack_before_commit: bool = False
    """TEST ONLY: acknowledge writes as soon as they are proposed, before they commit. This
    deliberately breaks durability so the chaos suite can prove it catches lost writes."""

    @property
    def tls(self) -> TLSSettings:
        """The TLS settings (raises TLSConfigError when they cannot be used)."""
        return TLSSettings(self.tls_mode, self.tls_certificate_key_file, self.tls_ca_file,
                           self.tls_require_client_certificate)

    @property
    def advertised(self) -> str:
        return self.advertise or self.listen

    @property
    def raft_listen_address(self) -> str:
        return self.raft_listen or default_raft_address(self.listen)

    @property
    def advertised_wire(self) -> str | None:
        if self.advertise_wire:
            return self.advertise_wire
        if self.wire_port is not None:
            host = self.advertised.rsplit(":", 1)[0]
            return f"{host}:{self.wire_port}"
        return None

    def self_spec(self) -> MemberSpec:
        return MemberSpec(self.member_id, self.advertised, self.advertised_wire, self.priority)

    def members(self) -> list[MemberSpec]:
        """All members, this one included, ordered by id."""
        others = [p for p in self.peers if p.id != self.member_id]
        return sorted([self.self_spec(), *others], key=lambda m: m.id)


def _env_metrics_port() -> int | None:
    from node.ops.metrics import default_port

    return default_port()


def _env_metrics_host() -> str:
    from node.ops.metrics import default_host

    return default_host()


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="helogale-node", description="Helogale replica-set member")
    p.add_argument("--config", help="TOML file with the same keys as the long flags")
    p.add_argument("--replset", help="replica set name (default rs0)")
    p.add_argument("--id", dest="member_id", type=int, help="this member's id (positive)")
    p.add_argument("--listen", help="gRPC listen address HOST:PORT")
    p.add_argument("--advertise", help="gRPC address others dial (default: --listen)")
    p.add_argument("--raft-listen", help="Raft transport listen address (default: port + 1)")
    p.add_argument("--peer", dest="peers", action="append",
                   help="another member: ID=HOST:PORT[,wire=HOST:PORT][,priority=P]; repeat")
    p.add_argument("--data", dest="data_dir", help="data directory (default: in memory)")
    p.add_argument("--election-timeout-ms", type=int)
    p.add_argument("--heartbeat-ms", type=int)
    p.add_argument("--priority", type=float, help="election priority; 0 never primary")
    p.add_argument("--wire-port", type=int, help="also serve the MongoDB wire protocol here")
    p.add_argument("--wire-host", dest="wire_listen_host", help="wire listen host")
    p.add_argument("--advertise-wire", help="wire address reported by hello")
    p.add_argument("--join", action="store_true", default=None,
                   help="start empty and wait to be added by replSetReconfig")
    p.add_argument("--snapshot-every", type=int,
                   help="take a state snapshot every N applied entries (default 50000)")
    p.add_argument("--keep-entries", type=int,
                   help="log entries kept behind a snapshot for slow members (default 5000)")
    p.add_argument("--ttl-monitor-secs", type=float,
                   help="seconds between passes deleting TTL-expired documents (default 60)")
    p.add_argument("--balancer-interval-secs", type=float,
                   help="config servers: seconds between balancer rounds (default 10)")
    p.add_argument("--enable-test-commands", action="store_true", default=None,
                   help=argparse.SUPPRESS)  # TEST ONLY: configureFailPoint
    role = p.add_mutually_exclusive_group()
    role.add_argument("--configsvr", dest="cluster_role", action="store_const",
                      const="configsvr", help="a config server of a sharded cluster")
    role.add_argument("--shardsvr", dest="cluster_role", action="store_const",
                      const="shardsvr", help="a shard of a sharded cluster")
    p.add_argument("--session-timeout-minutes", type=float,
                   help="logicalSessionTimeoutMinutes: idle sessions' retryable-write records "
                        "are dropped after this (default 30)")
    p.add_argument("--session-refresh-secs", type=float,
                   help="seconds between passes pruning idle sessions (default 300)")
    p.add_argument("--max-cursors", type=int,
                   help="open server cursors on this member (default 4096)")
    p.add_argument("--max-cursors-per-connection", type=int,
                   help="open server cursors per client connection (default 1024)")
    p.add_argument("--grpc-workers", type=int,
                   help="gRPC server threads; open command streams may use all but 32 "
                        "(default 128)")
    p.add_argument("--wire-max-connections", type=int,
                   help="open wire-protocol connections; more are refused (default 1000)")
    p.add_argument("--wire-stall-timeout-secs", type=float,
                   help="drop a wire peer stalled mid-message this long (default 30)")
    p.add_argument("--wire-idle-timeout-secs", type=float,
                   help="close wire connections idle this long (default 0: never)")
    p.add_argument("--wire-max-buffered-bytes", type=int,
                   help="bytes of wire messages in flight across connections (default 256 MiB)")
    p.add_argument("--max-blocking-sort-bytes", type=int,
                   help="memory an unindexed sort or a $group may use (default 104857600)")
    p.add_argument("--engine-map-size", type=int,
                   help="bytes the engine's LMDB file may grow to (default 64 GiB); a member "
                        "whose store fills up exits")
    p.add_argument("--keyfile", help="cluster key file shared by every member (base64 "
                   "characters, 6-1024 of them, mode 600); without it the Raft port is open")
    p.add_argument("--tlsMode", dest="tls_mode", choices=["disabled", "preferTLS", "requireTLS"],
                   help="TLS on the gRPC, Raft and wire ports (default disabled)")
    p.add_argument("--tlsCertificateKeyFile", dest="tls_certificate_key_file",
                   help="PEM file with this member's certificate and private key")
    p.add_argument("--tlsCAFile", dest="tls_ca_file",
                   help="PEM file of the CA that signs the cluster's certificates")
    p.add_argument("--tlsRequireClientCertificate", dest="tls_require_client_certificate",
                   action="store_true", default=None,
                   help="client ports too refuse clients without a certificate the CA signed")
    p.add_argument("--auth", action="store_true", default=None,
                   help="require users to authenticate (SCRAM-SHA-256) and hold roles")
    p.add_argument("--log-level", help="DEBUG, INFO, WARNING, ERROR")
    p.add_argument("--metrics-port", type=int,
                   help="serve Prometheus metrics here (default $HELOGALE_METRICS_PORT)")
    p.add_argument("--metrics-host", help="metrics listen host (default 127.0.0.1)")
    p.add_argument("--slowms", type=int, help="log operations slower than this (default 100)")
    p.add_argument("--unsafe-ack-before-commit", action="store_true", default=None,
                   help=argparse.SUPPRESS)  # TEST ONLY: breaks durability on purpose
    return p


def config_from_args(argv: list[str] | None = None) -> NodeConfig:
    """Parse flags (and the config file they name); flags win over the file."""
    parser = build_parser()
    ns = parser.parse_args(argv)
    values: dict[str, Any] = {}
    if ns.config:
        with open(ns.config, "rb") as fh:
            values.update(tomllib.load(fh))
    for key, value in vars(ns).items():
        if key != "config" and value is not None:
            values[key] = value
    if "member_id" not in values or "listen" not in values:
        parser.error("--id and --listen are required (flags or config file)")
    values["peers"] = [p if isinstance(p, MemberSpec) else parse_member(p)
                       for p in values.get("peers", [])]
    known = set(NodeConfig.__dataclass_fields__)
    unknown = set(values) - known
    if unknown:
        parser.error(f"unknown settings: {', '.join(sorted(unknown))}")
    config = NodeConfig(**values)
    try:
        config.tls  # noqa: B018 - validates the TLS options now, with a clear message
    except TLSConfigError as exc:
        parser.error(str(exc))
    return config
