"""Assembles a member process: store, engine, state machine, member, dispatcher, servers.

``NodeApp(config).start()`` opens the data directory (LMDB, or memory without ``--data``),
builds the state machine with every command family's appliers, the member (a replicated
:class:`~node.server.replica.Replica`, or a :class:`~node.server.standalone.StandaloneMember`
when ``standalone`` is asked for), the dispatcher, the gRPC command server and, with
``--wire-port``, the MongoDB wire-protocol listener. ``stop()`` undoes it in reverse order.

A member that can no longer make progress (its Raft node failed: WAL write, store, snapshot
install; see ``raft.node``) logs ONE ERROR line saying why, steps down if it can, sets
:attr:`NodeApp.failure` and calls ``on_fatal()``: the process then exits non-zero
(``node.__main__``) and a supervisor restarts it.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from typing import Any

from node.commands.appliers import APPLIERS, GROUPERS, STATEMENTS
from node.commands.context import WIRE, RequestContext
from node.commands.cursors import REAP_INTERVAL_S, CursorRegistry
from node.commands.dispatcher import Dispatcher, NodeServices
from node.commands.engine_ops import open_engine
from node.commands.member import WriteConcern
from node.commands.read_concern import HISTORY_MAX
from node.commands.table import NODE_COMMANDS
from node.engine.errors import MongoError
from node.server.config import NodeConfig
from node.server.grpc_service import (
    STREAM_WORKERS,
    UNARY_RESERVE,
    add_command_service,
    make_server,
)
from node.server.periodic import Periodic
from node.server.session_reaper import SessionReaper
from node.server.statemachine import StateMachine
from node.server.store_guard import StoreGuard, kernel_boot_id
from node.server.ttl import TTLMonitor
from raft.auth import load_keyfile
from raft.fsio import FileSystem
from raft.tls import REQUIRE, add_port

log = logging.getLogger("helogale.node")


def reader_slots(config: NodeConfig) -> int:
    """LMDB reader slots for a member: one per open cursor (capped at ``max_cursors``) plus a
    reserve no cursor can take, for the short reads of every thread that may run a command at
    once (gRPC workers, a reader per open stream, stream workers, wire connections; two each,
    a read may nest), the snapshot being sent and internal reads. So ``hello``, ``ping``,
    writes and replication never find the reader table full because of cursors."""
    threads = 2 * config.grpc_workers + STREAM_WORKERS + config.wire_max_connections
    return config.max_cursors + 2 * threads + 64 + HISTORY_MAX


def open_store(data_dir: str | None, *, sync: bool = False, map_size: int | None = None,
               max_readers: int | None = None               ) -> Any:
    """The engine's KVStore: LMDB under ``data_dir/engine``, or in memory.

    A standalone member has no WAL, so its store fsyncs every commit. A replica-set member's
    store is opened by :class:`~node.server.store_guard.StoreGuard` instead: it runs without
    fsync (the Raft WAL, fsynced before anything is acknowledged, is the durable record) and
    is discarded and rebuilt from the Raft snapshot and log after the machine crashed."""
    if data_dir is None:
        from node.engine.memory_store import MemoryStore

        return MemoryStore()
    from node.engine.lmdb_store import LMDBStore

    path = os.path.join(data_dir, "engine")
    os.makedirs(path, exist_ok=True)
    sizes: dict[str, int] = {}
    if map_size is not None:
        sizes["map_size"] = map_size
    if max_readers is not None:
        sizes["max_readers"] = max_readers
    return LMDBStore(path, sync=sync, **sizes)


class NodeApp:
    """One member process's moving parts. ``fs`` (the Raft files and the store marker) and
    ``boot_id`` are injectable for power-loss tests."""

    def __init__(self, config: NodeConfig, *, standalone: bool = False,
                 fs: FileSystem | None = None,
                 boot_id: Callable[[], str | None] = kernel_boot_id,
                 on_fatal: Callable[[], None] | None = None) -> None:
        self.config = config
        self.failure: str | None = None
        """Why this member can no longer make progress (None while healthy)."""
        self._on_fatal = on_fatal
        self._fatal_lock = threading.Lock()
        self.store_guard: StoreGuard | None = None
        readers = reader_slots(config)
        if config.data_dir is not None and not standalone:
            self.store_guard = StoreGuard(config.data_dir, fs=fs, boot_id=boot_id)
            self.store: Any = self.store_guard.open(config.engine_map_size, readers)
            log.info("engine store opened", extra={"fields": {
                "rebuilt": self.store_guard.rebuilt, "reason": self.store_guard.reason}})
        else:
            self.store = open_store(config.data_dir, sync=standalone,
                                    map_size=config.engine_map_size, max_readers=readers)
        self.engine = open_engine(self.store, max_sort_bytes=config.max_blocking_sort_bytes)
        self.sm = StateMachine(self.engine, self.store, APPLIERS, groupers=GROUPERS,
                               statements=STATEMENTS)
        self.member: Any
        if standalone:
            from node.server.standalone import StandaloneMember

            self.member = StandaloneMember(self.sm, config.advertised)
        else:
            from node.server.replica import Replica

            self.member = Replica(config, self.sm, self.store, fs=fs)
            self.member.on_fatal = self._fatal
        self.cursors = CursorRegistry(idle_timeout_s=config.cursor_timeout_s,
                                      max_open=config.max_cursors,
                                      max_per_connection=config.max_cursors_per_connection)
        services = NodeServices(self.engine, self.member, self.cursors,
                                session_timeout_minutes=config.session_timeout_minutes,
                                test_commands=config.enable_test_commands)
        if not standalone:
            services.cluster_time = self.member.cluster_time
        self.snapshots = services.snapshots
        services.tail_waits.attach(self.engine, self.sm)
        self.sharding = self._sharding_role(services)
        self._security(services)
        if config.tls.enabled:  # the sets this process dials (config servers, shards)
            from node.sharding.remote import set_internal_tls

            set_internal_tls(config.tls)
        self.dispatcher = Dispatcher(services, NODE_COMMANDS, slow_ms=config.slowms)
        self.command_links = self._command_links()
        if config.grpc_workers <= UNARY_RESERVE:
            raise ValueError(f"grpc_workers must be more than {UNARY_RESERVE}")
        self.grpc = make_server(config.grpc_workers)
        self.command_service = add_command_service(
            self.grpc, self.dispatcher, max_streams=config.grpc_workers - UNARY_RESERVE)
        port = add_port(self.grpc, config.listen, config.tls if config.tls.enabled else None)
        if port == 0:
            raise OSError(f"cannot listen on {config.listen}")
        self.wire: Any = None
        self.metrics: Any = None
        self._stopped = threading.Event()
        self._reaper = Periodic("cursor-reaper", self._reap, REAP_INTERVAL_S, log)
        self.ttl = TTLMonitor(self.engine, self.dispatcher.run, self._writable,
                              interval_s=config.ttl_monitor_secs)
        self.session_reaper = SessionReaper(
            self.store, lambda entry: self.member.submit(entry, WriteConcern())[0],
            self._writable, timeout_minutes=config.session_timeout_minutes,
            interval_s=config.session_refresh_secs)

    def _command_links(self) -> Any:
        """Serve internal command links on the Raft port (``node.server.command_link``): only
        with the key file (callers prove it) and without TLS (links are plain TCP); and call
        other sets (config servers, shards) over theirs."""
        from node.server.command_link import CommandLinkServer
        from node.sharding.remote import set_link_key

        transport = getattr(getattr(self.member, "raft", None), "transport", None)
        if self._key is None or self.config.tls.enabled:
            return None
        set_link_key(self._key)
        if not hasattr(transport, "command_server"):  # the gRPC Raft transport: none
            return None
        server = CommandLinkServer(self.dispatcher, internal=self.config.auth)
        transport.command_server = server
        return server

    def _security(self, services: NodeServices) -> None:
        """Users from this member's store (and the internal user, with the key file);
        ``--auth``: the authorization check, and the internal identity on calls to other sets
        (config servers, shards)."""
        from node.security.authz import Authorizer, LocalUsers

        key = self._key = load_keyfile(self.config.keyfile) if self.config.keyfile else None
        services.users = LocalUsers(self.engine, key)
        if self.config.auth:
            services.authz = Authorizer(services.users)
            if key is not None:
                from node.sharding.remote import set_internal_key

                set_internal_key(key)

    def _sharding_role(self, services: NodeServices) -> Any:
        """The config-server or shard role this member was started with (None: neither)."""
        role = self.config.cluster_role
        if role == "configsvr":
            from node.sharding.config_server import ConfigServer
            from node.sharding.remote import connection_string

            def my_conn() -> str:
                members = getattr(self.member, "members", None)
                hosts = [m.host for m in members()] if members else [self.config.advertised]
                return connection_string(self.config.replset, hosts)

            from node.sharding.balancer import Balancer

            config_server = ConfigServer(self.engine, self.member, my_conn)
            config_server.balancer = Balancer(config_server, self._writable,
                                              interval_s=self.config.balancer_interval_secs)
            services.sharding = config_server
        elif role == "shardsvr":
            from node.sharding.commands import ShardRole
            from node.sharding.migration import RangeDeleter
            from node.sharding.shard_state import ShardState

            state = ShardState(self.engine, self.store, self.member)
            services.sharding = ShardRole(state, RangeDeleter(state, self._writable),
                                          self._writable)
            services.routing = state
            self.sm.guard = state
        elif role is not None:
            raise ValueError(f"unknown cluster role {role!r}")
        return services.sharding

    def _fatal(self, where: str, exc: BaseException) -> None:
        """The member cannot make progress: one ERROR line, step down, tell the process."""
        with self._fatal_lock:
            if self.failure is not None:
                return
            self.failure = f"{where} failed: {type(exc).__name__}: {exc}"
        log.error("member cannot make progress and is exiting: %s", self.failure,
                  exc_info=exc, extra={"fields": {"where": where,
                                                  "cause": type(exc).__name__}})
        try:
            relinquish = getattr(self.member, "relinquish", None)
            if relinquish is not None:
                relinquish()
        finally:
            if self._on_fatal is not None:
                self._on_fatal()

    def _reap(self) -> None:
        """Close idle cursors and let go of snapshots kept past their time."""
        self.cursors.reap()
        self.snapshots.expire()

    def _writable(self) -> bool:
        try:
            self.member.require_writable()
        except MongoError:
            return False
        return True

    def _start_wire(self) -> None:
        if self.config.wire_port is None:
            return
        from node.wire.labels import add_error_labels
        from node.wire.server import WireServer

        def handle(db: str, command: dict[str, Any], info: Any) -> dict[str, Any]:
            ctx = RequestContext(transport=WIRE, connection_id=info.connection_id,
                                 peer=info.peer, auth=info.session())
            return add_error_labels(self.dispatcher.is_retryable_write(command),
                                    self.dispatcher.run(db, command, ctx))

        cfg = self.config
        self.wire = WireServer(handle, cfg.wire_listen_host, cfg.wire_port,
                               max_connections=cfg.wire_max_connections,
                               stall_timeout_s=cfg.wire_stall_timeout_secs or None,
                               idle_timeout_s=cfg.wire_idle_timeout_secs or None,
                               max_buffered_bytes=cfg.wire_max_buffered_bytes,
                               ssl_context=(cfg.tls.server_ssl_context() if cfg.tls.enabled
                                            else None),
                               tls_only=cfg.tls.mode == REQUIRE)
        self.wire.start()
        wire = self.wire
        self.dispatcher.ops.connection_sources.append(lambda: {
            "current": wire.connections, "totalCreated": wire.created})

    def _start_metrics(self) -> None:
        ops = self.dispatcher.ops
        service = self.command_service
        ops.connection_sources.append(lambda: {"current": service.open_streams,
                                               "totalCreated": service.peers_seen})
        if self.config.metrics_port is None:
            return
        from node.ops import metrics

        sources: list[metrics.Source] = [
            lambda: metrics.command_metrics(ops),
            lambda: metrics.connection_metrics(ops, self.cursors),
            metrics.counter_metrics,
        ]
        if hasattr(self.member, "raft_metrics"):
            sources.append(lambda: metrics.raft_metrics(self.member))
        role_metrics = getattr(self.sharding, "metrics", None)
        if role_metrics is not None:
            sources.append(role_metrics)
        self.metrics = metrics.MetricsServer(self.config.metrics_host, self.config.metrics_port,
                                             metrics.registry_of(sources)).start()
        ops.metrics_port = self.metrics.port
        log.info("metrics serving", extra={"fields": {"metrics_port": self.metrics.port}})

    def start(self) -> NodeApp:
        start = getattr(self.member, "start", None)
        if start is not None:
            start()
        self.grpc.start()
        self._start_wire()
        self._start_metrics()
        self._reaper.start()
        self.ttl.start()
        start_role = getattr(self.sharding, "start", None)
        if start_role is not None:
            start_role()
        self.session_reaper.start()
        log.info("member serving", extra={"fields": {
            "listen": self.config.listen, "wire_port": self.config.wire_port,
            "replset": self.config.replset, "data": self.config.data_dir}})
        return self

    def stop(self) -> None:
        """Stop serving, stop the member, close cursors and the store."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        self._reaper.stop()
        self.ttl.stop()
        if self.sharding is not None:
            self.sharding.close()
        self.session_reaper.stop()
        if self.metrics is not None:
            self.metrics.stop()
        if self.wire is not None:
            self.wire.stop()
        self.grpc.stop(0.5).wait()
        self.command_service.close()
        if self.command_links is not None:
            self.command_links.close()
        stop = getattr(self.member, "stop", None)
        if stop is not None:
            stop()
        self.cursors.close_all()
        self.snapshots.close()
        self.dispatcher.services.tail_waits.close()
        if self.store_guard is not None:
            self.store_guard.close(self.store)  # synced and marked clean
        else:
            self.store.close()
        log.info("member stopped")
