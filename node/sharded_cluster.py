"""Start a sharded cluster of real processes on loopback: a config replica set, N shard
replica sets and R routers, for ``helogale up``, tests, chaos and benchmarks.

>>> with ShardedCluster(shards=2, routers=2) as cluster:     # doctest: +SKIP
...     print(cluster.uri)                 # helogale://127.0.0.1:P1,127.0.0.1:P2 (routers)
...     cluster.router_command(0, {"shardCollection": "db.c", "key": {"_id": 1}})

Each replica set is a :class:`~node.local_cluster.LocalCluster` (same harness, same
condition-based waits); routers are ``python -m router`` processes. Start-up spawns every
member at once and then waits, so a cluster of ten processes comes up in the time of one
election; stopping goes routers, then shards, then the config servers.

Ports: with ``base_port`` B the routers' gRPC ports are ``B .. B+R-1`` and their wire ports
``B-10 ..`` (so ``helogale up`` puts routers on 27027/27028 and 27017/27018; at most 10
routers with a fixed base). The replica sets take blocks from ``B+100``: the config servers
first, then shard k at ``B+100+k*S``, where S is the set's port count (gRPC, Raft and wire
ports of each member, in that order, as :class:`~node.local_cluster.LocalCluster` lays them)
rounded up to a multiple of 10: with 3 members, ``cfg`` at 27127, ``shard1`` at 27137,
``shard2`` at 27147. Without ``base_port`` every port is a free one picked at random.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import bson
import grpc

from helogale.auth import Credentials
from helogale.channel import Channel
from helogale.errors import PyMongoError
from helogale.tls import ClientTLS
from node.local_cluster import (
    CODEC,
    LOOPBACK,
    METRICS_OFFSET,
    LocalCluster,
    free_ports,
    wait_until,
)
from proto import helogale_pb2, helogale_pb2_grpc
from raft.auth import load_keyfile

CONFIG_SET = "cfg"


@dataclass
class RouterProcess:
    port: int
    wire_port: int | None
    log_path: str
    metrics_port: int | None = None
    proc: subprocess.Popen[bytes] | None = None
    channel: grpc.Channel | None = field(default=None, repr=False)
    internal: Any = field(default=None, repr=False)
    """``auth``: a helogale channel authenticated as the cluster's internal identity."""

    @property
    def address(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    @property
    def wire_address(self) -> str | None:
        return f"{LOOPBACK}:{self.wire_port}" if self.wire_port else None

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


class ShardedCluster:
    """Config servers, shards and routers as local processes (see module docstring)."""

    def __init__(
        self,
        shards: int = 2,
        *,
        members: int = 3,
        routers: int = 2,
        data_dir: str | None = None,
        base_port: int | None = None,
        wire: bool = True,
        log_level: str = "INFO",
        election_timeout_ms: int | None = None,
        extra_args: list[str] | None = None,
        own_process_group: bool = False,
        metrics: bool = False,
        auth: bool = False,
        tls: Any = None,
    ) -> None:
        """``metrics``: every process serves Prometheus metrics (routers their status page
        too). ``own_process_group``: every process in a process group of its own, so a Ctrl-C at
        the terminal reaches only the caller, which then stops them in order (``helogale
        up``). ``auth``: every process with ``--auth`` and ONE key file (the cluster's internal
        identity between sets); the harness's own calls authenticate as that identity.
        ``tls``: a :class:`node.security.certs.PKI`: requireTLS everywhere (see LocalCluster)."""
        self._own_dir = data_dir is None
        self.data_dir = data_dir or tempfile.mkdtemp(prefix="helogale-sharded-")
        self.wire = wire
        self.log_level = log_level
        if base_port is not None and not 1 <= routers <= 10:
            raise ValueError("with a fixed base port, 1 to 10 routers (their wire ports are "
                             "the 10 ports below it)")
        self.own_process_group = own_process_group
        per_set = -(-members * (3 if wire else 2) // 10) * 10  # rounded up to a multiple of 10
        set_base = None if base_port is None else base_port + 100
        self.tls = tls
        self.userinfo = ""
        """``user:password@`` the URIs carry (``helogale up --auth``)."""
        common = {"wire": wire, "log_level": log_level, "tls": tls,
                  "election_timeout_ms": election_timeout_ms,
                  "own_process_group": own_process_group, "metrics": metrics}
        extra = list(extra_args or [])
        self.auth = auth
        self.keyfile = os.path.join(self.data_dir, "keyfile")
        if auth:
            extra.append("--auth")
        self.config = LocalCluster(
            members, data_dir=os.path.join(self.data_dir, CONFIG_SET), replset=CONFIG_SET,
            base_port=set_base, extra_args=["--configsvr", *extra], **common)
        self.shards: list[LocalCluster] = []
        for k in range(shards):
            base = None if set_base is None else set_base + per_set * (k + 1)
            self.shards.append(LocalCluster(
                members, data_dir=os.path.join(self.data_dir, f"shard{k + 1}"),
                replset=f"shard{k + 1}", base_port=base, extra_args=["--shardsvr", *extra],
                **common))
        # one key for every set and the routers: they authenticate to each other with it
        # (--auth) and open command links with it (node.server.command_link)
        for cluster in self.sets:
            cluster.keyfile = self.keyfile
        if base_port is None:
            ports = free_ports(routers * 3)
            grpc_ports, wire_ports = ports[:routers], ports[routers:2 * routers]
            metric_ports = ports[2 * routers:]
        else:
            grpc_ports = list(range(base_port, base_port + routers))
            wire_ports = list(range(base_port - 10, base_port - 10 + routers))
            metric_ports = [p + METRICS_OFFSET for p in grpc_ports]
        self.metrics = metrics
        self.routers = [RouterProcess(p, w if wire else None,
                                      os.path.join(self.data_dir, f"router{i + 1}.log"),
                                      metrics_port=m if metrics else None)
                        for i, (p, w, m) in enumerate(zip(grpc_ports, wire_ports, metric_ports,
                                                          strict=True))]

    # --- addresses ---------------------------------------------------------------------------
    @property
    def sets(self) -> list[LocalCluster]:
        return [self.config, *self.shards]

    @property
    def uri(self) -> str:
        return ("helogale://" + self.userinfo + ",".join(r.address for r in self.routers)
                + "/" + self._query)

    @property
    def _query(self) -> str:
        opts = []
        if self.userinfo:
            opts.append("authSource=admin")
        if self.tls is not None:
            opts += ["tls=true", f"tlsCAFile={self.tls.ca_file}"]
        return "?" + "&".join(opts) if opts else ""

    @property
    def wire_uri(self) -> str | None:
        if not self.wire:
            return None
        return ("mongodb://" + self.userinfo
                + ",".join(r.wire_address or "" for r in self.routers) + "/" + self._query)

    @staticmethod
    def connection_string(cluster: LocalCluster) -> str:
        return f"{cluster.replset}/" + ",".join(m.address for m in cluster.members)

    @property
    def configdb(self) -> str:
        return self.connection_string(self.config)

    # --- lifecycle ---------------------------------------------------------------------------
    def start(self, timeout: float = 60.0,
              progress: Callable[[str], None] | None = None) -> ShardedCluster:
        """Start every member at once, wait for each set's primary, start the routers and add
        the shards (idempotent: a restarted cluster keeps its shards). ``progress`` is told
        each step as it completes (``helogale up`` prints them). If anything fails, whatever
        started is stopped before the error propagates (no process is left behind)."""
        try:
            return self._start(timeout, progress or (lambda _text: None))
        except BaseException:
            self.stop()
            raise

    def _start(self, timeout: float, say: Callable[[str], None]) -> ShardedCluster:
        for cluster in self.sets:
            for i in range(len(cluster.members)):
                cluster._spawn(i)
        for cluster in self.sets:
            p = cluster.wait_for_primary(timeout)
            say(f"{cluster.replset}: primary {cluster.members[p].address}")
        for i in range(len(self.routers)):
            self.start_router(i)
        for i in range(len(self.routers)):
            self.wait_router(i, timeout)
        say("routers: " + ", ".join(r.address for r in self.routers))
        for shard in self.shards:
            reply = self.router_command(0, {"addShard": self.connection_string(shard)},
                                        timeout=timeout)
            if reply.get("ok") != 1.0:
                raise RuntimeError(f"addShard {shard.replset} failed: {reply}")
        if self.shards:
            say("shards added: " + ", ".join(s.replset for s in self.shards))
        return self

    def __enter__(self) -> ShardedCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start_router(self, i: int) -> None:
        r = self.routers[i]
        argv = [sys.executable, "-m", "router", "--configdb", self.configdb,
                "--listen", r.address, "--log-level", self.log_level]
        if r.wire_port:
            argv += ["--wire-port", str(r.wire_port)]
        if r.metrics_port:
            argv += ["--metrics-port", str(r.metrics_port)]
        argv += ["--keyfile", self.keyfile]
        if self.auth:
            argv += ["--auth"]
        if self.tls is not None:
            argv += ["--tlsMode", "requireTLS", "--tlsCertificateKeyFile", self.tls.server_file,
                     "--tlsCAFile", self.tls.ca_file]
        env = dict(os.environ)
        env["PYTHONUNBUFFERED"] = "1"
        env.pop("HELOGALE_METRICS_PORT", None)  # one port for every process: the harness
        # gives each its own (metrics=True) or none
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
        os.makedirs(self.data_dir, exist_ok=True)
        with open(r.log_path, "ab") as log:
            r.proc = subprocess.Popen(argv, stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                                      env=env, process_group=0 if self.own_process_group
                                      else None)

    def wait_router(self, i: int, timeout: float = 30.0) -> None:
        wait_until(lambda: self.try_router(i, {"ping": 1}), timeout, f"router {i} ready")

    def kill_router(self, i: int) -> None:
        r = self.routers[i]
        if r.alive:
            r.proc.kill()  # type: ignore[union-attr]
            r.proc.wait()  # type: ignore[union-attr]
        self._close(r)

    def stop(self, timeout: float = 10.0) -> None:
        """Routers, then shards, then the config servers."""
        for r in self.routers:
            if r.alive:
                r.proc.send_signal(signal.SIGTERM)  # type: ignore[union-attr]
        deadline = time.monotonic() + timeout
        for r in self.routers:
            if r.proc is not None:
                try:
                    r.proc.wait(max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    r.proc.kill()
                    r.proc.wait()
            self._close(r)
        for shard in self.shards:
            shard.stop(timeout)
        self.config.stop(timeout)
        if self._own_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    # --- talking to routers ------------------------------------------------------------------
    @staticmethod
    def _close(r: RouterProcess) -> None:
        if r.channel is not None:
            r.channel.close()
            r.channel = None
        if r.internal is not None:
            r.internal.close()
            r.internal = None

    def router_command(self, i: int, cmd: Mapping[str, Any], db: str = "admin",
                       timeout: float = 60.0) -> dict[str, Any]:
        r = self.routers[i]
        if self.auth:  # as the cluster's internal identity
            return self._internal_channel(r).run(db, dict(cmd), CODEC, timeout=timeout)
        if r.channel is None:
            r.channel = self.config.grpc_channel(r.address)
        stub = helogale_pb2_grpc.CommandStub(r.channel)
        reply = stub.Run(helogale_pb2.CommandRequest(db=db, command=bson.encode(cmd)),
                         timeout=timeout, wait_for_ready=True)
        return bson.decode(reply.reply, codec_options=CODEC)

    def try_router(self, i: int, cmd: Mapping[str, Any], db: str = "admin",
                   timeout: float = 2.0) -> dict[str, Any] | None:
        if not self.routers[i].alive:
            return None
        try:
            return self.router_command(i, cmd, db, timeout)
        except (grpc.RpcError, ValueError, PyMongoError):
            return None

    def _internal_channel(self, r: RouterProcess) -> Any:
        if r.internal is None:
            key = load_keyfile(self.keyfile).decode("ascii")
            host, port = r.address.rsplit(":", 1)
            tls = (ClientTLS(self.tls.ca_file, self.tls.client_file) if self.tls is not None
                   else None)
            r.internal = Channel((host, int(port)), credentials=Credentials(
                "__system", key, "local"), tls=tls)
        return r.internal
