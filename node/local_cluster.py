"""Start a replica set of real member processes on loopback, for ``helogale up``
(:mod:`node.up`), tests, the chaos harness and benchmarks.

>>> with LocalCluster(members=3) as cluster:      # doctest: +SKIP
...     print(cluster.uri)                         # helogale://127.0.0.1:P1,.../?replicaSet=rs0
...     cluster.kill(cluster.primary_index())      # SIGKILL the primary
...     cluster.wait_for_primary()

Synchronisation is always by condition: readiness and elections are observed by polling each
member's ``hello`` over gRPC until it answers as wanted or a deadline passes; nothing waits a
fixed time hoping something happened.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import bson
import grpc
from bson.codec_options import CodecOptions

from proto import helogale_pb2, helogale_pb2_grpc
from raft.auth import write_keyfile

CODEC = CodecOptions(document_class=dict, tz_aware=True)
LOOPBACK = "127.0.0.1"
RETRYABLE_CODES = frozenset({10107, 11602, 13435, 189, 91})
"""Replies meaning "the primary changed or went away": asking the new primary is safe."""
CHANNEL_OPTIONS = [
    ("grpc.initial_reconnect_backoff_ms", 50),
    ("grpc.min_reconnect_backoff_ms", 50),
    ("grpc.max_reconnect_backoff_ms", 500),
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
    ("grpc.max_send_message_length", 64 * 1024 * 1024),
]


METRICS_OFFSET = 1000
"""With a fixed base port, a process serves metrics at its gRPC port + 1000."""


def free_ports(n: int) -> list[int]:
    """``n`` distinct TCP ports that were free a moment ago on loopback."""
    socks: list[socket.socket] = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind((LOOPBACK, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def wait_until(cond: Callable[[], Any], timeout: float, what: str = "a condition", interval: float = 0.02
               ) -> Any:
    """Poll ``cond`` until it returns something truthy; TimeoutError after ``timeout``."""
    deadline = time.monotonic() + timeout
    delay = interval
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout:.1f}s waiting for {what}")
        time.sleep(delay)
        delay = min(delay * 1.5, 0.2)


@dataclass
class MemberProcess:
    """One member: its id, addresses, data dir, log file and (if running) process."""

    member_id: int
    port: int
    raft_port: int
    wire_port: int | None
    data_dir: str
    priority: float = 1.0
    metrics_port: int | None = None
    proc: subprocess.Popen[bytes] | None = None
    paused: bool = False
    channel: grpc.Channel | None = field(default=None, repr=False)

    @property
    def address(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    @property
    def raft_address(self) -> str:
        return f"{LOOPBACK}:{self.raft_port}"

    @property
    def wire_address(self) -> str | None:
        return f"{LOOPBACK}:{self.wire_port}" if self.wire_port else None

    def spec(self, raft_address: str | None = None) -> str:
        s = f"{self.member_id}={self.address},raft={raft_address or self.raft_address}"
        if self.wire_port:
            s += f",wire={self.wire_address}"
        if self.priority != 1.0:
            s += f",priority={self.priority:g}"
        return s

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


class LocalCluster:
    """N member processes on loopback with data directories under ``data_dir``."""

    def __init__(
        self,
        members: int = 3,
        *,
        data_dir: str | None = None,
        base_port: int | None = None,
        replset: str = "rs0",
        wire: bool = False,
        priorities: list[float] | None = None,
        election_timeout_ms: int | None = None,
        heartbeat_ms: int | None = None,
        log_level: str = "INFO",
        extra_args: list[str] | None = None,
        link_address: Callable[[int, int], str | None] | None = None,
        member_args: Mapping[int, list[str]] | None = None,
        own_process_group: bool = False,
        metrics: bool = False,
        tls: Any = None,
    ) -> None:
        """``tls``: a :class:`node.security.certs.PKI`: every member with ``--tlsMode
        requireTLS`` and its certificates, and the URIs and this harness's calls with TLS.
        ``link_address(i, j)``: where member index i dials member index j for Raft traffic
        (e.g. a chaos proxy); None or returning None means j's own address. ``member_args``:
        extra flags for some members only (by index). ``own_process_group``: each member in a
        process group of its own, so a Ctrl-C at the terminal reaches only the caller, which
        stops the members itself (``helogale up``). ``metrics``: each member serves Prometheus
        metrics (``--metrics-port``; with ``base_port``, at its gRPC port + 1000)."""
        self.own_process_group = own_process_group
        self.metrics = metrics
        self.tls = tls
        self.userinfo = ""
        """``user:password@`` the URIs carry (``helogale up --auth``)."""
        self.replset = replset
        self._own_dir = data_dir is None
        self.data_dir = data_dir or tempfile.mkdtemp(prefix="helogale-cluster-")
        self.wire = wire
        self.election_timeout_ms = election_timeout_ms
        self.heartbeat_ms = heartbeat_ms
        self.log_level = log_level
        self.extra_args = list(extra_args or [])
        self.link_address = link_address
        self.member_args = {i: list(a) for i, a in (member_args or {}).items()}
        self.keyfile = os.path.join(self.data_dir, "keyfile")
        """The cluster key every member gets (``--keyfile``): made when the first member
        starts, kept with the data."""
        per = 3 if wire else 2
        if base_port is None:
            ports = free_ports(members * (per + (1 if metrics else 0)))
            metric_ports = ports[members * per:]
        else:
            ports = list(range(base_port, base_port + members * per))
            metric_ports = [base_port + METRICS_OFFSET + i for i in range(members)]
        self.members: list[MemberProcess] = []
        for i in range(members):
            prio = priorities[i] if priorities else 1.0
            self.members.append(MemberProcess(
                member_id=i + 1,
                port=ports[i],
                raft_port=ports[members + i],
                wire_port=ports[2 * members + i] if wire else None,
                data_dir=os.path.join(self.data_dir, f"member{i + 1}"),
                priority=prio,
                metrics_port=metric_ports[i] if metrics else None,
            ))
        self._initial = list(range(members))

    # --- addresses --------------------------------------------------------------------------
    @property
    def addresses(self) -> list[str]:
        return [m.address for m in self.members]

    @property
    def uri(self) -> str:
        hosts = ",".join(m.address for m in self.members)
        return f"helogale://{self.userinfo}{hosts}/?replicaSet={self.replset}{self.tls_query}"

    @property
    def tls_query(self) -> str:
        """The URI options a client needs for this cluster's TLS ("" without TLS)."""
        auth = "&authSource=admin" if self.userinfo else ""
        tls = f"&tls=true&tlsCAFile={self.tls.ca_file}" if self.tls is not None else ""
        return auth + tls

    @property
    def wire_uri(self) -> str | None:
        if not self.wire:
            return None
        hosts = ",".join(m.wire_address or "" for m in self.members)
        return f"mongodb://{self.userinfo}{hosts}/?replicaSet={self.replset}{self.tls_query}"

    # --- lifecycle --------------------------------------------------------------------------
    def _argv(self, m: MemberProcess, join: bool, peers: list[MemberProcess]) -> list[str]:
        argv = [sys.executable, "-m", "node", "--replset", self.replset,
                "--id", str(m.member_id), "--listen", m.address, "--data", m.data_dir,
                "--raft-listen", m.raft_address, "--keyfile", self.keyfile,
                "--log-level", self.log_level]
        if m.priority != 1.0:
            argv += ["--priority", f"{m.priority:g}"]
        if m.wire_port:
            argv += ["--wire-port", str(m.wire_port)]
        if m.metrics_port:
            argv += ["--metrics-port", str(m.metrics_port)]
        if self.tls is not None:
            argv += ["--tlsMode", "requireTLS", "--tlsCertificateKeyFile", self.tls.server_file,
                     "--tlsCAFile", self.tls.ca_file]
        if self.election_timeout_ms:
            argv += ["--election-timeout-ms", str(self.election_timeout_ms)]
        if self.heartbeat_ms:
            argv += ["--heartbeat-ms", str(self.heartbeat_ms)]
        i = self.members.index(m)
        for p in peers:
            if p is not m:
                link = self.link_address(i, self.members.index(p)) if self.link_address else None
                argv += ["--peer", p.spec(link)]
        if join:
            argv.append("--join")
        return argv + self.extra_args + self.member_args.get(i, [])

    def _spawn(self, i: int, join: bool = False) -> None:
        m = self.members[i]
        os.makedirs(m.data_dir, exist_ok=True)
        if not os.path.exists(self.keyfile):
            write_keyfile(self.keyfile)
        peers = [self.members[j] for j in self._initial] if not join else list(self.members)
        if m not in peers:
            peers = [*peers, m]
        log = open(os.path.join(self.data_dir, f"member{m.member_id}.log"), "ab")  # noqa: SIM115
        env = dict(os.environ)
        env["PYTHONUNBUFFERED"] = "1"
        env.pop("HELOGALE_METRICS_PORT", None)  # one port for every process: the harness
        # gives each its own (metrics=True) or none
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
        m.proc = subprocess.Popen(self._argv(m, join, peers), stdout=log, stderr=log,
                                  stdin=subprocess.DEVNULL, env=env,
                                  process_group=0 if self.own_process_group else None)
        log.close()
        m.paused = False

    def start(self, timeout: float = 30.0) -> LocalCluster:
        """Start every member and wait until one is primary (stopping them all if that
        fails: no process is left behind)."""
        try:
            for i in range(len(self.members)):
                self._spawn(i)
            self.wait_for_primary(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def __enter__(self) -> LocalCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM every member (resuming paused ones), wait, SIGKILL stragglers."""
        for m in self.members:
            if m.alive and m.paused:
                m.proc.send_signal(signal.SIGCONT)  # type: ignore[union-attr]
            if m.alive:
                m.proc.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
        deadline = time.monotonic() + timeout
        for m in self.members:
            if m.proc is not None:
                try:
                    m.proc.wait(max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    m.proc.kill()
                    m.proc.wait()
            self._close_channel(m)
        if self._own_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def kill(self, i: int) -> None:
        """SIGKILL member ``i`` (index into ``members``)."""
        m = self.members[i]
        if m.proc is not None and m.alive:
            m.proc.kill()
            m.proc.wait()
        self._close_channel(m)

    def terminate(self, i: int, timeout: float = 10.0) -> int:
        """SIGTERM member ``i`` and wait; returns its exit code."""
        m = self.members[i]
        assert m.proc is not None
        m.proc.send_signal(signal.SIGTERM)
        code = m.proc.wait(timeout)
        self._close_channel(m)
        return code

    def pause(self, i: int) -> None:
        m = self.members[i]
        if m.alive:
            m.proc.send_signal(signal.SIGSTOP)  # type: ignore[union-attr]
            m.paused = True

    def resume(self, i: int) -> None:
        m = self.members[i]
        if m.alive:
            m.proc.send_signal(signal.SIGCONT)  # type: ignore[union-attr]
            m.paused = False

    def restart(self, i: int, *, wipe: bool = False, join: bool = False) -> None:
        """(Re)start member ``i``, optionally with an emptied data directory."""
        if self.members[i].alive:
            self.kill(i)
        if wipe:
            shutil.rmtree(self.members[i].data_dir, ignore_errors=True)
        self._spawn(i, join=join)

    def add_member(self, priority: float = 1.0) -> int:
        """Start a new empty member waiting to be added (``--join``); returns its index."""
        port, rport, wport = free_ports(3)
        mid = max(m.member_id for m in self.members) + 1
        self.members.append(MemberProcess(
            member_id=mid, port=port, raft_port=rport, wire_port=wport if self.wire else None,
            data_dir=os.path.join(self.data_dir, f"member{mid}"), priority=priority))
        i = len(self.members) - 1
        self._spawn(i, join=True)
        return i

    # --- talking to members -------------------------------------------------------------------
    def _close_channel(self, m: MemberProcess) -> None:
        if m.channel is not None:
            m.channel.close()
            m.channel = None

    def command(self, i: int, cmd: Mapping[str, Any], db: str = "admin",
                timeout: float = 10.0) -> dict[str, Any]:
        """Run a command on member ``i`` over gRPC; raises grpc.RpcError if unreachable."""
        m = self.members[i]
        if m.channel is None:
            m.channel = self.grpc_channel(m.address)
        stub = helogale_pb2_grpc.CommandStub(m.channel)
        reply = stub.Run(helogale_pb2.CommandRequest(db=db, command=bson.encode(cmd)),
                         timeout=timeout, wait_for_ready=True)
        return bson.decode(reply.reply, codec_options=CODEC)

    def grpc_channel(self, address: str) -> grpc.Channel:
        """A channel to one of this cluster's gRPC ports (TLS, with a client certificate,
        when the cluster has TLS)."""
        if self.tls is None:
            return grpc.insecure_channel(address, options=CHANNEL_OPTIONS)
        from raft.tls import REQUIRE, TLSSettings

        settings = TLSSettings(REQUIRE, self.tls.client_file, self.tls.ca_file)
        return grpc.secure_channel(address, settings.grpc_channel_credentials(),
                                   options=CHANNEL_OPTIONS)

    def try_command(self, i: int, cmd: Mapping[str, Any], db: str = "admin",
                    timeout: float = 2.0) -> dict[str, Any] | None:
        """:meth:`command`, or None when the member is down, paused or unreachable."""
        m = self.members[i]
        if not m.alive or m.paused:
            return None
        try:
            return self.command(i, cmd, db, timeout)
        except (grpc.RpcError, ValueError):  # ValueError: channel closed by kill() meanwhile
            return None

    def primary_index(self) -> int | None:
        """Index of the member that says it is the writable primary right now, if any."""
        for i in range(len(self.members)):
            reply = self.try_command(i, {"hello": 1}, timeout=1.0)
            if reply and reply.get("isWritablePrimary"):
                return i
        return None

    def wait_for_primary(self, timeout: float = 30.0, exclude: int | None = None) -> int:
        """Block until some member (not ``exclude``) is primary; returns its index."""
        def found() -> int | None:
            p = self.primary_index()
            return None if p is None or p == exclude else p + 1
        return wait_until(found, timeout, "a primary") - 1

    def wait_ready(self, i: int, timeout: float = 30.0) -> None:
        """Block until member ``i`` answers ``ping``."""
        wait_until(lambda: self.try_command(i, {"ping": 1}), timeout, f"member {i} ready")

    def member_doc(self, i: int) -> dict[str, Any]:
        """Member ``i`` as a replica-set config document (for ``replSetReconfig``)."""
        m = self.members[i]
        doc: dict[str, Any] = {"_id": m.member_id, "host": m.address,
                               "raftHost": m.raft_address, "priority": m.priority}
        if m.wire_address:
            doc["wireHost"] = m.wire_address
        return doc

    def reconfig(self, member_indexes: list[int], timeout: float = 30.0) -> dict[str, Any]:
        """Send ``replSetReconfig`` with exactly these members to the primary (again, to the
        primary of the moment, when the one asked lost leadership meanwhile)."""
        deadline = time.monotonic() + timeout
        while True:
            p = self.wait_for_primary(max(1.0, deadline - time.monotonic()))
            current = self.command(p, {"replSetGetConfig": 1})["config"]
            cfg = {"_id": self.replset, "version": int(current.get("version", 1)) + 1,
                   "members": [self.member_doc(i) for i in member_indexes]}
            reply = self.command(p, {"replSetReconfig": cfg}, timeout=timeout)
            if reply.get("code") not in RETRYABLE_CODES or time.monotonic() >= deadline:
                return reply

    def member_status(self, i: int) -> dict[str, Any] | None:
        return self.try_command(i, {"replSetGetStatus": 1})
